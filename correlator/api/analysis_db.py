"""The embedded store (correlator/api/storage.py's `Store`): one SQLite database (standard
library) in the state folder, plus the uploads waiting to be analysed. A restart loses nothing:
finished analyses are rows, and uploads whose analysis was cut short are queued again.

The timeline is one `events` table written while the engine reads (through `analyze`'s
`on_events`), with indexes for the filters the timeline route offers:

- an event's rowid is `analysis number << 32 | seq`, so the table itself is stored in timeline
  order and a page is a range read: page 1,000 costs what page 1 does;
- `tmax` (the running maximum of the time) is non-decreasing along the timeline even where a late
  line is out of order, so a `since` bound becomes the first position through its index;
- text search uses a per-analysis FTS5 trigram index (dropped with the analysis) for three
  characters or more, checked again with LIKE; shorter text scans.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from correlator.api import routine_lines
from correlator.api.finding_keys import keys_of
from correlator.api.private import private_file
from correlator.api.routine_lines import RoutineCache
from correlator.api.storage import (
    ANALYSIS_COLUMNS,
    EVENT_COLUMNS,
    SITE_COLUMNS,
    TIMELINE_COLUMNS,
    AnalysisRow,
    EventBatches,
    KeyTaken,
    SiteBehind,
    SiteRow,
    SiteStep,
    TimelineQuery,
    UploadFolders,
    analysis_row,
    check_fence,
    like_pattern,
    lock_order,
    site_finding_rows,
    site_row,
    site_writes,
    timeline_filters,
    timeline_item,
    worst_first,
)
from correlator.errors import CorrelatorError
from correlator.formats.registry import Registry

#: Bumped whenever the tables change, so an old state folder is refused with a message, not misread.
SCHEMA_VERSION = 4

#: What turns an older layout into this one (version: statements), run before _SCHEMA.
_MIGRATIONS = {
    1: ["ALTER TABLE analyses ADD COLUMN digest TEXT", "ALTER TABLE analyses ADD COLUMN idem_key TEXT",
        "ALTER TABLE analyses ADD COLUMN webhook TEXT", "ALTER TABLE findings ADD COLUMN key TEXT"],
    2: ["ALTER TABLE analyses ADD COLUMN run_token INTEGER"],
    3: [],  # live_sites gains `lines` (added after _SCHEMA: a layout-2 database may not have the table)
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (
    num INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    events INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    upload TEXT,
    message TEXT,
    report TEXT,
    digest TEXT,
    idem_key TEXT,
    webhook TEXT,
    run_token INTEGER
);
CREATE INDEX IF NOT EXISTS analyses_digest ON analyses (digest);
CREATE UNIQUE INDEX IF NOT EXISTS analyses_idem_key ON analyses (idem_key);
CREATE TABLE IF NOT EXISTS reports (
    num INTEGER NOT NULL,
    format TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (num, format)
);
CREATE TABLE IF NOT EXISTS findings (
    num INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    data TEXT NOT NULL,
    key TEXT,
    PRIMARY KEY (num, seq)
);
CREATE INDEX IF NOT EXISTS findings_key ON findings (num, key);
CREATE TABLE IF NOT EXISTS events (
    num INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    tmax REAL NOT NULL,
    source TEXT NOT NULL,
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    client TEXT,
    connection TEXT,
    time_text TEXT NOT NULL,
    estimated INTEGER NOT NULL,
    host TEXT NOT NULL,
    format TEXT NOT NULL,
    skew REAL NOT NULL,
    fields TEXT NOT NULL,
    raw TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_tmax ON events (num, tmax);
CREATE INDEX IF NOT EXISTS events_source ON events (num, source, seq);
CREATE INDEX IF NOT EXISTS events_kind ON events (num, kind, seq);
CREATE INDEX IF NOT EXISTS events_client ON events (num, client, seq);
CREATE INDEX IF NOT EXISTS events_connection ON events (num, connection);
CREATE TABLE IF NOT EXISTS routine_lines (
    num INTEGER PRIMARY KEY,
    meta TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS live_sites (
    site TEXT PRIMARY KEY,
    hosts TEXT NOT NULL,
    events INTEGER NOT NULL,
    lines INTEGER NOT NULL DEFAULT 0,
    position INTEGER NOT NULL,
    last_event REAL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS site_findings (
    site TEXT NOT NULL,
    key TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    revision INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (site, key)
);
"""

