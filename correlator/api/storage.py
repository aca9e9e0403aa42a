"""The store of analyses, behind one interface with two backends:

- SQLite (correlator/api/analysis_db.py), the embedded default: one file in the state folder, no
  server to run;
- PostgreSQL (correlator/api/postgres_db.py), shared by any number of API nodes and workers.

`open_store(url, state_dir)` picks one from a URL (the `database` setting, `serve --database`):
none or `sqlite:` is the file under the state folder, `postgresql://...` (or `postgres://`) a
PostgreSQL database. Both pass one test suite (tests/fleet/test_storage_contract.py): the same
rows, the same finding keys, the same timeline pages and cursors (a cursor is the `seq` of the
last event of a page), and writes keyed by analysis: an analysis run twice (a job redelivered
after its worker died) leaves one result, never two.

Uploads wait as files in the state folder's `uploads/` with either backend (`UploadFolders`).

The central live analysis of the fleet's sites (correlator/fleet/live_worker.py) keeps each
site's current findings here too (`save_sites`): one row per finding key, with the position (the
site's last analysed event on the cluster) in the same transaction, so a worker that takes a site
over reads where its findings stand, and a write from an owner that lost the site (its position
is behind the stored one) changes nothing. The sites a batch of their shard touched are written
in one transaction: its cost follows the batches, not the sites.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from correlator.api.private import private_dir
from correlator.errors import CorrelatorError
from correlator.model import Event, severity_rank

if TYPE_CHECKING:
    from correlator.api.routine_lines import RoutineCache
    from correlator.formats.registry import Registry

log = logging.getLogger("correlator.api")

#: What `retry_after` a client is told when the database does not answer (seconds).
RETRY_AFTER = 5


class StoreUnavailable(Exception):
    """The database does not answer now (a PostgreSQL restart, a lost network): the API answers
    503 with Retry-After, /ready says not ready, and the next request tries again."""


class KeyTaken(Exception):
    """Another analysis holds this Idempotency-Key (two requests with one key at once)."""


class StaleRun(Exception):
    """A write of an analysis run whose fencing token is no longer the analysis's: a fleet worker
    that froze (SIGSTOP, a paused VM) while its job was taken over and run by another woke up. The
    store refuses the write, so the newer run's result stands; the stale run stops."""


def check_fence(analysis: str, found: Sequence[Any] | None, fence: int) -> None:
    """Raise StaleRun unless `found` (the analysis's `(run_token,)`, read in the writing
    transaction) is `fence`. A deleted analysis refuses every run's writes."""
    if found is None or found[0] != fence:
        now = "deleted" if found is None else f"run {found[0]}"
        log.warning("analysis %s: a write of run %d refused: the analysis is %s's now", analysis, fence,
                    "nobody" if found is None else now)
        raise StaleRun(f"analysis {analysis}: run {fence} is stale ({now} holds it)")


_UNNAMED = frozenset({"", "<unknown>", "(null)"})


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def client_of(event: Event) -> str | None:
    """Whose event this is, as far as the event itself says."""
    client_id = event.fields.get("client_id")
    if isinstance(client_id, str) and client_id not in _UNNAMED:
        return client_id
    if event.source.startswith("client:"):
        return event.source.split(":", 1)[1]
    return None


@dataclass(frozen=True)
class AnalysisRow:
    num: int
    id: str
    name: str
    created: float
    updated: float
    status: str
    phase: str
    progress: float
    events: int
    size: int
    upload: str | None
    message: str | None
    report: dict[str, Any] | None
    digest: str | None = None
    """SHA-256 of the uploaded bytes: the same bundle sent again is this analysis."""
    idem_key: str | None = None
    """The client's Idempotency-Key, if it sent one."""
    webhook: str | None = None
    """Where to say that the analysis finished (api/webhooks.py)."""


#: The analyses table's columns in AnalysisRow's order (both backends select them so).
ANALYSIS_COLUMNS = ("num, id, name, created, updated, status, phase, progress, events, size, upload, message, report, "
                    "digest, idem_key, webhook")


