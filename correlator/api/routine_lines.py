"""An analysis's routine lines kept as places in its logs, not as event rows.

A busy broker's routine traffic (PUBLISH, PUBACK, PINGREQ ...) is most of its lines and makes no
finding. The bulk reader counts it instead of parsing it (correlator/formats/scan.py), and says
where each of those lines is (`analyze(on_routine=...)`), as the TUI keeps them
(correlator/tui/routine_rows.py, whose collector this reuses). An analysis of the API stores them
so: one array of about 35 bytes a line (its time, file, byte offset, line number, source, kind and
level) in `routine_lines`, beside the few events in `events`, and keeps the logs they are in (in
the analysis's upload folder). Storing 2M lines is then one array, not 2M rows written at a few
thousand a second, and a big analysis no longer holds the CPU and the database for minutes while
small uploads wait.

The timeline still shows every line: a page merges the events and the routine lines in one order,
reading each routine line's text back from its log at its offset and parsing it with its format as
the reader would have (redacted the same way: correlator.redaction). Positions:

- each routine line has an `anchor`, the number of events before it: the events whose running
  maximum of time is at or before its time, but never past an event of its own file that comes
  after it, nor before one that comes before it (a log's own order is kept, as the timeline's merge
  keeps it); lines of one anchor are in time order (their file's running maximum), then file order;
- the merged position (a page's `seq`, and so its cursor) of event `s` is `s` plus the routine
  lines anchored before it, of routine line `j` (in that order, from 0) `anchor + j + 1`. An
  analysis without routine lines keeps `seq` as its events' numbers.

Filters hold for routine lines as for events (times, sources, kinds, levels, text); routine lines
name no client, so a client filter leaves them out (as in the TUI). The text filter finds
candidates by searching the log's bytes, then checks each on its redacted text.
"""

from __future__ import annotations

import bisect
import json
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from correlator.api.storage import TimelineQuery, client_of, iso
from correlator.errors import CorrelatorError
from correlator.model import LEVELS, Event
from correlator.redaction import redact
from correlator.sources.blocks import lines_holding

if TYPE_CHECKING:
    from correlator.analysis import RoutineBlock
    from correlator.formats.parse import SourceParser
    from correlator.formats.registry import Registry
    from correlator.tui.routine_rows import RoutineRows

#: The stored array's fields (numpy dtype spec), in merged order.
FIELDS = [("anchor", "<i8"), ("ts", "<f8"), ("offset", "<i8"), ("line", "<u4"), ("file", "<u2"), ("src", "<u2"),
          ("kind", "<u2"), ("level", "<u1")]
#: Bytes read back for one line (longer lines are cut, as the reader cuts them).
READ_BACK = 64 * 1024
#: Analyses whose routine lines one process keeps loaded.
CACHED = 4
#: Routine lines looked at per step while filling a page.
STEP = 65_536

EventPage = Callable[[TimelineQuery], tuple[list[dict[str, Any]], int | None]]


