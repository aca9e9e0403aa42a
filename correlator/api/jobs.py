"""Runs analyses of uploaded bundles, each in a process of its own (correlator/api/worker.py).

Why processes, not threads: a process can be stopped at once (a `DELETE` or an exceeded budget
kills it; a thread can only be asked to stop, and a pathological input may not ask back for a
long time), its memory can be measured and bounded, and two analyses use two cores instead of
taking turns at one interpreter lock, which also keeps the HTTP loop of this process responsive
while a big analysis runs.

Two lanes with their own slots: `small` (bundles that read at most `background_bytes`, answered
finished to the waiting client) and `large` (`workers` slots, answered 202 with a queue position).
So a small upload never waits behind big ones, and big ones cannot take every core; the large
lane's processes also run at a lower CPU priority (LARGE_NICENESS), so a small analysis is not
slowed by a big one sharing its core.

One scheduler thread starts queued jobs in free slots and watches the running ones every
`TICK` seconds: their end, their time budget (`analysis_timeout`) and their memory budget
(`analysis_memory_mb`, the process's resident size). `on_finished` callbacks (metrics, webhooks)
run on that thread when a job ends.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Protocol

import psutil

from correlator.api.context import request_id
from correlator.api.lanes import Lane, lane_of
from correlator.api.settings import Settings
from correlator.api.storage import AnalysisRow, StaleRun, Store, StoreUnavailable
from correlator.api.worker import JobSpec, run

log = logging.getLogger("correlator.api")

#: Seconds between two looks at the running jobs: a DELETE or a budget stops a job within it.
TICK = 0.05
#: Seconds between two purges when no analysis ends to trigger one.
HOUSEKEEPING = 600.0
#: Seconds a killed process gets to be reaped before we move on.
REAP = 2.0
#: How much lower the large lane's analyses run in the OS's CPU priority (os.nice): a small upload's
#: analysis, waited for by its client, takes the CPU first when the cores are busy.
LARGE_NICENESS = 10

_context_lock = threading.Lock()
_context: ForkServerContext | SpawnContext | None = None


def process_context() -> ForkServerContext | SpawnContext:
    """The fork server where the platform has one (children fork from a clean process with the
    formats and rules loaded, see worker.py), else spawn."""
    global _context
    with _context_lock:
        if _context is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                server = multiprocessing.get_context("forkserver")
                server.set_forkserver_preload(["correlator.api.warm_worker"])
                _context = server
            else:
                _context = multiprocessing.get_context("spawn")
        return _context


def warm_up() -> None:
    """Start the fork server (with its preloaded modules) if the platform has one."""
    if isinstance(process_context(), ForkServerContext):
        from multiprocessing import forkserver

        forkserver.ensure_running()


@dataclass(eq=False)
class Job:
    id: str
    lane: Lane
    future: Future[None] = field(default_factory=Future)
    process: BaseProcess | None = None
    started: float = 0.0
    stop_reason: str | None = None
    """Why the scheduler stopped it (deleted, over a budget), or None."""
    request_id: str | None = field(default_factory=request_id.get)
    """The request that queued it: its lifecycle log lines carry that id."""
    upload: Path | None = None
    """The bundle to analyse when it is not the row's own upload (a fleet worker's fetched copy)."""
    fence: int | None = None
    """A fleet worker's run token (Store.fence_run): every write of the run carries it."""

    def log(self, message: str, *args: object, **fields: object) -> None:
        log.info(message, *args, extra={"request_id": self.request_id, "analysis_id": self.id, "lane": self.lane,
                                        **fields})


Listener = Callable[[AnalysisRow, float], None]


class JobRunner(Protocol):
    """What the routes, metrics and readiness ask of whoever runs analyses: `Analyser` here, in
    this server's own processes, or the fleet's `FleetQueue` (correlator/fleet/queue.py), which
    queues them for `correlator worker`s."""

    on_finished: list[Listener]

    def lane(self, upload: Path) -> Lane: ...
    def submit(self, analysis_id: str, lane: Lane) -> Future[None]: ...
    def future(self, analysis_id: str, lane: Lane | None = None) -> Future[None] | None: ...
    def position(self, analysis_id: str) -> int | None: ...
    def depth(self) -> dict[str, int]: ...
    def running(self) -> int: ...
    def redelivered(self) -> int | None: ...
    def accepting(self) -> bool: ...
    def cancel(self, analysis_id: str) -> None: ...
    def purge(self) -> None: ...
    def shutdown(self) -> None: ...


