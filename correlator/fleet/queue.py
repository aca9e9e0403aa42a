"""The API node's side of the fleet: `FleetQueue` takes the place of the in-process scheduler
(api/jobs.py's `Analyser`) when `serve` is given `--nats`, with the same methods the routes,
metrics and readiness call.

An upload is stored in the bundle bucket under its analysis id, the row loses its local path
(the bundle lives in JetStream now, so any worker can fetch it), and one job is published; only
then is the upload answered, so a 202 means the job is kept by the cluster. The local copy is
removed. A small upload is still answered finished (201): the node waits for the shared store to
say done or failed, as the embedded server waits for its process. Nothing about an analysis is
kept on the node itself, so any API node answers for any analysis.
"""

from __future__ import annotations

import logging
import shutil
import socket
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from nats.js.errors import NotFoundError, ObjectNotFoundError

from correlator.api.context import request_id
from correlator.api.jobs import Listener, purge
from correlator.api.lanes import Lane, lane_of
from correlator.api.settings import Settings
from correlator.api.storage import Store
from correlator.fleet import QueueUnavailable
from correlator.fleet.layout import (
    CANCEL_SUBJECT,
    JOB_SUBJECT,
    JOBS_STREAM,
    REDELIVERIES_STREAM,
    WORKERS,
    Limits,
    ensure,
    job_message,
)
from correlator.fleet.link import Link, retrying, server_urls

log = logging.getLogger("correlator.api")

#: Seconds between two looks at the queue's numbers (for /metrics) and at the waited analyses.
STATS_EVERY = 1.0
WAIT_TICK = 0.1
#: Seconds one look at the queue's numbers may take.
STATS_TIMEOUT = 5.0


@dataclass(frozen=True)
class QueueStats:
    waiting: int = 0
    """Jobs no worker has taken yet."""
    in_progress: int = 0
    """Jobs a worker holds and has not acknowledged."""
    redelivered: int = 0
    """Jobs received again by a worker after another went silent, since the stream was made."""