class RoutinePlaces:
    """Collects, while an analysis runs, its events' places (on_events) and its routine lines
    (on_routine), and at the end gives what `Store.save_routine` keeps."""

    def __init__(self, kept: Callable[[str], str | None]) -> None:
        """`kept(file)`: where the log a file name names is kept (relative to the store's uploads
        folder), or None when it cannot be (its routine lines are then left out)."""
        from correlator.tui.routine_rows import RoutineRows

        self.rows: RoutineRows = RoutineRows()
        self.kept = kept
        self._tmax = array("d")
        self._file = array("H")
        self._offset = array("q")
        self._files: dict[str, int] = {}
        self._hosts: dict[str, str] = {}
        """File -> host, as its events say."""
        self._skew: dict[str, float] = {}
        self._max = float("-inf")

    def add(self, block: RoutineBlock) -> None:
        self.rows.add(block)

    def on_events(self, events: Sequence[Event]) -> None:
        files = self._files
        for event in events:
            if event.ts > self._max:
                self._max = event.ts
            self._tmax.append(self._max)
            ix = files.get(event.file)
            if ix is None:
                ix = files[event.file] = len(files)
                self._hosts[event.file] = event.host
            self._file.append(ix)
            self._offset.append(event.offset)
            if event.skew:
                self._skew[event.source] = event.skew

    def build(self, formats: dict[str, str]) -> tuple[dict[str, Any], bytes] | None:
        """(meta, array bytes) in merged order, or None without routine lines; `formats`: the
        format each file was read with (the report's sources)."""
        import numpy as np

        parts = [p for p in self.rows.parts if self.kept(p.file) is not None]
        if not parts:
            return None
        names = list(dict.fromkeys(p.file for p in parts))
        sources = list(dict.fromkeys(p.source for p in parts))
        kinds: list[str] = []
        kind_ix: dict[str, int] = {}
        for part in parts:
            for kind in part.kind_names:
                if kind not in kind_ix:
                    kind_ix[kind] = len(kinds)
                    kinds.append(kind)
        sizes = np.array([len(p.ts) for p in parts], dtype=np.int64)
        r_file = np.repeat(np.array([names.index(p.file) for p in parts], dtype=np.uint16), sizes)
        r_src = np.repeat(np.array([sources.index(p.source) for p in parts], dtype=np.uint16), sizes)
        r_off = np.concatenate([p.offsets for p in parts]).astype(np.int64)
        r_ts = np.concatenate([p.ts for p in parts]).astype(np.float64)
        r_line = np.concatenate([p.lines for p in parts]).astype(np.uint32)
        r_level = np.concatenate([p.levels for p in parts]).astype(np.uint8)
        r_kind = np.concatenate([np.array([kind_ix[k] for k in p.kind_names], dtype=np.uint16)[p.kinds]
                                 for p in parts])
        tmax = np.frombuffer(self._tmax, dtype=np.float64) if len(self._tmax) else np.zeros(0)
        ev_file = np.frombuffer(self._file, dtype=np.uint16) if len(self._file) else np.zeros(0, np.uint16)
        ev_off = np.frombuffer(self._offset, dtype=np.int64) if len(self._offset) else np.zeros(0, np.int64)
        count = len(tmax)
        keep = np.ones(len(r_ts), dtype=bool)
        runmax = np.empty(len(r_ts), dtype=np.float64)
        low = np.zeros(len(r_ts), dtype=np.int64)
        high = np.full(len(r_ts), count, dtype=np.int64)
        for f, name in enumerate(names):
            mine = np.flatnonzero(r_file == f)
            mine = mine[np.argsort(r_off[mine], kind="stable")]
            runmax[mine] = np.maximum.accumulate(r_ts[mine])
            ev_ix = self._files.get(name)
            if ev_ix is None:
                continue
            seqs = np.flatnonzero(ev_file == ev_ix)  # this file's events (seq - 1), in file order
            offsets = ev_off[seqs]
            at = np.searchsorted(offsets, r_off[mine], side="left")
            # a line a rule took after all (sources/thinning.py) is an event already
            hit = at < len(offsets)
            hit[hit] = offsets[at[hit]] == r_off[mine][hit]
            keep[mine[hit]] = False
            # after the file's event before it, before the file's event after it
            low[mine] = np.append(0, seqs + 1)[at]
            after = np.searchsorted(offsets, r_off[mine], side="right")
            high[mine] = np.append(seqs, count)[after]
        anchor = np.clip(np.searchsorted(tmax, runmax, side="right"), low, high)
        order = np.lexsort((r_off, r_file, runmax, anchor))
        order = order[keep[order]]
        out = np.zeros(len(order), dtype=np.dtype(FIELDS))
        for name, column in (("anchor", anchor), ("ts", r_ts), ("offset", r_off), ("line", r_line),
                             ("file", r_file), ("src", r_src), ("kind", r_kind), ("level", r_level)):
            out[name] = column[order]
        files = []
        for name in names:
            source = next(p.source for p in parts if p.file == name)
            files.append({"name": name, "path": self.kept(name), "host": self._hosts.get(name, ""),
                          "format": formats.get(name, ""), "skew": self._skew.get(source, 0.0)})
        meta = {"events": count, "lines": len(out), "files": files, "sources": sources, "kinds": kinds}
        return meta, out.tobytes()


