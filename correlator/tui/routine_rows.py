"""The routine lines of a bundle as timeline rows, without their ever becoming events.

The bulk reader (correlator/formats/scan.py) counts a busy broker's routine traffic instead of
parsing it, and says where each of those lines is (`analyze(on_routine=...)`): its offset, line
number, second and message. The TUI keeps that here, block by block, as numpy arrays (about
23 bytes a line), and once the read is over merges them with the events into one timeline in time
order (`merge`), so every line is still drawn, scrolled and searched, its text read back from the
file at its offset as an event's is.

The merge keeps the events' order and a log's own order: a routine line goes right after the event
before it in its log (by offset) among the rows of its second, as if it had been an event. It is
computed on the reading thread and swapped in on the screen's (`EventStore.renumber`), which then
moves its cursor, marks and search to the rows' new numbers.

Followed live (`watch`), the lines appended to a log are classified the same way
(LiveAnalysis, sources/routine.py `AppendedLines.places`), and their routine ones come here as the
same blocks (`LiveRows`): held a moment, they join the timeline as rows among the live events in
time order (a routine line before the first event of a later second, or of its second and file
further on in the file), so a flood of PUBLISH traffic is never parsed and is still drawn.

numpy is the fast reader's (the `fast` extra); without it the bulk reader keeps no places and the
TUI reads every line as an event, so nothing here is imported.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from correlator.analysis import RoutineBlock
from correlator.model import Event, level_rank
from correlator.tui.event_store import ERROR_RANK, ROUTINE, WARNING_RANK, EventStore

#: The store's columns: name, array typecode, numpy dtype.
COLUMNS = (("ts", "d", "float64"), ("src", "H", "uint16"), ("level", "B", "uint8"), ("kind", "H", "uint16"),
           ("client", "I", "uint32"), ("file", "H", "uint16"), ("line", "I", "uint32"), ("offset", "q", "int64"),
           ("flags", "B", "uint8"), ("conn", "I", "uint32"))


@dataclass
class _Part:
    """One block's routine lines in the store's terms."""

    file: str
    source: str
    offsets: Any
    lines: Any
    ts: Any
    kinds: Any
    """Index into `kind_names`."""
    kind_names: tuple[str, ...]
    levels: Any
    """Level ranks."""


@dataclass
class Merged:
    """A store's new columns with the routine rows among the events, and how its rows moved."""

    columns: dict[str, array[Any]]
    moved: Any
    """Old row -> new row (numpy)."""
    added: dict[int, tuple[int, int, dict[int, int], dict[int, int]]] = field(default_factory=dict)
    """Per source index: rows, alarming rows, rows per second, errors per second, to add."""
    ordered: bool = True
    max_ts: float = float("-inf")


class RoutineRows:
    """Collects `analyze`'s routine blocks (on the reading thread), within --since/--until."""

    def __init__(self, since: float | None = None, until: float | None = None) -> None:
        self.since = since
        self.until = until
        self.parts: list[_Part] = []
        self.lines = 0
        self.per_second: dict[str, dict[int, int]] = {}
        """Source -> second -> routine lines so far: the histogram counts them while reading."""
        self._lock = threading.Lock()

    def add(self, block: RoutineBlock) -> None:
        import numpy as np

        where = block.lines
        ts = where.seconds.astype(np.float64) + block.correction
        keep = None
        if self.since is not None:
            keep = ts >= self.since
        if self.until is not None:
            keep = (ts <= self.until) if keep is None else keep & (ts <= self.until)
        offsets = where.starts.astype(np.int64) + block.base
        lines = (where.numbers + (block.before + 1)).astype(np.uint32)
        messages = where.messages
        if keep is not None:
            ts, offsets, lines, messages = ts[keep], offsets[keep], lines[keep], messages[keep]
        if not len(ts):
            return
        ranks = np.array([level_rank(level) for level in where.levels], dtype=np.uint8)
        part = _Part(block.file, block.source, offsets, lines, ts, messages.astype(np.uint16), tuple(where.kinds),
                     ranks[messages])
        seconds, counts = np.unique(np.floor(ts).astype(np.int64), return_counts=True)
        with self._lock:
            self.parts.append(part)
            self.lines += len(ts)
            table = self.per_second.setdefault(block.source, {})
            for second, n in zip(seconds.tolist(), counts.tolist(), strict=True):
                table[second] = table.get(second, 0) + n

    def take_from(self, ts: float) -> list[_Part]:
        """The rows of time `ts` or later, taken out: the end of a live source's first read,
        whose events the timeline still holds, is placed among them as they come out (`LiveRows`)
        rather than merged before them."""
        taken: list[_Part] = []
        kept: list[_Part] = []
        with self._lock:
            for part in self.parts:
                late = part.ts >= ts
                if not late.any():
                    kept.append(part)
                    continue
                taken.append(_part(part, late))
                if not late.all():
                    kept.append(_part(part, ~late))
            self.parts = kept
            for part in taken:  # (`lines` stays what the read counted)
                table = self.per_second.get(part.source, {})
                for second in part.ts.astype("int64").tolist():
                    table[second] -= 1
                    if not table[second]:
                        del table[second]
        return taken

    def seconds(self) -> dict[str, dict[int, int]]:
        """A copy of the routine lines per source and second so far."""
        with self._lock:
            return {source: dict(table) for source, table in self.per_second.items()}


