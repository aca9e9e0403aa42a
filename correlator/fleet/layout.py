"""What the fleet keeps in JetStream, with its limits: one place, stated in the README.

- `CORRELATOR_JOBS` (subject `correlator.jobs.analyse`): one message per analysis, `{"id",
  "name", "lane"}`, its `Nats-Msg-Id` the analysis id (an API node that retries a publish queues
  it once). Work-queue retention: a job leaves the stream when a worker acknowledges it. File
  storage on `replicas` nodes; at most `jobs_max` waiting (then uploads are refused with 503
  rather than dropped) and none older than `retention_days`.
- The durable pull consumer `correlator-workers` that every worker shares: explicit acks,
  `ack_wait` seconds of silence before a job goes to another worker (workers send in-progress
  acks every third of it while they analyse). A job taken over more than `attempts - 1` times is
  marked failed instead of run again: a bundle that kills its worker every time is not retried
  forever.
- The key-value bucket `correlator-job-owners`: the lease of the worker analysing each job
  (leases.py), removed `ack_wait` seconds after its worker stopped renewing it.
- `CORRELATOR_REDELIVERIES` (subjects `correlator.jobs.redelivered.<analysis id>`): one message per
  job a worker took over after the one that had it went silent (killed, cut off). Its last
  sequence number is the count `/metrics` reports; the messages of one analysis are its lost
  runs, `attempts` at most. The newest REDELIVERIES_KEPT are kept.
- The object store `correlator-bundles`: each upload under its analysis id, removed once it is
  analysed; a failed analysis's bundle is kept for `retention_days`, all together at most
  `bundles_max_bytes` (a full store refuses uploads with 503).
- `correlator.jobs.cancel` (plain NATS, not kept): an API node's DELETE; the worker analysing
  that job stops it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from correlator.api.lanes import Lane
from correlator.fleet import DEFAULT_SHARDS
from correlator.fleet.link import retrying

if TYPE_CHECKING:
    from correlator.api.settings import Settings

log = logging.getLogger("correlator.fleet")

JOBS_STREAM = "CORRELATOR_JOBS"
JOB_SUBJECT = "correlator.jobs.analyse"
WORKERS = "correlator-workers"
REDELIVERIES_STREAM = "CORRELATOR_REDELIVERIES"
REDELIVERED_SUBJECTS = "correlator.jobs.redelivered.*"
LEASES = "correlator-job-owners"
CANCEL_SUBJECT = "correlator.jobs.cancel"
BUNDLES = "correlator-bundles"
#: Seconds within which a second publish with the same Nats-Msg-Id is recognised as a retry.
DUPLICATE_WINDOW = 120.0
#: Redelivery records kept (the count itself is the stream's last sequence, kept regardless).
REDELIVERIES_KEPT = 10_000
#: JetStream's error code for "stream name already in use with a different configuration".
STREAM_NAME_IN_USE = 10058
#: Seconds the set-up of the streams may take (a cluster electing its leaders).
SETUP_PATIENCE = 60.0


@dataclass(frozen=True)
class Limits:
    """The settings of the fleet's streams (see the module's docstring)."""

    replicas: int = 3
    ack_wait: float = 30.0
    attempts: int = 3
    retention_days: float = 7.0
    jobs_max: int = 10_000
    bundles_max_bytes: int = 10 * 1024**3
    shards: int = DEFAULT_SHARDS
    """Shards the sites are hashed into (agent.shard_of)."""

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(replicas=settings.nats_replicas, ack_wait=settings.job_ack_wait,
                   attempts=settings.job_attempts, retention_days=settings.fleet_retention_days,
                   jobs_max=settings.jobs_max, bundles_max_bytes=settings.bundles_max_bytes,
                   shards=settings.fleet_shards)

    @property
    def heartbeat(self) -> float:
        """Seconds between a worker's in-progress acks: three per ack_wait, so one lost to a
        fail-over does not cost the job."""
        return self.ack_wait / 3

    @property
    def retention(self) -> float:
        return self.retention_days * 86400


def redelivered_subject(analysis_id: str) -> str:
    return REDELIVERED_SUBJECTS.replace("*", analysis_id)


def job_message(analysis_id: str, name: str, lane: Lane) -> bytes:
    return json.dumps({"id": analysis_id, "name": name, "lane": lane}).encode()


def read_job(data: bytes) -> tuple[str, str, Lane]:
    """(id, name, lane) of a job message; ValueError when it is not one."""
    job: Any = json.loads(data)
    if not isinstance(job, dict) or not isinstance(job.get("id"), str) or not isinstance(job.get("name"), str):
        raise ValueError("not a job message")
    lane: Lane = "small" if job.get("lane") == "small" else "large"
    return job["id"], job["name"], lane


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or give an existing one these limits."""
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
        await js.update_stream(config)  # the limits of this version (settings changed since)


