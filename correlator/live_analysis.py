"""Live analysis: follow files and folders and keep the findings current as lines arrive.

The same stages as the batch path (correlator.analysis): each file's lines go through its format's
SourceParser, sources are merged in time (LiveMerger instead of the batch heap merge), connections
are stitched, and the same Session (rules engine plus artifact checks) turns events into findings.
Only the feeding differs: a watchdog Tailer delivers batches of lines, the timeline stage's live
form (LiveTimeline: the same skew tracker, merge rule and stitcher) orders and corrects them, and
a clock thread moves time on so held events are released and absences fire while logs are quiet.

Surfaces (the TUI, the HTTP API) build a LiveAnalysis, call `start()`, and either pass `on_update`
(called from a worker thread with what changed) or poll `snapshot()` / `events_since()`.

A surface that need not parse every line passes `every_line=False`: appended lines a format
declares routine and no rule reads line by line are then counted, as the batch reader counts them
(correlator/sources/routine.py), instead of being parsed. The edge agent, which sends them up per
client, gets them one by one in `on_routine`; the others (`watch` and the TUI's live mode, `serve
PATH`) have each batch classified by the batch reader's own classifier (Hyperscan and numpy where
installed) and get where the routine lines are in `on_routine_block`, as the first read gives it:
the TUI draws them as timeline rows read back from the file, as it draws a bundle's.

A surface that shows the files' existing content too (`watch`, the TUI's live mode) passes
`bulk=True`: what a file holds when following starts is read by `analyze`'s two-tier reader
(routine traffic counted at C speed, not parsed: `on_routine_block` hears where those lines are),
and the tailer goes on from the byte where that read stopped (correlator/sources/tail.py).

A surface that reads lines back from the files at their offsets (the TUI) passes `read_back=True`:
through a rotation (renamed and reopened, or copytruncate) each file the path held is kept open
and a later file's offsets go on from the earlier one's (`ReadBack`), so a row read from the
renamed old file reads back from it, not from the new file at the same offset.

Events another machine read, ordered and stitched (an edge agent's, correlator/fleet) enter after
the timeline stage with `feed_events`: a LiveAnalysis of no paths is the analysis of a remote site.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from correlator.analysis import Options, RoutineBlock, Session, forced_format, load_artifacts, open_logs, prepare
from correlator.engine.facts import Artifacts
from correlator.engine.rules import Rule
from correlator.errors import CorrelatorError, InputError
from correlator.formats.definition import Format
from correlator.formats.parse import SourceParser, line_host
from correlator.formats.patterns import PatternTimeout
from correlator.formats.registry import DETECT_LINES, Registry
from correlator.formats.scan import RoutineLines
from correlator.hosts import Host, HostPlan, plan_hosts
from correlator.model import Event, is_broker_source
from correlator.report_model import Finding
from correlator.sources.bundle import SNIFF_BYTES, Bundle, classify, open_bundle
from correlator.sources.files import LogFile, decode, detection_problems, source_name
from correlator.sources.lines import Line, compression_of, iter_chunks
from correlator.sources.routine import AppendedLines, RoutineLine, routine_reading, routine_spec
from correlator.sources.tail import LineBatch, Tailer, TailEvent
from correlator.timeline.pipeline import LiveTimeline

#: How many recent events a live analysis keeps for the surfaces' timelines.
RECENT_EVENTS = 50_000
#: Seconds between clock ticks (release held events, fire absences, collapse updates): a held
#: line waits up to one tick, so this bounds the live latency from below.
TICK = 0.05
#: Sub-folder levels of a followed folder whose logs are followed (a bundle's host folders and
#: theirs), sub-folders made after the watch began included.
FOLDER_DEPTH = 3
#: Seconds of wall clock "lines per second" looks back over: it falls to 0 that long after the
#: logs go quiet.
RATE_WINDOW = 5.0


@dataclass
class LiveUpdate:
    """What one step changed: new events (in timeline order) and the findings created or updated."""

    events: list[Event]
    findings: list[Finding]


@dataclass
class RoutineBatch:
    """Routine lines of one batch of a followed file, counted instead of parsed."""

    source: str
    file: str
    lines: list[RoutineLine]


@dataclass
class LiveSource:
    path: str
    source: str = ""
    format: str = ""
    zone: str = "UTC"
    lines: int = 0
    unparsed: int = 0
    parser: SourceParser | None = None
    waiting: list[Line] = field(default_factory=list)
    numbers: int = 0
    split_format: Format | None = None
    """Set for a file several hosts wrote: its lines go to one LiveSource per host
    (`<path> [<host>]`), numbered as lines of this file."""
    split_host: str = ""
    """The host of the file's last line that named one."""
    real: str = ""
    """For one host's part of such a file: the file (whose time dates lines that carry none)."""
    routine: AppendedLines | None = None
    format_of: Format | None = None
    """The format its lines are parsed with (set when routine lines may be counted)."""
    counted: int = 0
    """Routine lines counted instead of parsed (`every_line=False`)."""
    kind: str | None = None
    """What the file is (`classify`), once its first 64 KB were there to tell."""