class SqliteStore(UploadFolders):
    """Thread-safe: each thread gets its own connection (SQLite in WAL mode lets readers run while
    the analysis worker writes)."""

    url: str | None = None
    embedded = True

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        # SQLite gives its -wal and -shm files the database's mode: made 600 here, they are too
        self.path = private_file(state_dir / "correlator.sqlite3")
        for side in ("-wal", "-shm"):
            if (extra := state_dir / f"correlator.sqlite3{side}").exists():
                private_file(extra)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.routine = RoutineCache(self._routine_stored, self.uploads)
        self.registry: Registry | None = None
        conn = self._conn()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CorrelatorError(f"the state database has layout {version}, this version reads {SCHEMA_VERSION}: "
                                  "move it away (or choose another state folder)", file=self.path)
        if version == 0:
            # deleted analyses give their pages back (Store.reclaim); the connection's switch to
            # WAL already wrote the file's header, so the mode takes a VACUUM (of an empty file)
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
        for old in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
            for statement in _MIGRATIONS[old]:
                conn.execute(statement)
        if version == 1 and conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            # a layout-1 database never gave pages back: switch it to incremental vacuum (one
            # full VACUUM, at the first start of this version)
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
        if version == 1:  # ordinal finding keys become the one key scheme
            rows = conn.execute("SELECT num, seq, data FROM findings ORDER BY num, seq").fetchall()
            by_num: dict[int, list[tuple[int, dict[str, Any]]]] = {}
            for num, seq, data in rows:
                by_num.setdefault(num, []).append((seq, json.loads(data)))
            for num, found in by_num.items():
                conn.executemany("UPDATE findings SET key = ? WHERE num = ? AND seq = ?",
                                 [(key, num, seq) for (seq, _), key in zip(found, keys_of(f for _, f in found),
                                                                             strict=True)])
        conn.executescript(_SCHEMA)
        if "lines" not in {row[1] for row in conn.execute("PRAGMA table_info(live_sites)")}:
            conn.execute("ALTER TABLE live_sites ADD COLUMN lines INTEGER NOT NULL DEFAULT 0")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- connections ---------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection inside one write transaction (IMMEDIATE: it waits for the
        write lock up front, so a read inside it cannot meet another writer's newer commit)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- analyses ------------------------------------------------------------------------------

    def create(self, analysis_id: str, name: str, upload: Path, size: int, *, digest: str | None = None,
               idem_key: str | None = None, webhook: str | None = None) -> AnalysisRow:
        """The new analysis, queued; raises KeyTaken when another analysis holds `idem_key` (two
        requests with one key at once: the caller answers with that one)."""
        now = time.time()
        try:
            with self.connect() as db:
                db.execute("INSERT INTO analyses (id, name, created, updated, status, phase, size, upload, digest, "
                           "idem_key, webhook) VALUES (?, ?, ?, ?, 'queued', 'queued', ?, ?, ?, ?, ?)",
                           (analysis_id, name, now, now, size, str(upload), digest, idem_key, webhook))
        except sqlite3.IntegrityError as exc:
            raise KeyTaken(idem_key) from exc
        row = self.get(analysis_id)
        assert row is not None
        return row

    def by_idempotency_key(self, key: str) -> AnalysisRow | None:
        found = self._conn().execute(f"SELECT {ANALYSIS_COLUMNS} FROM analyses WHERE idem_key = ?", (key,)).fetchone()
        return None if found is None else analysis_row(found)

    def by_digest(self, digest: str) -> AnalysisRow | None:
        """The newest analysis of these very bytes that did not fail (a failed one is worth a retry)."""
        found = self._conn().execute(f"SELECT {ANALYSIS_COLUMNS} FROM analyses WHERE digest = ? AND status != 'failed' "
                                     "ORDER BY num DESC LIMIT 1", (digest,)).fetchone()
        return None if found is None else analysis_row(found)

    def get(self, analysis_id: str) -> AnalysisRow | None:
        found = self._conn().execute(f"SELECT {ANALYSIS_COLUMNS} FROM analyses WHERE id = ?",
                                     (analysis_id,)).fetchone()
        return None if found is None else analysis_row(found)

    def page(self, limit: int, offset: int, status: str | None = None) -> tuple[int, list[AnalysisRow]]:
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        db = self._conn()
        total = db.execute(f"SELECT count(*) FROM analyses {where}", args).fetchone()[0]
        rows = db.execute(f"SELECT {ANALYSIS_COLUMNS} FROM analyses {where} ORDER BY num DESC LIMIT ? OFFSET ?",
                          [*args, limit, offset]).fetchall()
        return int(total), [analysis_row(r) for r in rows]

    def status_counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT status, count(*) FROM analyses GROUP BY status").fetchall()
        return {str(status): int(count) for status, count in rows}

    def unfinished(self) -> list[AnalysisRow]:
        rows = self._conn().execute(f"SELECT {ANALYSIS_COLUMNS} FROM analyses WHERE status IN ('queued', 'running') "
                                    "ORDER BY num").fetchall()
        return [analysis_row(r) for r in rows]

    def update(self, analysis_id: str, *, fence: int | None = None, **values: Any) -> None:
        with self.connect() as db:
            if fence is not None:
                self._check_fence(db, analysis_id, fence)
            self._update(db, analysis_id, values)

    def fence_run(self, analysis_id: str, token: int) -> bool:
        with self.connect() as db:
            changed = db.execute("UPDATE analyses SET run_token = ? WHERE id = ? AND (run_token IS NULL OR "
                                 "run_token <= ?)", (token, analysis_id, token)).rowcount
        return changed == 1

    @staticmethod
    def _check_fence(db: sqlite3.Connection, analysis_id: str, fence: int, num: int | None = None) -> None:
        """Inside the writing transaction (IMMEDIATE: no other writer between this and the write)."""
        found = (db.execute("SELECT run_token FROM analyses WHERE id = ?", (analysis_id,)) if num is None
                 else db.execute("SELECT run_token FROM analyses WHERE num = ?", (num,))).fetchone()
        check_fence(analysis_id if num is None else f"#{num}", found, fence)

    @staticmethod
    def _update(db: sqlite3.Connection, analysis_id: str, values: dict[str, Any]) -> None:
        values["updated"] = time.time()
        if "report" in values and values["report"] is not None:
            values["report"] = json.dumps(values["report"])
        names = ", ".join(f"{k} = ?" for k in values)
        db.execute(f"UPDATE analyses SET {names} WHERE id = ?", [*values.values(), analysis_id])

    def delete(self, analysis_id: str) -> bool:
        row = self.get(analysis_id)
        if row is None:
            return False
        self.drop_events(row.num)
        with self.connect() as db:
            db.execute("DELETE FROM findings WHERE num = ?", (row.num,))
            db.execute("DELETE FROM reports WHERE num = ?", (row.num,))
            db.execute("DELETE FROM analyses WHERE num = ?", (row.num,))
        self.remove_upload(analysis_id)
        self.reclaim()
        return True

    def reclaim(self) -> None:
        """Give the pages deleted rows left back to the file system: the database file and its
        write-ahead log shrink after deletes instead of staying at their largest."""
        conn = self._conn()
        # executescript steps the pragma to its end: execute() would free one page per call
        conn.executescript("PRAGMA incremental_vacuum;")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def stale_failed_uploads(self, max_age_days: float) -> list[AnalysisRow]:
        """Failed analyses whose upload is older than the retention period (kept till then to look
        into, or to retry by hand)."""
        cutoff = time.time() - max_age_days * 86400
        rows = self._conn().execute(f"SELECT {ANALYSIS_COLUMNS} FROM analyses WHERE status = 'failed' AND upload "
                                    "IS NOT NULL AND updated < ?", (cutoff,)).fetchall()
        return [analysis_row(r) for r in rows]

    def drop_upload(self, analysis_id: str) -> None:
        self.remove_upload(analysis_id)
        self.update(analysis_id, upload=None)

    def expired(self, max_count: int, max_age_days: float) -> list[str]:
        """Analyses beyond the kept count (oldest first) or older than the age limit."""
        cutoff = time.time() - max_age_days * 86400
        db = self._conn()
        old = [r[0] for r in db.execute("SELECT id FROM analyses WHERE created < ? AND status IN ('done', 'failed')",
                                        (cutoff,))]
        # finished ones only: a running analysis is stopped by its DELETE, not swept from under its worker
        extra = [r[0] for r in db.execute("SELECT id FROM analyses WHERE status IN ('done', 'failed') "
                                          "ORDER BY num DESC LIMIT -1 OFFSET ?", (max_count,))]
        return list(dict.fromkeys([*old, *extra]))

    # -- results -------------------------------------------------------------------------------

    def save_results(self, analysis_id: str, findings: Sequence[Mapping[str, Any]], reports: Mapping[str, str],
                     *, fence: int | None = None, **values: Any) -> None:
        keys = keys_of(findings)
        with self.connect() as db:
            if fence is not None:
                self._check_fence(db, analysis_id, fence)
            found = db.execute("SELECT num FROM analyses WHERE id = ?", (analysis_id,)).fetchone()
            if found is None:  # deleted while it was analysed
                return
            num = found[0]
            db.execute("DELETE FROM findings WHERE num = ?", (num,))
            db.executemany("INSERT INTO findings (num, seq, rule_id, severity, data, key) VALUES (?, ?, ?, ?, ?, ?)",
                           [(num, i, f["id"], f["severity"], json.dumps(dict(f)), key)
                            for i, (f, key) in enumerate(zip(findings, keys, strict=True), 1)])
            db.executemany("INSERT OR REPLACE INTO reports (num, format, body) VALUES (?, ?, ?)",
                           [(num, fmt, body) for fmt, body in reports.items()])
            self._update(db, analysis_id, dict(values))

    def findings(self, num: int) -> list[tuple[str, dict[str, Any]]]:
        """(key, finding) in the report's order."""
        rows = self._conn().execute("SELECT key, data FROM findings WHERE num = ? ORDER BY seq", (num,)).fetchall()
        return [(str(key), json.loads(data)) for key, data in rows]

    def finding(self, num: int, key: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT data FROM findings WHERE num = ? AND key = ?", (num, key)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def report(self, num: int, fmt: str) -> str | None:
        row = self._conn().execute("SELECT body FROM reports WHERE num = ? AND format = ?", (num, fmt)).fetchone()
        return None if row is None else str(row[0])

    # -- events --------------------------------------------------------------------------------

    def writer(self, num: int, fence: int | None = None) -> SqliteEventWriter:
        return SqliteEventWriter(self, num, fence)

    def text_table(self, num: int) -> str | None:
        """The analysis's trigram index, made if missing; None where SQLite lacks FTS5 trigram
        (then text search scans)."""
        name = f"events_text_{int(num)}"
        try:
            self._conn().execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {name} USING fts5(raw, content='', "
                                 "tokenize='trigram')")
        except sqlite3.OperationalError:
            return None
        return name

    def _has_text_table(self, num: int) -> bool:
        return self._conn().execute("SELECT 1 FROM sqlite_master WHERE name = ?",
                                    (f"events_text_{int(num)}",)).fetchone() is not None

    def drop_events(self, num: int, fence: int | None = None) -> None:
        with self.connect() as db:
            if fence is not None:
                self._check_fence(db, "", fence, num)
            db.execute("DELETE FROM events WHERE rowid BETWEEN ? AND ?", (num << 32, (num << 32) | 0xFFFFFFFF))
            db.execute("DELETE FROM routine_lines WHERE num = ?", (num,))
            db.execute(f"DROP TABLE IF EXISTS events_text_{int(num)}")
        self.routine.forget(num)

    def save_routine(self, num: int, meta: Mapping[str, Any], data: bytes, fence: int | None = None) -> None:
        with self.connect() as db:
            if fence is not None:
                self._check_fence(db, "", fence, num)
            db.execute("INSERT OR REPLACE INTO routine_lines (num, meta, data) VALUES (?, ?, ?)",
                       (num, json.dumps(meta), data))

    def _routine_stored(self, num: int) -> tuple[str, bytes] | None:
        row = self._conn().execute("SELECT meta, data FROM routine_lines WHERE num = ?", (num,)).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def timeline(self, num: int, query: TimelineQuery) -> tuple[list[dict[str, Any]], int | None]:
        return routine_lines.timeline(self.routine, num, query, lambda q: self._events(num, q), self.registry)

    def _events(self, num: int, query: TimelineQuery) -> tuple[list[dict[str, Any]], int | None]:
        db = self._conn()
        after = query.after
        if query.since is not None:
            # every event at or after `since` lies at or after the first whose running max reaches it
            first = db.execute("SELECT seq FROM events WHERE num = ? AND tmax >= ? ORDER BY tmax, rowid LIMIT 1",
                               (num, query.since)).fetchone()
            if first is None:
                return [], None
            after = max(after, first[0] - 1)
        base = num << 32
        where = ["rowid > ?", "rowid <= ?", "num = ?", "seq > ?"]
        args: list[Any] = [base | min(after, 0xFFFFFFFF), base | 0xFFFFFFFF, num, after]
        filters, filter_args = timeline_filters(
            query, "?", lambda column, values: (f"{column} IN ({', '.join('?' * len(values))})", list(values)))
        where.extend(filters)
        args.extend(filter_args)
        if query.text:
            if len(query.text) >= 3 and self._has_text_table(num):
                where.append(f"rowid IN (SELECT rowid FROM events_text_{int(num)} WHERE events_text_{int(num)} "
                             "MATCH ?)")
                args.append('"' + query.text.replace('"', '""') + '"')
            where.append("raw LIKE ? ESCAPE '\\'")
            args.append(like_pattern(query.text))
        sql = f"SELECT {TIMELINE_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY rowid LIMIT ?"
        rows = db.execute(sql, [*args, query.limit + 1]).fetchall()
        more = len(rows) > query.limit
        rows = rows[:query.limit]
        items = [timeline_item(r) for r in rows]
        return items, (rows[-1][0] if more and rows else None)

    # -- the fleet's live sites ------------------------------------------------------------------

    def save_sites(self, steps: Sequence[SiteStep]) -> bool:
        if not steps:
            return True
        site_sql, finding_sql, removal_sql = site_writes("?")
        ordered = lock_order(steps)
        findings, removals = site_finding_rows(ordered)
        now = time.time()
        try:
            with self.connect() as db:
                for step in ordered:
                    if db.execute(site_sql, step.values(now)).fetchone() is None:
                        raise SiteBehind
                db.executemany(finding_sql, findings)
                db.executemany(removal_sql, removals)
        except SiteBehind:
            return False
        return True

    def sites(self) -> list[SiteRow]:
        conn = self._conn()
        rows = conn.execute(f"SELECT {SITE_COLUMNS} FROM live_sites ORDER BY site").fetchall()
        severities: dict[str, list[str]] = {}
        for site, severity in conn.execute("SELECT site, severity FROM site_findings"):
            severities.setdefault(site, []).append(severity)
        return [site_row(r, severities.get(r[0], [])) for r in rows]

    def site(self, site: str) -> SiteRow | None:
        conn = self._conn()
        row = conn.execute(f"SELECT {SITE_COLUMNS} FROM live_sites WHERE site = ?", (site,)).fetchone()
        if row is None:
            return None
        severities = [r[0] for r in conn.execute("SELECT severity FROM site_findings WHERE site = ?", (site,))]
        return site_row(row, severities)

    def site_findings(self, site: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self._conn().execute("SELECT key, data FROM site_findings WHERE site = ?", (site,)).fetchall()
        return worst_first([(str(key), json.loads(data)) for key, data in rows])


class SqliteEventWriter(EventBatches):
    """Appends an analysis's timeline events in batches on the analysing thread (the rowid is
    `num << 32 | seq`, see the module's docstring), each batch in the trigram index too."""

    def __init__(self, store: SqliteStore, num: int, fence: int | None = None) -> None:
        super().__init__(num, fence)
        self.store = store
        self.text_table = store.text_table(num)

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        base = self.num << 32
        with self.store.connect() as db:
            if self.fence is not None:
                self.store._check_fence(db, "", self.fence, self.num)
            db.executemany(f"INSERT INTO events (rowid, {EVENT_COLUMNS}) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(base | row[1], *row) for row in rows])
            if self.text_table:
                db.executemany(f"INSERT INTO {self.text_table} (rowid, raw) VALUES (?, ?)",
                               [(base | row[1], row[-1]) for row in rows])

    def finish(self) -> None:
        self.flush()
        with self.store.connect() as db:
            if self.fence is not None:
                self.store._check_fence(db, "", self.fence, self.num)
            db.executemany("UPDATE events SET client = ? WHERE num = ? AND connection = ? AND client IS NULL",
                           self.client_names())
        # statistics for the query planner (sampled: cheap), so a filter on a common source does
        # not walk that source's index when a rare kind's would do
        conn = self.store._conn()
        conn.execute("PRAGMA analysis_limit=1000")
        conn.execute("ANALYZE")

    def discard(self) -> None:
        self.restart()
        self.store.drop_events(self.num, self.fence)
        self.text_table = self.store.text_table(self.num)