def _part(part: _Part, chosen: Any) -> _Part:
    return _Part(part.file, part.source, part.offsets[chosen], part.lines[chosen], part.ts[chosen],
                 part.kinds[chosen], part.kind_names, part.levels[chosen])


def merge(store: EventStore, rows: RoutineRows) -> Merged | None:
    """The store's rows and the routine ones in one time order (None when there are none). Call
    once the store is complete (nothing is appended while this runs); the store is not changed
    here but for names it learns (files, sources, kinds), which readers may see early."""
    import numpy as np

    parts = rows.parts
    if not parts:
        return None
    n = len(store)
    old = {name: np.frombuffer(getattr(store, name)[:n], dtype=dtype) for name, _, dtype in COLUMNS}
    files = np.array([store.file_index(p.file) for p in parts], dtype=np.uint16)
    sizes = np.array([len(p.ts) for p in parts], dtype=np.int64)
    r_file = np.repeat(files, sizes)
    r_off = np.concatenate([p.offsets for p in parts])
    r_ts = np.concatenate([p.ts for p in parts])
    r_line = np.concatenate([p.lines for p in parts])
    r_level = np.concatenate([p.levels for p in parts])
    r_src = np.repeat(np.array([store.source_index(p.source) for p in parts], dtype=np.uint16), sizes)
    r_kind = np.concatenate([np.array([store.kind_index(k) for k in p.kind_names], dtype=np.uint16)[p.kinds]
                             for p in parts])
    # a routine line a rule took after all (sources/thinning.py) is an event already; and each
    # routine line goes right after the event before it in its file (by offset) among its
    # second's rows, as the timeline's merge keeps a log's lines of one second together
    keep = np.ones(len(r_ts), dtype=bool)
    seq = np.empty(len(r_ts), dtype=np.int64)
    for f in np.unique(r_file).tolist():
        mine = np.flatnonzero(r_file == f)
        events = np.flatnonzero(old["file"] == f)
        offsets = old["offset"][events]
        order = np.argsort(offsets, kind="stable")
        offsets, events = offsets[order], events[order]
        if len(offsets):
            at = np.minimum(np.searchsorted(offsets, r_off[mine]), len(offsets) - 1)
            keep[mine[offsets[at] == r_off[mine]]] = False
        before = np.searchsorted(offsets, r_off[mine], side="left")
        seq[mine] = 2 * np.append(-1, events)[before] + 1
    r = {"ts": r_ts[keep], "src": r_src[keep], "level": r_level[keep], "kind": r_kind[keep],
         "client": np.zeros(int(keep.sum()), dtype=np.uint32), "file": r_file[keep], "line": r_line[keep],
         "offset": r_off[keep], "flags": np.full(int(keep.sum()), ROUTINE, dtype=np.uint8),
         "conn": np.zeros(int(keep.sum()), dtype=np.uint32)}
    seq = seq[keep]
    order = np.lexsort((np.concatenate((old["offset"], r["offset"])),
                        np.concatenate((2 * np.arange(n, dtype=np.int64), seq)),
                        np.concatenate((old["ts"], r["ts"]))))
    total = len(order)
    columns: dict[str, array[Any]] = {}
    for name, code, dtype in COLUMNS:
        joined = np.concatenate((old[name], r[name].astype(dtype)))[order]
        columns[name] = array(code, joined.tobytes())
    moved = np.empty(total, dtype=np.int64)
    moved[order] = np.arange(total, dtype=np.int64)
    merged = Merged(columns, moved[:n])
    ts = np.frombuffer(columns["ts"], dtype=np.float64)
    merged.ordered = bool(store.ordered and (total < 2 or (np.diff(ts) >= 0).all()))
    merged.max_ts = float(ts.max()) if total else float("-inf")
    del ts
    merged.added = _added(r["src"], r["ts"], r["level"])
    return merged


