"""Where the screen's data comes from: a small protocol and its three implementations.

The app never reads files or runs the engine itself; it is handed an `EventSource` (the posting
style: the factory takes injected data, so tests build the app over fixture events without a
file or a thread). Every source fills an EventStore from its own thread and calls the `changed`
callback it was started with; the app collapses those calls into at most one pending refresh, so a
flood of lines costs the screen one repaint, not thousands.

- `LiveEventSource`: `correlator watch`, over LiveAnalysis (tailers and the incremental engine).
- `BundleEventSource`: `correlator tui BUNDLE`, the batch pipeline of `analyze()` run on a worker
  thread, keeping every event's (file, offset) for the timeline.
- `StaticEventSource`: a finished Analysis plus its events, given (tests, fixtures).

No textual import here (the core-never-imports-textual test covers correlator.tui.sources too).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Protocol

from correlator.analysis import Analysis, Options, Session, SourceReport, _events, open_logs
from correlator.errors import CorrelatorError, InputError
from correlator.model import Event, Finding, severity_rank
from correlator.sources.files import LogFile
from correlator.sources.lines import Line
from correlator.tui.store import EventStore

Changed = Callable[[], None]


@dataclass(frozen=True)
class SourceInfo:
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

    def source_info(self) -> list[SourceInfo]: ...

    def lines_per_second(self) -> float: ...

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


def _infos(reports: Sequence[SourceReport]) -> list[SourceInfo]:
    return [SourceInfo(r.info.source, r.info.path, r.info.format, r.info.zone, r.info.lines_read,
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

    def source_info(self) -> list[SourceInfo]:
        return _infos(self.analysis.sources)

    def lines_per_second(self) -> float:
        return 0.0

    def status(self) -> str:
        return "done"


class BundleEventSource:
    """`analyze()`'s batch pipeline on a worker thread, with every event also kept in the store.

    analyze() returns findings, not events; rather than reading the bundle twice this runs the
    same stages (open_logs, the merged event stream, the stitcher, a Session) and feeds each
    stitched chunk to both the engine and the store. The bundle stays open (archives stay
    extracted) until `stop()`, so the timeline can read lines back from their files.
    """

    live = False

    def __init__(self, inputs: Sequence[str | Path], options: Options | None = None) -> None:
        self.inputs = list(inputs)
        self.options = options or Options()
        self.store = EventStore()
        self.errors: list[str] = []
        self.analysis: Analysis | None = None
        self._reports: list[SourceReport] = []
        self._done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bundle: object | None = None
        self._partial: list[Finding] = []
        self._state = "starting"

    def start(self, changed: Changed) -> None:
        self._thread = threading.Thread(target=self._run, args=(changed,), name="correlator-tui-read", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _run(self, changed: Changed) -> None:
        try:
            self._analyse(changed)
        except CorrelatorError as exc:
            self.errors.append(str(exc))
        finally:
            self._state = "done"
            self._done.set()
            changed()

    def _analyse(self, changed: Changed) -> None:
        from correlator.engine.facts import Artifacts
        from correlator.engine.rules import load_rules
        from correlator.formats.registry import default_registry, load_registry
        from correlator.sources.bundle import open_bundle
        from correlator.timeline.connections import Stitcher

        options = self.options
        # loading formats and rules takes half a second: here, not before the first frame
        registry = load_registry(options.formats_dirs) if options.formats_dirs else default_registry()
        rules, _ = load_rules(list(options.rules_dirs))
        bundle = open_bundle(self.inputs)
        self._bundle = bundle
        self.errors.extend(str(e) for e in bundle.errors)
        artifacts = Artifacts.from_bundle(bundle)
        artifacts.now = options.now
        self.errors.extend(str(e) for e in artifacts.errors)
        session = Session(rules, artifacts)
        logs = open_logs(bundle, registry, options, self.errors)
        for log in logs:
            self.store.real_paths[log.info.path] = log.path
            _small_chunks(log)
        self._reports = [SourceReport(log.info, log.zone_how) for log in logs]
        self._state = "reading"
        stitcher = Stitcher()
        connections = 0
        last_signal = last_findings = time.monotonic()

        def keep(events: list[Event]) -> list[Event]:
            return [e for e in events if (options.since is None or e.ts >= options.since)
                    and (options.until is None or e.ts <= options.until)]

        count = 0
        for chunk in _events(logs, self.errors):
            if self._stop.is_set():
                return
            stitched: list[Event] = []
            for event in chunk:
                stitched.extend(stitcher.push(event))
            closed = stitcher.pop_closed()
            connections += len(closed)
            session.note_connections(closed)
            selected = keep(stitched)
            count += len(selected)
            session.feed(selected)
            self.store.extend(selected)
            now = time.monotonic()
            if now - last_findings > 1.0:
                # findings so far, copied on this thread (the engine is not thread-safe), so a
                # long read shows its causes before it ends
                last_findings = now
                self._partial = [snapshot(f) for f in session.findings(options.min_severity)]
            if now - last_signal > 0.05:
                last_signal = now
                changed()
        tail = keep(stitcher.flush())
        closed = stitcher.pop_closed()
        connections += len(closed)
        session.note_connections(closed)
        count += len(tail)
        session.feed(tail)
        self.store.extend(tail)
        session.finish()
        if session.last is not None:
            session.tick(session.last + 86400)
        if not logs and not self.errors and artifacts.empty:
            raise InputError("nothing to analyse: no log, certificate or configuration file in the input")
        counts = {"certificates": len(artifacts.certs), "keys": len(artifacts.keys)}
        self.analysis = Analysis(findings=session.findings(options.min_severity), sources=self._reports,
                                 errors=self.errors, artifacts=counts, events=count, first_event=session.first,
                                 last_event=session.last, connections=connections, histogram=session.histogram)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        close = getattr(self._bundle, "close", None)
        if close is not None:
            close()
        self.store.close()

    def findings(self) -> list[Finding]:
        if self.analysis is None:
            return list(self._partial)
        return [snapshot(f) for f in self.analysis.findings]

    def source_info(self) -> list[SourceInfo]:
        return _infos(self._reports)

    def lines_per_second(self) -> float:
        return 0.0

    def status(self) -> str:
        if self._state == "reading":
            return f"reading {len(self.store):,} events"
        return self._state


def _small_chunks(log: LogFile, first: int = 100, size: int = 10_000) -> None:
    """Re-cut a log's line chunks (a megabyte each, ~15,000 lines) into smaller ones, the first
    very small, so the timeline shows its first rows after a few hundred parsed lines instead of
    a megabyte's worth (seconds on a big TLS-heavy log). Parsing is chunk-size independent: the
    batch reader already cuts at arbitrary line boundaries and the live tailer feeds any batch.

    LogFile has no option for this, so its two reading attributes are rewrapped here; if they
    ever change name the log is simply read in its own chunks."""
    head = getattr(log, "_first", None)
    rest = getattr(log, "_chunks", None)
    if not isinstance(head, list) or rest is None or len(head) <= first:
        return

    def recut(chunks: Iterator[list[Line]]) -> Iterator[list[Line]]:
        # growing pieces: the merger reads a source's next chunk before it hands out the
        # current one, so the second piece must be small too
        step = first
        for chunk in chunks:
            start = 0
            while start < len(chunk):
                yield chunk[start:start + step]
                start += step
                step = min(size, step * 2)

    log._first, tail = head[:first], head[first:]
    log._chunks = recut(chain([tail], rest))


class LiveEventSource:
    """Files and folders followed by LiveAnalysis. Its update callback (on the engine's thread)
    appends the new events to the store and keeps copies of the changed findings; the screen is
    only told that something changed.

    The stitch window defaults to 0.1 s rather than LiveAnalysis's 0.3 s: a live connection's
    broker and client lines arrive within milliseconds of each other, and the window is most of
    the time from a line to its finding on screen (benchmarks/tui.py).

    Pausing is the screen's business (it stops moving so a human can read); the engine is never
    paused, because LiveAnalysis drops the updates it does not publish and the timeline would get
    a hole."""

    live = True

    def __init__(self, paths: Sequence[str | Path], options: Options | None = None, *,
                 stitch_window: float = 0.1, polling: bool = False, from_beginning: bool = True,
                 pattern: str = "*.log") -> None:
        from correlator.live import LiveAnalysis

        self.store = EventStore()
        self.errors: list[str] = []
        self.options = options or Options()
        self._findings: dict[str, Finding] = {}
        self._lock = threading.Lock()
        self._changed: Changed | None = None
        self.roots = [Path(p) for p in paths]
        """What the user named: evidence paths are shown relative to these."""
        self.analysis = LiveAnalysis(paths, self.options, on_update=self._on_update, on_error=self._on_error,
                                     stitch_window=stitch_window, polling=polling, from_beginning=from_beginning,
                                     pattern=pattern)

    def _on_update(self, update: object) -> None:
        from correlator.live import LiveUpdate

        assert isinstance(update, LiveUpdate)
        if update.events:
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
        self.store.close()

    def findings(self) -> list[Finding]:
        with self._lock:
            return list(self._findings.values())

    def source_info(self) -> list[SourceInfo]:
        out = []
        for state in list(self.analysis.sources.values()):
            if state.source:
                out.append(SourceInfo(state.source, state.path, state.format, state.zone, state.lines,
                                      state.unparsed))
        return out

    def lines_per_second(self) -> float:
        return self.analysis.lines_per_second()

    def status(self) -> str:
        return "live"


def analyse_with_events(inputs: Sequence[str | Path], options: Options | None = None) -> StaticEventSource:
    """A finished bundle as a StaticEventSource, read to the end before returning (tests, and
    callers that want the whole answer before the first screen)."""
    source = BundleEventSource(inputs, options)
    source.start(lambda: None)
    source.wait()
    if source.analysis is None:
        raise CorrelatorError("; ".join(source.errors) or "analysis failed")
    static = StaticEventSource.__new__(StaticEventSource)
    static.analysis = source.analysis
    static.store = source.store
    static.errors = list(source.errors)
    return static


__all__ = ["BundleEventSource", "EventSource", "LiveEventSource", "SourceInfo", "StaticEventSource",
           "analyse_with_events", "snapshot"]