def purge(store: Store, settings: Settings) -> None:
    """Delete the finished analyses beyond the kept count or age, and the uploads of failed ones
    past `failed_upload_days`."""
    for old in store.expired(settings.max_analyses, settings.max_age_days):
        store.delete(old)
    for failed in store.stale_failed_uploads(settings.failed_upload_days):
        store.drop_upload(failed.id)


class Analyser:
    def __init__(self, settings: Settings, store: Store, large_niceness: int = LARGE_NICENESS) -> None:
        """`large_niceness`: how much lower the large lane runs (0 for a fleet worker, whose
        machine is there for its analyses: a lower priority would only starve them)."""
        self.settings = settings
        self.store = store
        self.large_niceness = large_niceness
        self.spec = JobSpec(state_dir=settings.state_dir.resolve(), database=settings.database,
                            pool_timeout=settings.pool_timeout, owner=os.getpid(),
                            zones=tuple(settings.zones),
                            formats_dirs=tuple(settings.formats_dirs), rules_dirs=tuple(settings.rules_dirs))
        self.slots: dict[Lane, int] = {"small": settings.small_workers, "large": settings.workers}
        self._queues: dict[Lane, deque[Job]] = {"small": deque(), "large": deque()}
        self._running: dict[str, Job] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._last_purge = time.monotonic()
        self.on_finished: list[Listener] = []
        """Called (row, seconds) on the scheduler thread when a job ends done or failed."""
        self._thread = threading.Thread(target=self._loop, name="correlator-jobs", daemon=True)
        self._thread.start()
        # start the fork server now, off the serving thread: it loads the formats and rules once
        # (seconds), which the first upload would otherwise wait for
        threading.Thread(target=warm_up, name="correlator-forkserver", daemon=True).start()

    # -- what routes ask ---------------------------------------------------------------------

    def lane(self, upload: Path) -> Lane:
        """Decided before submitting (it may read an archive's headers: call it off the loop)."""
        return lane_of(upload, self.settings.background_bytes)

    def submit(self, analysis_id: str, lane: Lane, upload: Path | None = None,
               fence: int | None = None) -> Future[None]:
        """Queue it; `upload` names the bundle when it is not the row's (a fleet worker's copy),
        `fence` the run's token when a fleet worker runs it."""
        job = Job(analysis_id, lane, upload=upload, fence=fence)
        with self._cond:
            self._queues[lane].append(job)
            position = len(self._queues[lane])
            self._cond.notify_all()
        job.log("analysis %s queued (%s lane, position %d)", analysis_id, lane, position, event="queued")
        return job.future

    def future(self, analysis_id: str, lane: Lane | None = None) -> Future[None] | None:
        """What resolves when the analysis ends, while it is queued or running (in `lane`)."""
        with self._cond:
            jobs = [*self._running.values(), *(job for queue in self._queues.values() for job in queue)]
        for job in jobs:
            if job.id == analysis_id and (lane is None or job.lane == lane):
                return job.future
        return None

    def position(self, analysis_id: str) -> int | None:
        """1 for the next to start in its lane; None when not queued."""
        with self._cond:
            for queue in self._queues.values():
                for i, job in enumerate(queue, 1):
                    if job.id == analysis_id:
                        return i
        return None

    def depth(self) -> dict[str, int]:
        with self._cond:
            return {lane: len(queue) for lane, queue in self._queues.items()}

    def redelivered(self) -> int | None:
        """None: analyses here are not handed between workers."""
        return None

    def accepting(self) -> bool:
        """The scheduler runs and takes work."""
        return self._thread.is_alive() and not self._stopping

    def running(self) -> int:
        with self._cond:
            return len(self._running)

    def cancel(self, analysis_id: str) -> None:
        """Stop the analysis now: drop it from its queue, or have the scheduler kill its process
        (within TICK) and wait for that."""
        with self._cond:
            for queue in self._queues.values():
                for job in list(queue):
                    if job.id == analysis_id:
                        queue.remove(job)
                        job.future.set_result(None)
            running = self._running.get(analysis_id)
            if running is None:
                return
            running.stop_reason = "deleted"
            self._cond.notify_all()
        running.future.result(timeout=REAP + 5)

    def shutdown(self) -> None:
        """Stop taking work and kill what runs: queued and running analyses stay 'queued' and
        'running' on disk and are analysed again at the next start."""
        with self._cond:
            self._stopping = True
            for job in self._running.values():
                job.stop_reason = "shutdown"
            for queue in self._queues.values():
                for job in queue:
                    job.future.set_result(None)
                queue.clear()
            self._cond.notify_all()
        self._thread.join(timeout=REAP + 5)

    def purge(self) -> None:
        """Delete the finished analyses beyond the kept count or age, and the uploads of failed
        ones past `failed_upload_days` (after each analysis, at start-up and every HOUSEKEEPING
        seconds)."""
        purge(self.store, self.settings)
        self._last_purge = time.monotonic()

    # -- the scheduler -----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping and not self._running:
                    return
                if not self._stopping:
                    self._start_queued()
                running = list(self._running.values())
            for job in running:
                try:
                    self._watch(job)
                except StoreUnavailable as exc:  # a database restart must not stop the scheduler
                    log.warning("analysis %s ended while the database did not answer: %s", job.id, exc)
            if time.monotonic() - self._last_purge > HOUSEKEEPING and not self._stopping:
                try:
                    self.purge()
                except Exception:  # housekeeping must not stop the scheduler
                    log.exception("purging old analyses failed")
            with self._cond:
                self._cond.wait(TICK)

    def _start_queued(self) -> None:
        """Under the lock: fill the free slots of each lane, oldest first."""
        for lane, queue in self._queues.items():
            busy = sum(1 for job in self._running.values() if job.lane == lane)
            while queue and busy < self.slots[lane]:
                job = queue.popleft()
                job.started = time.monotonic()
                niceness = self.large_niceness if lane == "large" else 0
                job.process = process_context().Process(target=run, args=(self.spec, job.id, job.upload, job.fence,
                                                                          niceness),
                                                        name=f"correlator-analysis-{job.id}", daemon=True)
                try:
                    job.process.start()
                except OSError as exc:
                    log.error("cannot start analysis %s: %s", job.id, exc)
                    with contextlib.suppress(StaleRun):
                        self.store.update(job.id, status="failed", phase="failed", fence=job.fence,
                                          message=f"the server could not start the analysis ({exc.strerror})")
                    job.future.set_result(None)
                    continue
                job.log("analysis %s started (%s lane, pid %s)", job.id, lane, job.process.pid, event="started")
                self._running[job.id] = job
                busy += 1

    def _watch(self, job: Job) -> None:
        process = job.process
        assert process is not None
        if not process.is_alive():
            self._ended(job)
            return
        elapsed = time.monotonic() - job.started
        budget = self.settings.analysis_timeout
        if job.stop_reason is None and elapsed > budget:
            job.stop_reason = (f"stopped after {elapsed:.0f} s: the analysis took longer than the server's time "
                               f"budget of {budget:g} s (analysis_timeout)")
        limit = self.settings.analysis_memory_mb
        if job.stop_reason is None and process.pid is not None:
            try:
                rss = psutil.Process(process.pid).memory_info().rss
            except psutil.Error:
                rss = 0
            if rss > limit * 1024**2:
                job.stop_reason = (f"stopped at {rss / 1024**2:.0f} MB: the analysis needed more memory than the "
                                   f"server's budget of {limit} MB (analysis_memory_mb)")
        if job.stop_reason is not None:
            if process.is_alive():
                process.kill()
                process.join(REAP)
            self._ended(job)

    def _ended(self, job: Job) -> None:
        with self._cond:
            self._running.pop(job.id, None)
        process = job.process
        assert process is not None
        process.join(REAP)
        seconds = time.monotonic() - job.started
        reason = job.stop_reason
        try:
            if reason == "shutdown":
                return
            if reason == "deleted":
                job.log("analysis %s stopped: deleted", job.id, event="deleted", seconds=round(seconds, 3))
                return
            row = self.store.get(job.id)
            if row is None:
                return
            if reason is not None or row.status not in ("done", "failed"):
                why = reason or (f"the analysis process ended unexpectedly (exit code {process.exitcode}); the "
                                 "server log may say more")
                try:
                    self.store.writer(row.num, job.fence).discard()
                    self.store.update(job.id, status="failed", phase="failed", message=why, fence=job.fence)
                except StaleRun:  # another worker's run holds it: its result stands
                    return
                row = self.store.get(job.id)
                assert row is not None
            job.log("analysis %s %s in %.2f s%s", job.id, row.status, seconds,
                    f": {row.message}" if row.status == "failed" else "", event=row.status,
                    seconds=round(seconds, 3), message_text=row.message)
            for listener in self.on_finished:
                try:
                    listener(row, seconds)
                except Exception:
                    log.exception("a listener failed on analysis %s", job.id)
            self.purge()
        finally:
            process.close()
            job.future.set_result(None)
