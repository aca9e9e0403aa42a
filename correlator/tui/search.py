"""Text search over the timeline, all of it at once: every row whose line holds the needle.

The timeline keeps offsets, not lines, so reading a million rows back one `pread` at a time to
test each (what the screen used to do) took 7.5 s. Instead each log file is read in large blocks,
lowered and searched with `bytes.find` (C speed), and every hit is turned into the row whose line
starts where the hit's line starts, through a per-file index of row offsets (built on the first
search, then extended as rows arrive). The answer is every matching row, so the screen can say
"3/6" and announce a wrap; a search can be cancelled between blocks. Rows whose file cannot be
read back (their text is kept) and needles that are not ASCII (bytes.lower only folds ASCII) are
tested row by row, as the screen draws them.

No textual import here: the search is tested and benchmarked without a screen.
"""

from __future__ import annotations

import operator
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from itertools import compress, islice, repeat

from correlator.cancel import Cancelled
from correlator.printable import printable
from correlator.tui.event_store import EventStore

#: Bytes read and searched at a time (a cancelled search stops within one block).
BLOCK = 8 << 20
#: Rows indexed between two looks at the cancel flag.
INDEX_STEP = 262_144


class SearchIndex:
    """For each readable file of a store: its rows' line offsets, sorted, and the rows."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.upto = 0
        self.offsets: dict[int, array[int]] = {}
        self.rows: dict[int, array[int]] = {}
        self._sorted: dict[int, bool] = {}

    def update(self, count: int, cancelled: Callable[[], bool]) -> None:
        """Index rows up to `count` (the store only grows). Each step is a pipeline of C iterators
        (compress, map, slices of typed arrays): a million rows of one file take tens of
        milliseconds, not the second a loop of Python over them took."""
        store = self.store
        readable = store.readable_files()
        start = self.upto
        while start < count:
            if cancelled():
                raise Cancelled
            end = min(count, start + INDEX_STEP)
            files = store.file[start:end]
            for f in readable:
                if f in self._sorted:
                    offsets, rows = self.offsets[f], self.rows[f]
                else:
                    offsets = self.offsets[f] = array("q")
                    rows = self.rows[f] = array("I")
                    self._sorted[f] = True
                if len(readable) == 1 and files.count(f) == len(files):
                    mine: Iterable[int] = range(start, end)
                    rows.extend(mine)
                    added = store.offset[start:end]
                else:
                    chosen = list(map(operator.eq, files, repeat(f)))
                    rows.extend(compress(range(start, end), chosen))
                    added = array("q", compress(store.offset[start:end], chosen))
                before = offsets[-1] if offsets else None
                offsets.extend(added)
                if added and ((before is not None and added[0] < before)
                              or not all(map(operator.le, added, islice(added, 1, None)))):
                    self._sorted[f] = False
            start = self.upto = end
        for f, ordered in list(self._sorted.items()):
            if not ordered:
                pairs = sorted(zip(self.offsets[f], self.rows[f], strict=True))
                self.offsets[f] = array("q", (p[0] for p in pairs))
                self.rows[f] = array("I", (p[1] for p in pairs))
                self._sorted[f] = True


def find_rows(store: EventStore, index: SearchIndex, needle: str, count: int,
              cancelled: Callable[[], bool] = lambda: False) -> list[int]:
    """Every row below `count` whose line holds `needle` (case-insensitive), in row order.
    Raises Cancelled when `cancelled()` turns true."""
    if not needle or not count:
        return []
    lowered = needle.lower()
    found: set[int] = set()
    if lowered.isascii() and "\t" not in lowered:
        index.update(count, cancelled)
        want = lowered.encode()
        for f, offsets in index.offsets.items():
            path = store.readable_files()[f]
            found.update(_scan_file(path, want, offsets, index.rows[f], count, cancelled))
        # a row whose text is kept (redacted) is tested on that text below, not on its file's line
        kept = store.kept_rows()
        found = {row for row in found if row not in kept}
        candidates: range | list[int] = sorted(r for r in store.kept_rows() if r < count)
    else:
        candidates = range(count)
    for checked, row in enumerate(candidates):
        if checked % 4096 == 0 and cancelled():
            raise Cancelled
        if lowered in printable(store.text(row)).lower():
            found.add(row)
    return sorted(found)


def _scan_file(path: str, want: bytes, offsets: array[int], rows: array[int], count: int,
               cancelled: Callable[[], bool]) -> list[int]:
    """The rows (below `count`) of one file whose first line holds `want` (lowercase ASCII)."""
    out: list[int] = []
    last = offsets[-1] if offsets else -1
    with open(path, "rb", buffering=0) as handle:
        base = 0
        while base <= last:
            if cancelled():
                raise Cancelled
            block = handle.read(BLOCK)
            if not block:
                break
            if len(block) == BLOCK:
                block += handle.readline()  # end the block at a line's end
            lower = block.lower()
            at = lower.find(want)
            previous = -1
            while at >= 0:
                start = lower.rfind(b"\n", 0, at) + 1
                i = bisect_left(offsets, base + start)
                if i < len(offsets) and offsets[i] == base + start:
                    row = rows[i]
                    if row != previous and row < count:
                        out.append(row)
                        previous = row
                end = lower.find(b"\n", at)
                if end < 0:
                    break
                at = lower.find(want, end)
            base += len(block)
    return out

