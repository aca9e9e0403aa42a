"""The one entry the surfaces call: inputs in, findings out, for a bundle and for live tails alike.

    bundle (files, folders, archives) -> logs + artifacts
    logs -> LogFile per file (format detected, zone chosen) -> timeline (merge, skew, stitching)
    -> rules engine (with artifact checks) -> findings

`Analysis` (correlator.report_model) is the result a report renders; `Session` is the incremental
form the TUI and the API drive: events go in (from files read to the end, or from tailers),
findings come out as they change.
"""

from __future__ import annotations

import contextlib
import fnmatch
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from correlator.cancel import CancelToken
from correlator.engine.evaluate import Engine
from correlator.engine.facts import Artifacts
from correlator.engine.rules import Rule, load_rules, side_of
from correlator.errors import CorrelatorError, InputError
from correlator.formats.registry import Registry, default_registry, load_registry
from correlator.formats.scan import RoutineLines
from correlator.gcpolicy import batch_allocation
from correlator.hosts import HostFacts, HostPlan, plan_hosts, split_by_syslog_host
from correlator.model import ANONYMOUS_IDS, Event, severity_rank
from correlator.report_model import Analysis, Finding, SourceReport
from correlator.sources.bundle import Bundle, open_bundle
from correlator.sources.files import LogFile
from correlator.sources.paste import unpaste
from correlator.timeline import zones as tz_rules
from correlator.timeline.connections import Connection
from correlator.timeline.pipeline import SourceTimeline
from correlator.timeline.skew import OffsetRule, parse_offset_options

#: Connections whose client `Session` remembers (a finding keeps at most 1000 connection ids, and
#: its lines come within moments of their connection's end).
MAX_CLIENT_OF = 100_000
_ALARMING = frozenset({"warning", "error", "critical"})
"""Levels the report's timeline picture draws in red."""


@dataclass
class Options:
    zones: list[str] = field(default_factory=list)
    """--tz rules: 'ZONE' (default for naive sources) or 'SOURCE_OR_GLOB=ZONE'."""
    formats: list[str] = field(default_factory=list)
    """--source-format rules: 'GLOB=FORMAT' forces a format on matching files."""
    clock_offsets: list[str] = field(default_factory=list)
    """--clock-offset rules: 'SOURCE_OR_GLOB=OFFSET' (a host's clock minus the broker's), instead of
    the estimate."""
    since: float | None = None
    until: float | None = None
    min_severity: str = "info"
    formats_dirs: list[str] = field(default_factory=list)
    rules_dirs: list[str] = field(default_factory=list)
    now: datetime | None = None
    """Clock for proactive checks (expiring certificates); default: the time of the last event."""


def forced_format(path: str, rules: Sequence[str]) -> str | None:
    """The format the last matching --source-format rule forces on a log (by its name as the
    report shows it, or its file name), None when none does."""
    chosen = None
    for rule in rules:
        pattern, sep, name = rule.rpartition("=")
        if not sep or not pattern or not name:
            raise CorrelatorError(f"--source-format wants GLOB=FORMAT, not {rule!r}")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(Path(path).name, pattern) or Path(path).match(pattern):
            chosen = name
    return chosen


