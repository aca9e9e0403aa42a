"""Text search over the timeline, all of it at once: every row whose line holds the needle.

The timeline keeps offsets, not lines, so reading a million rows back one `pread` at a time to
test each (what the screen used to do) took 7.5 s. Instead each log file is read in the bulk
reader's blocks of whole lines (sources/blocks.py), lowered and searched with `bytes.find` (C
speed), and every hit is turned into the row whose line starts where the hit's line starts,
through a per-file index of row offsets (built on the first search that finds something, then
extended as rows arrive: a miss costs the read alone). The answer is every matching row, so the
screen can say "3/6" and announce a wrap; a search can be cancelled between blocks. Rows whose
file cannot be read back (their text is kept) and needles that are not ASCII (bytes.lower only
folds ASCII) are tested row by row, as the screen draws them.

No textual import here: the search is tested and benchmarked without a screen.
"""

from __future__ import annotations

import operator
from array import array
from bisect import bisect_left
from collections.abc import Callable
from itertools import compress, repeat

from correlator.cancel import Cancelled
from correlator.printable import printable
from correlator.sources.blocks import lines_holding
from correlator.tui.event_store import EventStore

#: Rows indexed between two looks at the cancel flag.
INDEX_STEP = 262_144


class SearchIndex:
    """For each readable file of a store: its rows' line offsets and the rows, in row order (a
    log read in time order is in file order, so they are nearly always sorted: `row_of` bisects,
    and scans when a log's times went backwards)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.upto = 0
        self.offsets: dict[int, array[int]] = {}
        self.rows: dict[int, array[int]] = {}

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
                offsets = self.offsets.setdefault(f, array("q"))
                rows = self.rows.setdefault(f, array("I"))
                if len(readable) == 1 and files.count(f) == len(files):
                    rows.extend(range(start, end))
                    offsets.extend(store.offset[start:end])
                else:
                    chosen = list(map(operator.eq, files, repeat(f)))
                    rows.extend(compress(range(start, end), chosen))
                    offsets.extend(compress(store.offset[start:end], chosen))
            start = self.upto = end

    def row_of(self, file: int, offset: int) -> int | None:
        """The row of the line of `file` starting at `offset` (None: no row starts there)."""
        offsets = self.offsets.get(file)
        if offsets is None:
            return None
        at = bisect_left(offsets, offset)
        if not (at < len(offsets) and offsets[at] == offset):
            try:  # not in order here (a log's time went backwards): look at each
                at = offsets.index(offset)
            except ValueError:
                return None
        return self.rows[file][at]


def find_rows(store: EventStore, index: SearchIndex, needle: str, count: int,
              cancelled: Callable[[], bool] = lambda: False) -> list[int]:
    """Every row below `count` whose line holds `needle` (case-insensitive), in row order.
    Raises Cancelled when `cancelled()` turns true."""
    if not needle or not count:
        return []
    lowered = needle.lower()
    found: set[int] = set()
    if lowered.isascii() and "\t" not in lowered:
        rotated = store.rotated_files()
        for f, path in store.readable_files().items():
            if f in rotated:
                continue  # its rows are in several files: tested one by one below
            starts = lines_holding(path, lowered, cancelled)
            if not starts:
                continue  # a miss never builds the index
            index.update(count, cancelled)
            for number, start in enumerate(starts):
                if number % INDEX_STEP == INDEX_STEP - 1 and cancelled():  # 'e' hits nearly every line
                    raise Cancelled
                row = index.row_of(f, start)
                if row is not None and row < count:
                    found.add(row)
        # a row whose text is kept (redacted) is tested on that text below, not on its file's line
        kept = store.kept_rows()
        found = {row for row in found if row not in kept}
        candidates: range | list[int] = sorted(r for r in store.kept_rows() if r < count)
        if rotated:
            candidates = sorted({*candidates, *(r for r in range(count) if store.file[r] in rotated)})
    else:
        candidates = range(count)
    for checked, row in enumerate(candidates):
        if checked % 4096 == 0 and cancelled():
            raise Cancelled
        if lowered in printable(store.text(row)).lower():
            found.add(row)
    return sorted(found)
