"""Runs analyses of uploaded bundles: small ones while the client waits, large ones on worker
threads with their progress in the status. The pipeline is the CLI's (`analyze`, with the same
safe extraction through `open_bundle`); only the events are kept on the way, for the timeline."""

from __future__ import annotations

import logging
import tarfile
import threading
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from correlator.analysis import Options, analyze
from correlator.api.analysis_db import Store
from correlator.api.settings import Settings
from correlator.engine.rules import Rule
from correlator.errors import CorrelatorError
from correlator.formats.registry import Registry
from correlator.model import Event
from correlator.sources.bundle import is_archive

log = logging.getLogger("correlator.api")

#: Seconds between progress writes: often enough for a progress bar, rare enough to cost nothing.
PROGRESS_EVERY = 0.5


class Cancelled(Exception):
    """The analysis was deleted while it ran."""


def expected_bytes(path: Path) -> int:
    """What the analysis will read, for progress: the members' sizes of an archive (its index,
    read without extracting for zip; tar has to be walked), else the file's size."""
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                return sum(i.file_size for i in archive.infolist() if not i.is_dir())
        if is_archive(path):
            with tarfile.open(path, "r:*") as archive:
                return sum(m.size for m in archive if m.isfile())
        return path.stat().st_size
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError):
        return max(1, path.stat().st_size if path.exists() else 1)


class Analyser:
    def __init__(self, settings: Settings, store: Store, registry: Registry, rules: Sequence[Rule]) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.rules = list(rules)
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="correlator-analysis")
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self._futures: dict[str, Future[None]] = {}

    def options(self) -> Options:
        return Options(zones=list(self.settings.zones), formats_dirs=list(self.settings.formats_dirs),
                       rules_dirs=list(self.settings.rules_dirs))

    def submit(self, analysis_id: str) -> Future[None]:
        future = self._pool.submit(self.run, analysis_id)
        with self._lock:
            self._futures[analysis_id] = future
        future.add_done_callback(lambda _: self._forget(analysis_id))
        return future

    def _forget(self, analysis_id: str) -> None:
        with self._lock:
            self._futures.pop(analysis_id, None)

    def cancel(self, analysis_id: str) -> None:
        with self._lock:
            self._cancelled.add(analysis_id)
            future = self._futures.get(analysis_id)
        if future is not None:
            future.cancel()

    def shutdown(self) -> None:
        """Stop taking work; what is queued or running stays 'queued'/'running' on disk and is
        analysed again at the next start."""
        with self._lock:
            self._cancelled.update(self._futures)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def purge(self) -> None:
        """Delete the finished analyses beyond the kept count or age (after each analysis, and at
        start-up, so the limits hold without a timer)."""
        for old in self.store.expired(self.settings.max_analyses, self.settings.max_age_days):
            self.store.delete(old)

    def run(self, analysis_id: str) -> None:
        try:
            self._run(analysis_id)
        finally:
            with self._lock:
                self._cancelled.discard(analysis_id)
        self.purge()

    def _run(self, analysis_id: str) -> None:
        row = self.store.get(analysis_id)
        if row is None or row.upload is None:
            return
        upload = Path(row.upload)
        writer = self.store.writer(row.num)
        writer.discard()  # a run cut short by a restart left part of a timeline
        self.store.update(analysis_id, status="running", phase="extracting", progress=0.0, events=0)
        total = expected_bytes(upload)
        done: dict[str, int] = {}
        last_write = time.monotonic()

        def on_events(events: list[Event]) -> None:
            nonlocal last_write
            if analysis_id in self._cancelled:
                raise Cancelled
            writer.add(events)
            for event in events:
                if event.offset >= 0:
                    end = event.offset + len(event.raw) + 1
                    if end > done.get(event.file, 0):
                        done[event.file] = end
            now = time.monotonic()
            if now - last_write >= PROGRESS_EVERY:
                last_write = now
                share = min(0.99, sum(done.values()) / total) if total else 0.0
                self.store.update(analysis_id, phase="analysing", progress=round(share, 3), events=writer.count)

        try:
            # every line: the stored timeline pages through all of them
            result = analyze([upload], self.options(), registry=self.registry, rules=self.rules,
                             on_events=on_events, every_line=True, names={upload: upload.name})
            if analysis_id in self._cancelled:
                raise Cancelled
            self.store.update(analysis_id, phase="storing", progress=0.99, events=writer.count)
            writer.finish()
            report = result.to_dict()
            self.store.save_findings(row.num, report["findings"])
            self.store.update(analysis_id, status="done", phase="done", progress=1.0, events=writer.count,
                              report={k: v for k, v in report.items() if k != "findings"}, upload=None)
            upload_dir = upload.parent
            for leftover in upload_dir.iterdir():
                leftover.unlink()
            upload_dir.rmdir()
        except Cancelled:
            self.store.drop_events(row.num)
            return
        except CorrelatorError as exc:
            writer.discard()
            self.store.update(analysis_id, status="failed", phase="failed", message=str(exc))
        except Exception as exc:  # a bug must fail one analysis, not the server
            log.exception("analysis %s failed", analysis_id)
            writer.discard()
            self.store.update(analysis_id, status="failed", phase="failed",
                              message=f"internal error while analysing ({type(exc).__name__}); see the server log")
