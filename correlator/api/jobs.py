"""Runs analyses of uploaded bundles: small ones while the client waits, large ones on worker
threads with their progress in the status. The pipeline is the CLI's (`analyze`, with the same
safe extraction through `open_bundle`); only the events are kept on the way, for the timeline."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from correlator.analysis import Options, Progress, analyze
from correlator.api.analysis_db import Store
from correlator.api.settings import Settings
from correlator.cancel import Cancelled, CancelToken
from correlator.engine.rules import Rule
from correlator.errors import CorrelatorError
from correlator.formats.registry import Registry

log = logging.getLogger("correlator.api")


class Analyser:
    def __init__(self, settings: Settings, store: Store, registry: Registry, rules: Sequence[Rule]) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.rules = list(rules)
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="correlator-analysis")
        self._tokens: dict[str, CancelToken] = {}
        """Per analysis queued or running: DELETE and shutdown cancel through it."""
        self._lock = threading.Lock()
        self._futures: dict[str, Future[None]] = {}

    def options(self) -> Options:
        return self.settings.analysis_options()

    def submit(self, analysis_id: str) -> Future[None]:
        future = self._pool.submit(self.run, analysis_id)
        with self._lock:
            self._tokens.setdefault(analysis_id, CancelToken())
            self._futures[analysis_id] = future
        future.add_done_callback(lambda _: self._forget(analysis_id))
        return future

    def _forget(self, analysis_id: str) -> None:
        with self._lock:
            self._futures.pop(analysis_id, None)
            self._tokens.pop(analysis_id, None)  # a job cancelled while queued never ran

    def cancel(self, analysis_id: str) -> None:
        with self._lock:
            token = self._tokens.get(analysis_id)
            future = self._futures.get(analysis_id)
        if token is not None:
            token.cancel()
        if future is not None:
            future.cancel()

    def shutdown(self) -> None:
        """Stop taking work; what is queued or running stays 'queued'/'running' on disk and is
        analysed again at the next start."""
        with self._lock:
            for token in self._tokens.values():
                token.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def purge(self) -> None:
        """Delete the finished analyses beyond the kept count or age (after each analysis, and at
        start-up, so the limits hold without a timer)."""
        for old in self.store.expired(self.settings.max_analyses, self.settings.max_age_days):
            self.store.delete(old)

    def run(self, analysis_id: str) -> None:
        with self._lock:
            token = self._tokens.setdefault(analysis_id, CancelToken())
        try:
            self._run(analysis_id, token)
        finally:
            with self._lock:
                self._tokens.pop(analysis_id, None)
        self.purge()

    def _run(self, analysis_id: str, token: CancelToken) -> None:
        row = self.store.get(analysis_id)
        if row is None or row.upload is None:
            return
        upload = Path(row.upload)
        writer = self.store.writer(row.num)
        writer.discard()  # a run cut short by a restart left part of a timeline
        self.store.update(analysis_id, status="running", phase="extracting", progress=0.0, events=0)

        def on_progress(progress: Progress) -> None:
            # 0.99 at most: storing the findings is still to come
            self.store.update(analysis_id, phase="analysing", progress=round(min(0.99, progress.share), 3),
                              events=writer.count)

        try:
            # every line: the stored timeline pages through all of them
            result = analyze([upload], self.options(), registry=self.registry, rules=self.rules,
                             on_events=writer.add, every_line=True, on_progress=on_progress, cancel=token,
                             names={upload: upload.name})
            token.check()  # deleted while the report was being made
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