async def ensure_bucket(js: JetStreamContext, bucket: str, description: str, *, replicas: int,
                        ttl: float | None = None, if_other: str | None = None) -> KeyValue:
    """Create the key-value bucket (history 1, on file, `replicas` copies, keys lapsing after
    `ttl` seconds or never) if missing, else open it. One made before with another configuration
    is used as it is, and `if_other` (what must then agree) is logged."""
    try:
        return await js.create_key_value(KeyValueConfig(
            bucket=bucket, description=description, ttl=ttl, history=1, storage=StorageType.FILE,
            replicas=replicas))
    except BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
        if if_other is not None:
            log.warning("the bucket %s exists with another TTL: %s", bucket, if_other)
        return await js.key_value(bucket)


async def leases(js: JetStreamContext, limits: Limits) -> KeyValue:
    """The lease bucket (made by `ensure`)."""
    return await js.key_value(LEASES)


async def ensure(js: JetStreamContext, limits: Limits) -> ObjectStore:
    """Create the streams, the consumer and the bucket if missing (every API node and worker calls
    this at its start: the first one makes them, the others find them), with `limits`."""

    async def setup() -> ObjectStore:
        await ensure_stream(js, StreamConfig(
            name=JOBS_STREAM, subjects=[JOB_SUBJECT], retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE, num_replicas=limits.replicas, max_msgs=limits.jobs_max,
            max_age=limits.retention, discard=DiscardPolicy.NEW, duplicate_window=DUPLICATE_WINDOW,
            description="correlator: one job per analysis, removed when a worker acknowledges it"))
        await ensure_stream(js, StreamConfig(
            name=REDELIVERIES_STREAM, subjects=[REDELIVERED_SUBJECTS], retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE, num_replicas=limits.replicas, max_msgs=REDELIVERIES_KEPT,
            max_age=limits.retention, discard=DiscardPolicy.OLD, duplicate_window=DUPLICATE_WINDOW,
            description="correlator: jobs a worker received again after another went silent"))
        await js.add_consumer(JOBS_STREAM, ConsumerConfig(
            durable_name=WORKERS, name=WORKERS, ack_policy=AckPolicy.EXPLICIT, ack_wait=limits.ack_wait,
            max_deliver=-1, filter_subject=JOB_SUBJECT, max_ack_pending=-1,
            description="correlator workers: each job to one of them at a time"))
        await ensure_bucket(js, LEASES, "correlator: the worker analysing each job", replicas=limits.replicas,
                            ttl=limits.ack_wait, if_other="every worker and API node needs the same job_ack_wait")
        try:
            return await js.create_object_store(BUNDLES, ObjectStoreConfig(
                description="correlator: uploaded bundles waiting for (or kept after a failed) analysis",
                ttl=limits.retention, max_bytes=limits.bundles_max_bytes, storage=StorageType.FILE,
                replicas=limits.replicas))
        except BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
            log.warning("the bundle store %s exists with other limits; it is used as it is", BUNDLES)
            return await js.object_store(BUNDLES)

    return await retrying(setup, what="creating the fleet's streams", patience=SETUP_PATIENCE)
