"""The shared store (correlator/api/storage.py's `Store`) on PostgreSQL, with psycopg 3 and its
connection pool: any number of API nodes and workers on any machines read and write one database,
so any node answers for any analysis.

The tables are those of the SQLite store (analysis_db.py), with the same meaning:

- an analysis's timeline is `events` keyed by (num, seq): a page is a range of that key, so the
  cursor is the last event's seq, as with SQLite, and page 1,000 costs what page 1 does;
- `tmax`, the running maximum of the time along the timeline, turns a `since` bound into the
  first position through its index;
- `kind` and `source` compare in the C collation (code point order, as SQLite's), so a kind
  prefix is a range of the kind index;
- text search is ILIKE over the analysis's rows (no trigram index: inserting into one would slow
  every analysis for a search that reads one analysis only). It ignores case as SQLite's LIKE
  does, for every letter where SQLite's ignores it for ASCII letters only.

Writes are keyed by analysis: a run writes its timeline from seq 1 (a second run first drops the
first's events; a row written twice is ignored, ON CONFLICT DO NOTHING), and `save_results`
replaces findings and reports in one transaction with the analysis's row locked, so a job that
two workers ran (one presumed dead) leaves one result.

When the database does not answer (a restart, a lost network) every call raises
StoreUnavailable (the API answers 503 with Retry-After); the pool checks each connection idle for
more than a second before lending it (CHECK_IDLE), drops the broken ones and reconnects in the
background, so the server recovers by
itself once the database is back.

PostgreSQL's text cannot hold a NUL character, which a log line can: NUL is stored as U+FFFF
(a noncharacter, absent from real text) and turned back when read, so a line reads back as it
was written.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from correlator.api import routine_lines
from correlator.api.finding_keys import keys_of
from correlator.api.routine_lines import RoutineCache
from correlator.api.storage import (
    ANALYSIS_COLUMNS,
    EVENT_COLUMNS,
    POOL_TIMEOUT,
    SITE_COLUMNS,
    TIMELINE_COLUMNS,
    AnalysisRow,
    EventBatches,
    KeyTaken,
    SiteBehind,
    SiteRow,
    SiteStep,
    StoreUnavailable,
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

#: Bumped whenever the tables change, so a newer database is refused with a message, not misread.
SCHEMA_VERSION = 3
#: Connections one process keeps at most (an API node's request threads, an analysis's writer).
POOL_SIZE = 8
#: Seconds a new connection may take (a host that does not answer at all).
CONNECT_TIMEOUT = 5
#: Seconds the first connection may take at start-up before the server gives up with a message.
START_TIMEOUT = 15.0
#: Seconds a session may sit in an open transaction without a statement before the server ends
#: it: a process frozen mid-transaction (SIGSTOP, a paused VM) must not hold the rows it locked
#: (and so every other worker) for as long as it stays frozen.
IDLE_IN_TRANSACTION = 10
#: Seconds after a connection came back to the pool in good order during which it is lent again
#: without a round trip to check it: a busy process (a live worker's steps, several a second)
#: lends its connections again and again, and a check per loan was a round trip per step; one idle
#: for longer is checked, as a database restarted meanwhile left it broken.
CHECK_IDLE = 1.0
#: Key of the advisory lock that serialises the schema's creation by nodes starting at once.
_SCHEMA_LOCK = 0x636F7272  # "corr"

_NUL, _NUL_STAND_IN = "\x00", "\uffff"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS correlator_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS analyses (
    num BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0,
    events BIGINT NOT NULL DEFAULT 0,
    size BIGINT NOT NULL DEFAULT 0,
    upload TEXT,
    message TEXT,
    report TEXT,
    digest TEXT,
    idem_key TEXT,
    webhook TEXT,
    run_token BIGINT,
    CONSTRAINT analyses_idem_key UNIQUE (idem_key)
);
CREATE INDEX IF NOT EXISTS analyses_digest ON analyses (digest);
CREATE INDEX IF NOT EXISTS analyses_status ON analyses (status, num);
CREATE TABLE IF NOT EXISTS reports (
    num BIGINT NOT NULL,
    format TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (num, format)
);
CREATE TABLE IF NOT EXISTS findings (
    num BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    data TEXT NOT NULL,
    key TEXT,
    PRIMARY KEY (num, seq)
);
CREATE INDEX IF NOT EXISTS findings_key ON findings (num, key);
CREATE TABLE IF NOT EXISTS events (
    num BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    tmax DOUBLE PRECISION NOT NULL,
    source TEXT COLLATE "C" NOT NULL,
    file TEXT NOT NULL,
    line BIGINT NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    level TEXT COLLATE "C" NOT NULL,
    client TEXT COLLATE "C",
    connection TEXT COLLATE "C",
    time_text TEXT NOT NULL,
    estimated SMALLINT NOT NULL,
    host TEXT NOT NULL,
    format TEXT NOT NULL,
    skew DOUBLE PRECISION NOT NULL,
    fields TEXT NOT NULL,
    raw TEXT NOT NULL,
    PRIMARY KEY (num, seq)
);
CREATE INDEX IF NOT EXISTS events_tmax ON events (num, tmax, seq);
CREATE INDEX IF NOT EXISTS events_source ON events (num, source, seq);
CREATE INDEX IF NOT EXISTS events_kind ON events (num, kind, seq);
CREATE INDEX IF NOT EXISTS events_client ON events (num, client, seq);
CREATE INDEX IF NOT EXISTS events_connection ON events (num, connection);
CREATE TABLE IF NOT EXISTS routine_lines (
    num BIGINT PRIMARY KEY,
    meta TEXT NOT NULL,
    data BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS live_sites (
    site TEXT PRIMARY KEY,
    hosts TEXT NOT NULL,
    events BIGINT NOT NULL,
    lines BIGINT NOT NULL DEFAULT 0,
    position BIGINT NOT NULL,
    last_event DOUBLE PRECISION,
    updated DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS site_findings (
    site TEXT NOT NULL,
    key TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    revision BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (site, key)
);
"""