def analysis_row(values: Sequence[Any]) -> AnalysisRow:
    """A row selected as ANALYSIS_COLUMNS."""
    (num, analysis_id, name, created, updated, status, phase, progress, events, size, upload, message,
     report, digest, idem_key, webhook) = values
    return AnalysisRow(num=num, id=analysis_id, name=name, created=created, updated=updated, status=status,
                       phase=phase, progress=progress, events=events, size=size, upload=upload, message=message,
                       report=json.loads(report) if report else None, digest=digest, idem_key=idem_key,
                       webhook=webhook)


@dataclass(frozen=True)
class SiteRow:
    """A site of the fleet's live analysis as the store knows it."""

    site: str
    hosts: list[str]
    """The machines whose agents sent its events (the last token of their subject)."""
    events: int
    """Events analysed."""
    lines: int
    """Lines of its logs the agents read: those sent as events and the routine lines sent as counts."""
    position: int
    """Stream sequence of the last analysed event: where a worker taking the site over resumes."""
    last_event: float | None
    """Time of the newest analysed event."""
    updated: float
    findings: int
    worst: str | None
    """The highest severity among its current findings."""


@dataclass(frozen=True)
class SiteStep:
    """One step of a site's live analysis, as `Store.save_sites` writes it."""

    site: str
    position: int
    """Stream sequence of the site's last message analysed."""
    events: int
    hosts: Sequence[str]
    last_event: float | None
    findings: Sequence[tuple[str, Mapping[str, Any]]] = ()
    """(key, finding) of those new or updated since the last step."""
    removed: Sequence[str] = ()
    """Keys of the findings no longer current."""
    lines: int = 0
    """Lines of its logs read so far (SiteRow.lines)."""

    def values(self, now: float) -> tuple[Any, ...]:
        """The site's row, in SITE_COLUMNS' order."""
        return (self.site, json.dumps(sorted(self.hosts)), self.events, self.lines, self.position, self.last_event,
                now)


class SiteBehind(Exception):
    """A step from behind its site's stored position: `save_sites` rolls its transaction back."""


#: The sites table's columns in SiteRow's order (findings and worst are counted from site_findings).
SITE_COLUMNS = "site, hosts, events, lines, position, last_event, updated"


def site_row(values: Sequence[Any], severities: Sequence[str]) -> SiteRow:
    """A row selected as SITE_COLUMNS, with the severities of the site's current findings."""
    site, hosts, events, lines, position, last_event, updated = values
    worst = max(severities, key=severity_rank) if severities else None
    return SiteRow(site=site, hosts=json.loads(hosts), events=int(events), lines=int(lines), position=int(position),
                   last_event=last_event, updated=updated, findings=len(severities), worst=worst)


def site_writes(mark: str) -> tuple[str, str, str]:
    """The statements of `save_sites` both backends run, in their placeholder `mark`: the site's
    row (written only when its stored position is not ahead: RETURNING says whether it was), one
    finding's upsert, one finding's removal."""
    site = (f"INSERT INTO live_sites ({SITE_COLUMNS}) VALUES ({', '.join([mark] * 7)}) ON CONFLICT (site) DO UPDATE "
            "SET hosts = EXCLUDED.hosts, events = EXCLUDED.events, lines = EXCLUDED.lines, "
            "position = EXCLUDED.position, last_event = EXCLUDED.last_event, updated = EXCLUDED.updated "
            "WHERE live_sites.position <= EXCLUDED.position RETURNING site")
    finding = (f"INSERT INTO site_findings (site, key, rule_id, severity, revision, data) VALUES "
               f"({', '.join([mark] * 6)}) ON CONFLICT (site, key) DO UPDATE SET rule_id = EXCLUDED.rule_id, "
               "severity = EXCLUDED.severity, revision = EXCLUDED.revision, data = EXCLUDED.data")
    removal = f"DELETE FROM site_findings WHERE site = {mark} AND key = {mark}"
    return site, finding, removal


def site_finding_rows(steps: Sequence[SiteStep]) -> tuple[list[tuple[Any, ...]], list[tuple[str, str]]]:
    """The steps' findings as site_findings rows, and the (site, key) of those removed."""
    return ([(step.site, key, f["id"], f["severity"], int(f.get("revision", 0)), json.dumps(dict(f)))
             for step in steps for key, f in step.findings],
            [(step.site, key) for step in steps for key in step.removed])


