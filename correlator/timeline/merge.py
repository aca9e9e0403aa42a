"""Merge many event streams into one, ordered by corrected time, without reading any stream ahead.

Ordering rule (the same for batch and live):

- A source's events are never reordered among themselves. A log's own timestamps are not always
  monotonic (an estimated time borrowed from a neighbour, an NTP step backwards, a multi-threaded
  writer), and file order is the one order we know is true for one writer. Reordering within a
  source would also split a stitched connection's lines.
- Each event is placed at its source's *running maximum* of `ts` (`sort_key`): an event stamped
  earlier than one before it in the same file is placed right after that one. For a monotonic
  source this is just `ts`. After a backwards clock step the source's events stay behind the
  high-water mark until its clock catches up; skew correction (timeline.skew) is the tool for
  clocks that are wrong, not reordering.
- Ties: equal keys keep file order within a source; between sources the lower source index (the
  order the caller listed the sources in) comes first. So the result is a pure function of the
  inputs: the same files always merge the same way, whatever the chunking.

Batch merging (`merge_chunks`, `merge`) is a k-way heap merge that pulls one chunk at a time per
source, so memory is one chunk per source. It emits runs: after popping the smallest source it
takes every following event of that source that still sorts before the next source's head, which
makes merging nearly free when one file dominates a stretch of time.

Live merging (`LiveMerger`) is pushed batches as tailers deliver them. It cannot know whether a
quiet source will later deliver an older line, so it releases an event once every active source
has advanced past it, or once it has waited `delay` seconds (a watermark), whichever comes first.
Fed everything and flushed, it yields exactly what `merge` yields.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from correlator.model import Event

EventChunks = Iterable[list[Event]]
"""One source: its events in file order, in lists (LogFile.chunks() yields these)."""

_NEG_INF = float("-inf")


class _Cursor:
    """Read position in one source: the current chunk, the index in it, and the running max."""

    __slots__ = ("chunk", "index", "it", "pos", "runmax")

    def __init__(self, index: int, it: Iterator[list[Event]]) -> None:
        self.index = index
        self.it = it
        self.chunk: list[Event] = []
        self.pos = 0
        self.runmax = _NEG_INF

    def advance(self) -> bool:
        """Load the next non-empty chunk; False when the source is exhausted."""
        for chunk in self.it:
            if chunk:
                self.chunk = chunk
                self.pos = 0
                return True
        self.chunk = []
        self.pos = 0
        return False

    def head_key(self) -> float:
        ts = self.chunk[self.pos].ts
        return ts if ts > self.runmax else self.runmax


def merge_chunks(sources: Iterable[EventChunks]) -> Iterator[list[Event]]:
    """Merge sources (each an iterable of event chunks in file order) into runs of events in
    timeline order. A run is a slice of one source's chunk (the chunk itself when it goes out
    whole: do not mutate runs); events are the sources' own objects, not copies."""
    cursors: list[_Cursor] = []
    heap: list[tuple[float, int]] = []
    for index, source in enumerate(sources):
        cursor = _Cursor(index, iter(source))
        cursors.append(cursor)
        if cursor.advance():
            heap.append((cursor.head_key(), index))
    heapq.heapify(heap)
    while heap:
        _, index = heap[0]
        cursor = cursors[index]
        # The next-smallest head among the other sources: a child of the root.
        if len(heap) > 2:
            bound = heap[1] if heap[1] < heap[2] else heap[2]
        elif len(heap) == 2:
            bound = heap[1]
        else:
            bound = (float("inf"), -1)
        bound_key, bound_index = bound
        # A run never crosses a chunk boundary, so a file that dominates a long stretch of time
        # still comes out in chunk-sized pieces and memory stays bounded.
        runmax = cursor.runmax
        chunk, start = cursor.chunk, cursor.pos
        end = len(chunk)
        pos = start
        while pos < end:
            event = chunk[pos]
            key = event.ts if event.ts > runmax else runmax
            if key > bound_key or (key == bound_key and index > bound_index):
                break
            runmax = key
            pos += 1
        cursor.pos = pos
        cursor.runmax = runmax
        if pos < end or cursor.advance():
            heapq.heapreplace(heap, (cursor.head_key(), index))
        else:
            heapq.heappop(heap)
        if pos > start:
            yield chunk[start:pos] if start or pos < end else chunk


