"""Where the screen's data comes from: a small protocol and its three implementations.

The app never reads files or runs the engine itself; it is handed an `EventSource` (the posting
style: the factory takes injected data, so tests build the app over fixture events without a
file or a thread). Every source fills an EventStore from its own thread and calls the `changed`
callback it was started with; the app collapses those calls into at most one pending refresh, so a
flood of lines costs the screen one repaint, not thousands.

- `LiveEventSource`: `correlator watch`, over LiveAnalysis (tailers and the incremental engine);
  with the fast reader, what the files hold at the start is read as `tui BUNDLE` reads a bundle
  (routine lines kept as places, merged into the timeline once that read is over).
- `BundleEventSource`: `correlator tui BUNDLE`, the batch pipeline of `analyze()` run on a worker
  thread, keeping every event's (file, offset) for the timeline, and with the fast reader the
  routine lines' places (correlator.tui.routine_rows): the findings so far show while it reads.
- `StaticEventSource`: a finished Analysis plus its events, given (tests, fixtures).

No textual import here (the core-never-imports-textual test covers correlator.tui.sources too).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from correlator.analysis import Options, Progress, analyze
from correlator.cancel import Cancelled, CancelToken
from correlator.errors import CorrelatorError
from correlator.formats.scan import keeps_lines, scan_engine
from correlator.model import Event, severity_rank
from correlator.report_model import Analysis, Finding, SourceReport
from correlator.sources.bundle import Bundle, open_bundle
from correlator.tui.event_store import COMPRESSED_MAGIC, EventStore
from correlator.tui.histogram import CountFeed, SecondCounts, StoreCounts

if TYPE_CHECKING:
    from correlator.analysis import RoutineBlock
    from correlator.sources.early import EarlyReads
    from correlator.tui.routine_rows import LiveRows, RoutineRows

Changed = Callable[[], None]


@dataclass(frozen=True)
class SourceStatus:
    """One followed log as the status bar shows it."""

    name: str
    path: str
    format: str
    zone: str
    lines: int
    unparsed: int
    offset: float = 0.0
    offset_how: str = ""


class EventSource(Protocol):
    """What the app needs from its data. `findings()` returns copies the app may keep (the
    engine goes on mutating its own)."""

    live: bool
    store: EventStore
    errors: list[str]

    def start(self, changed: Changed) -> None: ...

    def stop(self) -> None: ...

    def findings(self) -> list[Finding]: ...

    def source_info(self) -> list[SourceStatus]: ...

    def lines_per_second(self) -> float: ...

    def counts(self) -> list[CountFeed]:
        """What the time histogram counts: the store's rows, and lines counted but not (yet) rows."""
        ...

    def status(self) -> str:
        """'live', 'reading 40%', 'done': what the status bar says about the input."""
        ...


def snapshot(finding: Finding) -> Finding:
    """A copy the screen can read while the engine updates the original on another thread."""
    return dataclasses.replace(
        finding, clients=set(finding.clients), users=set(finding.users), hosts=set(finding.hosts),
        evidence=list(finding.evidence), facts=list(finding.facts), sides=set(finding.sides),
        alternatives=list(finding.alternatives), remediation=list(finding.remediation),
        context=dict(finding.context), connections=set(finding.connections))


def _key(finding: Finding) -> str:
    return f"{finding.id}|{finding.group}"


def _infos(reports: Sequence[SourceReport]) -> list[SourceStatus]:
    return [SourceStatus(r.info.source, r.info.path, r.info.format, r.info.zone, r.info.lines_read,
                       r.info.unparsed, r.offset, r.offset_how) for r in reports]


class StaticEventSource:
    """A finished analysis and its events, known up front: tests and fixtures."""

    live = False

    def __init__(self, analysis: Analysis, events: Iterable[Event]) -> None:
        self.analysis = analysis
        self.store = EventStore()
        self.store.extend(events)
        self.errors = list(analysis.errors)

    def start(self, changed: Changed) -> None:
        changed()

    def stop(self) -> None:
        self.store.close()

    def findings(self) -> list[Finding]:
        return [snapshot(f) for f in self.analysis.findings]

    def source_info(self) -> list[SourceStatus]:
        return _infos(self.analysis.sources)

    def lines_per_second(self) -> float:
        return 0.0

    def counts(self) -> list[CountFeed]:
        return [StoreCounts(self.store)]

    def status(self) -> str:
        return "done"


