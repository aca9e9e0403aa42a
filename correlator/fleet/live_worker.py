"""`correlator worker --live`: the central live analysis of the sites whose edge agents publish
events (agent.py), sharded by site over any number of live workers.

- **Each site is one worker's.** A worker analyses a site only while it holds the site's lease in
  the bucket `correlator-site-owners` (leases.py, as jobs are held: created atomically, renewed
  with a revision check every third of `site_lease`, left to lapse by a worker that dies). Each
  worker takes sites until it has its share (the sites with events over the live workers that
  keep a key in `correlator-live-workers`), so sites spread over the workers.
- **A site's events in order.** The owner reads them through the site's durable consumer
  (acknowledge-all) and analyses each batch with the live analysis of one machine
  (live_analysis.LiveAnalysis, fed after its timeline stage: the agent ordered and stitched them).
  The findings new, updated or no longer current are written into the store with the position
  reached (`Store.save_site`), published to `correlator.findings.<site>`, and only then is the
  batch acknowledged.
- **A worker's death hands its sites over.** When its leases lapse, other workers claim its sites.
  The new owner resumes after the consumer's last acknowledged event: it first reads the site's
  earlier events again, without publishing, so the rules stand where they stood (the analysis
  depends on the events alone, so it makes the same findings with the same revisions), then
  creates the consumer anew from there (the dead owner's unacknowledged deliveries would
  otherwise come back after newer ones) and goes on. Events the dead worker analysed and stored
  but did not acknowledge are analysed again: the store already holds their step (it is not
  written twice), and their findings are published again with the same `Nats-Msg-Id` (dropped as
  duplicates); a finding is published only at a revision at least the stored one, so a site's
  findings subject never goes back to an older revision.
- **A worker cut off** stops a site whose lease it could not renew for two thirds of `site_lease`
  before another can take it (leases.py), and a write from behind the stored position changes
  nothing (`save_site`).
- **A stopped worker** (SIGTERM, Ctrl-C) gives its leases back at once.

What the analysis does not have centrally: the artifacts (configs, certificates) of the sites,
which agents do not send, and absences while a site is quiet (time moves with the events only,
so a site analysed again makes the same findings).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import zlib
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from correlator.analysis import Options, prepare
from correlator.api.finding_keys import ShownFindings
from correlator.api.settings import Settings
from correlator.api.storage import Store
from correlator.engine.rules import Rule
from correlator.fleet.agent import EVENTS_STREAM
from correlator.fleet.leases import Lease, Leases
from correlator.fleet.link import Link, retrying, server_urls
from correlator.fleet.sites import (
    LIVE_WORKERS,
    SiteLimits,
    ensure_live,
    event_of,
    events_filter,
    finding_message,
    findings_subject,
    host_of,
    removal_message,
    site_consumer,
    site_subjects,
)
from correlator.formats.registry import Registry
from correlator.live_analysis import LiveAnalysis, LiveUpdate
from correlator.model import Event
from correlator.report_model import Finding

log = logging.getLogger("correlator.fleet")

#: Events one fetch takes at most (one step of a site's analysis, one store transaction).
BATCH = 500
#: Seconds one fetch waits on a quiet site before asking again.
FETCH_WAIT = 0.5
#: Seconds between two looks for sites to take.
SCAN_EVERY = 0.5
#: Seconds a delivered event may stay unacknowledged before the consumer sends it again: long,
#: since an owner acknowledges each batch once analysed, and a new owner recreates the consumer.
ACK_WAIT = 300.0
#: Seconds a site whose analysis failed waits before its lease is given back.
FAILED_PAUSE = 1.0
STOP_TIMEOUT = 15.0


class SiteLost(Exception):
    """Another worker owns the site now (this one was cut off, or too slow to renew)."""


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
        self.position = 0
        self.last_event: float | None = None

    def _on_update(self, update: LiveUpdate) -> None:
        self._changed.extend(update.findings)

    def feed(self, events: Sequence[Event], hosts: set[str], position: int
             ) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
        """Analyse one batch: (the findings new or updated, by key; (key, last revision) of those
        no longer current)."""
        self._changed = []
        self.live.feed_events(events)
        updated, gone = self.shown.step(self.live.findings(), self._changed)
        self.events += len(events)
        self.position = position
        self.hosts |= hosts
        if events:
            newest = max(e.ts for e in events)
            self.last_event = newest if self.last_event is None else max(self.last_event, newest)
        removed = [(key, self.revisions.pop(key, 0)) for key in gone]
        for finding in updated:
            self.revisions[finding["key"]] = int(finding.get("revision", 0))
        return updated, removed


def read_batch(messages: Sequence[Msg], site: str) -> tuple[list[Event], set[str]]:
    """The events of fetched messages and the hosts that sent them; a message that is no event is
    logged and skipped (it is still acknowledged with the batch)."""
    events = []
    hosts = set()
    for msg in messages:
        try:
            events.append(event_of(msg.data))
        except ValueError as exc:
            log.warning("site %s: message %s on %s skipped: %s", site, msg.metadata.sequence.stream, msg.subject, exc)
            continue
        hosts.add(host_of(msg.subject))
    return events, hosts


class LiveWorker:
    """One live worker process: `run()` until stopped (SIGTERM, Ctrl-C)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        assert settings.nats
        self.settings = settings
        self.store = store
        self.limits = SiteLimits.of(settings)
        self.name = f"correlator-live@{socket.gethostname()}:{os.getpid()}"
        self.key = re.sub(r"[^A-Za-z0-9_-]", "_", self.name)
        """The worker's key in the workers' bucket (a key takes no '@' or ':')."""
        self.link = Link(server_urls(settings.nats), name=self.name)
        try:
            owners, self.workers = self.link.run(ensure_live(self.link.js, self.limits))
        except BaseException:
            self.link.close()
            raise
        self.leases = Leases(owners, self.name, self.limits.lease)
        self.options = settings.analysis_options()
        prepared = prepare(self.options)  # formats and rules load once, for every site
        self.registry, self.rules = prepared.registry, prepared.rules
        self.runs: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._present = 0.0

    def run(self) -> None:
        main = self.link.submit(self._main())
        try:
            main.result()
        finally:
            self.close(main)

    def close(self, main: Future[None] | None = None) -> None:
        """Give the sites back (their leases removed: another worker takes them at once)."""
        self.link.loop.call_soon_threadsafe(self._stopping.set)
        if main is not None:
            with contextlib.suppress(Exception):
                main.result(timeout=STOP_TIMEOUT)
        self.link.close()

    async def _main(self) -> None:
        log.info("live worker %s taking sites", self.name)
        while not self._stopping.is_set():
            try:
                await self._balance()
            except Exception as exc:  # the cluster does not answer now: look again
                log.debug("looking for sites: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), SCAN_EVERY)
        runs = list(self.runs.values())
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    async def _balance(self) -> None:
        """Say this worker runs, and take free sites up to its share."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._present >= self.limits.heartbeat:
            await self.workers.put(self.key, self.name.encode())
            self._present = loop.time()
        sites = await site_subjects(self.link.js)
        present = await self.link.js.stream_info(f"KV_{LIVE_WORKERS}", subjects_filter=f"$KV.{LIVE_WORKERS}.>")
        workers = max(1, len(present.state.subjects or {}))
        share = -(-len(sites) // workers)
        # each worker tries the sites in an order of its own, so they do not all race for the same
        for site in sorted(sites, key=lambda s: zlib.crc32(f"{self.name}/{s}".encode())):
            if len(self.runs) >= share:
                break
            if site in self.runs:
                continue
            lease = await self.leases.claim(site)
            if lease is None:
                continue
            task = asyncio.create_task(self._own(site, lease))
            self.runs[site] = task
            task.add_done_callback(lambda _, site=site: self.runs.pop(site, None))  # type: ignore[misc]

    async def _own(self, site: str, lease: Lease) -> None:
        run = asyncio.current_task()
        assert run is not None
        beat = asyncio.create_task(self._heartbeat(site, lease, run))
        lost = False
        try:
            await self._analyse(site, lease)
        except SiteLost:
            lost = True
            log.warning("site %s: another worker owns it now; this one stops analysing it", site)
        except asyncio.CancelledError:
            lost = self.leases.expired(lease)
            if not self._stopping.is_set() and not lost:
                raise
        except Exception:
            log.exception("site %s: its analysis stopped; the site is given back", site)
            await asyncio.sleep(FAILED_PAUSE)
        finally:
            beat.cancel()
            if not lost:
                with contextlib.suppress(Exception):  # else its lease lapses by itself
                    await self.leases.release(site, lease)

    async def _heartbeat(self, site: str, lease: Lease, run: asyncio.Task[None]) -> None:
        """Renew the site's lease; a run whose lease went to another worker, or could not be
        renewed in time, is stopped (leases.py)."""
        while True:
            await asyncio.sleep(self.limits.heartbeat)
            try:
                kept = await self.leases.renew(site, lease)
            except Exception as exc:
                log.debug("renewing the lease of site %s: %s", site, exc)
                kept = not self.leases.expired(lease)
            if not kept:
                log.warning("site %s: this worker lost its lease (cut off from the cluster); stopping", site)
                lease.renewed = float("-inf")  # expired: the run's end does not give back another's lease
                run.cancel()
                return

    async def _analyse(self, site: str, lease: Lease) -> None:
        js = self.link.js
        durable = site_consumer(site)
        stored = await asyncio.to_thread(self.store.site, site)
        stored_position = stored.position if stored is not None else 0
        try:
            info = await retrying(lambda: js.consumer_info(EVENTS_STREAM, durable),
                                  what=f"reading the consumer of site {site}")
            floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
            if not floor and info.config.opt_start_seq:  # made by an owner that acknowledged nothing yet
                floor = info.config.opt_start_seq - 1
            await retrying(lambda: js.delete_consumer(EVENTS_STREAM, durable),
                           what=f"recreating the consumer of site {site}")
        except NotFoundError:  # a site never analysed (or its consumer was removed): from the store's position
            floor = stored_position
        published = {key: int(f.get("revision", 0))
                     for key, f in await asyncio.to_thread(self.store.site_findings, site)}
        analysis = await asyncio.to_thread(SiteAnalysis, site, self.options, self.registry, self.rules)
        await self._replay(site, analysis, floor)
        await retrying(lambda: js.add_consumer(EVENTS_STREAM, ConsumerConfig(
            durable_name=durable, name=durable, filter_subject=events_filter(site), ack_policy=AckPolicy.ALL,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=floor + 1, ack_wait=ACK_WAIT,
            max_deliver=-1, description=f"correlator: the events of site {site} for its live worker")),
            what=f"creating the consumer of site {site}")
        events = await js.pull_subscribe_bind(durable=durable, stream=EVENTS_STREAM)
        log.info("site %s taken by %s: resuming after event %d", site, self.name, floor,
                 extra={"site": site, "event": "site_taken", "position": floor})
        try:
            while True:
                try:
                    messages = await events.fetch(BATCH, timeout=FETCH_WAIT)
                except (TimeoutError, NatsError) as exc:  # a quiet site, or a node failing over
                    if not isinstance(exc, NatsTimeout):
                        log.debug("site %s: fetching events: %s", site, exc)
                        await asyncio.sleep(0.2)
                    continue
                if not messages:
                    continue
                batch, hosts = read_batch(messages, site)
                position = messages[-1].metadata.sequence.stream
                updated, removed = await asyncio.to_thread(analysis.feed, batch, hosts, position)
                if self.leases.expired(lease):
                    raise SiteLost(site)
                if position > stored_position:
                    saved = await asyncio.to_thread(
                        self.store.save_site, site, position=position, events=analysis.events,
                        hosts=sorted(analysis.hosts), last_event=analysis.last_event,
                        findings=[(f["key"], f) for f in updated], removed=[key for key, _ in removed])
                    if not saved:
                        raise SiteLost(site)
                    stored_position = position
                subject = findings_subject(site)
                for finding in updated:
                    revision = int(finding.get("revision", 0))
                    if revision >= published.get(finding["key"], 0):
                        await self.link.publish(subject, *finding_message(site, finding))
                        published[finding["key"]] = revision + 1
                for key, revision in removed:
                    published.pop(key, None)
                    await self.link.publish(subject, *removal_message(site, key, revision))
                await messages[-1].ack()  # acknowledges the whole batch
        finally:
            with contextlib.suppress(Exception):
                await events.unsubscribe()

    async def _replay(self, site: str, analysis: SiteAnalysis, floor: int) -> None:
        """Feed the site's events up to `floor` (those already analysed) without publishing, so
        the rules stand where the last owner left them."""
        if floor <= 0:
            return
        js = self.link.js
        reader = await retrying(lambda: js.pull_subscribe(events_filter(site), stream=EVENTS_STREAM, config=(
            ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0,
                           mem_storage=True, num_replicas=1))), what=f"reading site {site} again")
        replayed = 0
        try:
            while analysis.position < floor:
                try:
                    messages = await reader.fetch(BATCH, timeout=FETCH_WAIT * 4)
                except TimeoutError:
                    break  # the rest is gone from the stream (its retention)
                kept = [m for m in messages if m.metadata.sequence.stream <= floor]
                if kept:
                    batch, hosts = read_batch(kept, site)
                    await asyncio.to_thread(analysis.feed, batch, hosts, kept[-1].metadata.sequence.stream)
                    replayed += len(kept)
                if len(kept) < len(messages):
                    break
        finally:
            with contextlib.suppress(Exception):
                name = (await reader.consumer_info()).name
                await reader.unsubscribe()
                await js.delete_consumer(EVENTS_STREAM, name)
        log.info("site %s: %d earlier events read again to resume after event %d", site, replayed, floor)
