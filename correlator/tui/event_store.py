"""The timeline's memory: one compact row per event, the text read back from the log on demand.

A two-million-line log must scroll as smoothly as a twenty-line one, so the store keeps what the
screen filters and sorts on (time, source, level, kind, client, file, line, byte offset) in typed
arrays, about 36 bytes a row, and never the Event objects or their text. The text of a visible row
is read back from its file at its offset (the toolong way); only rows whose file cannot be read
back (compressed logs, archives extracted to a folder that is gone, lines without an offset) keep
their text.

Rows are appended by one producer thread (the reader or the live engine's callback) and read by
the screen: readers only look at the first `len(store)` rows, which is bumped after every column
has grown, so they never see half a row. No textual import here: the store is tested and
benchmarked without a screen.
"""

from __future__ import annotations

import contextlib
import os
import threading
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlator.model import LEVELS, Event, level_rank
from correlator.redaction import REMOVED, redact

if TYPE_CHECKING:
    from correlator.tui.routine_rows import Merged

COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
#: Rows whose text is kept in a small cache after a read-back (a screenful, twice, plus search).
TEXT_CACHE = 4096
#: The longest piece of a line the screen reads back (longer lines are cut; the file has the rest).
READ_BACK = 4096
ERROR_RANK = LEVELS.index("error")
WARNING_RANK = LEVELS.index("warning")
#: Row flags: the line had no time of its own (its time is its neighbours', its file's or its arrival's).
ESTIMATED = 1
#: Row flags: a routine line the bulk reader counted (correlator.tui.routine_rows), never an event:
#: its text is redacted as it is read back, as an event's was when it was parsed.
ROUTINE = 2


@dataclass(frozen=True)
class Filter:
    """What the timeline shows: sources (by name; empty = all), client id and kind substrings,
    the lowest level. Text search is not a filter: it moves the cursor and keeps the context."""

    sources: frozenset[str] = frozenset()
    client: str = ""
    kind: str = ""
    min_level: str = "debug"

    @property
    def active(self) -> bool:
        return bool(self.sources or self.client or self.kind or self.min_level != "debug")

    def describe(self) -> str:
        parts = []
        if self.sources:
            parts.append("source " + ",".join(sorted(self.sources)))
        if self.client:
            parts.append(f"client ~{self.client}")
        if self.kind:
            parts.append(f"kind ~{self.kind}")
        if self.min_level != "debug":
            parts.append(f"level ≥ {self.min_level}")
        return "; ".join(parts)


@dataclass
class SourceStats:
    """Per-source counters the sparkline and the status bar show."""

    name: str
    rows: int = 0
    alarming: int = 0
    skew: float = 0.0
    per_second: dict[int, int] = field(default_factory=dict)
    errors_per_second: dict[int, int] = field(default_factory=dict)