class BundleEventSource:
    """`analyze()` run on a worker thread, every timeline event also kept in the store (through
    its `on_events` hook), so the TUI shows exactly the findings, zones and clock corrections of
    `correlator analyze`.

    With the fast reader (`scan.keeps_lines()`), analyze() reads as the batch does, routine
    traffic counted rather than parsed, and says where those lines are (`on_routine`): they join
    the timeline when the read is over, so a two-million-line bundle is read at the batch's speed
    and its findings show as they are found (`on_findings`), not after it. A compressed log's
    lines cannot be read back from its file, so a bundle holding one is read line by line.

    The timeline reads lines back from their files long after the analysis, so the bundle is
    opened here (archives extracted once), handed to analyze(), and kept open until `stop()`.
    Leaving early cancels the analysis through its token.
    """

    live = False

    def __init__(self, inputs: Sequence[str | Path], options: Options | None = None, *,
                 early: EarlyReads | None = None) -> None:
        """`early`: the scans of the big logs started ahead (correlator/sources/early.py, entered),
        ended here once the read is over (`end_early`)."""
        self.inputs = list(inputs)
        self._early = early
        self._early_lock = threading.Lock()
        self.options = options or Options()
        self.store = EventStore()
        self.errors: list[str] = []
        self.analysis: Analysis | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._bundle: Bundle | None = None
        self._changed: Changed = lambda: None
        self._last_signal = 0.0
        self._cancel = CancelToken()
        self._state = "starting"
        self._progress: Progress | None = None
        self._so_far: list[Finding] = []
        self.routine: RoutineRows | None = None
        """The routine lines' places while a fast read goes on (None: every line is an event)."""

    def start(self, changed: Changed) -> None:
        self._changed = changed
        self._thread = threading.Thread(target=self._run, name="correlator-tui-read", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _run(self) -> None:
        try:
            self._bundle = open_bundle(self.inputs)
            for path in self._bundle.logs:
                self.store.real_paths[self._bundle.name(path)] = path
            self._state = "reading"
            fast = keeps_lines() and not any(compressed(path) for path in self._bundle.logs)
            if fast:
                from correlator.tui.routine_rows import RoutineRows

                self.routine = RoutineRows(self.options.since, self.options.until)
            self.analysis = analyze(self._bundle, self.options, on_events=self._take, every_line=not fast,
                                    on_progress=self._on_progress, cancel=self._cancel,
                                    on_findings=self._take_findings,
                                    on_routine=self.routine.add if self.routine is not None else None)
            if self.routine is not None:
                from correlator.tui.routine_rows import merge

                self._state = "merging"
                self._changed()
                self.store.pending = merge(self.store, self.routine)
            self.errors[:0] = self.analysis.errors
        except Cancelled:
            pass
        except CorrelatorError as exc:
            self.errors.append(str(exc))
        finally:
            self.end_early()
            self._state = "done"
            self._done.set()
            if self._cancel.cancelled and self._bundle is not None:
                self._bundle.close()
            else:
                self._changed()

    def end_early(self) -> None:
        """Stop the scans started ahead (once; also when the read never ran): they are of no use
        after the read, and the switch interval they lowered is restored."""
        with self._early_lock:
            early, self._early = self._early, None
        if early is not None:
            early.__exit__(None, None, None)

    def _on_progress(self, progress: Progress) -> None:
        self._progress = progress
        self._changed()

    def _take_findings(self, findings: list[Finding]) -> None:
        self._so_far = findings  # analyze() made them for us: copies nobody else changes
        self._changed()

    def _take(self, events: list[Event]) -> None:
        self.store.extend(events)
        now = time.monotonic()
        if now - self._last_signal > 0.05:
            self._last_signal = now
            self._changed()

    def stop(self) -> None:
        # a read still running stops at its next block; its thread removes the extracted files
        # when it ends
        self._cancel.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5 if self._done.is_set() else 0.2)
        if self._bundle is not None and self._done.is_set():
            self._bundle.close()
        self.store.close()

    def findings(self) -> list[Finding]:
        if self.analysis is None:
            return [snapshot(f) for f in self._so_far]
        return [snapshot(f) for f in self.analysis.findings]

    def source_info(self) -> list[SourceStatus]:
        return _infos(self.analysis.sources) if self.analysis is not None else []

    def lines_per_second(self) -> float:
        return 0.0

    def counts(self) -> list[CountFeed]:
        feeds: list[CountFeed] = [StoreCounts(self.store)]
        if self.routine is not None and not self.store.generation:
            # counted by the fast reader, not yet rows: the screen has not swapped them in
            feeds.append(SecondCounts(self.routine.seconds()))
        return feeds

    def status(self) -> str:
        if self._state == "merging":
            return f"placing {self.routine.lines if self.routine is not None else 0:,} routine lines"
        if self._state == "reading":
            progress = self._progress
            if progress is None or not progress.total:
                return f"reading {len(self.store):,} events"
            return f"reading {progress.share:.0%}, {len(self.store):,} events"
        return self._state