class RoutineIndex:
    """One analysis's routine lines, loaded (see the module's docstring for the positions)."""

    def __init__(self, meta: dict[str, Any], data: bytes, uploads: Path) -> None:
        import numpy as np

        self.meta = meta
        records = np.frombuffer(data, dtype=np.dtype(FIELDS))
        # a column of packed records is strided: searches and masks over 2M of them take tens of
        # milliseconds each, over a contiguous copy a fraction of one
        self.cols: dict[str, Any] = {name: np.ascontiguousarray(records[name]) for name, _ in FIELDS}
        self.count = len(records)
        del records
        self.events = int(meta["events"])
        self.files: list[dict[str, Any]] = meta["files"]
        self.sources: list[str] = meta["sources"]
        self.kinds: list[str] = meta["kinds"]
        self.paths = [uploads / f["path"] for f in self.files]
        anchors = self.cols["anchor"]
        self.positions = anchors + np.arange(1, len(anchors) + 1, dtype=np.int64)
        self._anchors = anchors
        self._lock = threading.Lock()
        self._hits: OrderedDict[str, Any] = OrderedDict()

    def __len__(self) -> int:
        return self.count

    def row(self, j: int) -> dict[str, Any]:
        """Routine line `j`'s stored values."""
        return {name: column[j].item() for name, column in self.cols.items()}

    def position(self, seq: int) -> int:
        """The merged position of event `seq`."""
        import numpy as np

        return seq + int(np.searchsorted(self._anchors, seq, side="left"))

    def page(self, query: TimelineQuery, events: EventPage, registry: Registry) -> tuple[list[dict[str, Any]],
                                                                                          int | None]:
        limit = query.limit
        after = query.after
        # the first event past the cursor: positions grow with seq
        first = bisect.bisect_right(range(1, self.events + 1), after, key=self.position)
        found, cursor = events(TimelineQuery(**{**query.__dict__, "after": first}))
        merged: list[tuple[int, dict[str, Any] | int]] = [(self.position(item["seq"]), item) for item in found]
        reader = _Reader(self, registry)
        try:
            picked, routine_more = self._pick(query, after, limit, reader)
            merged.extend((int(self.positions[j]), j) for j in picked)
            merged.sort(key=lambda pair: pair[0])
            more = cursor is not None or routine_more or len(merged) > limit
            merged = merged[:limit]
            items = self._items([j for _, j in merged if isinstance(j, int)], reader)
        finally:
            reader.close()
        page = [{**(items[item] if isinstance(item, int) else item), "seq": pos} for pos, item in merged]
        return page, (page[-1]["seq"] if more and page else None)

    # -- routine lines matching a query ------------------------------------------------------

    def _pick(self, query: TimelineQuery, after: int, limit: int, reader: _Reader) -> tuple[list[int], bool]:
        """The first `limit` routine lines past position `after` that match, and whether more do."""
        import numpy as np

        if not self.count:
            return [], False
        start = int(np.searchsorted(self.positions, after, side="right"))
        cols = self.cols
        sources = _allowed(self.sources, query.sources, exact=True)
        kinds = _allowed(self.kinds, query.kinds, exact=False)
        levels = [i for i, name in enumerate(LEVELS) if name in query.levels] if query.levels else None
        if (sources is not None and not sources) or (kinds is not None and not kinds) or levels == []:
            return [], False
        hits = self._text_hits(query.text) if query.text else None
        if query.clients:  # a routine line names its client in its text, if at all
            named = np.logical_or.reduce([self._text_hits(client) for client in query.clients])
            hits = named if hits is None else hits & named
        picked: list[int] = []
        while start < self.count and len(picked) <= limit:
            stop = min(start + STEP, self.count)
            mask = np.ones(stop - start, dtype=bool)
            if query.since is not None:
                mask &= cols["ts"][start:stop] >= query.since
            if query.until is not None:
                mask &= cols["ts"][start:stop] <= query.until
            if sources is not None:
                mask &= np.isin(cols["src"][start:stop], sources)
            if kinds is not None:
                mask &= np.isin(cols["kind"][start:stop], kinds)
            if levels is not None:
                mask &= np.isin(cols["level"][start:stop], levels)
            if hits is not None:
                mask &= hits[start:stop]
            for j in (np.flatnonzero(mask) + start).tolist():
                if query.text and not reader.contains(j, query.text):
                    continue
                if query.clients and reader.client(j) not in query.clients:
                    continue
                picked.append(j)
                if len(picked) > limit:
                    break
            start += STEP
        return picked[:limit], len(picked) > limit

    def _text_hits(self, text: str) -> Any:
        """Routine lines whose log line holds `text` (case ignored as the stores' LIKE ignores
        it), cached per text. Every line holds an empty text (a client filter of "")."""
        import numpy as np

        if not text:
            return np.ones(self.count, dtype=bool)
        with self._lock:
            cached = self._hits.get(text)
            if cached is not None:
                self._hits.move_to_end(text)
                return cached
        hits = np.zeros(self.count, dtype=bool)
        for f, path in enumerate(self.paths):
            mine = np.flatnonzero(self.cols["file"] == f)
            offsets = self.cols["offset"][mine]
            order = np.argsort(offsets, kind="stable")
            mine, offsets = mine[order], offsets[order]
            try:
                found = np.asarray(lines_holding(path, text), dtype=np.int64)
            except (OSError, CorrelatorError):
                continue
            at = np.searchsorted(offsets, found)
            routine = at < len(offsets)
            at, found = at[routine], found[routine]
            hits[mine[at[offsets[at] == found]]] = True
        with self._lock:
            self._hits[text] = hits
            while len(self._hits) > 8:
                self._hits.popitem(last=False)
        return hits

    # -- routine lines as timeline items -----------------------------------------------------

    def _items(self, picked: list[int], reader: _Reader) -> dict[int, dict[str, Any]]:
        """Each routine line as the event its format makes of it (parsed now, redacted as it is),
        at its stored time."""
        out: dict[int, dict[str, Any]] = {}
        for j in picked:
            row = self.row(j)
            about = self.files[int(row["file"])]
            event = reader.event(j)
            out[j] = {"seq": 0, "time": iso(float(row["ts"])), "time_text": event.time_text if event else "",
                      "estimated": False, "source": self.sources[int(row["src"])], "host": about["host"],
                      "file": about["name"], "line": int(row["line"]), "level": LEVELS[int(row["level"])],
                      "kind": self.kinds[int(row["kind"])], "fields": event.fields if event else {},
                      "raw": event.raw if event else redact(reader.text(j)),
                      "format": event.format if event else about["format"], "skew": about["skew"],
                      "connection": None, "client": client_of(event) if event else None}
        return out