#: What makes `save_sites`' statement fail when a site's stored position is ahead of its step.
_BEHIND = "correlator: sites behind their stored position"
#: `save_sites`' statement, each table's rows as one array per column. A site's row is written
#: only when its stored position is not ahead (RETURNING says which were); when one was not, the
#: last SELECT casts a text to a number, which fails the statement: nothing of it is written.
_SAVE_SITES_SQL = (
    f"WITH up AS (INSERT INTO live_sites ({SITE_COLUMNS}) SELECT * FROM unnest(%b::text[], %b::text[], "
    "%b::bigint[], %b::bigint[], %b::bigint[], %b::float8[], %b::float8[]) ON CONFLICT (site) DO UPDATE "
    "SET hosts = EXCLUDED.hosts, events = EXCLUDED.events, lines = EXCLUDED.lines, position = EXCLUDED.position, "
    "last_event = EXCLUDED.last_event, updated = EXCLUDED.updated "
    "WHERE live_sites.position <= EXCLUDED.position RETURNING site), "
    "found AS (INSERT INTO site_findings (site, key, rule_id, severity, revision, data) SELECT * FROM "
    "unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[]) AS f(site, key, rule_id, "
    "severity, revision, data) WHERE f.site IN (SELECT site FROM up) ON CONFLICT (site, key) DO UPDATE "
    "SET rule_id = EXCLUDED.rule_id, severity = EXCLUDED.severity, revision = EXCLUDED.revision, "
    "data = EXCLUDED.data), "
    "gone AS (DELETE FROM site_findings WHERE (site, key) IN (SELECT * FROM unnest(%b::text[], %b::text[])) "
    "AND site IN (SELECT site FROM up)) "
    f"SELECT CASE WHEN count(*) = %s THEN count(*) ELSE ('{_BEHIND}: ' || count(*))::bigint END FROM up")


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as their columns (`width` of them, empty for no rows)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]

def _put(text: str | None) -> str | None:
    return text.replace(_NUL, _NUL_STAND_IN) if text and _NUL in text else text


def _got(text: str) -> str:
    return text.replace(_NUL_STAND_IN, _NUL) if _NUL_STAND_IN in text else text