class Session:
    """An analysis in progress: an engine with its rules and the bundle's artifacts. Feed it
    events in time order (`feed`), move its clock (`tick`), read `findings()` at any time."""

    def __init__(self, rules: Sequence[Rule], artifacts: Artifacts | None = None, *,
                 hosts: HostPlan | None = None, live: bool = False) -> None:
        """With `hosts`, each host's events are judged by its own artifacts and its findings kept
        apart (correlator.hosts); without, the artifacts are one host's. `live`: logs followed as
        they grow, whose untimed lines are dated by their arrival, not by their file's time."""
        self.artifacts = artifacts or Artifacts()
        self.live = live
        self.hosts = hosts
        facts = HostFacts(hosts, self.artifacts) if hosts is not None else self.artifacts
        self.engine = Engine(rules, facts, host_of=hosts.host_of if hosts is not None else None)
        self.first: float | None = None
        self.last: float | None = None
        self.histogram: dict[str, dict[int, list[int]]] = {}
        self.client_of: OrderedDict[str, str] = OrderedDict()
        """Connection id -> the client it was (from the stitched client side or the client id),
        for the last MAX_CLIENT_OF connections: findings name clients by their recent connections."""
        self.by_file_time: set[str] = set()
        self.identity: dict[str, str] = {}
        """A client log's name -> the MQTT client id its own lines name (CONNECT, the library's or
        the application's start line): findings name clients by id, not by file."""
        self._client_logs: set[str] = set()
        self._unnamed: set[str] = set()
        """Client logs whose lines name no client id (yet): such a client is named by its file."""
        """Connection ids whose client was found only by its log file's time (link `file_time`):
        a finding that names a client through them alone says so in its confidence reason."""

    #: What a session holds that its making gave it, not its events: left out of `state()`.
    _GIVEN = frozenset({"engine", "artifacts", "hosts", "live"})

    def state(self) -> dict[str, Any]:
        """What the events fed so far made, the engine's included, for a checkpoint
        (fleet/checkpoints.py)."""
        return {"engine": self.engine.state(), **{k: v for k, v in vars(self).items() if k not in self._GIVEN}}

    def restore(self, state: dict[str, Any]) -> None:
        """Take up where the session whose `state()` this is left off (same rules and artifacts)."""
        state = dict(state)
        self.engine.restore(state.pop("engine"))
        for name, value in state.items():
            setattr(self, name, value)

    def use_hosts(self, hosts: HostPlan) -> None:
        """Judge events by host from now on (a live session whose bundle showed its hosts only
        once their logs came: a syslog file of several hosts written after the watch began)."""
        self.hosts = hosts
        self.engine.facts = HostFacts(hosts, self.artifacts)
        self.engine.host_of = hosts.host_of

    def note_connections(self, connections: Iterable[Connection]) -> None:
        """Remember who each finished connection was, so findings can name the clients behind
        broker lines that only say '<unknown>'."""
        for conn in connections:
            name = None
            if conn.client_source:
                name = conn.client_source.split(":", 1)[-1]
            elif conn.client_id and conn.client_id not in ("<unknown>", "(null)"):
                name = conn.client_id
            if name:
                self.client_of[conn.id] = name
                self.client_of[conn.resolve().id] = name
                while len(self.client_of) > MAX_CLIENT_OF:
                    self.client_of.popitem(last=False)
                if conn.link == "file_time":
                    self.by_file_time.update((conn.id, conn.resolve().id))

    def feed(self, events: Sequence[Event]) -> list[Finding]:
        histogram = self.histogram
        for event in events:
            if self.first is None:
                self.first = event.ts
            self.last = event.ts if self.last is None else max(self.last, event.ts)
            per_source = histogram.get(event.source)
            if per_source is None:
                per_source = histogram[event.source] = {}
            cell = per_source.get(int(event.ts))
            if cell is None:
                cell = per_source[int(event.ts)] = [0, 0]
            cell[0] += 1
            if event.level in _ALARMING:
                cell[1] += 1
            if event.source not in self._client_logs:
                self._learn_identity(event)
        return self.feed_derived(events)

    def _learn_identity(self, event: Event) -> None:
        """The first client id a client's own log names is that client's (a log is one client; an
        empty or '(null)' id is none). Once settled, its later events cost one set lookup."""
        if side_of(event) != "client":
            self._client_logs.add(event.source)
            return
        name = event.source.split(":", 1)[-1]
        client = event.fields.get("client_id")
        if client is None:
            self._unnamed.add(name)
            return
        # the first id the log names settles it: a client that began with an empty id (and got a
        # random one from its library after the refusal) is the one with no id
        self._client_logs.add(event.source)
        if isinstance(client, str) and client not in ANONYMOUS_IDS:
            self.identity[name] = client
            self._unnamed.discard(name)
        else:
            self._unnamed.add(name)

    def _client_of(self, connection: str) -> str | None:
        name = self.client_of.get(connection)
        return None if name is None else self.client_name(name)

    def client_name(self, name: str) -> str:
        """A client as findings name it: its MQTT client id where its log named one."""
        return self.identity.get(name, name)

    def count_lines(self, source: str, ts: float, lines: int) -> None:
        """Lines the bulk reader counted instead of parsing (routine traffic, never alarming):
        in the time range and the picture as if they had been fed."""
        self.first = ts if self.first is None else min(self.first, ts)
        self.last = ts if self.last is None else max(self.last, ts)
        cell = self.histogram.setdefault(source, {}).setdefault(int(ts), [0, 0])
        cell[0] += lines

    def feed_derived(self, events: Iterable[Event]) -> list[Finding]:
        """Events the timeline derived rather than read (a clock estimate): the rules see them,
        but they are no log line, so they stay out of the time range and the picture."""
        return self.engine.feed_many(events)

    def tick(self, now: float) -> list[Finding]:
        return self.engine.advance_to(now)

    def finish(self) -> list[Finding]:
        if self.artifacts.now is None:
            # the time checks on the artifacts alone judge at (checks never read the clock): the
            # log's last line, so an old bundle is judged as of its own day; with no log at all,
            # certificates on their own are judged as of now
            self.artifacts.now = datetime.fromtimestamp(self.last, UTC) if self.last is not None else datetime.now(UTC)
        return self.engine.finish(self.last)

    def findings(self, min_severity: str = "info") -> list[Finding]:
        floor = severity_rank(min_severity)
        # the engine folds partial groups by the names its evidence gives (log names); ids come after
        found = [f for f in self.engine.findings(self.client_of.get) if severity_rank(f.severity) >= floor]
        for finding in found:
            # by id, not by file: edge-11-pub's mosquitto_pub -i edge-11 and the broker's edge-11 are one
            finding.clients = {self.client_name(name) for name in finding.clients}
            weak: set[str] = set()
            for conn in finding.connections:
                name = self._client_of(conn)
                if name:
                    (weak if conn in self.by_file_time else finding.clients).add(name)
            # a client whose own lines are in the evidence does not rest on the pairing alone
            speaking = {self.client_name(e.source.split(":", 1)[-1]) for e in finding.evidence if e.side == "client"}
            only = sorted(weak - finding.clients - speaking)
            finding.clients |= weak
            by_file = sorted((finding.clients & self._unnamed) - set(only))
            if by_file:
                finding.confidence_reason += (
                    f"; {', '.join(by_file)} {'is' if len(by_file) == 1 else 'are'} named by "
                    f"{'its log file' if len(by_file) == 1 else 'their log files'} (no client id in "
                    f"{'its' if len(by_file) == 1 else 'their'} lines)")
            if only:
                # the pairing rests on when the lines were written (their file's modification time;
                # live, the moment each arrived), not on anything the lines say
                one = len(only) == 1
                when = ("when its lines arrived" if one else "when their lines arrived") if self.live else \
                    ("its log file's time" if one else "their log files' times")
                finding.confidence_reason += (
                    f"; {', '.join(only)} {'is' if one else 'are'} named by {when} only "
                    f"({'its' if one else 'their'} lines carry no time or port)")
        return found


