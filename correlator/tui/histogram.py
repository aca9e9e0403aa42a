"""The time histogram's numbers (lnav's `i` view): messages per time bucket and source, errors,
and the finding evidence in each bucket, so an engineer sees when it started.

The numbers come through `CountFeed`, a small interface: lines and errors per source per epoch
second. The timeline store is one feed (`StoreCounts`); while a bundle is read, the fast reader's
routine lines (counted, not yet rows of the store: correlator.tui.routine_rows) are another
(`SecondCounts`), added to the same histogram by source name, so its numbers are exact from the
first frame. No textual import here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from correlator.tui.event_store import EventStore

#: Bucket sizes in seconds, from the finest zoom to the coarsest.
ZOOMS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400)
#: The histogram opens at the finest zoom that needs no more buckets than this.
OPEN_BUCKETS = 120
#: Zooming in stops before more buckets than this (a week of logs at one second a bucket).
MAX_BUCKETS = 200_000


class CountFeed(Protocol):
    """Lines per source per second, and how many of them were errors."""

    def source_names(self) -> list[str]: ...

    def lines(self, source: int) -> Mapping[int, int]:
        """Epoch second -> lines of that source in that second."""
        ...

    def errors(self, source: int) -> Mapping[int, int]:
        """Epoch second -> lines at level error or worse."""
        ...


class StoreCounts:
    """The timeline store as a feed: the per-second counters it keeps as rows arrive."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def source_names(self) -> list[str]:
        return list(self.store.sources)

    def lines(self, source: int) -> Mapping[int, int]:
        return self.store.stats[source].per_second

    def errors(self, source: int) -> Mapping[int, int]:
        return self.store.stats[source].errors_per_second


class SecondCounts:
    """Lines per source and second given as numbers (none of them errors: the fast reader's
    routine lines never are)."""

    def __init__(self, counts: Mapping[str, Mapping[int, int]]) -> None:
        self.counts = dict(counts)
        self._names = list(self.counts)

    def source_names(self) -> list[str]:
        return self._names

    def lines(self, source: int) -> Mapping[int, int]:
        return self.counts[self._names[source]]

    def errors(self, source: int) -> Mapping[int, int]:
        return {}


@dataclass(frozen=True)
class Bucket:
    start: int
    """Epoch second the bucket begins at."""
    counts: tuple[int, ...]
    """Messages per source, in `Histogram.sources` order."""
    errors: int
    evidence: int
    """Finding evidence lines dated within the bucket."""

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Histogram:
    size: int
    sources: tuple[str, ...]
    buckets: tuple[Bucket, ...]

    def index_of(self, ts: float) -> int:
        """The bucket holding time `ts` (clamped to the first and last)."""
        if not self.buckets:
            return 0
        at = int((int(ts) - self.buckets[0].start) // self.size)
        return max(0, min(len(self.buckets) - 1, at))

    def peak(self) -> int:
        return max((b.total for b in self.buckets), default=0)

    def source_peaks(self) -> list[int]:
        return [max((b.counts[i] for b in self.buckets), default=0) for i in range(len(self.sources))]


def span(feeds: Sequence[CountFeed]) -> tuple[int, int] | None:
    """The first and last second any feed counted a line in."""
    seconds = [second for feed in feeds for i in range(len(feed.source_names()))
               for second in (min(_keys(feed.lines(i)), default=None), max(_keys(feed.lines(i)), default=None))
               if second is not None]
    return (min(seconds), max(seconds)) if seconds else None


def opening_size(feeds: Sequence[CountFeed]) -> int:
    """The finest bucket size that shows the whole span in at most OPEN_BUCKETS buckets."""
    found = span(feeds)
    if found is None:
        return ZOOMS[0]
    length = found[1] - found[0] + 1
    return next((size for size in ZOOMS if length / size <= OPEN_BUCKETS), ZOOMS[-1])


def zoom(size: int, step: int, feeds: Sequence[CountFeed]) -> int:
    """The next bucket size in (step -1) or out (+1); in stops at MAX_BUCKETS buckets."""
    at = ZOOMS.index(size) if size in ZOOMS else 0
    wanted = ZOOMS[max(0, min(len(ZOOMS) - 1, at + step))]
    found = span(feeds)
    if step < 0 and found is not None and (found[1] - found[0] + 1) / wanted > MAX_BUCKETS:
        return size
    return wanted


def build(feeds: Sequence[CountFeed], size: int, evidence: Iterable[float] = ()) -> Histogram:
    """Every bucket from the first counted second to the last (quiet ones too: a gap is news),
    sources added up by name across feeds."""
    names: list[str] = []
    for feed in feeds:
        for name in feed.source_names():
            if name not in names:
                names.append(name)
    found = span(feeds)
    if found is None:
        return Histogram(size, tuple(names), ())
    first = found[0] - found[0] % size
    count = (found[1] - first) // size + 1
    lines = [[0] * len(names) for _ in range(count)]
    errors = [0] * count
    marks = [0] * count
    for feed in feeds:
        for i, name in enumerate(feed.source_names()):
            column = names.index(name)
            for second, n in list(feed.lines(i).items()):
                lines[(second - first) // size][column] += n
            for second, n in list(feed.errors(i).items()):
                errors[(second - first) // size] += n
    for ts in evidence:
        at = (int(ts) - first) // size
        if 0 <= at < count:
            marks[at] += 1
    return Histogram(size, tuple(names), tuple(Bucket(first + i * size, tuple(lines[i]), errors[i], marks[i])
                                              for i in range(count)))


def _keys(counts: Mapping[int, int]) -> list[int]:
    return list(counts)