class EventStore:
    def __init__(self) -> None:
        self.ts = array("d")
        self.src = array("H")
        self.level = array("B")
        self.kind = array("H")
        self.client = array("I")
        self.file = array("H")
        self.line = array("I")
        self.offset = array("q")
        self.flags = array("B")
        self.conn = array("I")
        """The stitched connection of each row (0: none), so a client's filter keeps the broker's
        lines of that client's connections (they say `Client <unknown>`)."""
        self.sources: list[str] = []
        self.kinds: list[str] = []
        self.clients: list[str] = [""]
        self.files: list[str] = []
        self.stats: list[SourceStats] = []
        self._source_ix: dict[str, int] = {}
        self._kind_ix: dict[str, int] = {}
        self._client_ix: dict[str, int] = {"": 0}
        self._file_ix: dict[str, int] = {}
        self._conn_ix: dict[str, int] = {"": 0}
        self.conn_clients: dict[int, set[int]] = {}
        """Connection -> the clients its rows name (client logs and broker lines with an id)."""
        self._readable: list[Path | None] = []
        self._raw: dict[int, str] = {}
        self._skew: dict[int, float] = {}
        self._fds: dict[int, int] = {}
        self._cache: OrderedDict[int, str] = OrderedDict()
        self._count = 0
        self._max_ts = float("-inf")
        self._ordered = True
        self._lock = threading.Lock()
        self.real_paths: dict[str, Path] = {}
        """Where a file named one way in events (a bundle's display name) really is on disk."""
        self.locate: Callable[[str, int], tuple[int, int] | None] | None = None
        """A followed log's rows through its rotations (LiveAnalysis.read_back): (file name, row
        offset) -> (descriptor, offset in the file that holds the line; descriptor -1: it is
        gone), or None to read the file at its name."""
        self.rotated: Callable[[str], bool] | None = None
        """Whether a file name's rows are in more files than the one at its name now."""
        self.pending: Merged | None = None
        """Rows renumbered off-screen (routine lines merged in), for the screen to `renumber`."""
        self.generation = 0
        """Bumped by `renumber`: row numbers from before are stale."""

    def __len__(self) -> int:
        return self._count

    @property
    def ordered(self) -> bool:
        """False once a late live event made time go backwards (then bisecting by time is off)."""
        return self._ordered

    # -- writing (one producer thread) ------------------------------------------------------

    def _intern(self, table: dict[str, int], values: list[str], value: str) -> int:
        found = table.get(value)
        if found is None:
            found = table[value] = len(values)
            values.append(value)
        return found

    def file_index(self, name: str) -> int:
        with self._lock:
            found = self._file_ix.get(name)
            return found if found is not None else self._file_index(name)

    def source_index(self, name: str) -> int:
        with self._lock:
            found = self._source_ix.get(name)
            if found is None:
                self.stats.append(SourceStats(name))  # stats first, as `extend` does
                found = self._intern(self._source_ix, self.sources, name)
            return found

    def kind_index(self, name: str) -> int:
        with self._lock:
            return self._intern(self._kind_ix, self.kinds, name)

    def renumber(self) -> array[int] | None:
        """Swap in the `pending` rows (on the screen's thread: no frame sees half of them);
        returns where each old row went, None when nothing was pending."""
        merged = self.pending
        if merged is None:
            return None
        with self._lock:
            self.pending = None
            moved = array("q", merged.moved.tobytes())
            # rows a live source appended after the merge was made follow the merged ones
            n, grown = len(moved), len(merged.columns["ts"])
            later = self._count - n
            ordered = merged.ordered and (not later or (self._ordered and self.ts[n] >= merged.max_ts))
            for name, column in merged.columns.items():
                column.extend(getattr(self, name)[n:self._count])
                setattr(self, name, column)
            moved.extend(range(grown, grown + later))
            self._raw = {moved[row]: text for row, text in self._raw.items()}
            self._skew = {moved[row]: value for row, value in self._skew.items()}
            self._cache.clear()
            self._count_added(merged.added)
            self._ordered = ordered
            self._max_ts = max(self._max_ts, merged.max_ts)
            self._count = len(self.ts)
            self.generation += 1
        return moved

    def _count_added(self, added: dict[int, tuple[int, int, dict[int, int], dict[int, int]]]) -> None:
        """Rows placed into the store, per source: (rows, alarming, rows per second, errors per
        second) into that source's stats. The caller holds the lock."""
        for src, (rows, alarming, seconds, errors) in added.items():
            stats = self.stats[src]
            stats.rows += rows
            stats.alarming += alarming
            for table, more in ((stats.per_second, seconds), (stats.errors_per_second, errors)):
                for second, n in more.items():
                    table[second] = table.get(second, 0) + n

    def append_columns(self, columns: dict[str, array[Any]], added: dict[int, tuple[int, int, dict[int, int],
                       dict[int, int]]], max_ts: float, ordered: bool) -> None:
        """Rows given as whole columns (the routine rows of lines appended to a followed log:
        correlator.tui.routine_rows.LiveRows), after the rows there; `added`, `max_ts` and
        `ordered` as a `Merged`'s (`ordered`: their times never go down)."""
        with self._lock:
            n = len(columns["ts"])
            if not n:
                return
            first = columns["ts"][0]
            if (self._count and first < self.ts[self._count - 1]) or not ordered:
                self._ordered = False
            for name, column in columns.items():
                getattr(self, name).extend(column)
            self._count_added(added)
            self._max_ts = max(self._max_ts, max_ts)
            self._count += n

    def _file_index(self, name: str) -> int:
        found = self._file_ix.get(name)
        if found is not None:
            return found
        path = self.real_paths.get(name, Path(name))
        readable: Path | None = None
        try:
            with path.open("rb") as handle:
                head = handle.read(6)
            if not any(head.startswith(magic) for magic in COMPRESSED_MAGIC):
                readable = path
        except OSError:
            # a followed log renamed away (rotated, not reopened yet) is read back where it is
            readable = path if self.locate is not None and self.locate(name, 0) is not None else None
        self._readable.append(readable)
        return self._intern(self._file_ix, self.files, name)

    def extend(self, events: Iterable[Event]) -> int:
        """Append events in timeline order; returns how many were added."""
        added = 0
        with self._lock:
            last = self.ts[-1] if self._count else float("-inf")
            for event in events:
                index = self._count
                src = self._source_ix.get(event.source)
                if src is None:
                    # stats first: a reader that sees the new source name must find its stats
                    self.stats.append(SourceStats(event.source))
                    src = self._intern(self._source_ix, self.sources, event.source)
                client_name = event.fields.get("client_id")
                if not isinstance(client_name, str) or client_name in ("<unknown>", "(null)"):
                    client_name = event.source.split(":", 1)[1] if ":" in event.source else ""
                rank = level_rank(event.level)
                file_ix = self._file_ix.get(event.file)
                if file_ix is None:
                    file_ix = self._file_index(event.file)
                self.ts.append(event.ts)
                self.src.append(src)
                self.level.append(rank)
                self.kind.append(self._intern(self._kind_ix, self.kinds, event.kind))
                self.client.append(self._intern(self._client_ix, self.clients, client_name))
                self.file.append(file_ix)
                self.line.append(max(event.line, 0))
                self.offset.append(event.offset)
                self.flags.append(ESTIMATED if event.estimated else 0)
                client_ix = self.client[-1]
                conn_ix = 0
                if event.connection:
                    conn_ix = self._conn_ix.get(event.connection, -1)
                    if conn_ix < 0:
                        conn_ix = self._conn_ix[event.connection] = len(self._conn_ix)
                    if client_ix:
                        self.conn_clients.setdefault(conn_ix, set()).add(client_ix)
                self.conn.append(conn_ix)
                if event.offset < 0 or self._readable[file_ix] is None or REMOVED in event.raw:
                    # a redacted line is kept as redacted: its file still holds the secret
                    self._raw[index] = event.raw
                if event.skew:
                    self._skew[index] = event.skew
                if event.ts < last:
                    self._ordered = False
                last = event.ts
                if event.ts > self._max_ts:
                    self._max_ts = event.ts
                stats = self.stats[src]
                stats.rows += 1
                if rank >= WARNING_RANK:
                    stats.alarming += 1
                if event.skew:
                    stats.skew = event.skew
                second = int(event.ts)
                stats.per_second[second] = stats.per_second.get(second, 0) + 1
                if rank >= ERROR_RANK:
                    stats.errors_per_second[second] = stats.errors_per_second.get(second, 0) + 1
                self._count = index + 1
                added += 1
        return added

    # -- reading (the screen) ---------------------------------------------------------------

    def text(self, row: int) -> str:
        """The row's log text: kept, cached, or read back from its file at its offset."""
        raw = self._raw.get(row)
        if raw is not None:
            return raw
        cached = self._cache.get(row)
        if cached is not None:
            return cached
        file_ix = self.file[row]
        path = self._readable[file_ix]
        text = ""
        if path is not None:
            found = self.locate(self.files[file_ix], self.offset[row]) if self.locate is not None else None
            try:
                if found is not None:
                    # a followed log's line, in the file that holds it (the renamed or copied
                    # old one after a rotation), not the one at its name
                    held, at = found
                    data = os.pread(held, READ_BACK, at) if held >= 0 else b""
                else:
                    fd = self._fds.get(file_ix)
                    if fd is None:
                        fd = self._fds[file_ix] = os.open(path, os.O_RDONLY)
                    data = os.pread(fd, READ_BACK, self.offset[row])
            except OSError:
                data = b""
            text = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
            if self.flags[row] & ROUTINE:
                text = redact(text)
        self._cache[row] = text
        if len(self._cache) > TEXT_CACHE:
            self._cache.popitem(last=False)
        return text

    def readable_files(self) -> dict[int, str]:
        """The files whose lines are read back from disk, by index."""
        return {i: str(path) for i, path in enumerate(list(self._readable)) if path is not None}

    def rotated_files(self) -> set[int]:
        """Readable files whose rows are not all in the file at their name (a followed log
        rotated): their lines are read back row by row (`text`), not searched in that file."""
        if self.rotated is None:
            return set()
        return {i for i, path in enumerate(list(self._readable)) if path is not None and self.rotated(self.files[i])}

    def kept_rows(self) -> dict[int, str]:
        """Rows whose text is kept in memory (their file cannot be read back)."""
        return self._raw

    def skew(self, row: int) -> float:
        return self._skew.get(row, 0.0)

    def source(self, row: int) -> str:
        return self.sources[self.src[row]]

    def level_name(self, row: int) -> str:
        return LEVELS[self.level[row]]

    def estimated(self, row: int) -> bool:
        return bool(self.flags[row] & ESTIMATED)

    def _clients_of(self, flt: Filter) -> tuple[set[int], set[int]] | None:
        """The client indexes a filter's client text names, and the connections those clients
        took part in (the broker's lines of them are that client's evidence)."""
        if not flt.client:
            return None
        needle = flt.client.lower()
        clients = {i for i, name in enumerate(self.clients) if name and needle in name.lower()}
        conns = {conn for conn, named in list(self.conn_clients.items()) if named & clients}
        return clients, conns

    def matches(self, flt: Filter) -> array[int] | None:
        """The rows a filter keeps (None when it keeps everything). Pure Python over typed arrays:
        about a quarter of a second per million rows, so the screen runs it on a worker thread."""
        count = self._count
        if not flt.active:
            return None
        src_ok = ({i for i, name in enumerate(self.sources) if name in flt.sources}
                  if flt.sources else None)
        who = self._clients_of(flt)
        client_ok, conn_ok = who if who is not None else (None, set())
        kind_ok = ({i for i, name in enumerate(self.kinds) if flt.kind.lower() in name.lower()}
                   if flt.kind else None)
        floor = level_rank(flt.min_level)
        src, client, kind, level, conn = self.src, self.client, self.kind, self.level, self.conn
        rows = array("I")
        for row in range(count):
            if ((src_ok is None or src[row] in src_ok)
                    and (client_ok is None or client[row] in client_ok or conn[row] in conn_ok)
                    and (kind_ok is None or kind[row] in kind_ok) and level[row] >= floor):
                rows.append(row)
        return rows

    def accepts(self, flt: Filter, row: int) -> bool:
        """One row against a filter: how rows arriving live join a filtered view."""
        if flt.sources and self.sources[self.src[row]] not in flt.sources:
            return False
        if flt.client and not self._names_client(flt.client.lower(), row):
            return False
        if flt.kind and flt.kind.lower() not in self.kinds[self.kind[row]].lower():
            return False
        return self.level[row] >= level_rank(flt.min_level)

    def _names_client(self, needle: str, row: int) -> bool:
        name = self.clients[self.client[row]]
        if name and needle in name.lower():
            return True
        return any(needle in self.clients[c].lower() for c in self.conn_clients.get(self.conn[row], ()))

    def find_line(self, file: str, line: int, near: float | None = None) -> int | None:
        """The row of `file:line` (evidence names its file the way events do). Bisects by time
        when the evidence has one, else scans."""
        file_ix = self._file_ix.get(file)
        if file_ix is None:
            # a live path against a display name (or the other way round): match on the tail
            for name, ix in self._file_ix.items():
                if name.endswith("/" + file) or file.endswith("/" + name):
                    file_ix = ix
                    break
        if file_ix is None:
            return None
        count = self._count
        if near is not None and self._ordered and count:
            start = bisect_left(self.ts, near - 5.0, 0, count)
            for row in range(start, count):
                if self.ts[row] > near + 5.0:
                    break
                if self.file[row] == file_ix and self.line[row] == line:
                    return row
        for row in range(count):
            if self.file[row] == file_ix and self.line[row] == line:
                return row
        return None

    def first_ts(self) -> float | None:
        return self.ts[0] if self._count else None

    def counts(self, source: int, end: int, bucket: int, width: int) -> list[int]:
        """Events of one source per `bucket` seconds, `width` buckets ending with second `end`."""
        per_second = self.stats[source].per_second
        first = end - bucket * width + 1
        out = [0] * width
        for second, n in list(per_second.items()):
            if first <= second <= end:
                out[(second - first) // bucket] += n
        return out

    def last_ts(self) -> float | None:
        return self._max_ts if self._count else None

    def rows_by_level(self, floor: int, rows: Iterable[int]) -> Iterator[int]:
        level = self.level
        return (row for row in rows if level[row] >= floor)

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def nbytes(self) -> int:
        """Bytes held by the row columns (the part that grows with the log)."""
        return sum(a.itemsize * len(a) for a in (self.ts, self.src, self.level, self.kind, self.client,
                                                  self.file, self.line, self.offset, self.flags, self.conn))