def open_logs(bundle: Bundle, registry: Registry, options: Options, errors: list[str],
              cancel: CancelToken | None = None) -> list[LogFile]:
    """A LogFile per log of the bundle, its format detected or forced; zones and clock offsets
    are the timeline stage's business (correlator.timeline.pipeline)."""
    logs: list[LogFile] = []
    for path in bundle.logs:
        if cancel is not None:
            cancel.check()
        name = bundle.name(path)
        forced = forced_format(name, options.formats)
        # a paste (fences, prompts, indentation, container columns) is read through its unwrapped
        # streams, each a source of its own; a forced format means the user knows what the file is
        streams = unpaste(path, registry, bundle) if forced is None else None
        for stream, suffix in streams or [(path, "")]:
            try:
                log = LogFile(stream, registry, format_name=forced, display_path=name + suffix,
                              end=bundle.read_to.get(path) if stream == path else None)
            except CorrelatorError as exc:
                errors.append(str(exc))
                continue
            # a syslog server's file holding several hosts' lines: one source per host
            split = split_by_syslog_host(log, bundle)
            for part, host in split or []:
                try:
                    logs.append(LogFile(part, registry, format_name=log.format.name,
                                        display_path=name + suffix + f" [{host}]"))
                except CorrelatorError as exc:
                    errors.append(str(exc))
                    continue
                logs[-1].split_from = (stream, host)
            if split is None:
                logs.append(log)
    return logs


