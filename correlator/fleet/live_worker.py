"""`correlator worker --live`: the central live analysis of the sites whose edge agents publish
events (agent.py), sharded over any number of live workers.

- **Sites are hashed into shards, and each shard is one worker's.** The agents publish a site's
  events under its shard (agent.shard_of, `fleet_shards` of them), so a worker reads a shard's
  sites through one durable consumer and holds one lease for them: what the cluster spends on the
  live analysis (replicated consumers, pull requests, lease renewals) follows the shards and the
  workers, not the sites. A worker analyses a shard only while it holds the shard's lease in the
  bucket `correlator-site-owners` (leases.py, as jobs are held: created atomically, renewed with a
  revision check every third of `site_lease`, left to lapse by a worker that dies). Each worker
  takes shards up to its share (the shards over the live workers that keep a key in
  `correlator-live-workers`); one that holds more than its share once another worker has joined
  gives the rest back between two batches, and the newcomer takes them.
- **A site's events in order.** The shard's consumer (acknowledge-all) delivers its sites'
  messages in the order they were stored; each batch is split by site, and each site is analysed
  with the live analysis of one machine (live_analysis.LiveAnalysis, fed after its timeline
  stage: the agent ordered and stitched them). The findings new, updated or no longer current are
  written into the store with each site's position reached (`Store.save_sites`: one transaction
  for the batch), published to `correlator.findings.<site>`, and only then is the batch
  acknowledged. The batches a worker's shards fetch while it stores one wait for its next step,
  which takes them all: one hand-over to a thread, one transaction, one round of publishes. A
  shard fetches its next batch once its last is stored, not once the cluster has confirmed that
  one's publishes: a batch's findings are published, and it is acknowledged, after the shard's
  batch before it (one batch of a shard at most waits so).
- **A worker's death hands its shards over.** When its leases lapse, other workers claim its
  shards. The new owner resumes after the consumer's last acknowledged message: it restores each
  of the shard's sites from its checkpoint (checkpoints.py: its analysis state at a position, put
  every `site_checkpoint_seconds` once the batch is acknowledged), reads again, without
  publishing, the shard's messages after the oldest checkpoint up to the floor, each site's from
  its own position, so each site's rules stand where they stood (the analysis depends on the
  events alone, so it makes the same findings with the same revisions), then creates the consumer
  anew from there (the dead owner's unacknowledged deliveries would otherwise come back after
  newer ones) and goes on. Messages the dead worker
  analysed and stored but did not acknowledge are analysed again: the store already holds their
  step (it is not written twice), and their findings are published again with the same
  `Nats-Msg-Id` (dropped as duplicates); a finding is published only at a revision at least the
  stored one, so a site's findings subject never goes back to an older revision. A shard whose
  consumer is gone (the cluster removed it after `fleet_retention_days` unread) resumes from the
  lowest position the store holds for its sites.
- **A worker cut off** stops a shard whose lease it could not renew for two thirds of `site_lease`
  before another can take it (leases.py), and a write from behind a site's stored position changes
  nothing (`save_sites`).
- **A stopped worker** (SIGTERM, Ctrl-C) removes its key from `correlator-live-workers` and gives
  its leases back at once: the others take its shards without waiting for either to lapse.

What the analysis does not have centrally: the artifacts (configs, certificates) of the sites,
which agents do not send, and absences while a site is quiet (time moves with the events only,
so a site analysed again makes the same findings).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import os
import random
import re
import socket
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from correlator.analysis import Options, prepare
from correlator.api.finding_keys import ShownFindings
from correlator.api.settings import Settings
from correlator.api.storage import SiteStep, Store
from correlator.engine.rules import Rule
from correlator.fleet.agent import EVENTS_STREAM, shard_of
from correlator.fleet.checkpoints import Checkpoints, CheckpointStore
from correlator.fleet.leases import Lease, Leases
from correlator.fleet.link import Link, retrying, server_urls
from correlator.fleet.process import LinkedWorker
from correlator.fleet.shard_pull import ShardPull, stream_position
from correlator.fleet.sites import (
    LIVE_WORKERS,
    SiteLimits,
    counted_lines,
    ensure_live,
    event_of,
    finding_message,
    findings_subject,
    read_subject,
    removal_message,
    remove_old_consumers,
    shard_consumer,
    shard_filter,
    shard_lease,
)
from correlator.formats.registry import Registry
from correlator.live_analysis import LiveAnalysis, LiveUpdate
from correlator.model import Event
from correlator.report_model import Finding

log = logging.getLogger("correlator.fleet")

#: Messages one fetch takes at most (one step of a shard's analysis).
BATCH = 500
#: Seconds one fetch waits on a quiet shard before asking again (a message ends the wait at once).
FETCH_WAIT = 2.0
#: Seconds between two looks for shards to take or give back.
SCAN_EVERY = 0.5
#: Seconds a delivered event may stay unacknowledged before the consumer sends it again: long,
#: since an owner acknowledges each batch once analysed, and a new owner recreates the consumer.
ACK_WAIT = 300.0
#: Steps of a worker that analyse at once (each takes all the batches waiting when it starts): two,
#: so one's store transaction and the other's analysis overlap, while a busy worker's steps still
#: grow rather than their count.
STEPPERS = 2
#: Seconds a shard whose analysis failed waits before its lease is given back.
FAILED_PAUSE = 1.0
#: A shard's batches analysed and stored whose findings' publishes and acknowledgement the cluster
#: has not confirmed yet when the shard fetches its next batch: one, so a shard's reads and
#: analyses do not wait for the cluster's replies to its last batch, while its acknowledged floor
#: trails what it analysed by one batch at most.
UNSETTLED = 1
#: Checkpoints one step makes at most, the sites longest due first (the rest come with the next
#: steps): a step never carries the pickles of hundreds of sites at once.
STEP_CHECKPOINTS = 32
#: A site's next checkpoint is due `site_checkpoint_seconds` times a random share from this to 1
#: after its last: the sites a worker took together (each checkpointed at its first batch) do not
#: all come due in the same second again at every interval (at 1,000 sites each such second, 500
#: pickles and puts on each worker, was the slowest of the benchmark's run).
CHECKPOINT_SPREAD = 2 / 3
#: Seconds between two full collections of the worker's garbage cycles (tune_gc).
FULL_COLLECTION_EVERY = 600.0


def tune_gc() -> None:
    """A live worker's heap is mostly its sites' analyses, long-lived (about 860,000 objects at
    1,000 sites), and Python's collector went through all of it each time the long-lived objects
    had grown by a quarter: a quarter of the worker's CPU at 1,000 sites (0.25 -> 0.17 ms an event
    in its steps without), in collections of 0.2 to 0.9 s each, during which the worker did
    nothing else (the benchmark's slowest seconds). What is loaded at the start (formats, rules) is
    frozen, young objects are collected as before, and the whole heap only every
    FULL_COLLECTION_EVERY seconds (LiveWorker._main): the cycles among the sites' states that
    are garbage (few: as many objects were held with and without these collections) wait for it."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 2**31 - 1)


class ShardLost(Exception):
    """Another worker owns the shard now (this one was cut off, or too slow to renew)."""


class SiteAnalysis:
    """One site's live analysis: a LiveAnalysis of no paths fed the site's events, what it has
    shown (the changes of each step), and where it stands."""

    def __init__(self, site: str, options: Options, registry: Registry, rules: Sequence[Rule]) -> None:
        self.site = site
        self._changed: list[Finding] = []
        self.live = LiveAnalysis([], options, registry=registry, rules=rules, on_update=self._on_update)
        self.shown = ShownFindings()
        self.revisions: dict[str, int] = {}
        """The last revision of each finding shown (the id of its removal)."""
        self.hosts: set[str] = set()
        self.events = 0
        self.lines = 0
        """Lines of the site's logs read: its events' and the routine lines its agents counted."""
        self.position = 0
        self.last_event: float | None = None

    def _on_update(self, update: LiveUpdate) -> None:
        self._changed.extend(update.findings)

    def state(self) -> dict[str, Any]:
        """What its events made, for a checkpoint (checkpoints.py)."""
        return {"session": self.live.session.state(), "total_events": self.live.total_events,
                "shown": self.shown.keys, "revisions": self.revisions, "hosts": self.hosts, "events": self.events,
                "lines": self.lines, "position": self.position, "last_event": self.last_event}

    def restore(self, state: dict[str, Any]) -> None:
        """Stand where the analysis whose `state()` this is stood (ValueError: other rules)."""
        self.live.session.restore(state["session"])
        self.live.total_events = int(state["total_events"])
        self.shown.keys = set(state["shown"])
        self.revisions = dict(state["revisions"])
        self.hosts = set(state["hosts"])
        self.events, self.lines, self.position = int(state["events"]), int(state["lines"]), int(state["position"])
        self.last_event = state["last_event"]

    def feed(self, events: Sequence[Event], hosts: set[str], position: int, counted: int = 0
             ) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
        """Analyse one batch (and `counted` routine lines, which make no finding): (the findings
        new or updated, by key; (key, last revision) of those no longer current)."""
        self._changed = []
        self.live.feed_events(events)
        # the view of every finding is built only when the rules changed one: most steps of a
        # site (a line or two that no rule reads) change none, and none can then end
        updated, gone = self.shown.step(self.live.findings(), self._changed) if self._changed else ([], [])
        self.events += len(events)
        self.lines += sum(e.line_count for e in events) + counted
        self.position = position
        self.hosts |= hosts
        if events:
            newest = max(e.ts for e in events)
            self.last_event = newest if self.last_event is None else max(self.last_event, newest)
        removed = [(key, self.revisions.pop(key, 0)) for key in gone]
        for finding in updated:
            self.revisions[finding["key"]] = int(finding.get("revision", 0))
        return updated, removed


@dataclass
class SitePart:
    """A site's messages in one batch of its shard."""

    events: list[Event] = field(default_factory=list)
    hosts: set[str] = field(default_factory=set)
    counted: int = 0
    """Routine lines its count messages hold."""
    position: int = 0
    """Stream sequence of the site's last message in the batch."""


def read_batch(messages: Sequence[Msg], shard: int) -> dict[str, SitePart]:
    """The fetched messages by site (in the order each site first comes): its events, the hosts
    that sent them or their counts, the routine lines counted, its last position. A message that
    is neither event nor count is logged and skipped (it is still acknowledged with the batch)."""
    parts: dict[str, SitePart] = {}
    for msg in messages:
        found = read_subject(msg.subject)
        if found is None:
            log.warning("shard %d: message %s on %s skipped: not an agent's subject", shard,
                        stream_position(msg), msg.subject)
            continue
        site, host, counts = found
        part = parts.setdefault(site, SitePart())
        part.position = stream_position(msg)
        try:
            if counts:
                part.counted += counted_lines(msg.data)
            else:
                part.events.append(event_of(msg.data))
        except ValueError as exc:
            log.warning("site %s: message %s on %s skipped: %s", site, stream_position(msg), msg.subject, exc)
            continue
        part.hosts.add(host)
    return parts


class OwnedSite:
    """A site of a shard this worker owns: its analysis, the position the store holds for it, and
    the revision from which each finding is published."""

    def __init__(self, analysis: SiteAnalysis, stored: int, published: dict[str, int]) -> None:
        self.analysis = analysis
        self.stored = stored
        self.published = published
        self.checkpoint_due = float("-inf")
        """When (time.monotonic) its next checkpoint is due: at once (it has none yet)."""


@dataclass
class Step:
    """One site's step in a batch: what its analysis changed."""

    site: OwnedSite
    position: int
    updated: list[dict[str, Any]]
    removed: list[tuple[str, int]]


@dataclass
class Batch:
    """One fetch of a shard, waiting for the next step of all the shards' batches."""

    shard: int
    lease: Lease
    messages: list[Msg]
    sites: dict[str, OwnedSite]
    done: asyncio.Future[None]
    """Resolved once the batch is analysed and stored (its shard fetches its next batch)."""
    settled: asyncio.Future[None]
    """Resolved once its findings are published and the batch acknowledged."""
    previous: asyncio.Future[None] | None
    """`settled` of the shard's batch before it, while that one was not settled yet."""
    steps: list[Step] = field(default_factory=list)
    failed: BaseException | None = None
    sends: list[tuple[str, bytes, str]] = field(default_factory=list)
    """(subject, payload, Nats-Msg-Id) of the findings it changed."""
    checkpoints: list[tuple[str, bytes]] = field(default_factory=list)
    """(site, checkpoint) due once it is acknowledged."""


class LiveWorker(LinkedWorker):
    """One live worker process: `run()` until stopped (SIGTERM, Ctrl-C), which gives its shards
    back (their leases removed: another worker takes them at once)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        assert settings.nats
        super().__init__()
        self.settings = settings
        self.store = store
        self.limits = SiteLimits.of(settings)
        self.name = f"correlator-live@{socket.gethostname()}:{os.getpid()}"
        self.key = re.sub(r"[^A-Za-z0-9_-]", "_", self.name)
        """The worker's key in the workers' bucket (a key takes no '@' or ':')."""
        self.link = Link(server_urls(settings.nats), name=self.name)
        try:
            owners, self.workers, bucket = self.link.run(ensure_live(self.link.js, self.limits))
        except BaseException:
            self.link.close()
            raise
        self.leases = Leases(owners, self.name, self.limits.lease)
        self.options = settings.analysis_options()
        prepared = prepare(self.options)  # formats and rules load once, for every site
        self.registry, self.rules = prepared.registry, prepared.rules
        tune_gc()
        self.checkpointing = Checkpoints(self.rules)
        self.checkpoints = CheckpointStore(self.link.js, bucket, self.link.client.max_payload,
                                           self.limits.fleet.replicas, self.limits.fleet.retention)
        self.runs: dict[int, asyncio.Task[None]] = {}
        self.giving_back: set[int] = set()
        """Shards this worker holds beyond its share: each stops after its current batch."""
        self._present = 0.0
        self.shards = self.limits.fleet.shards
        self._waiting: list[Batch] = []
        """Batches fetched while a step ran: the next step takes them all."""
        self._stepping: set[asyncio.Task[None]] = set()
        """The steps running (STEPPERS at most)."""
        self._finishing: set[asyncio.Task[None]] = set()
        """Steps publishing and acknowledging (kept here: the loop holds tasks weakly)."""
        self._order = sorted(range(self.shards), key=lambda n: zlib.crc32(f"{self.name}/{n}".encode()))
        """The order in which this worker tries the shards (each worker its own, so they do not all
        race for the same ones); it gives back from the end."""

    async def _main(self) -> None:
        with contextlib.suppress(Exception):  # the next worker's start tries again
            if removed := await remove_old_consumers(self.link.js):
                log.info("removed %d consumers of the per-site layout", removed)
        log.info("live worker %s taking sites", self.name)
        collected = time.monotonic()
        while not self._stopping.is_set():
            try:
                await self._balance()
            except Exception as exc:  # the cluster does not answer now: look again
                log.debug("looking for shards: %s", exc)
            if time.monotonic() - collected >= FULL_COLLECTION_EVERY:
                started = time.monotonic()
                found = gc.collect()
                collected = time.monotonic()
                log.debug("full collection: %d objects freed in %.3f s", found, collected - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), SCAN_EVERY)
        with contextlib.suppress(Exception):  # else its key lapses after site_lease
            await self._absent()
        runs = list(self.runs.values())
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    async def _balance(self) -> None:
        """Say this worker runs; give back the shards beyond its share, or take free ones up to it."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._present >= self.limits.heartbeat:
            await self.workers.put(self.key, self.name.encode())
            self._present = loop.time()
        present = await self.link.js.stream_info(f"KV_{LIVE_WORKERS}", subjects_filter=f"$KV.{LIVE_WORKERS}.>")
        workers = max(1, len(present.state.subjects or {}))
        share = -(-self.shards // workers)
        kept = [n for n in self._order if n in self.runs and n not in self.giving_back]
        if len(kept) > share:
            for shard in kept[share:]:
                log.info("shard %d given back: %d live workers share %d shards", shard, workers, self.shards,
                         extra={"shard": shard, "event": "shard_given_back"})
                self.giving_back.add(shard)
            return
        for shard in self._order:
            if len(self.runs) >= share:
                break
            if shard in self.runs:
                continue
            lease = await self.leases.claim(shard_lease(shard))
            if lease is None:
                continue
            task = asyncio.create_task(self._own(shard, lease))
            self.runs[shard] = task
            task.add_done_callback(lambda _, shard=shard: self._ended(shard))  # type: ignore[misc]

    async def _absent(self) -> None:
        """Remove this worker's key from the workers' bucket, as a stopping worker does: the others
        count one worker less at once and take its shards as it gives them back (a KV delete would
        leave a marker that counts as a key until it lapses, so the key's messages are purged)."""
        await self.link.js.purge_stream(f"KV_{LIVE_WORKERS}", subject=f"$KV.{LIVE_WORKERS}.{self.key}")

    def _ended(self, shard: int) -> None:
        self.runs.pop(shard, None)
        self.giving_back.discard(shard)

    async def _own(self, shard: int, lease: Lease) -> None:
        run = asyncio.current_task()
        assert run is not None
        key = shard_lease(shard)
        beat = asyncio.create_task(self._heartbeat(shard, lease, run))
        lost = False
        try:
            await self._analyse(shard, lease)
        except ShardLost:
            lost = True
            log.warning("shard %d: another worker owns it now; this one stops analysing it", shard)
        except asyncio.CancelledError:
            lost = self.leases.expired(lease)
            if not self._stopping.is_set() and not lost:
                raise
        except Exception:
            log.exception("shard %d: its analysis stopped; the shard is given back", shard)
            await asyncio.sleep(FAILED_PAUSE)
        finally:
            beat.cancel()
            if not lost:
                with contextlib.suppress(Exception):  # else its lease lapses by itself
                    await self.leases.release(key, lease)

    async def _heartbeat(self, shard: int, lease: Lease, run: asyncio.Task[None]) -> None:
        """Renew the shard's lease; a run whose lease went to another worker, or could not be
        renewed in time, is stopped (leases.py)."""
        key = shard_lease(shard)
        while True:
            await asyncio.sleep(self.limits.heartbeat)
            try:
                kept = await self.leases.renew(key, lease)
            except Exception as exc:
                log.debug("renewing the lease of shard %d: %s", shard, exc)
                kept = not self.leases.expired(lease)
            if not kept:
                log.warning("shard %d: this worker lost its lease (cut off from the cluster); stopping", shard)
                lease.renewed = float("-inf")  # expired: the run's end does not give back another's lease
                run.cancel()
                return

    def _open_site(self, site: str) -> OwnedSite:
        """A site met in an owned shard: a fresh analysis, and what the store holds of it."""
        row = self.store.site(site)
        published = {key: int(f.get("revision", 0)) for key, f in self.store.site_findings(site)}
        analysis = SiteAnalysis(site, self.options, self.registry, self.rules)
        return OwnedSite(analysis, row.position if row is not None else 0, published)

    def _resume_floor(self, shard: int) -> int:
        """Where a shard without a consumer resumes: after the lowest position stored for its sites."""
        return min((row.position for row in self.store.sites() if shard_of(row.site, self.shards) == shard), default=0)

    def _open_sites(self, parts: dict[str, SitePart], sites: dict[str, OwnedSite]) -> None:
        """Open the sites of a batch met for the first time (in the batch's thread: it reads the
        store)."""
        for name in parts:
            if name not in sites:
                sites[name] = self._open_site(name)

    async def _analyse(self, shard: int, lease: Lease) -> None:
        js = self.link.js
        durable = shard_consumer(shard)
        try:
            info = await retrying(lambda: js.consumer_info(EVENTS_STREAM, durable),
                                  what=f"reading the consumer of shard {shard}")
            floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
            if not floor and info.config.opt_start_seq:  # made by an owner that acknowledged nothing yet
                floor = info.config.opt_start_seq - 1
            await retrying(lambda: js.delete_consumer(EVENTS_STREAM, durable),
                           what=f"recreating the consumer of shard {shard}")
        except NotFoundError:  # a shard never analysed (or its consumer was removed): from the store's positions
            floor = await asyncio.to_thread(self._resume_floor, shard)
        sites: dict[str, OwnedSite] = {}
        await self._replay(shard, sites, floor)
        events = await self._consumer(shard, floor)
        log.info("shard %d taken by %s: resuming after message %d", shard, self.name, floor,
                 extra={"shard": shard, "event": "shard_taken", "position": floor})
        reconnects = self.link.reconnects
        settling: collections.deque[asyncio.Future[None]] = collections.deque()
        """`settled` of the shard's batches analysed whose publishes and acknowledgement are not
        confirmed yet, oldest first (one whose findings could not be published stops the run)."""
        try:
            while shard not in self.giving_back:
                while settling and (settling[0].done() or len(settling) > UNSETTLED):
                    await settling.popleft()
                try:
                    messages = await events.fetch(BATCH, FETCH_WAIT)
                except (TimeoutError, NatsError) as exc:  # a quiet shard, or a node failing over
                    if not isinstance(exc, TimeoutError):
                        log.debug("shard %d: fetching events: %s", shard, exc)
                        await asyncio.sleep(0.2)
                    if self.link.reconnects != reconnects:  # the node went: was the consumer lost with the cluster?
                        await _settle_all(settling)  # a consumer made anew starts after an acknowledged floor
                        seen = self.link.reconnects
                        kept = await self._kept_consumer(shard, events, floor)
                        if kept is not None:
                            events, reconnects = kept, seen
                    continue
                # a consumer whose leader failed over sends again what its new leader had not
                # heard acknowledged: those messages were analysed already, and are skipped
                fresh = [m for m in messages if stream_position(m) > floor]
                if fresh:
                    settling.append(await self._step(shard, lease, fresh, sites, settling[-1] if settling else None))
                    floor = stream_position(fresh[-1])
                elif messages:
                    await _settle_all(settling)  # never acknowledged before its findings are stored
                    await messages[-1].ack()
            await _settle_all(settling)  # given back: acknowledged before its lease goes
        finally:
            await events.close()

    async def _consumer(self, shard: int, floor: int) -> ShardPull:
        """Create the shard's consumer from after message `floor`, and bind to it."""
        js = self.link.js
        durable = shard_consumer(shard)
        await retrying(lambda: js.add_consumer(EVENTS_STREAM, ConsumerConfig(
            durable_name=durable, name=durable, filter_subject=shard_filter(shard), ack_policy=AckPolicy.ALL,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=floor + 1, ack_wait=ACK_WAIT,
            max_deliver=-1, inactive_threshold=self.limits.fleet.retention, mem_storage=True,
            description=f"correlator: the events of shard {shard}'s sites for its live worker")),
            what=f"creating the consumer of shard {shard}")
        return await ShardPull(self.link.client, EVENTS_STREAM, durable).start()

    async def _kept_consumer(self, shard: int, events: ShardPull, floor: int) -> ShardPull | None:
        """The shard's subscription, after a reconnection: the same while its consumer stands where
        this worker does (a node went, the others kept it), else a new consumer from after `floor`,
        the last message this worker analysed and acknowledged (a consumer's state is in memory: a
        cluster restarted whole has lost it, while the events are on disk). None when the cluster
        did not answer: asked again after the next fetch."""
        js = self.link.js
        durable = shard_consumer(shard)
        try:
            info = await js.consumer_info(EVENTS_STREAM, durable)
            if info.delivered is not None and (info.delivered.stream_seq or 0) >= floor:
                return events
            lost = "its consumer lost its state"
        except NotFoundError:
            lost = "its consumer was lost"
        except (TimeoutError, NatsError) as exc:
            log.debug("shard %d: looking for its consumer: %s", shard, exc)
            return None
        log.warning("shard %d: %s with the cluster; resuming after message %d", shard, lost, floor,
                    extra={"shard": shard, "event": "shard_resumed", "position": floor})
        await events.close()
        with contextlib.suppress(NotFoundError):
            await retrying(lambda: js.delete_consumer(EVENTS_STREAM, durable),
                           what=f"recreating the consumer of shard {shard}")
        return await self._consumer(shard, floor)

    async def _step(self, shard: int, lease: Lease, messages: list[Msg], sites: dict[str, OwnedSite],
                    previous: asyncio.Future[None] | None) -> asyncio.Future[None]:
        """Analyse and store one batch of the shard (ShardLost when another worker owns the shard
        now); its `settled`, resolved once what it changed is published and the batch acknowledged
        (`previous`: the shard's batch before it, settled first). The batches the worker's shards
        fetch while a step runs wait for the next, which takes them all: one hand-over to a thread,
        one transaction and one round of publishes for all of them (a busy worker's steps grow, and
        with them its shards' fetches, rather than their count)."""
        loop = asyncio.get_running_loop()
        batch = Batch(shard, lease, messages, sites, loop.create_future(), loop.create_future(), previous)
        # a run stopped meanwhile (its lease lost, the worker stopping) no longer awaits them
        for future in (batch.done, batch.settled):
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._waiting.append(batch)
        if len(self._stepping) < STEPPERS:
            task = asyncio.create_task(self._steps())
            self._stepping.add(task)
            task.add_done_callback(self._stepping.discard)
        await asyncio.shield(batch.done)
        return batch.settled

    async def _steps(self) -> None:
        """Take the waiting batches, step after step, until none waits. A step's publishes and
        acknowledgements are sent while the next step is analysed, and its shards fetch their next
        batches meanwhile: each batch's are sent once the shard's batch before it is settled, so a
        site's findings go out, and its shard's acknowledgements, in order."""
        while self._waiting:
            batches, self._waiting = self._waiting, []
            try:
                await asyncio.to_thread(self._work, batches)
            except Exception as exc:  # each batch's run stops (its shard is given back)
                self._fail(batches, exc)
                continue
            for batch in batches:
                if batch.failed is None:
                    batch.done.set_result(None)
                else:
                    self._fail([batch], batch.failed)
            task = asyncio.create_task(self._finish([batch for batch in batches if batch.failed is None]))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)
            await asyncio.sleep(0)  # its publishes go out first

    @staticmethod
    def _fail(batches: Sequence[Batch], exc: BaseException) -> None:
        for batch in batches:
            for future in (batch.done, batch.settled):
                if not future.done():
                    future.set_exception(exc)

    def _work(self, batches: Sequence[Batch]) -> None:
        """Read, analyse and store the batches of several shards (in a thread: the loop stays free
        for the fetches, the leases and the acknowledgements), in one transaction; a batch whose
        analysis fails, or whose shard is lost, fails alone. Each batch's (subject, payload,
        Nats-Msg-Id) of the findings to publish, and its checkpoints due, are kept with it."""
        for batch in batches:
            try:
                parts = read_batch(batch.messages, batch.shard)
                self._open_sites(parts, batch.sites)
                batch.steps = [Step(batch.sites[name], part.position, *batch.sites[name].analysis.feed(
                    part.events, part.hosts, part.position, part.counted)) for name, part in parts.items()]
                if self.leases.expired(batch.lease):
                    raise ShardLost(batch.shard)
            except Exception as exc:
                batch.failed = exc
        kept = [batch for batch in batches if batch.failed is None]
        if not self._save([step for batch in kept for step in batch.steps]):
            for batch in kept:  # one of them is behind the store: which, each on its own
                if not self._save(batch.steps):
                    batch.failed = ShardLost(batch.shard)
        budget = STEP_CHECKPOINTS
        for batch in kept:
            if batch.failed is None:
                batch.sends = [message for step in batch.steps for message in self._messages(step)]
                batch.checkpoints = self._checkpoints(batch.steps, budget)
                budget -= len(batch.checkpoints)

    async def _finish(self, batches: Sequence[Batch]) -> None:
        """Settle a step's batches: those whose shard's batch before is settled at once, together,
        each other after the batch before it."""
        ready = [batch for batch in batches if batch.previous is None or batch.previous.done()]
        later = [batch for batch in batches if not (batch.previous is None or batch.previous.done())]
        await asyncio.gather(self._settle(ready), *(self._settle([batch]) for batch in later))

    async def _settle(self, batches: Sequence[Batch]) -> None:
        """Publish the batches' findings at once, then acknowledge each batch with one message, then
        put the checkpoints due. A batch whose shard's batch before it was not settled (its
        publishes failed) fails too: neither published nor acknowledged."""
        if not batches:
            return
        waiting = [batch.previous for batch in batches if batch.previous is not None and not batch.previous.done()]
        if waiting:
            await asyncio.wait(waiting)
        kept = []
        for batch in batches:
            before = batch.previous
            failed = None if before is None else ShardLost(batch.shard) if before.cancelled() else before.exception()
            if failed is not None:
                self._fail([batch], failed)
            else:
                kept.append(batch)
        try:
            # in order on the one connection (each task writes its message before the next starts)
            await asyncio.gather(*(self.link.publish(subject, payload, msg_id)
                                   for batch in kept for subject, payload, msg_id in batch.sends))
            for batch in kept:
                await batch.messages[-1].ack()  # acknowledges the whole batch
        except Exception as exc:
            self._fail(kept, exc)
            return
        for batch in kept:
            batch.settled.set_result(None)
        checkpoints = [checkpoint for batch in kept for checkpoint in batch.checkpoints]
        if checkpoints:  # once acknowledged: a checkpoint never stands beyond the shard's floor
            results = await asyncio.gather(*(self.checkpoints.put(site, data) for site, data in checkpoints),
                                           return_exceptions=True)
            for (site, data), result in zip(checkpoints, results, strict=True):
                if isinstance(result, BaseException):  # it costs a longer read at a takeover only
                    log.warning("site %s: its checkpoint (%d bytes) was not kept: %s", site, len(data), result)

    def _checkpoints(self, steps: Sequence[Step], most: int) -> list[tuple[str, bytes]]:
        """(site, checkpoint) of the batch's sites whose checkpoint is due, `most` of them at most
        (those due longest first); each site's next is due within `site_checkpoint_seconds`."""
        now = time.monotonic()
        due = sorted((step for step in steps if step.site.checkpoint_due <= now),
                     key=lambda step: step.site.checkpoint_due)[:max(0, most)]
        out = []
        for step in due:
            analysis = step.site.analysis
            out.append((analysis.site, self.checkpointing.dumps(analysis.position, analysis.state())))
            step.site.checkpoint_due = now + self.limits.checkpoint_every * random.uniform(CHECKPOINT_SPREAD, 1.0)
        return out

    def _save(self, steps: Sequence[Step]) -> bool:
        """The batch's site steps the store does not hold yet, in one transaction; False when a
        site's stored position is ahead (another worker wrote it: this one lost the shard)."""
        new = [step for step in steps if step.position > step.site.stored]
        if new and not self.store.save_sites([
                SiteStep(site=(a := step.site.analysis).site, position=step.position, events=a.events,
                         lines=a.lines, hosts=sorted(a.hosts), last_event=a.last_event,
                         findings=[(f["key"], f) for f in step.updated], removed=[key for key, _ in step.removed])
                for step in new]):
            return False
        for step in new:
            step.site.stored = step.position
        return True

    @staticmethod
    def _messages(step: Step) -> list[tuple[str, bytes, str]]:
        """(subject, payload, Nats-Msg-Id) of what a site's step changed: each finding new or
        updated at a revision not published yet, then each removal."""
        site, published = step.site.analysis.site, step.site.published
        subject = findings_subject(site)
        out = []
        for finding in step.updated:
            revision = int(finding.get("revision", 0))
            if revision >= published.get(finding["key"], 0):
                out.append((subject, *finding_message(site, finding)))
                published[finding["key"]] = revision + 1
        for key, revision in step.removed:
            published.pop(key, None)
            out.append((subject, *removal_message(site, key, revision)))
        return out

    async def _restore(self, shard: int, sites: dict[str, OwnedSite], floor: int) -> dict[str, int]:
        """Open the shard's stored sites, each from its checkpoint when it has one at or before
        `floor`; {site: the position it stands at} (0: from the start)."""
        names = await asyncio.to_thread(
            lambda: [row.site for row in self.store.sites() if shard_of(row.site, self.shards) == shard])
        standing: dict[str, int] = {}
        for name in names:
            sites[name] = await asyncio.to_thread(self._open_site, name)
            standing[name] = 0
            data = await retrying(lambda name=name: self.checkpoints.get(name),  # type: ignore[misc]
                                  what=f"reading the checkpoint of site {name}")
            if data is None:
                continue
            try:
                position, state = self.checkpointing.loads(data)
                if position > floor:
                    raise ValueError(f"it stands at message {position}, beyond the shard's floor {floor}")
                await asyncio.to_thread(sites[name].analysis.restore, state)
            except (ValueError, KeyError, TypeError) as exc:  # a fresh analysis reads its events again
                log.warning("site %s: checkpoint not used: %s", name, exc)
                sites[name] = await asyncio.to_thread(self._open_site, name)
                continue
            standing[name] = position
        return standing

    async def _replay(self, shard: int, sites: dict[str, OwnedSite], floor: int) -> None:
        """Feed the shard's messages up to `floor` (those already analysed) without publishing, so
        each site's rules stand where the last owner left them: each site from its checkpoint, so
        the read starts after the oldest checkpoint (or at the start, for a site that has none)."""
        if floor <= 0:
            return
        standing = await self._restore(shard, sites, floor)
        start = min(standing.values(), default=floor) + 1
        restored = sum(1 for position in standing.values() if position)
        replayed = 0
        js = self.link.js
        if start <= floor:
            reader = await retrying(lambda: js.pull_subscribe(shard_filter(shard), stream=EVENTS_STREAM, config=(
                ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                               opt_start_seq=start, inactive_threshold=30.0, mem_storage=True, num_replicas=1))),
                what=f"reading shard {shard} again")
            try:
                replayed = await self._read_again(shard, reader, sites, floor, standing)
            finally:
                with contextlib.suppress(Exception):
                    name = (await reader.consumer_info()).name
                    await reader.unsubscribe()
                    await js.delete_consumer(EVENTS_STREAM, name)
        log.info("shard %d: %d of its sites from their checkpoints, %d earlier messages read again from message %d "
                 "to resume after message %d", shard, restored, replayed, start, floor,
                 extra={"shard": shard, "event": "shard_resumed", "position": floor})

    async def _read_again(self, shard: int, reader: JetStreamContext.PullSubscription, sites: dict[str, OwnedSite],
                          floor: int, standing: dict[str, int]) -> int:
        """Feed the messages up to `floor` to each site beyond where it stands; how many were fed."""
        replayed = 0
        while True:
            try:
                messages = await reader.fetch(BATCH, timeout=FETCH_WAIT * 2)
            except TimeoutError:
                break  # the rest is gone from the stream (its retention)
            upto = [m for m in messages if stream_position(m) <= floor]
            kept = [m for m in upto if stream_position(m) > standing.get(_site_of(m.subject), 0)]
            replayed += len(kept)
            if kept:
                parts = read_batch(kept, shard)

                def feed(parts: dict[str, SitePart] = parts) -> None:
                    self._open_sites(parts, sites)
                    for name, part in parts.items():
                        sites[name].analysis.feed(part.events, part.hosts, part.position, part.counted)

                await asyncio.to_thread(feed)
            if len(upto) < len(messages) or not upto or stream_position(upto[-1]) >= floor:
                break
        return replayed


async def _settle_all(settling: collections.deque[asyncio.Future[None]]) -> None:
    """Wait until each batch is settled (raising the failure of one that could not be)."""
    while settling:
        await settling.popleft()


def _site_of(subject: str) -> str:
    found = read_subject(subject)
    return found[0] if found is not None else ""