def lock_order(steps: Sequence[SiteStep]) -> list[SiteStep]:
    """The steps in the one order every writer locks the sites' rows in (no two deadlock)."""
    return sorted(steps, key=lambda step: step.site)


def worst_first(found: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """(key, finding) pairs as every finding list is ordered: worst severity first, then by key."""
    return sorted(found, key=lambda item: (-severity_rank(item[1].get("severity", "info")), item[0]))


@dataclass(frozen=True)
class TimelineQuery:
    after: int = 0
    limit: int = 100
    since: float | None = None
    until: float | None = None
    sources: Sequence[str] = ()
    clients: Sequence[str] = ()
    kinds: Sequence[str] = ()
    """Exact kinds, or prefixes ending in '.' or '*' ('tls.' and 'tls.*' match every TLS kind)."""
    levels: Sequence[str] = ()
    text: str | None = None


def timeline_filters(query: TimelineQuery, mark: str,
                     one_of: Callable[[str, Sequence[str]], tuple[str, list[Any]]]) -> tuple[list[str], list[Any]]:
    """The timeline filters both stores apply alike (times, sources, clients, levels, kinds) as
    WHERE clauses in the backend's placeholder `mark` ('?' or '%s') with their arguments;
    `one_of(column, values)` writes a column-is-one-of test the backend's way. The text filter is
    each backend's own (SQLite has a trigram index; `like_pattern` is their common part)."""
    where: list[str] = []
    args: list[Any] = []
    if query.since is not None:
        where.append(f"ts >= {mark}")
        args.append(query.since)
    if query.until is not None:
        where.append(f"ts <= {mark}")
        args.append(query.until)
    for column, values in (("source", query.sources), ("client", query.clients), ("level", query.levels)):
        if values:
            clause, more = one_of(column, values)
            where.append(clause)
            args.extend(more)
    if query.kinds:
        parts = []
        for kind in query.kinds:
            if kind.endswith(("*", ".")):
                prefix = kind.rstrip("*")
                parts.append(f"(kind >= {mark} AND kind < {mark})")  # a range the kind index can serve
                args.extend([prefix, prefix + "\U0010ffff"])
            else:
                parts.append(f"kind = {mark}")
                args.append(kind)
        where.append(f"({' OR '.join(parts)})")
    return where, args


def like_pattern(text: str) -> str:
    """`text` as a LIKE pattern that finds it anywhere in a line, its wildcards escaped (ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


#: The events table's columns a timeline page selects, in `timeline_item`'s order.
TIMELINE_COLUMNS = ("seq, ts, time_text, estimated, source, host, file, line, level, kind, fields, raw, format, skew, "
                    "connection, client")


def timeline_item(r: Sequence[Any]) -> dict[str, Any]:
    """One event of a timeline page, from a row selected as TIMELINE_COLUMNS."""
    return {"seq": r[0], "time": iso(r[1]), "time_text": r[2], "estimated": bool(r[3]), "source": r[4],
            "host": r[5], "file": r[6], "line": r[7], "level": r[8], "kind": r[9], "fields": json.loads(r[10]),
            "raw": r[11], "format": r[12], "skew": r[13], "connection": r[14], "client": r[15]}


#: The events table's columns a writer inserts, in `EventBatches` rows' order.
EVENT_COLUMNS = ("num, seq, ts, tmax, source, file, line, kind, level, client, connection, time_text, estimated, host, "
                 "format, skew, fields, raw")


class TimelineWriter(Protocol):
    """Appends an analysis's timeline events while the engine reads (in batches), and at the end
    names the client of broker lines that only their stitched connection ties to a client."""

    count: int
    """Events added so far (the last one's seq)."""

    def add(self, events: Sequence[Event]) -> None: ...

    def flush(self) -> None: ...

    def finish(self) -> None:
        """Flush, and name the clients of stitched connections."""

    def discard(self) -> None:
        """Drop every event of the analysis (a run cut short, or failed) and start again at seq 1."""


class EventBatches:
    """What both backends' writers share: events become rows (EVENT_COLUMNS) in batches of BATCH,
    numbered from 1, with the running maximum of their time (`tmax`, which makes a `since` bound a
    position: see analysis_db.py), and the client each connection's client-side lines name."""

    BATCH = 5_000

    def __init__(self, num: int, fence: int | None = None) -> None:
        self.num = num
        self.fence = fence
        """The run's fencing token: each batch is refused (StaleRun) once another run holds the
        analysis (None: unfenced, the embedded server's own runs)."""
        self.count = 0
        self._rows: list[tuple[Any, ...]] = []
        self._client_of_connection: dict[str, str] = {}
        self._tmax = float("-inf")

    def add(self, events: Sequence[Event]) -> None:
        rows = self._rows
        num = self.num
        seq = self.count
        for event in events:
            seq += 1
            if event.ts > self._tmax:
                self._tmax = event.ts
            client = client_of(event)
            if client is not None and event.connection and event.source.startswith("client:"):
                self._client_of_connection.setdefault(event.connection, client)
            rows.append((num, seq, event.ts, self._tmax, event.source, event.file, event.line, event.kind,
                         event.level, client, event.connection, event.time_text, int(event.estimated), event.host,
                         event.format, event.skew, json.dumps(event.fields), event.raw))
        self.count = seq
        if len(rows) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            self._write(self._rows)
            self._rows = []

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def client_names(self) -> list[tuple[str, int, str]]:
        """(client, num, connection): the client of each connection whose broker lines name none."""
        return [(client, self.num, conn) for conn, client in self._client_of_connection.items()]

    def restart(self) -> None:
        """Forget what was added: the next event is seq 1 again."""
        self._rows = []
        self._client_of_connection.clear()
        self._tmax = float("-inf")
        self.count = 0


class Store(Protocol):
    """What the API, the scheduler and the analysis processes ask of the store. Thread-safe."""

    state_dir: Path
    uploads: Path
    url: str | None
    """What `open_store` was given: an analysis process opens the same store with it."""
    embedded: bool
    routine: RoutineCache
    """The analyses' routine lines, loaded as timeline pages need them."""
    registry: Registry | None
    """The formats routine lines are parsed with when a timeline page shows them (None: the
    built-in ones); the server sets its own."""
    """True when a call is a local file read (SQLite), cheap enough to make on the event loop;
    False when it goes over the network and is made on a worker thread (see deps.off_loop)."""

    def close(self) -> None: ...

    # analyses
    def new_upload_dir(self) -> tuple[str, Path]:
        """A new analysis id and the private folder its upload goes into."""

    def holds_upload(self, upload: str) -> bool:
        """Whether `upload` (an analysis's) waits in this store's folder, not another server's."""

    def create(self, analysis_id: str, name: str, upload: Path, size: int, *, digest: str | None = None,
               idem_key: str | None = None, webhook: str | None = None) -> AnalysisRow:
        """The new analysis, queued; raises KeyTaken when another analysis holds `idem_key`."""

    def by_idempotency_key(self, key: str) -> AnalysisRow | None: ...

    def by_digest(self, digest: str) -> AnalysisRow | None:
        """The newest analysis of these very bytes that did not fail (a failed one is worth a retry)."""

    def get(self, analysis_id: str) -> AnalysisRow | None: ...

    def page(self, limit: int, offset: int, status: str | None = None) -> tuple[int, list[AnalysisRow]]:
        """(total, analyses newest first)."""

    def status_counts(self) -> dict[str, int]: ...

    def unfinished(self) -> list[AnalysisRow]:
        """Queued and running analyses, oldest first (a restart runs them again)."""

    def update(self, analysis_id: str, *, fence: int | None = None, **values: Any) -> None:
        """Set columns of the row; with `fence`, only while that run holds it (else StaleRun)."""

    def fence_run(self, analysis_id: str, token: int) -> bool:
        """Make `token` the analysis's run token unless a newer run (a greater token) holds it:
        from then on, the writes fenced with an older token are refused. False: a newer run
        holds it (or the analysis is gone)."""

    def delete(self, analysis_id: str) -> bool:
        """Remove the analysis with its findings, reports, timeline and upload; False if unknown."""

    def stale_failed_uploads(self, max_age_days: float) -> list[AnalysisRow]:
        """Failed analyses whose upload is older than the retention period."""

    def drop_upload(self, analysis_id: str) -> None: ...

    def expired(self, max_count: int, max_age_days: float) -> list[str]:
        """Finished analyses beyond the kept count (oldest first) or older than the age limit."""

    # results
    def save_results(self, analysis_id: str, findings: Sequence[Mapping[str, Any]], reports: Mapping[str, str],
                     *, fence: int | None = None, **values: Any) -> None:
        """An analysis's findings, report files and final row values, in one transaction that
        replaces whatever an earlier run of the same analysis wrote; with `fence`, refused
        (StaleRun) unless that run holds the analysis."""

    def findings(self, num: int) -> list[tuple[str, dict[str, Any]]]:
        """(key, finding) in the report's order."""

    def finding(self, num: int, key: str) -> dict[str, Any] | None: ...

    def report(self, num: int, fmt: str) -> str | None: ...

    # timeline
    def writer(self, num: int, fence: int | None = None) -> TimelineWriter: ...

    def drop_events(self, num: int, fence: int | None = None) -> None:
        """Drop the analysis's timeline: its events and its routine lines."""

    def save_routine(self, num: int, meta: Mapping[str, Any], data: bytes, fence: int | None = None) -> None:
        """The analysis's routine lines, as places in its kept logs (correlator/api/routine_lines.py)."""

    def timeline(self, num: int, query: TimelineQuery) -> tuple[list[dict[str, Any]], int | None]:
        """One page of events and the cursor of the next (None: the last page)."""

    # the fleet's live sites
    def save_sites(self, steps: Sequence[SiteStep]) -> bool:
        """A step of each of these sites' live analysis, in one transaction: the findings new or
        updated since the last step, those no longer current, and where each analysis stands.
        False, with nothing written, when the stored position of any of them is ahead of its
        step's (a worker that lost the sites to another writes nothing over its results)."""

    def sites(self) -> list[SiteRow]:
        """Every site the live workers analysed, by name."""

    def site(self, site: str) -> SiteRow | None: ...

    def site_findings(self, site: str) -> list[tuple[str, dict[str, Any]]]:
        """(key, finding) of the site's current findings, worst first."""


class UploadFolders:
    """Uploads waiting to be analysed: a private folder per analysis under the state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = private_dir(state_dir)
        self.uploads = private_dir(state_dir / "uploads")

    def new_upload_dir(self) -> tuple[str, Path]:
        analysis_id = uuid.uuid4().hex[:16]
        folder = self.uploads / analysis_id
        folder.mkdir(mode=0o700)
        return analysis_id, folder

    def holds_upload(self, upload: str) -> bool:
        return Path(upload).resolve().parent.parent == self.uploads.resolve()

    def remove_upload(self, analysis_id: str) -> None:
        shutil.rmtree(self.uploads / analysis_id, ignore_errors=True)


POSTGRES_SCHEMES = ("postgresql://", "postgres://")
#: Seconds a request waits for a PostgreSQL connection before it is answered 503: the default of
#: the `pool_timeout` setting.
POOL_TIMEOUT = 3.0


def check_database_url(url: str | None) -> str | None:
    """The URL if a backend takes it (None for the embedded SQLite file); a sentence naming the
    forms otherwise."""
    if url is None or url in ("", "sqlite:", "sqlite://"):
        return None
    if url.startswith(POSTGRES_SCHEMES):
        return url
    raise ValueError("the database must be sqlite: (the file in the state folder, the default) or a "
                     "postgresql://[user[:password]@]host[:port]/dbname URL")


def open_store(url: str | None, state_dir: Path, *, pool_timeout: float = POOL_TIMEOUT) -> Store:
    """The store `url` names (see the module's docstring); `pool_timeout`: seconds a call waits for
    a PostgreSQL connection before StoreUnavailable (SQLite has no pool)."""
    try:
        url = check_database_url(url)
    except ValueError as exc:
        raise CorrelatorError(str(exc)) from None
    if url is not None and url.startswith(POSTGRES_SCHEMES):
        from correlator.api.postgres_db import PostgresStore  # psycopg loads only when asked for

        return PostgresStore(url, state_dir, pool_timeout=pool_timeout)
    from correlator.api.analysis_db import SqliteStore

    return SqliteStore(state_dir)