def skew_events(sources: Sequence[SourceTimeline], homes: Mapping[str, str] | None = None) -> list[Event]:
    """The timeline's clock estimates as events, so `client.clock_skew` is a rule like the others
    with the estimate as its evidence (the pairs it rests on are in the source report).

    `homes` (source -> host, for the logs of a host with no broker of its own, a gateway: see
    HostPlan.clock_groups) names the clock: a clock is a machine's, so the finding says which
    machine is off, and through which of its logs that showed."""
    out = []
    for source in sources:
        skew = source.skew
        if not skew.found or skew.how == "configured" or skew.shared_from:
            continue
        first = skew.pairs[0].client.event if skew.pairs else None
        minutes = abs(skew.offset) / 60
        text = (f"{abs(skew.offset):.0f} seconds" if minutes < 2 else f"{minutes:.0f} minutes" if minutes < 120
                else f"{minutes / 60:.1f} hours")
        direction = "ahead of" if skew.offset > 0 else "behind"
        host = (homes or {}).get(skew.source)
        clock_of = f"host {host} (as its log {skew.source} shows)" if host else skew.source
        out.append(Event(
            # the pair's client line as read by the look-ahead, not yet corrected: place it on broker time
            ts=first.ts - skew.offset if first else 0.0, time_text="", source=skew.source, file=source.info.path,
            line=first.line if first else 0, kind="timeline.skew", level="warning",
            raw=f"clock of {skew.source} is {text} {direction} the broker's ({skew.how})",
            fields={"source_name": skew.source, "offset": round(skew.offset, 3), "abs_offset": abs(skew.offset),
                    "pairs": len(skew.pairs), "offset_text": f"{text} {direction} the broker's", "clock_of": clock_of,
                    "zone_like": skew.zone_like}))
    return out


@dataclass(frozen=True)
class Prepared:
    """What every analysis needs before it reads a line, set up one way for batch and live alike:
    the formats, the rules, and the options' zone and clock-offset rules. A server prepares once
    and shares it between its analyses (formats and rules compile once)."""

    registry: Registry
    rules: Sequence[Rule]
    zones: tz_rules.ZoneConfig
    offsets: list[OffsetRule]


def prepare(options: Options, *, registry: Registry | None = None, rules: Sequence[Rule] | None = None) -> Prepared:
    """The options' formats and rules folders loaded (the built-in ones when none are named),
    unless the caller hands over what it loaded already."""
    if registry is None:
        registry = load_registry(options.formats_dirs) if options.formats_dirs else default_registry()
    if rules is None:
        rules, _ = load_rules(list(options.rules_dirs))
    return Prepared(registry, rules, tz_rules.parse_zone_options(options.zones),
                    parse_offset_options(options.clock_offsets))


def load_artifacts(bundle: Bundle, options: Options, errors: list[str]) -> Artifacts:
    """The bundle's certificates, configs, ACL and password files and PKI folders, judged at the
    options' `now`; what cannot be read goes to `errors`."""
    artifacts = Artifacts.from_bundle(bundle)
    artifacts.now = options.now
    errors.extend(str(e) for e in artifacts.errors)
    return artifacts


Phase = Literal["reading", "finishing"]


@dataclass(frozen=True)
class Progress:
    """How far an analysis is, measured one way for every surface: the bytes of its logs read
    against their size on disk. A compressed log counts in decompressed bytes, capped at its size,
    so it may show as read before it is."""

    phase: Phase
    """reading the logs; then finishing (the engine's last findings, the report)."""
    read: int
    total: int
    events: int
    """Timeline events so far; when finishing, the report's count (with the routine lines the bulk
    reader counted instead of parsing)."""

    @property
    def share(self) -> float:
        """0 to 1."""
        if self.phase == "finishing":
            return 1.0
        return min(1.0, self.read / self.total) if self.total else 0.0


#: Seconds between two progress reports while the logs are read.
PROGRESS_EVERY = 0.25