class FleetQueue:
    def __init__(self, settings: Settings, store: Store) -> None:
        assert settings.nats
        self.settings = settings
        self.store = store
        self.limits = Limits.of(settings)
        self.link = Link(server_urls(settings.nats), name=f"correlator-api@{socket.gethostname()}")
        try:
            self.bundles = self.link.run(ensure(self.link.js, self.limits))
        except BaseException:
            self.link.close()
            raise
        self.on_finished: list[Listener] = []
        """Never called here: the worker that ends an analysis calls its own (webhooks)."""
        self.stats = QueueStats()
        self._waiting: dict[str, tuple[Lane, Future[None]]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="correlator-fleet-queue", daemon=True)
        self._thread.start()

    # -- what routes ask (as of api/jobs.py's Analyser) --------------------------------------

    def lane(self, upload: Path) -> Lane:
        return lane_of(upload, self.settings.background_bytes)

    def submit(self, analysis_id: str, lane: Lane) -> Future[None]:
        """Store the bundle, queue the job, remove the local copy; blocks until the cluster keeps
        both (call it off the event loop). Raises QueueUnavailable, with the analysis deleted so
        that the same bundle sent again is taken afresh."""
        row = self.store.get(analysis_id)
        if row is None or row.upload is None:
            raise QueueUnavailable(f"analysis {analysis_id} has no upload to queue")
        upload = Path(row.upload)
        future: Future[None] = Future()
        with self._lock:
            self._waiting[analysis_id] = (lane, future)
        try:
            self.link.run(self._store_bundle(analysis_id, upload))
            self.store.update(analysis_id, upload=None)  # the bundle lives in the cluster now
            self.link.run(self.link.publish(JOB_SUBJECT, job_message(analysis_id, row.name, lane), analysis_id))
        except BaseException:
            with self._lock:
                self._waiting.pop(analysis_id, None)
            self.store.delete(analysis_id)
            self.link.submit(self._drop_bundle(analysis_id))
            raise
        shutil.rmtree(upload.parent, ignore_errors=True)
        log.info("analysis %s queued (%s lane, on the cluster)", analysis_id, lane,
                 extra={"request_id": request_id.get(), "analysis_id": analysis_id, "lane": lane,
                        "event": "queued"})
        return future

    async def _store_bundle(self, analysis_id: str, upload: Path) -> None:
        async def put() -> None:
            with upload.open("rb") as data:
                await self.bundles.put(analysis_id, data)

        await retrying(put, what=f"storing the bundle of analysis {analysis_id}")

    async def _drop_bundle(self, analysis_id: str) -> None:
        try:
            await self.bundles.delete(analysis_id)
        except (NotFoundError, ObjectNotFoundError):
            pass
        except Exception as exc:  # the bucket's TTL removes it in the end
            log.warning("could not remove the bundle of analysis %s: %s", analysis_id, exc)

    def future(self, analysis_id: str, lane: Lane | None = None) -> Future[None] | None:
        with self._lock:
            found = self._waiting.get(analysis_id)
        if found is None or (lane is not None and found[0] != lane):
            return None
        return found[1]

    def position(self, analysis_id: str) -> int | None:
        """Unknown: the queue is the cluster's, shared by every API node."""
        return None

    def depth(self) -> dict[str, int]:
        return {"fleet": self.stats.waiting}

    def running(self) -> int:
        return self.stats.in_progress

    def redelivered(self) -> int:
        return self.stats.redelivered

    def accepting(self) -> bool:
        """Connected to a node of the cluster (a fail-over takes a moment)."""
        return self.link.connected.is_set() and not self._stopping.is_set()

    def cancel(self, analysis_id: str) -> None:
        """Tell the workers (the one analysing it stops it) and drop the bundle; a job still
        queued is acknowledged without work by the worker that takes it (its row is gone)."""
        try:
            self.link.run(self._cancel(analysis_id), timeout=10)
        except Exception as exc:  # the row is deleted regardless: its worker finds nothing to write to
            log.warning("could not tell the workers that analysis %s is deleted: %s", analysis_id, exc)
        with self._lock:
            found = self._waiting.pop(analysis_id, None)
        if found is not None and not found[1].done():
            found[1].set_result(None)

    async def _cancel(self, analysis_id: str) -> None:
        await self.link.client.publish(CANCEL_SUBJECT, analysis_id.encode())
        await self.link.client.flush(timeout=5)
        await self._drop_bundle(analysis_id)

    def purge(self) -> None:
        purge(self.store, self.settings)

    def shutdown(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        with self._lock:
            for _, future in self._waiting.values():
                if not future.done():
                    future.set_result(None)
            self._waiting.clear()
        self.link.close()

    # -- the watcher ------------------------------------------------------------------------

    def _watch(self) -> None:
        """Resolves the futures of analyses that ended (read from the shared store) and keeps the
        queue's numbers for /metrics, so a scrape never waits on the cluster."""
        next_stats = 0.0
        while not self._stopping.wait(WAIT_TICK):
            try:
                self._resolve_ended()
            except Exception:  # a store hiccup: look again at the next tick
                log.exception("looking at waited analyses failed")
            now = self.link.loop.time() if not self.link.loop.is_closed() else 0.0
            if now >= next_stats:
                next_stats = now + STATS_EVERY
                try:
                    self.stats = self.link.run(self._read_stats(), timeout=STATS_TIMEOUT)
                except Exception as exc:  # keep the last numbers; readiness says when the link is down
                    log.debug("reading the queue's numbers failed: %s", exc)

    def _resolve_ended(self) -> None:
        with self._lock:
            waited = list(self._waiting.items())
        if not waited:
            return
        unfinished = {row.id for row in self.store.unfinished()}
        for analysis_id, (_, future) in waited:
            if analysis_id not in unfinished:
                with self._lock:
                    self._waiting.pop(analysis_id, None)
                if not future.done():
                    future.set_result(None)

    async def _read_stats(self) -> QueueStats:
        consumer = await self.link.js.consumer_info(JOBS_STREAM, WORKERS)
        redeliveries = await self.link.js.stream_info(REDELIVERIES_STREAM)
        return QueueStats(waiting=consumer.num_pending or 0, in_progress=consumer.num_ack_pending or 0,
                          redelivered=redeliveries.state.last_seq)