def where_is(url: str) -> str:
    """host:port/dbname of a URL, for messages (never its user or password)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


class PostgresStore(UploadFolders):
    """Thread-safe: each call borrows a connection from the pool for one transaction."""

    embedded = False

    def __init__(self, url: str, state_dir: Path, *, pool_timeout: float = POOL_TIMEOUT) -> None:
        super().__init__(state_dir)
        self.url: str | None = url
        self.routine = RoutineCache(self._routine_stored, self.uploads)
        self.registry: Registry | None = None
        try:  # once by hand first: libpq's own reason (refused, no such database, bad password) at once
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT).close()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())
            raise CorrelatorError(f"cannot reach the PostgreSQL database at {where_is(url)}: {reason}") from None
        self._closed = threading.Event()
        self._returned: weakref.WeakKeyDictionary[psycopg.Connection[tuple[Any, ...]], float] = \
            weakref.WeakKeyDictionary()
        """When each pooled connection last came back in good order (time.monotonic)."""
        self.pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            url, min_size=1, max_size=POOL_SIZE, timeout=pool_timeout, open=False,
            kwargs={"connect_timeout": CONNECT_TIMEOUT, "application_name": "correlator", "autocommit": True,
                    "options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION * 1000}"},
            check=self._check, reset=self._came_back, name="correlator")
        try:
            self.pool.open(wait=True, timeout=START_TIMEOUT)
        except PoolTimeout:
            self.pool.close()
            raise CorrelatorError(f"cannot reach the PostgreSQL database at {where_is(url)} within "
                                  f"{START_TIMEOUT:g} s: is it running, and do the user, password (PGPASSWORD or "
                                  "~/.pgpass) and database name match?") from None
        try:
            self._create_schema()
        except BaseException:
            self.pool.close()
            raise

    def _create_schema(self) -> None:
        with self._connect(transaction=True) as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            db.execute(_SCHEMA)
            found = db.execute("SELECT max(version) FROM correlator_schema").fetchone()
            version = found[0] if found else None
            if version is not None and version > SCHEMA_VERSION:
                raise CorrelatorError(f"the database at {where_is(self.url or '')} has layout {version}, this "
                                      f"version reads {SCHEMA_VERSION}: upgrade correlator (or use another database)")
            if version is None:
                db.execute("INSERT INTO correlator_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                # layout 1 had no run tokens (fencing of fleet workers), layout 2 no lines per site
                db.execute("ALTER TABLE analyses ADD COLUMN IF NOT EXISTS run_token BIGINT")
                db.execute("ALTER TABLE live_sites ADD COLUMN IF NOT EXISTS lines BIGINT NOT NULL DEFAULT 0")
                db.execute("UPDATE correlator_schema SET version = %s", (SCHEMA_VERSION,))

    # -- connections ---------------------------------------------------------------------------

    @contextmanager
    def _connect(self, transaction: bool = False) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A pooled connection (in autocommit: a read or a one-statement write costs no BEGIN and
        COMMIT round trips), inside one transaction if asked (committed at the end, rolled back
        on an error); StoreUnavailable when the database does not answer."""
        try:
            with self.pool.connection() as conn:
                if transaction:
                    with conn.transaction():
                        yield conn
                else:
                    yield conn
        except psycopg.OperationalError as exc:  # PoolTimeout is one too
            raise StoreUnavailable(f"{where_is(self.url or '')}: {exc}") from exc

    def _came_back(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self._returned[conn] = time.monotonic()

    def _check(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """The pool's check before a loan: a round trip, for a connection idle over CHECK_IDLE."""
        if time.monotonic() - self._returned.get(conn, float("-inf")) > CHECK_IDLE:
            ConnectionPool.check_connection(conn)

    def close(self) -> None:
        self.pool.close()

    # -- analyses ------------------------------------------------------------------------------

    def create(self, analysis_id: str, name: str, upload: Path, size: int, *, digest: str | None = None,
               idem_key: str | None = None, webhook: str | None = None) -> AnalysisRow:
        now = time.time()
        try:
            with self._connect() as db:
                found = db.execute(f"INSERT INTO analyses (id, name, created, updated, status, phase, size, upload, "
                                   "digest, idem_key, webhook) VALUES (%s, %s, %s, %s, 'queued', 'queued', %s, %s, "
                                   f"%s, %s, %s) RETURNING {ANALYSIS_COLUMNS}",
                                   (analysis_id, name, now, now, size, str(upload), digest, idem_key,
                                    webhook)).fetchone()
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "analyses_idem_key":
                raise KeyTaken(idem_key) from exc
            raise
        assert found is not None
        return analysis_row(found)

    def _one(self, query: str, args: Sequence[Any]) -> AnalysisRow | None:
        with self._connect() as db:
            found = db.execute(f"SELECT {ANALYSIS_COLUMNS} FROM analyses {query}", args).fetchone()
        return None if found is None else analysis_row(found)

    def _many(self, query: str, args: Sequence[Any]) -> list[AnalysisRow]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {ANALYSIS_COLUMNS} FROM analyses {query}", args).fetchall()
        return [analysis_row(r) for r in rows]

    def by_idempotency_key(self, key: str) -> AnalysisRow | None:
        return self._one("WHERE idem_key = %s", (key,))

    def by_digest(self, digest: str) -> AnalysisRow | None:
        return self._one("WHERE digest = %s AND status != 'failed' ORDER BY num DESC LIMIT 1", (digest,))

    def get(self, analysis_id: str) -> AnalysisRow | None:
        return self._one("WHERE id = %s", (analysis_id,))

    def page(self, limit: int, offset: int, status: str | None = None) -> tuple[int, list[AnalysisRow]]:
        where, args = ("WHERE status = %s", [status]) if status else ("", [])
        with self._connect() as db:
            found = db.execute(f"SELECT count(*) FROM analyses {where}", args).fetchone()
            rows = db.execute(f"SELECT {ANALYSIS_COLUMNS} FROM analyses {where} ORDER BY num DESC LIMIT %s "
                              "OFFSET %s", [*args, limit, offset]).fetchall()
        return int(found[0] if found else 0), [analysis_row(r) for r in rows]

    def status_counts(self) -> dict[str, int]:
        with self._connect() as db:
            rows = db.execute("SELECT status, count(*) FROM analyses GROUP BY status").fetchall()
        return {str(status): int(count) for status, count in rows}

    def unfinished(self) -> list[AnalysisRow]:
        return self._many("WHERE status IN ('queued', 'running') ORDER BY num", ())

    def update(self, analysis_id: str, *, fence: int | None = None, **values: Any) -> None:
        with self._connect(transaction=fence is not None) as db:
            if fence is not None:
                self._check_fence(db, analysis_id, fence)
            self._update(db, analysis_id, values)

    def fence_run(self, analysis_id: str, token: int) -> bool:
        with self._connect() as db:
            changed = db.execute("UPDATE analyses SET run_token = %s WHERE id = %s AND (run_token IS NULL OR "
                                 "run_token <= %s)", (token, analysis_id, token)).rowcount
        return changed == 1

    @staticmethod
    def _check_fence(db: psycopg.Connection[tuple[Any, ...]], analysis_id: str, fence: int,
                     num: int | None = None) -> None:
        """Inside the writing transaction: the row is locked (FOR SHARE) until it commits, so
        `fence_run` of a newer run waits for this write, or this write sees the newer token."""
        found = (db.execute("SELECT run_token FROM analyses WHERE id = %s FOR SHARE", (analysis_id,)) if num is None
                 else db.execute("SELECT run_token FROM analyses WHERE num = %s FOR SHARE", (num,))).fetchone()
        check_fence(analysis_id if num is None else f"#{num}", found, fence)

    @staticmethod
    def _update(db: psycopg.Connection[tuple[Any, ...]], analysis_id: str, values: dict[str, Any]) -> None:
        values["updated"] = time.time()
        if "report" in values and values["report"] is not None:
            values["report"] = json.dumps(values["report"])
        if "message" in values:
            values["message"] = _put(values["message"])
        names = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in values)
        db.execute(sql.SQL("UPDATE analyses SET {} WHERE id = %s").format(names), [*values.values(), analysis_id])

    def delete(self, analysis_id: str) -> bool:
        with self._connect(transaction=True) as db:
            found = db.execute("DELETE FROM analyses WHERE id = %s RETURNING num", (analysis_id,)).fetchone()
            if found is None:
                return False
            for table in ("events", "findings", "reports"):
                db.execute(sql.SQL("DELETE FROM {} WHERE num = %s").format(sql.Identifier(table)), (found[0],))
        self.remove_upload(analysis_id)
        return True

    def stale_failed_uploads(self, max_age_days: float) -> list[AnalysisRow]:
        cutoff = time.time() - max_age_days * 86400
        return self._many("WHERE status = 'failed' AND upload IS NOT NULL AND updated < %s", (cutoff,))

    def drop_upload(self, analysis_id: str) -> None:
        self.remove_upload(analysis_id)
        self.update(analysis_id, upload=None)

    def expired(self, max_count: int, max_age_days: float) -> list[str]:
        cutoff = time.time() - max_age_days * 86400
        with self._connect() as db:
            old = [r[0] for r in db.execute("SELECT id FROM analyses WHERE created < %s AND status IN ('done', "
                                            "'failed')", (cutoff,))]
            extra = [r[0] for r in db.execute("SELECT id FROM analyses WHERE status IN ('done', 'failed') "
                                              "ORDER BY num DESC OFFSET %s", (max_count,))]
        return list(dict.fromkeys([*old, *extra]))

    # -- results -------------------------------------------------------------------------------

    def save_results(self, analysis_id: str, findings: Sequence[Mapping[str, Any]], reports: Mapping[str, str],
                     *, fence: int | None = None, **values: Any) -> None:
        keys = keys_of(findings)
        with self._connect(transaction=True) as db:
            if fence is not None:
                self._check_fence(db, analysis_id, fence)
            found = db.execute("SELECT num FROM analyses WHERE id = %s FOR UPDATE", (analysis_id,)).fetchone()
            if found is None:  # deleted while it was analysed
                return
            num = found[0]
            db.execute("DELETE FROM findings WHERE num = %s", (num,))
            with db.cursor() as cursor:
                cursor.executemany("INSERT INTO findings (num, seq, rule_id, severity, data, key) "
                                   "VALUES (%s, %s, %s, %s, %s, %s)",
                                   [(num, i, f["id"], f["severity"], json.dumps(dict(f)), key)
                                    for i, (f, key) in enumerate(zip(findings, keys, strict=True), 1)])
                cursor.executemany("INSERT INTO reports (num, format, body) VALUES (%s, %s, %s) "
                                   "ON CONFLICT (num, format) DO UPDATE SET body = EXCLUDED.body",
                                   [(num, fmt, _put(body)) for fmt, body in reports.items()])
            self._update(db, analysis_id, dict(values))

    def findings(self, num: int) -> list[tuple[str, dict[str, Any]]]:
        with self._connect() as db:
            rows = db.execute("SELECT key, data FROM findings WHERE num = %s ORDER BY seq", (num,)).fetchall()
        return [(str(key), json.loads(data)) for key, data in rows]

    def finding(self, num: int, key: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT data FROM findings WHERE num = %s AND key = %s", (num, key)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def report(self, num: int, fmt: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT body FROM reports WHERE num = %s AND format = %s", (num, fmt)).fetchone()
        return None if row is None else _got(str(row[0]))

    # -- events --------------------------------------------------------------------------------

    def writer(self, num: int, fence: int | None = None) -> PostgresEventWriter:
        return PostgresEventWriter(self, num, fence)

    def drop_events(self, num: int, fence: int | None = None) -> None:
        with self._connect(transaction=fence is not None) as db:
            if fence is not None:
                self._check_fence(db, "", fence, num)
            db.execute("DELETE FROM events WHERE num = %s", (num,))
            db.execute("DELETE FROM routine_lines WHERE num = %s", (num,))
        self.routine.forget(num)

    def save_routine(self, num: int, meta: Mapping[str, Any], data: bytes, fence: int | None = None) -> None:
        with self._connect(transaction=True) as db:
            if fence is not None:
                self._check_fence(db, "", fence, num)
            db.execute("INSERT INTO routine_lines (num, meta, data) VALUES (%s, %s, %s) ON CONFLICT (num) DO UPDATE "
                       "SET meta = EXCLUDED.meta, data = EXCLUDED.data", (num, json.dumps(meta), data))

    def _routine_stored(self, num: int) -> tuple[str, bytes] | None:
        with self._connect() as db:
            row = db.execute("SELECT meta, data FROM routine_lines WHERE num = %s", (num,)).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def timeline(self, num: int, query: TimelineQuery) -> tuple[list[dict[str, Any]], int | None]:
        return routine_lines.timeline(self.routine, num, query, lambda q: self._events(num, q), self.registry)

    def _events(self, num: int, query: TimelineQuery) -> tuple[list[dict[str, Any]], int | None]:
        with self._connect() as db:
            after = query.after
            if query.since is not None:
                # every event at or after `since` lies at or after the first whose running max reaches it
                first = db.execute("SELECT seq FROM events WHERE num = %s AND tmax >= %s ORDER BY tmax, seq LIMIT 1",
                                   (num, query.since)).fetchone()
                if first is None:
                    return [], None
                after = max(after, first[0] - 1)
            if after >= 2**63:
                return [], None
            where = ["num = %s", "seq > %s"]
            args: list[Any] = [num, after]
            filters, filter_args = timeline_filters(
                query, "%s", lambda column, values: (f"{column} = ANY(%s)", [[_put(v) for v in values]]))
            where.extend(filters)
            args.extend(filter_args)
            if query.text:
                where.append("raw ILIKE %s ESCAPE '\\'")
                args.append(like_pattern(query.text))
            rows = db.execute(f"SELECT {TIMELINE_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq "
                              "LIMIT %s", [*args, query.limit + 1]).fetchall()
        more = len(rows) > query.limit
        rows = rows[:query.limit]
        items = [timeline_item([*r[:11], _got(r[11]), *r[12:]]) for r in rows]
        return items, (rows[-1][0] if more and rows else None)

    # -- the fleet's live sites ------------------------------------------------------------------

    def save_sites(self, steps: Sequence[SiteStep]) -> bool:
        """One statement, one round trip (a live worker saves a step of many sites many times a
        second): each table's rows as arrays (`unnest`, no per-row work in the client), the
        sites' rows first (in lock_order: their locks order two writers of one site), then their
        findings and removals; a site whose stored position is ahead makes the statement fail
        (_BEHIND), so nothing of the call is written."""
        if not steps:
            return True
        ordered = lock_order(steps)
        if len({step.site for step in ordered}) < len(ordered):  # a site twice: its steps in turn
            return self._save_sites_each(ordered)
        findings, removals = site_finding_rows(ordered)
        # one row per (site, key), the last written (as one statement per row would leave it)
        findings = list({(row[0], row[1]): row for row in findings}.values())
        now = time.time()
        columns = [*_columns([step.values(now) for step in ordered], 7), *_columns(findings, 6),
                   *_columns(removals, 2), len(ordered)]
        try:
            with self._connect() as db:
                db.execute(_SAVE_SITES_SQL, columns, prepare=True)
        except psycopg.errors.InvalidTextRepresentation as exc:
            if _BEHIND not in str(exc):
                raise
            return False
        return True

    def _save_sites_each(self, ordered: Sequence[SiteStep]) -> bool:
        """`save_sites` one row per statement (steps that name a site more than once)."""
        site_sql, finding_sql, removal_sql = site_writes("%s")
        findings, removals = site_finding_rows(ordered)
        now = time.time()
        try:
            with self._connect(transaction=True) as db, db.cursor() as cursor:
                cursor.executemany(site_sql, [step.values(now) for step in ordered], returning=True)
                kept = 0
                while True:
                    kept += cursor.fetchone() is not None
                    if not cursor.nextset():
                        break
                if kept < len(ordered):
                    raise SiteBehind
                if findings:
                    cursor.executemany(finding_sql, findings)
                if removals:
                    cursor.executemany(removal_sql, removals)
        except SiteBehind:
            return False
        return True

    def sites(self) -> list[SiteRow]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {SITE_COLUMNS} FROM live_sites ORDER BY site").fetchall()
            found = db.execute("SELECT site, severity FROM site_findings").fetchall()
        severities: dict[str, list[str]] = {}
        for site, severity in found:
            severities.setdefault(site, []).append(severity)
        return [site_row(r, severities.get(r[0], [])) for r in rows]

    def site(self, site: str) -> SiteRow | None:
        with self._connect() as db:
            row = db.execute(f"SELECT {SITE_COLUMNS} FROM live_sites WHERE site = %s", (site,)).fetchone()
            severities = [r[0] for r in db.execute("SELECT severity FROM site_findings WHERE site = %s", (site,))]
        return None if row is None else site_row(row, severities)

    def site_findings(self, site: str) -> list[tuple[str, dict[str, Any]]]:
        with self._connect() as db:
            rows = db.execute("SELECT key, data FROM site_findings WHERE site = %s", (site,)).fetchall()
        return worst_first([(str(key), json.loads(data)) for key, data in rows])


class PostgresEventWriter(EventBatches):
    """Appends an analysis's timeline events in batches (one transaction each)."""

    def __init__(self, store: PostgresStore, num: int, fence: int | None = None) -> None:
        super().__init__(num, fence)
        self.store = store

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        with self.store._connect(transaction=True) as db, db.cursor() as cursor:
            if self.fence is not None:
                self.store._check_fence(db, "", self.fence, self.num)
            cursor.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES "
                               f"({', '.join(['%s'] * 18)}) ON CONFLICT (num, seq) DO NOTHING",
                               [(*row[:-1], _put(row[-1])) for row in rows])

    def finish(self) -> None:
        self.flush()
        with self.store._connect(transaction=True) as db, db.cursor() as cursor:
            if self.fence is not None:
                self.store._check_fence(db, "", self.fence, self.num)
            cursor.executemany("UPDATE events SET client = %s WHERE num = %s AND connection = %s AND client IS NULL",
                               self.client_names())

    def discard(self) -> None:
        self.restart()
        self.store.drop_events(self.num, self.fence)