@dataclass(frozen=True)
class RoutineBlock:
    """Where the routine lines of one block of a log are (what `analyze`'s `on_routine` gets):
    their line numbers are `before` + the block's numbers + 1, their offsets `base` + the
    block's starts, their times their seconds + `correction` (the log's clock correction)."""

    file: str
    """The log as events name it."""
    source: str
    correction: float
    base: int
    before: int
    lines: RoutineLines


class _Reading:
    """Called by each log between blocks (LogFile.on_read): looks at the cancel token, and
    reports progress every PROGRESS_EVERY seconds."""

    def __init__(self, logs: Sequence[LogFile], on_progress: Callable[[Progress], None] | None,
                 cancel: CancelToken | None) -> None:
        self.logs = logs
        self.total = sum(log.size for log in logs)
        self.on_progress = on_progress
        self.cancel = cancel
        self.events = 0
        self._last = time.monotonic()

    def __call__(self) -> None:
        if self.cancel is not None:
            self.cancel.check()
        if self.on_progress is not None and time.monotonic() - self._last >= PROGRESS_EVERY:
            self._last = time.monotonic()
            self.on_progress(self.progress("reading"))

    def progress(self, phase: Phase) -> Progress:
        read = sum(min(log.position, log.size) for log in self.logs)
        return Progress(phase, read, self.total, self.events)


def _routine_hook(log: LogFile, on_routine: Callable[[RoutineBlock], None],
                  offset: Callable[[str], float]) -> Callable[[int, int, RoutineLines], None]:
    def hook(base: int, before: int, lines: RoutineLines) -> None:
        source = log.info.source
        on_routine(RoutineBlock(log.info.path, source, -offset(source), base, before, lines))

    return hook