#: Files a followed path held (it was rotated, truncated) kept open for reading lines back: the
#: oldest are let go (their rows' text is then not shown, rather than another file's).
KEPT_FILES = 16


class ReadBack:
    """Where the lines of one followed path are, through its rotations: each file the path held
    (the renamed old log mosquitto goes on writing to until SIGHUP, the new one; the copy
    copytruncate made of the lines before the truncation, then the truncated file) has its own
    offsets from 0, and lines of a later one are given offsets past the earlier one's (`base`):
    a row's offset says which file holds its line, read back from a descriptor kept open on that
    very file (whatever its name is now, even deleted). Offsets of the first file are the file's:
    a path never rotated reads back as before.

    Written on LiveAnalysis's thread, read on the screen's: `parts` is replaced, never changed."""

    def __init__(self) -> None:
        self.parts: tuple[tuple[int, int, tuple[int, int]], ...] = ()
        """(base, descriptor or -1 when let go or unreadable, file identity), by base."""
        self.end = 0
        """Past the last byte of a line given so far: where the next file's offsets start."""
        self._fds: list[int] = []
        weakref.finalize(self, ReadBack._close, self._fds)

    @staticmethod
    def _close(fds: list[int]) -> None:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        fds.clear()

    def _open(self, batch: LineBatch) -> int:
        """A descriptor on the very file of the batch (-1 when it cannot be had)."""
        try:
            fd = os.open(batch.reader or str(batch.path), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return -1
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != batch.file_id:
            os.close(fd)  # the name holds another file by now (no /proc to reopen the very one)
            return -1
        self._fds.append(fd)
        return fd

    def _let_go(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.remove(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def add(self, batch: LineBatch) -> int:
        """Note the batch's file; the base to add to its lines' offsets."""
        parts = self.parts
        if not parts or batch.event is not None:
            # a file whose offsets start at 0: the first, the next at the name, the truncated one
            base = self.end if parts else 0
            if parts and parts[-1][2] == batch.file_id:
                # truncated in place, no copy found: its old lines are gone from it
                self._let_go(parts[-1][1])
                parts = (*parts[:-1], (parts[-1][0], -1, parts[-1][2]))
            parts = (*parts, (base, self._open(batch), batch.file_id))
            if len(parts) > KEPT_FILES:
                oldest = parts[-KEPT_FILES - 1]
                self._let_go(oldest[1])
                parts = (*parts[:-KEPT_FILES - 1], (oldest[0], -1, oldest[2]), *parts[-KEPT_FILES:])
            self.parts = parts
        elif batch.file_id != parts[-1][2]:
            # the copy of a truncated file: the lines read from it so far are there now
            base, fd, _ = parts[-1]
            self._let_go(fd)
            self.parts = (*parts[:-1], (base, self._open(batch), batch.file_id))
        base = self.parts[-1][0]
        if batch.lines:
            offset, raw = batch.lines[-1]
            self.end = max(self.end, base + offset + len(raw) + 1)
        return base

    @property
    def rotated(self) -> bool:
        """Whether the path's lines are in more than one file (it was rotated or truncated)."""
        return len(self.parts) > 1

    def find(self, offset: int) -> tuple[int, int] | None:
        """(descriptor, offset in its file) of a line at `offset` (descriptor -1: not readable
        back); None before the path's first file is known (read it by name)."""
        parts = self.parts
        if not parts:
            return None
        at = bisect.bisect_right(parts, offset, key=lambda part: part[0]) - 1
        if at < 0:
            return None
        base, fd, _ = parts[at]
        return fd, offset - base


def _written(path: str | Path) -> float:
    """When the file was last written (now, when it cannot be read): the latest time its lines can have."""
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return time.time()


def _without(lines: RoutineLines, base: int, offsets: set[int]) -> RoutineLines:
    """A block's routine lines (block at byte `base`) less those starting at `offsets`."""
    import numpy as np

    taken = [at - base for at in offsets if base <= at]
    if not taken:
        return lines
    keep = ~np.isin(lines.starts, np.array(taken, dtype=np.int64))
    if keep.all():
        return lines
    return dataclasses.replace(lines, starts=lines.starts[keep], numbers=lines.numbers[keep],
                               seconds=lines.seconds[keep], messages=lines.messages[keep])


class LiveAnalysis:
    """Follows `paths` (files and folders; folders are watched for new files matching `pattern`)."""

    def __init__(self, paths: Sequence[str | Path], options: Options | None = None, *,
                 from_beginning: bool = True, pattern: str = "*.log", registry: Registry | None = None,
                 rules: Sequence[Rule] | None = None, on_update: Callable[[LiveUpdate], None] | None = None,
                 on_error: Callable[[CorrelatorError], None] | None = None, polling: bool = False,
                 stitch_window: float = 0.3, clock: Callable[[], float] = time.monotonic,
                 every_line: bool = True, on_routine: Callable[[RoutineBatch], None] | None = None,
                 bulk: bool = False, on_routine_block: Callable[[RoutineBlock], None] | None = None,
                 on_caught_up: Callable[[], None] | None = None,
                 on_tick: Callable[[], None] | None = None, read_back: bool = False) -> None:
        """`every_line=False`: routine lines no rule reads are counted (`on_routine` sees them,
        on the reading thread, before the events of their batch), not parsed.

        `bulk=True` (with `from_beginning`): the files' existing content is read as `analyze`
        reads it (`_read_existing`), its routine lines counted, and where they are told to
        `on_routine_block` (as `analyze`'s `on_routine`, where `scan.keeps_lines()`).
        `on_caught_up` is called, under the analysis's lock (no update runs meanwhile), once
        the existing content has all been read and published.

        With `every_line=False` and no `on_routine`, the routine lines of appended batches are
        told to `on_routine_block` too (where `AppendedLines.keeps_places`; each block's `base`
        is 0, its lines' starts their offsets in the file), on the reading thread under the
        analysis's lock, before the events of their batch. `on_tick` is called under that lock
        after each clock tick (a surface placing those lines among the events it was given).

        `read_back=True`: the surface reads lines back from the files at their offsets (the TUI):
        the files a path holds through its rotations are kept open (`read_back`), and a later
        file's offsets go on from the earlier one's, so a row's offset says which file has it."""
        self.options = options or Options()
        self.paths = [Path(p) for p in paths]
        prepared = prepare(self.options, registry=registry, rules=rules)
        self.registry = prepared.registry
        self.zones = prepared.zones
        self.errors: list[str] = []
        artifacts = Artifacts()
        folders = [p for p in self.paths if p.is_dir()]
        plan: HostPlan | None = None
        #: How many of the logs there at the start have routine traffic (`_read_existing`).
        self._routine_logs = 0
        #: A log's real path -> its source name in a bundle of several hosts (`broker:<host>`).
        self._named: dict[str, str] = {}
        #: A file several hosts wrote (a syslog server's) -> its hosts' source names: its lines are
        #: split per host as they arrive, as `analyze` splits the file.
        self._split_named: dict[str, dict[str, str]] = {}
        #: The followed folders and how a bundle names their files (`open_bundle`): a log that
        #: appears later is placed among the hosts by its name.
        self._roots = [(os.path.realpath(f), "" if len(folders) == 1 else f"{f.name}/") for f in folders]
        if folders:
            with open_bundle(folders) as bundle:
                artifacts = load_artifacts(bundle, self.options, self.errors)
                plan = self._plan_hosts(bundle, artifacts)
        self.session = Session(prepared.rules, artifacts, hosts=plan, live=True)
        self.on_update = on_update
        self.on_error = on_error
        self.on_routine = on_routine
        self._needed = None if every_line else self.session.engine.needs()
        #: The first read's thinning (`_read_existing`): as `analyze` thins, only when one log there
        #: at the start has routine traffic (a key's reset in one log, its lines in another).
        self._bulk_first = None
        if bulk and from_beginning:
            self._routine_logs += sum(1 for path in self.paths if path.is_file() and self._has_routine(path))
            if self._routine_logs == 1:
                self._bulk_first = self.session.engine.first_lines()
        self._first = None if every_line else self.session.engine.first_lines()
        self._every_line = every_line
        self.sources: dict[str, LiveSource] = {}
        self.read_back: dict[str, ReadBack] = {}
        """With `read_back`, where the lines of each followed path are (by the events' file
        name): a row's offset is read back with `read_back[file].find(offset)` (the offsets of a
        rotated path's later files go on from its earlier ones')."""
        self._reads_back = read_back
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self.total_events = 0
        self._timeline = LiveTimeline(offsets=prepared.offsets, window=stitch_window,
                                      reach=plan.reach if plan else None,
                                      clock_groups=plan.clock_groups() if plan else None)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._paused = False
        self._clock = clock
        self._started = clock()
        self._arrivals: deque[tuple[float, int]] = deque()
        """(clock, lines) per batch read within the last RATE_WINDOW seconds."""
        self.on_routine_block = on_routine_block
        self.on_caught_up = on_caught_up
        self.on_tick = on_tick
        self._tailer = Tailer(self._on_batch, from_beginning=from_beginning, polling=polling,
                              on_error=self._tail_error, bulk=self._read_existing if bulk else None)
        if from_beginning:
            self._timeline.hold()  # until the files' existing lines are all read (see _tick_loop)
        self._catching_up = from_beginning
        for path in self.paths:
            if path.is_dir():
                # a bundle keeps logs in sub-folders, some made while the watch runs
                self._tailer.add_folder(path, pattern, depth=FOLDER_DEPTH)
            else:
                self._tailer.add_file(path)

    def _plan_hosts(self, bundle: Bundle, artifacts: Artifacts) -> HostPlan | None:
        """The hosts of the logs the folders hold when following starts (correlator.hosts), read
        and grouped as `analyze` reads and groups them (a syslog server's file split per host):
        None for one host. A log that appears later is placed by `_place`."""
        logs = open_logs(bundle, self.registry, self.options, [])  # the tailer reports what is broken
        self._routine_logs += sum(1 for log in logs if log.format.routine is not None)
        for log in logs:
            if log.split_from is not None:
                origin, host = log.split_from
                self._split_named.setdefault(os.path.realpath(origin), {})[host] = log.info.source
        plan = plan_hosts(bundle, artifacts, logs)
        if not plan.multi:
            return None
        self._named = {os.path.realpath(log.path): log.info.source for log in logs if log.split_from is None}
        for log in logs:  # the names the plan gave the split parts
            if log.split_from is not None:
                origin, host = log.split_from
                self._split_named[os.path.realpath(origin)][host] = log.info.source
        return plan

    def _display(self, path: Path) -> str:
        """A file as `analyze` names it within the followed folders."""
        real = os.path.realpath(path)
        for root, prefix in self._roots:
            if real.startswith(root + os.sep):
                return prefix + os.path.relpath(real, root)
        return str(path)

    def _place(self, path: Path, name: str, syslog_host: str | None) -> str:
        """The source name of a log the plan did not know (it appeared after following began, or
        it is a new host's part of a syslog file), placed among the bundle's hosts as `analyze`
        would place it: by the host its syslog lines name, else by the host folder it sits in. A
        broker's log is named by its host; its connections, clock and findings are that host's."""
        plan = self.session.hosts
        broker = is_broker_source(name)
        if syslog_host and (plan is None or all(h.how == "syslog host name" for h in plan.hosts)):
            # no folder told the hosts apart when the watch began: the syslog host names do now
            if plan is None:
                plan = HostPlan([])
                self.session.use_hosts(plan)
            if plan.host(syslog_host) is None:
                plan.hosts.append(Host(syslog_host, "syslog host name", artifacts=self.session.artifacts))
        if plan is None:
            return name
        display = self._display(path)
        host = next((h for h in plan.hosts if syslog_host and (h.name == syslog_host or syslog_host in h.syslog_names)),
                    None)
        if host is None:
            host = max((h for h in plan.hosts if h.root and display.startswith(h.root.rstrip("/") + "/")),
                       key=lambda h: len(h.root), default=None)
        if host is None:
            return name if not syslog_host else f"{name}@{syslog_host}"
        source = f"broker:{host.name}" if broker else name
        if not broker and plan.home.get(source, host.name) != host.name:
            source = f"{name}@{host.name}"  # the same log name on another host
        plan.home[source] = host.name
        if source not in host.sources:
            host.sources.append(source)
            host.logs.append(display)
        if not any(is_broker_source(s) for s in host.sources):
            self._timeline.tracker.clock_groups[source] = host.name  # a gateway's logs share its clock
        return source

    # -- control -------------------------------------------------------------------------------

    def start(self) -> LiveAnalysis:
        self._tailer.start()
        self._ticker = threading.Thread(target=self._tick_loop, name="correlator-live-clock", daemon=True)
        self._ticker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._tailer.stop()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        with self._lock:
            self._publish(self._timeline.flush())

    def __enter__(self) -> LiveAnalysis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def caught_up(self) -> bool:
        """Whether what the files held at the start has been read and published (with
        `from_beginning`; at once without)."""
        return not self._catching_up

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self, paused: bool = True) -> None:
        """Stop publishing updates (lines keep being read and analysed; nothing is lost)."""
        self._paused = paused

    # -- reading -------------------------------------------------------------------------------

    def _tail_error(self, error: InputError) -> None:
        self.errors.append(str(error))
        if self.on_error is not None:
            self.on_error(error)

    def _source(self, path: Path) -> LiveSource:
        key = str(path)
        found = self.sources.get(key)
        if found is None:
            found = self.sources[key] = LiveSource(key)
        return found

    def _open_parser(self, state: LiveSource, path: Path, first: list[Line]) -> None:
        texts = [decode(raw) for _, raw in first[:DETECT_LINES]]
        forced = forced_format(str(path), self.options.formats)
        slow: list[PatternTimeout] = []
        fmt = self.registry.get(forced) if forced else self.registry.detect(texts, slow)[0]
        for problem in detection_problems(slow, fmt, str(path)):
            self._tail_error(problem)
        real = os.path.realpath(path)
        hosts = {h for text in texts if (h := line_host(fmt, text))}
        if real in self._split_named or len(hosts) > 1:
            # a syslog server's file of several hosts: one source per host, as `analyze` splits it
            state.split_format, state.format = fmt, fmt.name
            self._split_named.setdefault(real, {})
            return
        name = self._named.get(real) or self._place(path, source_name(fmt, path, texts), next(iter(hosts), None))
        self._start_parser(state, fmt, name, str(path), path)

    def _start_parser(self, state: LiveSource, fmt: Format, name: str, file: str, path: Path) -> None:
        choice = self.zones.choose(name, str(path), broker_epoch=fmt.role == "broker")
        state.parser = SourceParser(fmt, self.registry.evidence, source=name, file=file, tz=choice.zone,
                                    fallback=self.registry.fallback, fallback_time=_written(path))
        state.source, state.format, state.zone = name, fmt.name, choice.name
        if not self._every_line:
            self._read_routine(state, fmt)
        self._timeline.add_source(name, file)

    def _read_routine(self, state: LiveSource, fmt: Format) -> None:
        """Count the routine lines of a new source (`every_line=False`), thinning a rule's
        first-of-key lines as `analyze` does: in one file's order, so only while a single log of
        a format with routine lines is followed (a second one ends the thinning of the first)."""
        state.format_of = fmt
        others = [s for s in self.sources.values() if s is not state and s.format_of is not None
                  and s.format_of.routine is not None]
        if fmt.routine is None:
            return
        spec, thinner = routine_reading(fmt, self.registry.evidence, self._needed, None if others else self._first)
        state.routine = AppendedLines(fmt, spec, thinner) if spec is not None else None
        for other in others:
            if other.routine is not None and other.routine.thinner is not None and other.format_of is not None:
                plain = routine_spec(other.format_of, self._needed)
                other.routine = AppendedLines(other.format_of, plain) if plain is not None else None

    def _has_routine(self, path: Path) -> bool:
        """Whether a log named on the command line is of a format with routine traffic."""
        forced = forced_format(str(path), self.options.formats)
        try:
            return LogFile(path, self.registry, format_name=forced).format.routine is not None
        except (OSError, CorrelatorError):
            return False  # the tailer reports it

    def _read_existing(self, path: Path, reader: str, end: int) -> bool:
        """The tailer's bulk reader (`bulk=True`): the bytes of `path` before `end`, read through
        `reader` (the file the tailer holds), as `analyze` reads a log: only the lines that are
        not routine traffic (or that a rule reads line by line) become events; the routine ones
        are counted per second, as `_count` counts appended ones. The source is opened as the
        tailer's first batch would open it; a log this reader does not help (no routine traffic,
        a compressed one, a file of several hosts) is left to the tailer (False)."""
        if path.exists() and classify(path) not in ("log", "unreadable"):
            return False
        try:
            with open(reader, "rb") as handle:
                if compression_of(handle.read(6)) is not None:
                    return False
            first: list[Line] = []
            for chunk in iter_chunks(reader):
                first.extend(line for line in chunk if line[0] < end)
                if len(first) >= DETECT_LINES or len(first) < len(chunk):
                    break
        except OSError:
            return False
        with self._lock:
            state = self._source(path)
            if state.parser is not None or state.split_format is not None or not first:
                return False
            self._open_parser(state, path, first)
            parser = state.parser
            if parser is None or routine_spec(parser.fmt, self.session.engine.needs()) is None:
                return False  # nothing to count (or several hosts' lines): the tailer reads them
            source = state.source
        log = LogFile(reader, self.registry, format_name=parser.fmt.name, display_path=state.path, end=end,
                      source=source)
        log.parser = parser
        log.count_routine(self.session.engine.needs(), self._bulk_first)
        if log.routine_spec is None:
            return False
        parser.fallback_time = _written(path)
        # the routine lines' places, told once the read is over without the few a rule took as
        # events after all (sources/thinning.py): those may reach the surface only after it
        # placed the routine lines (the stitcher holds a connection's lines a while)
        places: list[tuple[int, int, RoutineLines]] = []
        parsed: set[int] = set()
        if self.on_routine_block is not None:
            log.keep_routine_lines(lambda base, before, lines: places.append((base, before, lines)))
        read = 0
        try:
            for events in log.chunks():
                parsed.update(event.offset for event in events)
                with self._lock:
                    now = self._clock()
                    self._arrivals.append((now, log.lines - read))
                    read = log.lines
                    self._forget_arrivals(now)
                    state.lines = log.lines
                    for problem in log.problems():
                        self._tail_error(problem)
                    self._publish(self._timeline.feed(source, state.path, events))
        except InputError as error:
            self._tail_error(error)
        if self.on_routine_block is not None:
            correction = -self._timeline.tracker.offset(source)
            for base, before, lines in places:
                if log.thinner is not None:
                    lines = _without(lines, base, parsed)
                self.on_routine_block(RoutineBlock(state.path, source, correction, base, before, lines))
        with self._lock:
            for problem in log.problems():
                self._tail_error(problem)
            offset = self._timeline.tracker.offset(source)
            for second, n in log.routine.seconds.items():
                self.session.count_lines(source, second - offset, n)
            state.counted += log.routine.lines
            state.numbers = log.lines
            appended = state.routine
            if (appended is not None and appended.thinner is not None and log.thinner is not None
                    and appended.thinner.kind == log.thinner.kind):
                # the lines appended later are thinned on from where the first read left off, as
                # reading the whole file would: a client's first line since its reset was parsed
                appended.thinner = log.thinner
            state.lines = parser.lines_read + state.counted
            state.unparsed = parser.unparsed
        return True

    def _split(self, state: LiveSource, lines: list[tuple[int, int, str]]) -> None:
        """A file of several hosts' lines: each line to its host's source (a line naming no host,
        a continuation, stays with the line before; lines before the first that names one are no
        host's), in runs, so each host's lines keep their order and their file line numbers."""
        fmt = state.split_format
        assert fmt is not None
        path = Path(state.path)
        names = self._split_named[os.path.realpath(path)]
        run: list[tuple[int, int, str]] = []
        for numbered in [*lines, None]:
            host = state.split_host if numbered is None else (line_host(fmt, numbered[2]) or state.split_host)
            if run and (numbered is None or host != state.split_host):
                child = self._source(Path(f"{state.path} [{state.split_host}]"))
                child.real = state.path
                if child.parser is None:
                    name = names.get(state.split_host) or self._place(
                        path, source_name(fmt, path, [text for _, _, text in run]), state.split_host)
                    names[state.split_host] = name
                    self._start_parser(child, fmt, name, child.path, path)
                self._parse_numbered(child, run)
                run = []
            if numbered is None:
                break
            state.split_host = host
            if host:
                run.append(numbered)

    def _on_batch(self, batch: LineBatch) -> None:
        with self._lock:
            state = self._source(batch.path)
        if not self._is_log(state, batch):
            return  # a certificate or config dropped into a watched folder is not a log
        with self._lock:
            base = 0
            if self._reads_back:
                read_back = self.read_back.get(state.path)
                if read_back is None:
                    read_back = self.read_back[state.path] = ReadBack()
                base = read_back.add(batch)
            if not batch.lines and batch.event is None:
                return  # the lines read so far are in a copy now (copytruncate)
            if batch.event in (TailEvent.ROTATED, TailEvent.TRUNCATED):
                state.numbers = 0
            # a later file's lines go on from the offsets of the one before (ReadBack)
            lines = [(offset + base, raw) for offset, raw in batch.lines] if base else batch.lines
            if state.parser is None and state.split_format is None:
                state.waiting.extend(lines)
                if len(state.waiting) < 5 and (batch.event is None or not state.waiting):
                    # a few more lines make detection reliable (the clock flushes stragglers); and
                    # a file followed from its end (`--new-only`) opens with no line to detect by
                    return
                lines, state.waiting = state.waiting, []
                self._open_parser(state, batch.path, lines)
            self._parse(state, lines)

    def _is_log(self, state: LiveSource, batch: LineBatch) -> bool:
        """Whether a followed file is a log, as a bundle tells (`classify`, from its first bytes):
        looked at again only when it is another file (rotated, truncated) or its head was not
        complete when last looked at, not at every batch of a flood (it reads 64 KB)."""
        if not batch.path.exists():
            return True
        if batch.event is not None or state.kind is None:
            state.kind = None
            kind = classify(batch.path)
            try:
                whole = batch.path.stat().st_size >= SNIFF_BYTES
            except OSError:
                whole = False
            if not whole:
                return kind in ("log", "unreadable")
            state.kind = kind
        return state.kind in ("log", "unreadable")

    def _parse(self, state: LiveSource, lines: list[Line]) -> None:
        numbered = []
        if state.routine is not None and self.on_routine is None and state.routine.keeps_places:
            keep, where = state.routine.places(lines)
            numbered = [(state.numbers + i + 1, lines[i][0], decode(lines[i][1])) for i in keep]
            before = state.numbers
            state.numbers += len(lines)
            if where is not None:
                self._count_places(state, before, where)
        elif state.routine is not None:
            keep, routine = state.routine.split(lines)
            numbered = [(state.numbers + i + 1, lines[i][0], decode(lines[i][1])) for i in keep]
            state.numbers += len(lines)
            if routine:
                self._count(state, routine)
        else:
            for offset, raw in lines:
                state.numbers += 1
                numbered.append((state.numbers, offset, decode(raw)))
        if state.split_format is not None:
            self._split(state, numbered)
        else:
            self._parse_numbered(state, numbered)

    def _parse_numbered(self, state: LiveSource, numbered: list[tuple[int, int, str]]) -> None:
        assert state.parser is not None
        # Lines with no time of their own (mosquitto_pub -d) are dated as the batch dates them, by
        # the file's modification time, but as it is when they are read: a followed file's new
        # lines get the time they arrived, not the time the watch began, so they stay in order
        # and the stitcher's file-time pairing ties each attempt to the broker's connection.
        state.parser.fallback_time = _written(state.real or state.path)
        now = self._clock()
        self._arrivals.append((now, len(numbered)))
        self._forget_arrivals(now)
        events = state.parser.feed(numbered)
        # a live record has no following line to close it: flush what waits for one
        events += state.parser.finish()
        for problem in state.parser.drain_problems():
            self._tail_error(problem)
        state.lines = state.parser.lines_read + state.counted
        state.unparsed = state.parser.unparsed
        self._publish(self._timeline.feed(state.source, state.path, events))

    def _count_places(self, state: LiveSource, before: int, where: RoutineLines) -> None:
        """Routine lines of a batch, as the batch reader's arrays (`AppendedLines.places`: their
        offsets, their indexes in the batch, whose first line is line `before` + 1), into the time
        range and the picture, and out to `on_routine_block`."""
        import numpy as np

        offset = self._timeline.tracker.offset(state.source)
        seconds, counts = np.unique(where.seconds, return_counts=True)
        for second, n in zip(seconds.tolist(), counts.tolist(), strict=True):
            self.session.count_lines(state.source, second - offset, n)
        now = self._clock()
        lines = len(where.numbers)
        self._arrivals.append((now, lines))
        state.counted += lines
        if self.on_routine_block is not None:
            self.on_routine_block(RoutineBlock(state.path, state.source, -offset, 0, before, where))

    def _count(self, state: LiveSource, routine: list[RoutineLine]) -> None:
        """Routine lines into the time range and the picture (as the batch counts them) and out
        to `on_routine`."""
        offset = self._timeline.tracker.offset(state.source)
        seconds: dict[int, int] = {}
        for line in routine:
            seconds[line.second] = seconds.get(line.second, 0) + 1
        for second, n in seconds.items():
            self.session.count_lines(state.source, second - offset, n)
        now = self._clock()
        self._arrivals.append((now, len(routine)))
        state.counted += len(routine)
        if self.on_routine is not None:
            self.on_routine(RoutineBatch(state.source, state.path, routine))

    # -- the clock -----------------------------------------------------------------------------

    def _tick_loop(self) -> None:
        while not self._stop.wait(TICK):
            with self._lock:
                # a folder may fall back to polling at any time (an inotify watch limit)
                self._timeline.set_prompt(self._tailer.observer_kind == "inotify")
                for path, state in list(self.sources.items()):
                    if state.parser is None and state.split_format is None and state.waiting:
                        lines, state.waiting = state.waiting, []
                        self._open_parser(state, Path(path), lines)
                        self._parse(state, lines)
                if self._catching_up and self._tailer.caught_up.is_set():
                    self._catching_up = False
                    self._publish(self._timeline.resume())
                    if self.on_caught_up is not None:
                        self.on_caught_up()
                self._publish(self._timeline.tick())
                if self.session.last is not None:
                    # event time moves with the wall clock while logs are quiet, so absences fire
                    findings = self.session.tick(self.session.last + TICK)
                    if findings and not self._paused and self.on_update is not None:
                        self.on_update(LiveUpdate([], findings))
                if self.on_tick is not None:
                    self.on_tick()

    def feed_events(self, events: Sequence[Event]) -> None:
        """Events that went through the timeline stage elsewhere (an edge agent's LiveAnalysis
        read, ordered and stitched them): into the engine and out to the surface, as this
        analysis's own would go. Their analysis depends on them alone, not on when they come:
        the same events fed again in other batches make the same findings, revisions included."""
        with self._lock:
            self._publish(list(events))

    def _publish(self, stitched: list[Event]) -> None:
        """Timeline events (ordered, corrected, stitched) into the engine and out to the surface."""
        self.session.note_connections(self._timeline.pop_closed())
        if not stitched:
            return
        changed = self.session.feed(stitched)
        for problem in self.session.engine.drain_problems():
            self._tail_error(problem)
        self.recent.extend(stitched)
        self.total_events += len(stitched)
        if self.on_update is not None and not self._paused:
            # the view of every finding only when the rules changed one (it is the costly part)
            visible = {f.id + "|" + f.group: f for f in self.session.findings()} if changed else {}
            self.on_update(LiveUpdate(stitched, [visible.get(f.id + "|" + f.group, f) for f in changed]))

    # -- reading the state ---------------------------------------------------------------------

    def held_from(self) -> float:
        """The earliest time of a line read and not published yet (inf: none): the routine lines
        of appended batches (`on_routine_block`) of an earlier time can be shown before the events
        still to come. Under the analysis's lock (`on_tick` has it)."""
        with self._lock:
            return self._timeline.earliest_held()

    def findings(self) -> list[Finding]:
        with self._lock:
            return self.session.findings(self.options.min_severity)

    def events_since(self, index: int) -> tuple[list[Event], int]:
        """Events published after the `index`-th one (a cursor the caller keeps), and the new cursor."""
        with self._lock:
            total = self.total_events
            missing = total - index
            if missing <= 0:
                return [], total
            kept = list(self.recent)[-min(missing, len(self.recent)):]
            return kept, total

    def lines_per_second(self) -> float:
        """Lines read over the last RATE_WINDOW seconds of wall clock (or since the start, when
        that is shorter): 0 once the logs have been quiet that long, whatever came before."""
        with self._lock:
            now = self._clock()
            self._forget_arrivals(now)
            lines = sum(n for _, n in self._arrivals)
        return lines / max(min(RATE_WINDOW, now - self._started), TICK)

    def _forget_arrivals(self, now: float) -> None:
        while self._arrivals and self._arrivals[0][0] <= now - RATE_WINDOW:
            self._arrivals.popleft()
