"""Which worker analyses a job now: a lease per analysis in a JetStream key-value bucket.

JetStream delivers a job to one worker at a time, except across a fail-over: in-progress acks
are not replicated, so when the node leading the consumer dies, its successor may redeliver a
long job at once although its worker is alive and analysing it. Two runs of one analysis at
once would write one timeline twice. So a worker runs a job only while it holds the job's lease:

- `claim` creates the key (atomically: one worker wins); a worker that finds another's lease
  leaves the job for later (`nak` with a delay);
- the holder renews it every third of `job_ack_wait`; the bucket's TTL (`job_ack_wait`) removes
  the lease of a worker that died, and the next delivery's claim succeeds;
- a holder that cannot renew for two thirds of `job_ack_wait` (cut off from the cluster) stops its
  run by itself (`expired`), before its lease can lapse on the servers and another worker start:
  the run never overlaps another.
"""

from __future__ import annotations

import time

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue


class Lease:
    def __init__(self, revision: int) -> None:
        self.revision = revision
        self.renewed = time.monotonic()


class Leases:
    def __init__(self, kv: KeyValue, owner: str, ttl: float) -> None:
        self.kv = kv
        self.owner = owner.encode()
        self.ttl = ttl

    async def claim(self, analysis_id: str) -> Lease | None:
        """The lease, or None when another worker holds it."""
        try:
            return Lease(await self.kv.create(analysis_id, self.owner))
        except KeyWrongLastSequenceError:
            return await self._ours(analysis_id)

    async def renew(self, analysis_id: str, lease: Lease) -> bool:
        """False when the lease went to another worker."""
        try:
            lease.revision = await self.kv.update(analysis_id, self.owner, last=lease.revision)
        except KeyWrongLastSequenceError:
            found = await self._ours(analysis_id)
            if found is None:
                return False
            lease.revision = found.revision
        lease.renewed = time.monotonic()
        return True

    def expired(self, lease: Lease) -> bool:
        """Not renewed for two thirds of the TTL: the run must stop before the lease can lapse."""
        return time.monotonic() - lease.renewed > self.ttl * 2 / 3

    async def release(self, analysis_id: str, lease: Lease) -> None:
        await self.kv.delete(analysis_id, last=lease.revision)

    async def _ours(self, analysis_id: str) -> Lease | None:
        """After a refused write: the lease is this worker's (a retried write that was stored),
        gone (expired: take it again), or another's (None)."""
        try:
            entry = await self.kv.get(analysis_id)
        except KeyNotFoundError:
            try:
                return Lease(await self.kv.create(analysis_id, self.owner))
            except KeyWrongLastSequenceError:
                return None
        if entry.value == self.owner and entry.revision is not None:
            return Lease(entry.revision)
        return None