def analyze(inputs: Iterable[str | Path] | Bundle, options: Options | None = None, *,
            registry: Registry | None = None, rules: Sequence[Rule] | None = None,
            on_events: Callable[[list[Event]], None] | None = None, every_line: bool = False,
            on_progress: Callable[[Progress], None] | None = None, cancel: CancelToken | None = None,
            names: Mapping[Path, str] | None = None, on_findings: Callable[[list[Finding]], None] | None = None,
            on_routine: Callable[[RoutineBlock], None] | None = None) -> Analysis:
    """Analyse files, folders and archives to the end: the batch path of the one pipeline, the one
    every surface calls (the CLI, the TUI, the API's jobs).

    `inputs` may be a Bundle the caller opened: it stays open after the analysis (the TUI reads
    lines back from its files later) and the caller closes it. Otherwise the inputs are opened
    here and extracted archives removed on return.

    Hooks, each optional and each called on the analysing thread:
    - `on_events` sees each batch of timeline events (stitched, in time order, after since/until)
      as the engine does: the report keeps no events, so a surface that serves the timeline (the
      HTTP API, the TUI) stores them from here instead of running the pipeline a second time. Such
      a surface asks for `every_line`: otherwise routine traffic no rule needs line by line (see
      correlator/formats/scan.py) is counted, not made into events, and `on_events` never sees it.
    - `on_progress` gets a Progress every PROGRESS_EVERY seconds while the logs are read, and once
      with phase "finishing" when they are.
    - `cancel` is looked at between blocks of every log; once cancelled, analyze() raises
      Cancelled (correlator.cancel) and leaves nothing behind.
    - `on_findings` gets the findings so far (copies) while the logs are read, at most every
      PROGRESS_EVERY seconds and only when they changed: a screen shows the first causes of a big
      bundle long before its end. The final ones are the returned Analysis's.
    - `on_routine` gets, block by block, where the routine lines the bulk reader counts instead of
      parsing are (`RoutineBlock`), where `scan.keeps_lines()`: a surface that draws every line
      (the TUI) keeps them as rows without their becoming events. Lines outside --since/--until
      are among them.

    `names` reports an input file by another name than its path (see `open_bundle`)."""
    from correlator.timeline.pipeline import BatchTimeline

    options = options or Options()
    prepared = prepare(options, registry=registry, rules=rules)
    errors: list[str] = []
    opened = contextlib.nullcontext(inputs) if isinstance(inputs, Bundle) else open_bundle(inputs, names)
    with batch_allocation(), opened as bundle:
        if cancel is not None:
            cancel.check()
        errors.extend(str(e) for e in bundle.errors)
        artifacts = load_artifacts(bundle, options, errors)
        logs = open_logs(bundle, prepared.registry, options, errors, cancel)
        plan = plan_hosts(bundle, artifacts, logs)
        session = Session(prepared.rules, artifacts, hosts=plan)
        reading = _Reading(logs, on_progress, cancel)
        needed = None if every_line else session.engine.needs()
        # a rule's first-of-key lines are told apart in one file's order: with two logs of a format
        # that has routine lines (a key's reset in one, its lines in the other) every line is read
        bulk = [log for log in logs if log.format.routine is not None]
        first = session.engine.first_lines() if needed is not None and len(bulk) == 1 else None
        for log in logs:
            log.on_read = reading
            if not every_line:
                log.count_routine(needed, first)
                if on_routine is not None:
                    log.keep_routine_lines(_routine_hook(log, on_routine, lambda source: line.tracker.offset(source)))

        def broken(log: LogFile, exc: CorrelatorError) -> None:
            errors.append(str(exc))

        line = BatchTimeline(logs, zones=prepared.zones, offsets=prepared.offsets, since=options.since,
                             until=options.until, on_connection=lambda conn: session.note_connections([conn]),
                             on_error=broken, reach=plan.reach, clock_groups=plan.clock_groups())
        told = float("-inf")  # the first findings are told at once
        changed = False
        for chunk in line.chunks():
            if cancel is not None:
                cancel.check()
            if reading.events == 0:
                session.feed_derived(skew_events(line.sources(), plan.clock_groups()))
            reading.events += len(chunk)
            if on_events is not None:
                on_events(chunk)
            changed = bool(session.feed(chunk)) or changed
            if on_findings is not None and changed and time.monotonic() - told >= PROGRESS_EVERY:
                on_findings(session.findings(options.min_severity))
                told, changed = time.monotonic(), False
        count = reading.events
        for source, ts, lines in line.routine():
            count += lines
            session.count_lines(source, ts, lines)
        reading.events = count
        if on_progress is not None:
            on_progress(reading.progress("finishing"))
        session.finish()
        if session.last is not None:
            session.tick(session.last + 86400)
        sources = [SourceReport(s.info, s.zone.how, s.skew.offset if s.skew.found else 0.0, s.skew.how)
                   for s in line.sources()]
        connections = line.connections
        artifact_counts = {"certificates": len(artifacts.certs), "keys": len(artifacts.keys),
                           "configs": len(artifacts.confs), "acl_files": len(artifacts.acls),
                           "password_files": len(artifacts.passwds), "opcua_pki_folders": len(artifacts.pki),
                           "client_configs": len(artifacts.client_configs)}
        skipped = [f"{bundle.name(p)} ({why})" for p, why in bundle.skipped]
        errors.extend(str(problem) for problem in session.engine.drain_problems())
        notes = line.stitcher.overflow_notes() + session.engine.overflow_notes()
        if line.outside:
            kept = "none" if not count else f"{count:,}"
            notes.append(f"--since/--until left out {line.outside:,} events and kept {kept}: findings are about the "
                         "time range only")
    # messages name bundle members, never the folders they were extracted to
    errors = [bundle.public(e) for e in errors]
    skipped = [bundle.public(s) for s in skipped]
    if not logs and artifacts.empty:
        why = "; ".join(errors) if errors else "no log, certificate or configuration file in the input"
        raise InputError(f"nothing to analyse: {why}")
    findings = session.findings(options.min_severity)
    if plan.multi:
        # grouped by host, the host with the worst finding first (each group stays worst first)
        rank: dict[str, int] = {}
        for finding in findings:
            rank.setdefault(finding.host, len(rank))
        findings.sort(key=lambda f: rank[f.host])
    return Analysis(findings=findings, sources=sources, errors=errors,
                    artifacts=artifact_counts, events=count, first_event=session.first, last_event=session.last,
                    connections=connections, histogram=session.histogram, hosts=[h.report() for h in plan.hosts],
                    skipped=skipped,
                    notes=notes)
