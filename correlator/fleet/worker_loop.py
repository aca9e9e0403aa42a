"""`correlator worker`: takes analysis jobs from the cluster and runs them, as many processes and
machines as there is work for.

Each job is run the one way the embedded server runs an analysis: the in-process scheduler
(api/jobs.py's `Analyser`, with its lanes, time and memory budgets) starts api/worker.py's
`run` in a process of its own, on the bundle fetched from the bucket into a scratch folder. The
results are written into the shared store keyed by the analysis id (a second run replaces the
first's), and only then is the job acknowledged. So:

- a worker killed mid-job (kill -9, a lost machine) sends no more in-progress acks; after
  `job_ack_wait` seconds the cluster gives the job to another worker, which runs it from the
  start and writes the one result;
- a worker that dies after writing but before its ack leaves a job whose analysis is done: the
  next worker acknowledges it without running it again;
- a job delivered more than `job_attempts` times (its bundle kills every worker that takes it)
  is marked failed instead of run again;
- a stopped worker (SIGTERM, Ctrl-C) gives its jobs back at once (`nak`) for another to take;
- a worker that froze (SIGSTOP, a paused VM) while its job went to another cannot overwrite the
  newer run's result when it wakes: each run has a fencing token, the revision of the lease it
  claimed (revisions only grow), made the analysis's run token in the store before the run
  starts (`Store.fence_run`); every write of the run carries it, and the store refuses (and logs)
  a write whose token is no longer the analysis's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
from pathlib import Path

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NotFoundError, ObjectNotFoundError

from correlator.api.jobs import Analyser, warm_up
from correlator.api.settings import Settings
from correlator.api.storage import Store
from correlator.api.webhooks import Notifier
from correlator.fleet.layout import (
    CANCEL_SUBJECT,
    JOBS_STREAM,
    REDELIVERIES_STREAM,
    WORKERS,
    Limits,
    ensure,
    leases,
    read_job,
    redelivered_subject,
)
from correlator.fleet.leases import Lease, Leases
from correlator.fleet.link import Link, retrying, server_urls
from correlator.fleet.process import LinkedWorker
from correlator.sources.archives import make_temp

log = logging.getLogger("correlator.fleet")

#: Seconds one pull for a job waits on an idle queue before asking again.
FETCH_WAIT = 1.0
#: Seconds a bundle may be missing from the bucket before its analysis fails for want of it.
MISSING_PATIENCE = 10.0
FINISHED = ("done", "failed")


class FleetWorker(LinkedWorker):
    """One worker process: `run()` until stopped (SIGTERM, Ctrl-C); `slots` jobs at once. Stopping
    gives back what is held: running analyses stop (their rows stay 'running') and their jobs are
    naked for another worker; then the connection closes."""

    def __init__(self, settings: Settings, store: Store, slots: int | None = None) -> None:
        assert settings.nats
        super().__init__()
        self.settings = settings
        self.store = store
        self.limits = Limits.of(settings)
        self.slots = slots or settings.workers + settings.small_workers
        self.name = f"correlator-worker@{socket.gethostname()}:{os.getpid()}"
        self.link = Link(server_urls(settings.nats), name=self.name)
        try:
            self.bundles = self.link.run(ensure(self.link.js, self.limits))
        except BaseException:
            self.link.close()
            raise
        self.analyser = Analyser(settings, store, large_niceness=0)  # the machine is there for the analyses
        self.notifier = Notifier(settings)
        self.analyser.on_finished.append(self.notifier.finished)
        # bundles fetched for analysis: a folder a killed worker leaves is removed by the next
        # worker's (or serve's) start, as extraction folders are
        self.scratch = make_temp()
        self._cancelled: set[str] = set()
        self._held: dict[str, Msg] = {}
        """The latest delivery of each job this worker runs."""
        self._lost: set[str] = set()
        self.leases = Leases(self.link.run(leases(self.link.js, self.limits)), self.name, self.limits.ack_wait)

    def starting(self) -> None:
        warm_up()  # the fork server with the formats and rules loaded, before the first job waits for it

    def stopping(self) -> None:
        self.analyser.shutdown()

    def stopped(self) -> None:
        self.notifier.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)

    async def _main(self) -> None:
        async def on_cancel(msg: Msg) -> None:
            analysis_id = msg.data.decode(errors="replace")
            self._cancelled.add(analysis_id)
            if await asyncio.to_thread(self.analyser.future, analysis_id) is not None:
                log.info("analysis %s deleted: stopping it", analysis_id)
                await asyncio.to_thread(self.analyser.cancel, analysis_id)

        await self.link.client.subscribe(CANCEL_SUBJECT, cb=on_cancel)
        jobs = await self.link.js.pull_subscribe_bind(durable=WORKERS, stream=JOBS_STREAM)
        free = asyncio.Semaphore(self.slots)
        running: set[asyncio.Task[None]] = set()
        log.info("worker %s taking jobs (%d at once)", self.name, self.slots)
        while not self._stopping.is_set():
            await free.acquire()
            if self._stopping.is_set():
                break
            try:
                messages = await jobs.fetch(1, timeout=FETCH_WAIT)
            except (TimeoutError, NatsError) as exc:  # the TRANSIENT ones among them
                free.release()
                if not isinstance(exc, NatsTimeout):  # an empty queue times out; anything else is the link
                    log.debug("fetching a job: %s", exc)
                    await asyncio.sleep(0.2)
                continue
            for message in messages:
                task = asyncio.create_task(self._guarded(message))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _: free.release())
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    async def _guarded(self, msg: Msg) -> None:
        """A job that cannot be handled now (the cluster or the store does not answer) is given
        back for a later try, by this or another worker."""
        try:
            await self._handle(msg)
        except Exception:
            log.exception("a job could not be handled; it is given back")
            with contextlib.suppress(Exception):
                await msg.nak(delay=self.limits.heartbeat)

    async def _handle(self, msg: Msg) -> None:
        try:
            analysis_id, name, lane = read_job(msg.data)
        except ValueError:
            log.error("a message on the job queue is not a job: acknowledged and dropped")
            await msg.ack()
            return
        if self._stopping.is_set():  # taken while stopping: another worker gets it at once
            await msg.nak()
            return
        if analysis_id in self._held:
            # this worker runs it already (a fail-over redelivered it early): answer for the
            # newest delivery from now on
            self._held[analysis_id] = msg
            await msg.in_progress()
            return
        row = await asyncio.to_thread(self.store.get, analysis_id)
        if row is None or row.status in FINISHED:
            # deleted, or analysed by a worker that ended before it acknowledged: nothing to do
            await msg.ack()
            return
        lease = await self.leases.claim(analysis_id)
        if lease is None:  # another worker runs it: ask again once its lease would have lapsed
            await msg.nak(delay=self.limits.ack_wait)
            return
        fence = lease.revision
        if not await asyncio.to_thread(self.store.fence_run, analysis_id, fence):
            log.warning("analysis %s: a newer run than this one (%d) holds it; leaving it", analysis_id, fence)
            with contextlib.suppress(Exception):
                await self.leases.release(analysis_id, lease)
            await msg.ack()
            return
        self._held[analysis_id] = msg
        heartbeat = asyncio.create_task(self._heartbeat(analysis_id, lease))
        folder = self.scratch / analysis_id
        try:
            if msg.metadata.num_delivered > 1 and await self._taken_over(analysis_id, msg.metadata.num_delivered,
                                                                         fence):
                ended = True
            else:
                ended = await self._analyse(analysis_id, name, lane, folder, lease, fence)
        finally:
            heartbeat.cancel()
            shutil.rmtree(folder, ignore_errors=True)
            latest = self._held.pop(analysis_id)
        if analysis_id in self._lost:
            self._lost.discard(analysis_id)
            return  # the job is another worker's now: it acknowledges it
        with contextlib.suppress(Exception):  # the lease lapses by itself
            await self.leases.release(analysis_id, lease)
        if ended or analysis_id in self._cancelled:
            self._cancelled.discard(analysis_id)
            await latest.ack()
        else:
            await latest.nak()  # this worker stops: another takes the job now

    async def _taken_over(self, analysis_id: str, delivered: int, fence: int) -> bool:
        """Record that this worker takes the job over (for /metrics and the attempts); True when
        it has been lost `attempts` times already and is marked failed instead of run again."""
        log.warning("analysis %s delivered again (delivery %d): its last worker went silent", analysis_id,
                    delivered, extra={"analysis_id": analysis_id, "event": "redelivered", "delivery": delivered})
        subject = redelivered_subject(analysis_id)
        record = json.dumps({"id": analysis_id, "delivery": delivered, "worker": self.name}).encode()
        try:
            await self.link.publish(subject, record, f"{analysis_id}:{delivered}")
            info = await self.link.js.stream_info(REDELIVERIES_STREAM, subjects_filter=subject)
            lost = (info.state.subjects or {}).get(subject, 0)
        except Exception as exc:  # a missed count must not cost the job
            log.warning("could not record the redelivery of %s: %s", analysis_id, exc)
            return False
        if lost < self.limits.attempts:
            return False
        await asyncio.to_thread(self.store.update, analysis_id, status="failed", phase="failed", fence=fence,
                                message=f"the analysis stopped its worker {lost} times (killed, or out of memory); "
                                "it is not tried again")
        return True

    async def _analyse(self, analysis_id: str, name: str, lane: str, folder: Path, lease: Lease, fence: int) -> bool:
        """Run it; True when its row says done or failed (or is gone) afterwards."""
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        upload = folder / name
        try:
            await self._fetch_bundle(analysis_id, upload)
        except (NotFoundError, ObjectNotFoundError):
            await asyncio.to_thread(self.store.update, analysis_id, status="failed", phase="failed", fence=fence,
                                    message="the bundle is no longer in the cluster's bundle store (expired or "
                                    "deleted)")
            return True
        if self.leases.expired(lease):  # this worker was too slow to renew it: another may hold it by now
            self._lost.add(analysis_id)
            return False
        # the scheduler's lock may be held while it starts a process: never on this loop
        future = await asyncio.to_thread(self.analyser.submit, analysis_id, "small" if lane == "small" else "large",
                                         upload, fence)
        await asyncio.wrap_future(future)
        row = await asyncio.to_thread(self.store.get, analysis_id)
        if row is not None and row.status == "done":
            with contextlib.suppress(Exception):  # the bucket's TTL removes it in the end
                await self.bundles.delete(analysis_id)
        return row is None or row.status in FINISHED

    async def _fetch_bundle(self, analysis_id: str, target: Path) -> None:
        async def get() -> None:
            with target.open("wb") as out:
                await asyncio.wait_for(self.bundles.get(analysis_id, writeinto=out), self.limits.ack_wait)

        deadline = asyncio.get_running_loop().time() + MISSING_PATIENCE
        while True:
            try:
                await retrying(get, what=f"fetching the bundle of analysis {analysis_id}")
                return
            except (NotFoundError, ObjectNotFoundError):
                # a stream that just changed leader may not find it for a moment
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _heartbeat(self, analysis_id: str, lease: Lease) -> None:
        """In-progress acks and lease renewals while the job runs; a run whose lease went to
        another worker, or could not be renewed in time, is stopped (leases.py)."""
        while True:
            await asyncio.sleep(self.limits.heartbeat)
            with contextlib.suppress(Exception):  # the next beat covers a lost one
                await self._held[analysis_id].in_progress()
            try:
                kept = await self.leases.renew(analysis_id, lease)
            except Exception as exc:
                log.debug("renewing the lease of %s: %s", analysis_id, exc)
                kept = not self.leases.expired(lease)
            if not kept:
                log.warning("analysis %s: this worker lost its lease (cut off from the cluster); stopping its run",
                            analysis_id)
                self._lost.add(analysis_id)
                await asyncio.to_thread(self.analyser.cancel, analysis_id)
                return