class LiveEventSource:
    """Files and folders followed by LiveAnalysis. Its update callback (on the engine's thread)
    appends the new events to the store and keeps copies of the changed findings; the screen is
    only told that something changed.

    The stitch window defaults to 0.05 s (as the HTTP API's live mode) rather than LiveAnalysis's
    0.3 s: a live connection's broker and client lines arrive within milliseconds of each other,
    and the window is most of the time from a line to its finding on screen (benchmarks/tui.py).

    With the fast reader (`scan.keeps_lines()`), the files' existing content is read by
    `analyze`'s two-tier reader (LiveAnalysis `bulk`): routine lines are kept as places
    (correlator.tui.routine_rows) and merged among the events once it is read, as BundleEventSource
    merges them. The lines appended later are classified alike (LiveAnalysis with
    `every_line=False`): their routine ones are counted, never parsed, and join the timeline as
    rows among the live events (`routine_rows.LiveRows`); without the fast reader every line is
    an event (`routine_rows=False` asks for that too: benchmarks compare the two).

    Pausing is the screen's business (it stops moving so a human can read); the engine is never
    paused, because LiveAnalysis drops the updates it does not publish and the timeline would get
    a hole."""

    live = True

    def __init__(self, paths: Sequence[str | Path], options: Options | None = None, *,
                 stitch_window: float = 0.05, polling: bool = False, from_beginning: bool = True,
                 pattern: str = "*.log", routine_rows: bool | None = None) -> None:
        from correlator.live_analysis import TICK, LiveAnalysis
        from correlator.timeline.pipeline import WATERMARK_DELAY

        self.store = EventStore()
        self.errors: list[str] = []
        self.options = options or Options()
        self._findings: dict[str, Finding] = {}
        self._lock = threading.Lock()
        self._changed: Changed | None = None
        self.roots = [Path(p) for p in paths]
        """What the user named: evidence paths are shown relative to these."""
        self.routine: RoutineRows | None = None
        """The routine lines' places while the existing content is read (None: every line an event)."""
        self._merging = False
        self.live_rows: LiveRows | None = None
        """The routine rows of appended lines on their way into the store (None: those lines are events)."""
        if routine_rows is None:
            routine_rows = keeps_lines() and scan_engine() != "off"
        bulk = from_beginning and routine_rows
        if routine_rows:
            from correlator.tui.routine_rows import LiveRows, RoutineRows

            # as long as the timeline waits for a quiet log's lines (those not read yet)
            self.live_rows = LiveRows(self.store, hold=WATERMARK_DELAY + TICK)
            if bulk:
                self.routine = RoutineRows()
        self.analysis = LiveAnalysis(paths, self.options, on_update=self._on_update, on_error=self._on_error,
                                     stitch_window=stitch_window, polling=polling, from_beginning=from_beginning,
                                     pattern=pattern, bulk=bulk, every_line=not routine_rows,
                                     on_routine_block=self._routine_block if routine_rows else None,
                                     on_caught_up=self._caught_up if self.routine is not None else None,
                                     on_tick=self._release if self.live_rows is not None else None,
                                     read_back=True)
        # a followed log's rows are read back from the file that holds them, through rotations
        self.store.locate = self._locate
        self.store.rotated = self._rotated

    def _locate(self, file: str, offset: int) -> tuple[int, int] | None:
        read_back = self.analysis.read_back.get(file)
        return None if read_back is None else read_back.find(offset)

    def _rotated(self, file: str) -> bool:
        read_back = self.analysis.read_back.get(file)
        return read_back is not None and read_back.rotated

    def _release(self) -> None:
        """Each clock tick (under LiveAnalysis's lock): the routine rows no held event precedes."""
        assert self.live_rows is not None
        if self.live_rows.waiting:  # (what the timeline holds is looked through only then)
            self.live_rows.release(self.analysis.held_from())

    def _routine_block(self, block: RoutineBlock) -> None:
        """Where routine lines are (on LiveAnalysis's thread): those of what the files held at the
        start (and of lines appended while that was read) are merged in once it is read; those of
        lines appended later go in among the live events."""
        if self.routine is not None and not self.analysis.caught_up:
            self.routine.add(block)
        elif self.live_rows is not None:
            self.live_rows.add(block)

    def _caught_up(self) -> None:
        """The existing content is read (on LiveAnalysis's thread, no update running): its routine
        lines join the timeline, swapped in by the screen (`EventStore.renumber`)."""
        from correlator.tui.routine_rows import merge

        assert self.routine is not None
        self._merging = True
        try:
            if self.live_rows is not None:
                # the timeline still holds the read's last events (the stitcher waits for their
                # connections): the routine rows of their time go in among them as they come out
                for part in self.routine.take_from(self.analysis.held_from()):
                    self.live_rows.add_part(part)
            self.store.pending = merge(self.store, self.routine)
        finally:
            self._merging = False
        if self._changed is not None:
            self._changed()

    def _on_update(self, update: object) -> None:
        from correlator.live_analysis import LiveUpdate

        assert isinstance(update, LiveUpdate)
        if update.events:
            if self.live_rows is not None:
                self.live_rows.place(update.events)
            else:
                self.store.extend(update.events)
        if update.findings:
            floor = severity_rank(self.options.min_severity)
            with self._lock:
                for finding in update.findings:
                    if severity_rank(finding.severity) >= floor:
                        self._findings[_key(finding)] = snapshot(finding)
        if self._changed is not None:
            self._changed()

    def _on_error(self, error: CorrelatorError) -> None:
        self.errors.append(str(error))
        if self._changed is not None:
            self._changed()

    def start(self, changed: Changed) -> None:
        self._changed = changed
        self.analysis.start()

    def stop(self) -> None:
        self.analysis.stop()
        if self.live_rows is not None:
            with self.analysis._lock:  # the follow is over: what waits for its place goes in
                self.live_rows.release(everything=True)
        self.store.close()

    def findings(self) -> list[Finding]:
        with self._lock:
            return list(self._findings.values())

    def source_info(self) -> list[SourceStatus]:
        out = []
        for state in list(self.analysis.sources.values()):
            if state.source:
                out.append(SourceStatus(state.source, state.path, state.format, state.zone, state.lines,
                                      state.unparsed))
        return out

    def lines_per_second(self) -> float:
        return self.analysis.lines_per_second()

    def counts(self) -> list[CountFeed]:
        feeds: list[CountFeed] = [StoreCounts(self.store)]
        if self.routine is not None and not self.store.generation:
            # counted by the fast reader, not yet rows: the screen has not swapped them in
            feeds.append(SecondCounts(self.routine.seconds()))
        if self.live_rows is not None and self.live_rows.waiting:
            # appended routine lines waiting for their place among the events still held
            feeds.append(SecondCounts(self.live_rows.seconds()))
        return feeds

    def status(self) -> str:
        if self._merging:
            return f"placing {self.routine.lines if self.routine is not None else 0:,} routine lines"
        return "live"


def compressed(path: Path) -> bool:
    """Whether a log is compressed: its lines cannot be read back at their offsets."""
    try:
        with path.open("rb") as handle:
            head = handle.read(6)
    except OSError:
        return False
    return any(head.startswith(magic) for magic in COMPRESSED_MAGIC)


def analyse_with_events(inputs: Sequence[str | Path], options: Options | None = None) -> StaticEventSource:
    """A finished bundle as a StaticEventSource, read to the end before returning (tests, and
    callers that want the whole answer before the first screen)."""
    source = BundleEventSource(inputs, options)
    source.start(lambda: None)
    source.wait()
    if source.analysis is None:
        raise CorrelatorError("; ".join(source.errors) or "analysis failed")
    source.store.renumber()  # no screen to do it: the routine lines join now
    static = StaticEventSource.__new__(StaticEventSource)
    static.analysis = source.analysis
    static.store = source.store
    static.errors = list(source.errors)
    return static


__all__ = ["BundleEventSource", "EventSource", "LiveEventSource", "SourceStatus", "StaticEventSource",
           "analyse_with_events", "snapshot"]