def merge(sources: Iterable[EventChunks]) -> Iterator[Event]:
    """`merge_chunks`, one event at a time."""
    for run in merge_chunks(sources):
        yield from run


def sort_keys(events: Iterable[Event]) -> Iterator[float]:
    """The keys `merge` orders one source's events by (its running maximum of ts), for callers
    that need to explain an event's place in the timeline."""
    runmax = _NEG_INF
    for event in events:
        if event.ts > runmax:
            runmax = event.ts
        yield runmax


@dataclass
class _LiveSource:
    name: str
    runmax: float = _NEG_INF
    active: bool = True
    fed: bool = False


@dataclass
class LiveMerger:
    """Orders events pushed in batches from several live sources.

    Call `add_source` for every source before its first batch (a source that is known but quiet
    holds events back for at most `delay` seconds), `feed` with each batch in the source's file
    order, `release` whenever convenient (after each feed, or on a timer) and `flush` at the end.
    Released events come in timeline order, except that an event arriving after the watermark has
    already let later events go is released at once (it cannot be un-shown); `late` counts them.
    Not thread-safe: call it from one thread (the tailer's callback thread, or the consumer's).
    """

    delay: float = 0.25
    """Seconds an event may wait for a quiet source before it is released anyway."""
    clock: Callable[[], float] = time.monotonic
    late: int = 0
    """Events released out of timeline order because they arrived after their turn."""
    _sources: list[_LiveSource] = field(default_factory=list)
    _by_name: dict[str, int] = field(default_factory=dict)
    _heap: list[tuple[float, int, int, Event]] = field(default_factory=list)
    _arrivals: deque[tuple[float, float]] = field(default_factory=deque)
    _seq: int = 0
    _released_key: float = _NEG_INF
    _due_key: float = _NEG_INF

    def add_source(self, name: str) -> int:
        """Register a source (idempotent); its index breaks ties like `merge`'s argument order."""
        index = self._by_name.get(name)
        if index is None:
            index = len(self._sources)
            self._sources.append(_LiveSource(name))
            self._by_name[name] = index
        else:
            self._sources[index].active = True
        return index

    def close_source(self, name: str) -> None:
        """The source will send nothing more (file gone, tail stopped): stop waiting for it."""
        index = self._by_name.get(name)
        if index is not None:
            self._sources[index].active = False

    def feed(self, name: str, events: list[Event], now: float | None = None) -> None:
        index = self.add_source(name)
        if not events:
            return
        source = self._sources[index]
        source.fed = True
        runmax = source.runmax
        heap = self._heap
        seq = self._seq
        for event in events:
            if event.ts > runmax:
                runmax = event.ts
            heapq.heappush(heap, (runmax, index, seq, event))
            seq += 1
        self._seq = seq
        source.runmax = runmax
        self._arrivals.append((self.clock() if now is None else now, runmax))

    def pending(self) -> int:
        return len(self._heap)

    def frontier(self) -> float:
        """Key up to which every active source has spoken: nothing older can still arrive, unless
        a source's clock steps back (then its events sort at its running max anyway)."""
        keys = [s.runmax if s.fed else _NEG_INF for s in self._sources if s.active]
        return min(keys) if keys else float("inf")

    def release(self, now: float | None = None) -> list[Event]:
        """Events that may be shown now, in timeline order."""
        now = self.clock() if now is None else now
        arrivals = self._arrivals
        while arrivals and arrivals[0][0] + self.delay <= now:
            _, key = arrivals.popleft()
            if key > self._due_key:
                self._due_key = key
        cutoff = max(self.frontier(), self._due_key)
        return self._pop_until(cutoff)

    def flush(self) -> list[Event]:
        """Everything still held (end of input)."""
        self._arrivals.clear()
        return self._pop_until(float("inf"))

    def _pop_until(self, cutoff: float) -> list[Event]:
        heap = self._heap
        out: list[Event] = []
        released = self._released_key
        while heap and heap[0][0] <= cutoff:
            key, _, _, event = heapq.heappop(heap)
            if key < released:
                self.late += 1
            else:
                released = key
            out.append(event)
        self._released_key = released
        return out
