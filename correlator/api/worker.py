"""One analysis of an uploaded bundle, run in a process of its own (see jobs.py for why).

The process opens the store itself (the same URL as the server's, correlator/api/storage.py)
and writes what the parent's threads used to: the timeline as it is read, the progress, and at
the end the findings, the report and the final status in one transaction. The parent only starts
it, watches its time and memory, and kills it when the analysis is deleted or over budget; a kill
at any point is safe (SQLite's write-ahead log, or PostgreSQL, rolls the open transaction back),
and a second run of the same analysis replaces what the first one wrote.

The server preloads this module in the fork server (`multiprocessing.set_forkserver_preload`),
with the built-in formats and rules loaded: a child forks from there with them in memory, so a
small upload pays a fork, not the seconds the formats take to compile.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

from correlator.analysis import Options, Progress, analyze
from correlator.api.private import open_private, private_dir
from correlator.api.routine_lines import RoutinePlaces
from correlator.api.storage import POOL_TIMEOUT, StaleRun, Store, TimelineWriter, open_store
from correlator.engine.rules import Rule, load_rules
from correlator.errors import CorrelatorError
from correlator.formats.registry import Registry, default_registry, load_registry
from correlator.formats.scan import keeps_lines
from correlator.model import Event
from correlator.report_model import Analysis
from correlator.reports.files import FORMATS, render_file
from correlator.sources.bundle import open_bundle
from correlator.tui.sources import compressed

#: The folder of an analysis's upload folder that keeps the logs its routine lines are read from.
KEPT = "text"
#: Seconds between progress writes: often enough for a progress bar, rare enough to cost nothing.
PROGRESS_EVERY = 0.5

_DEFAULT_RULES: list[Rule] | None = None


@dataclass(frozen=True)
class JobSpec:
    """What a child needs to know (plain values: it crosses a process boundary)."""

    state_dir: Path
    database: str | None = None
    """The store's URL (None: SQLite in state_dir)."""
    pool_timeout: float = POOL_TIMEOUT
    owner: int | None = None
    """The pid of the process whose scheduler runs the job: the job stops when it is gone."""
    zones: tuple[str, ...] = ()
    formats_dirs: tuple[str, ...] = ()
    rules_dirs: tuple[str, ...] = ()

    def options(self) -> Options:
        return Options(zones=list(self.zones), formats_dirs=list(self.formats_dirs), rules_dirs=list(self.rules_dirs))


def warm() -> None:
    """Load the built-in formats and rules once (in the fork server, before any child forks)."""
    global _DEFAULT_RULES
    default_registry()
    if _DEFAULT_RULES is None:
        _DEFAULT_RULES, _ = load_rules([])


def _registry_and_rules(spec: JobSpec) -> tuple[Registry, list[Rule]]:
    registry = load_registry(list(spec.formats_dirs)) if spec.formats_dirs else default_registry()
    if spec.rules_dirs:
        rules, _ = load_rules(list(spec.rules_dirs))
        return registry, list(rules)
    warm()
    assert _DEFAULT_RULES is not None
    return registry, _DEFAULT_RULES


class _Orphaned(Exception):
    """The server that started this process is gone: a restarted one analyses the upload again."""


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, killed and not yet reaped, does not). The fork server
    outlives a killed server or fleet worker at times, so the child's parent alone cannot say
    that its owner died, and a second run of the job (a restart, a redelivery) must not meet
    this one still writing."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def run(spec: JobSpec, analysis_id: str, upload: Path | None = None, fence: int | None = None,
        niceness: int = 0) -> None:
    """The child's entry point; `upload` and `fence` as for run_analysis; `niceness` lowers the
    process's CPU priority (the large lane's, so small analyses go first on a busy machine)."""
    if niceness:
        os.nice(niceness)
    store = open_store(spec.database, spec.state_dir, pool_timeout=spec.pool_timeout)
    try:
        registry, rules = _registry_and_rules(spec)
        run_analysis(store, spec.options(), registry, rules, analysis_id, upload, owner=spec.owner, fence=fence)
    finally:
        store.close()