def _added(src: Any, ts: Any, level: Any) -> dict[int, tuple[int, int, dict[int, int], dict[int, int]]]:
    """Per source index of new routine rows: rows, alarming rows, rows per second, errors per second."""
    import numpy as np

    added = {}
    for source in np.unique(src).tolist():
        mine = src == source
        seconds, counts = np.unique(np.floor(ts[mine]).astype(np.int64), return_counts=True)
        levels = level[mine]
        bad = levels >= ERROR_RANK
        errors: dict[int, int] = {}
        if bad.any():
            e_seconds, e_counts = np.unique(np.floor(ts[mine][bad]).astype(np.int64), return_counts=True)
            errors = dict(zip(e_seconds.tolist(), e_counts.tolist(), strict=True))
        added[source] = (int(mine.sum()), int((levels >= WARNING_RANK).sum()),
                         dict(zip(seconds.tolist(), counts.tolist(), strict=True)), errors)
    return added


#: The pending rows' columns (LiveRows): the store's that a routine row does not leave empty, and
#: when it arrived.
_PENDING = (("ts", "float64"), ("src", "uint16"), ("level", "uint8"), ("kind", "uint16"), ("file", "uint16"),
            ("line", "uint32"), ("offset", "int64"), ("arrived", "float64"))


class LiveRows:
    """The routine rows of lines appended to followed logs, on their way into the store among the
    live events (LiveEventSource). A block's rows wait until an event after them in time comes out
    of the timeline (`place`: they go in just before it), or until no event the timeline holds is
    of an earlier time and they have waited `hold` seconds (`release`, every clock tick: as long as
    the timeline waits for a quiet log's lines). Every call on the one thread the store's writes
    come from (LiveAnalysis's, under its lock)."""

    def __init__(self, store: EventStore, hold: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.hold = hold
        self.clock = clock
        self._parts: list[dict[str, Any]] = []
        """The waiting rows, a part per block (joined when looked at: a flood adds many blocks a tick)."""
        self._waiting = 0
        self._seconds: dict[int, dict[int, int]] = {}
        """Source index -> second -> waiting rows (the histogram counts them before they are rows)."""
        self._lock = threading.Lock()
        self.rows = 0
        """Rows placed so far."""

    @property
    def waiting(self) -> int:
        return self._waiting

    def add(self, block: RoutineBlock) -> None:
        """One block's routine lines (LiveAnalysis's `on_routine_block`), to wait for their place."""
        import numpy as np

        store = self.store
        where = block.lines
        n = len(where.numbers)
        if not n:
            return
        ranks = np.array([level_rank(level) for level in where.levels], dtype=np.uint8)
        kinds = np.array([store.kind_index(kind) for kind in where.kinds], dtype=np.uint16)
        part = {"ts": where.seconds.astype(np.float64) + block.correction,
                "src": np.full(n, store.source_index(block.source), dtype=np.uint16),
                "level": ranks[where.messages], "kind": kinds[where.messages],
                "file": np.full(n, store.file_index(block.file), dtype=np.uint16),
                "line": (where.numbers + (block.before + 1)).astype(np.uint32),
                "offset": where.starts.astype(np.int64) + block.base,
                "arrived": np.full(n, self.clock(), dtype=np.float64)}
        self._parts.append(part)
        self._waiting += n
        self._count(part, 1)

    def add_part(self, part: _Part) -> None:
        """Rows of a first read (`RoutineRows.take_from`), in file order: they have waited already."""
        import numpy as np

        store = self.store
        n = len(part.ts)
        if not n:
            return
        kinds = np.array([store.kind_index(kind) for kind in part.kind_names], dtype=np.uint16)
        self._parts.append({"ts": part.ts, "src": np.full(n, store.source_index(part.source), dtype=np.uint16),
                            "level": part.levels, "kind": kinds[part.kinds],
                            "file": np.full(n, store.file_index(part.file), dtype=np.uint16), "line": part.lines,
                            "offset": part.offsets, "arrived": np.full(n, self.clock() - self.hold)})
        self._waiting += n
        self._count(self._parts[-1], 1)

    def _count(self, rows: dict[str, Any], sign: int) -> None:
        """Waiting rows per source and second, `sign` 1: in, -1: out."""
        import numpy as np

        for src in np.unique(rows["src"]).tolist():
            seconds, counts = np.unique(np.floor(rows["ts"][rows["src"] == src]).astype(np.int64), return_counts=True)
            with self._lock:
                table = self._seconds.setdefault(src, {})
                for second, k in zip(seconds.tolist(), counts.tolist(), strict=True):
                    left = table.get(second, 0) + sign * k
                    if left:
                        table[second] = left
                    else:
                        table.pop(second, None)

    def seconds(self) -> dict[str, dict[int, int]]:
        """A copy of the waiting rows per source name and second (any thread)."""
        with self._lock:
            return {self.store.sources[src]: dict(table) for src, table in self._seconds.items() if table}

    def _pending(self) -> dict[str, Any]:
        """The waiting rows, in the order they came (one part; empty when none waits)."""
        import numpy as np

        if len(self._parts) > 1:
            self._parts = [{name: np.concatenate([part[name] for part in self._parts]) for name, _ in _PENDING}]
        return self._parts[0] if self._parts else {}

    def place(self, events: Sequence[Event]) -> None:
        """Events in timeline order into the store, each after the waiting rows that come before
        it: of an earlier second, or of its second and file and earlier in the file."""
        import numpy as np

        if not self._waiting or not events:
            self.store.extend(events)
            return
        store = self.store
        pending = self._pending()
        ts = np.array([event.ts for event in events], dtype=np.float64)
        at = np.searchsorted(ts, pending["ts"], side="right")
        # of its second, a row goes before its file's first event further on in the file: the
        # events of each second and file, in order (their offsets grow), searched at once
        groups: dict[tuple[float, int], tuple[list[int], list[int]]] = {}
        for j in np.flatnonzero(np.isin(ts, pending["ts"])).tolist():
            event = events[j]
            offsets, places = groups.setdefault((event.ts, store.file_index(event.file)), ([], []))
            offsets.append(event.offset)
            places.append(j)
        for (second, file), (offsets, places) in groups.items():
            mine = np.flatnonzero((pending["ts"] == second) & (pending["file"] == file))
            if not len(mine) or offsets != sorted(offsets):
                continue
            after = np.searchsorted(np.array(offsets, dtype=np.int64), pending["offset"][mine], side="right")
            found = after < len(places)
            rows, first = mine[found], np.array(places, dtype=np.int64)[after[found]]
            at[rows] = np.minimum(at[rows], first)
        placed = at < len(events)
        if not placed.any():
            store.extend(events)
            return
        chosen = np.flatnonzero(placed)
        order = chosen[np.lexsort((pending["ts"][chosen], at[chosen]))]
        rows = {name: pending[name][order] for name, _ in _PENDING}
        self._keep(~placed)
        before = at[order]
        done = 0
        for j in np.unique(before).tolist():
            store.extend(events[done:j])
            lo, hi = np.searchsorted(before, j, side="left"), np.searchsorted(before, j, side="right")
            self._append({name: column[lo:hi] for name, column in rows.items()})
            done = j
        store.extend(events[done:])

    def release(self, held_from: float = float("inf"), everything: bool = False) -> None:
        """The rows that have waited `hold` seconds and are of an earlier time than every event the
        timeline holds (`held_from`), with every waiting row of no later time, in time order, into
        the store; all of them with `everything` (the follow is over)."""
        import numpy as np

        if not self._waiting:
            return
        pending = self._pending()
        if everything:
            due = np.ones(len(pending["ts"]), dtype=bool)
        else:
            ready = (pending["arrived"] <= self.clock() - self.hold) & (pending["ts"] < held_from)
            if not ready.any():
                return
            due = pending["ts"] <= pending["ts"][ready].max()
        order = np.flatnonzero(due)
        order = order[np.argsort(pending["ts"][order], kind="stable")]
        rows = {name: pending[name][order] for name, _ in _PENDING}
        self._keep(~due)
        self._append(rows)

    def _keep(self, mask: Any) -> None:
        pending = self._pending()
        self._parts = [{name: column[mask] for name, column in pending.items()}] if mask.any() else []
        self._waiting = int(mask.sum())

    def _append(self, rows: dict[str, Any]) -> None:
        import numpy as np

        n = len(rows["ts"])
        if not n:
            return
        self._count(rows, -1)
        rows = {**rows, "client": np.zeros(n, dtype=np.uint32), "flags": np.full(n, ROUTINE, dtype=np.uint8),
                "conn": np.zeros(n, dtype=np.uint32)}
        columns = {name: array(code, rows[name].astype(dtype).tobytes()) for name, code, dtype in COLUMNS}
        ts = rows["ts"]
        self.store.append_columns(columns, _added(rows["src"], ts, rows["level"]), float(ts.max()),
                                  bool(n < 2 or (np.diff(ts) >= 0).all()))
        self.rows += n