class _Reader:
    """Reads routine lines back for one page: each log opened once, each format's parser made once."""

    def __init__(self, index: RoutineIndex, registry: Registry) -> None:
        self.index = index
        self.registry = registry
        self._files: dict[int, BinaryIO | None] = {}
        self._parsers: dict[int, SourceParser | None] = {}

    def close(self) -> None:
        for handle in self._files.values():
            if handle is not None:
                handle.close()

    def text(self, j: int) -> str:
        """The line's text as it is in its log (not redacted)."""
        row = self.index.row(j)
        f = int(row["file"])
        if f not in self._files:
            try:
                self._files[f] = self.index.paths[f].open("rb")
            except OSError:
                self._files[f] = None
        handle = self._files[f]
        if handle is None:
            return ""
        handle.seek(int(row["offset"]))
        return handle.read(READ_BACK).split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")

    def event(self, j: int) -> Event | None:
        """The line as its format's parser makes it an event (redacting it as it does), its time
        left to the stored one; None when the format is unknown here or makes no one event."""
        from correlator.formats.parse import SourceParser

        row = self.index.row(j)
        f = int(row["file"])
        if f not in self._parsers:
            about = self.index.files[f]
            fmt = self.registry.formats.get(about["format"])
            self._parsers[f] = None if fmt is None else SourceParser(fmt, self.registry.evidence,
                                                                     source=self.index.sources[int(row["src"])],
                                                                     file=about["name"])
        parser = self._parsers[f]
        if parser is None:
            return None
        parsed = parser.feed([(int(row["line"]), int(row["offset"]), self.text(j))]) + parser.finish()
        return parsed[0] if len(parsed) == 1 else None

    def contains(self, j: int, text: str) -> bool:
        return text.casefold() in redact(self.text(j)).casefold()

    def client(self, j: int) -> str | None:
        event = self.event(j)
        return None if event is None else client_of(event)


def _allowed(names: list[str], wanted: Sequence[str], *, exact: bool) -> list[int] | None:
    """Indexes of `names` a filter lets through (None: no filter). Kinds ending in '.' or '*' are
    prefixes, as the stores read them."""
    if not wanted:
        return None
    out = []
    for i, name in enumerate(names):
        for want in wanted:
            if name == want or (not exact and want.endswith(("*", ".")) and name.startswith(want.rstrip("*"))):
                out.append(i)
                break
    return out


class RoutineCache:
    """Loaded RoutineIndexes of one store, the most recently used CACHED (a finished analysis's
    routine lines never change; a deleted analysis's number is never used again)."""

    def __init__(self, load: Callable[[int], tuple[str, bytes] | None], uploads: Path) -> None:
        self.load = load
        self.uploads = uploads
        self._lock = threading.Lock()
        self._loaded: OrderedDict[int, RoutineIndex] = OrderedDict()

    def get(self, num: int) -> RoutineIndex | None:
        with self._lock:
            if num in self._loaded:
                self._loaded.move_to_end(num)
                return self._loaded[num]
        stored = self.load(num)
        if stored is None:  # not cached: the analysis may be one still running
            return None
        index = RoutineIndex(json.loads(stored[0]), stored[1], self.uploads)
        with self._lock:
            self._loaded[num] = index
            while len(self._loaded) > CACHED:
                self._loaded.popitem(last=False)
        return index

    def forget(self, num: int) -> None:
        with self._lock:
            self._loaded.pop(num, None)


def timeline(cache: RoutineCache, num: int, query: TimelineQuery, events: EventPage,
             registry: Registry | None) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the merged timeline: the events' alone when the analysis kept no routine lines."""
    index = cache.get(num)
    if index is None:
        return events(query)
    if registry is None:
        from correlator.formats.registry import default_registry

        registry = default_registry()
    return index.page(query, events, registry)