def run_analysis(store: Store, options: Options, registry: Registry, rules: list[Rule], analysis_id: str,
                 upload: Path | None = None, *, owner: int | None = None, fence: int | None = None) -> None:
    """Analyse the row's upload, or `upload` (a fleet worker's copy of the bundle: the row then
    has none), and write the results keyed by the analysis: a second run replaces the first's.
    `fence`: a fleet worker's run token (Store.fence_run); once another run holds the analysis,
    the store refuses this run's writes (StaleRun) and the run ends, leaving the other's result."""
    row = store.get(analysis_id)
    if row is None or (upload is None and row.upload is None):
        return
    local = upload is None  # the store's own upload folder: its logs can be kept for the timeline
    upload = upload or Path(str(row.upload))
    writer = store.writer(row.num, fence)
    try:
        writer.discard()  # a run cut short by a restart left part of a timeline
        store.update(analysis_id, status="running", phase="extracting", progress=0.0, events=0, fence=fence)
    except StaleRun:
        return
    kept_dir = upload.parent / KEPT
    if local:
        shutil.rmtree(kept_dir, ignore_errors=True)
    parent = os.getppid()
    places: RoutinePlaces | None = None

    def on_events(events: list[Event]) -> None:
        if os.getppid() != parent or (owner is not None and not _alive(owner)):
            raise _Orphaned
        writer.add(events)
        if places is not None:
            places.on_events(events)

    def on_progress(progress: Progress) -> None:
        if owner is not None and not _alive(owner):
            raise _Orphaned
        # 0.99 at most: storing the findings is still to come
        store.update(analysis_id, phase="analysing", progress=round(min(0.99, progress.share), 3),
                     events=writer.count, fence=fence)

    try:
        # the upload is named as the client named it, so no server path reaches a finding, an
        # error or a report
        with open_bundle([upload], {upload: upload.name}) as bundle:
            real = {bundle.name(path): path for path in bundle.logs}
            if local and keeps_lines() and not any(compressed(path) for path in bundle.logs):
                # routine lines are kept as places in their logs, not as events (routine_lines.py)
                places = RoutinePlaces(lambda name: f"{upload.parent.name}/{KEPT}/{list(real).index(name)}"
                                       if name in real else None)
            result = analyze(bundle, options, registry=registry, rules=rules, on_events=on_events,
                             on_progress=on_progress, every_line=places is None,
                             on_routine=places.add if places is not None else None)
            store.update(analysis_id, phase="storing", progress=0.99, events=writer.count, fence=fence)
            writer.finish()
            routine = 0
            built = places.build({s.info.path: s.info.format for s in result.sources}) if places else None
            if built is not None:
                meta, data = built
                for file in meta["files"]:
                    _keep(real[file["name"]], store.uploads / file["path"])
                store.save_routine(row.num, meta, data, fence)
                routine = int(meta["lines"])
        _save(store, analysis_id, result, writer.count + routine, row.name, fence)
        upload_dir = upload.parent
        for leftover in upload_dir.iterdir():
            if leftover.name != KEPT:
                leftover.unlink()
        if not any(upload_dir.iterdir()):
            upload_dir.rmdir()
    except (_Orphaned, StaleRun):
        return
    except CorrelatorError as exc:
        _failed(store, writer, analysis_id, str(exc), fence)
    except Exception as exc:  # a bug must fail one analysis, not the server
        import logging

        logging.getLogger("correlator.api").exception("analysis %s failed", analysis_id)
        _failed(store, writer, analysis_id,
                f"internal error while analysing ({type(exc).__name__}); see the server log", fence)


def _keep(path: Path, target: Path) -> None:
    """Keep a log its routine lines are read back from: a link when it is on the same file system
    (the upload itself), else a copy (a file extracted from an archive to a temporary folder)."""
    private_dir(target.parent)
    try:
        os.link(path, target)
    except OSError:
        with path.open("rb") as source, open_private(target) as out:
            shutil.copyfileobj(source, out)


def _failed(store: Store, writer: TimelineWriter, analysis_id: str, message: str, fence: int | None) -> None:
    """The run failed: its part of a timeline goes, and the row says why (unless the run is stale)."""
    try:
        writer.discard()
        store.update(analysis_id, status="failed", phase="failed", message=message, fence=fence)
    except StaleRun:
        return


def _save(store: Store, analysis_id: str, result: Analysis, events: int, name: str, fence: int | None) -> None:
    """Findings, the report files (`analyze -o`'s, titled with the upload's name) and the status,
    in one transaction keyed by the analysis: a second run replaces the first one's."""
    report = result.to_dict()
    # redacted already: the bundle's lines are redacted as they are read (correlator.redaction)
    store.save_results(analysis_id, report["findings"], {fmt: render_file(result, fmt, name) for fmt in FORMATS},
                       status="done", phase="done", progress=1.0, events=events,
                       report={k: v for k, v in report.items() if k != "findings"}, upload=None, fence=fence)
