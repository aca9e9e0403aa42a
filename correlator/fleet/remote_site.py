"""`correlator tui --nats URL --site SITE`: the TUI's live screens over a remote site.

The site's events, as its agents published them, are followed from the cluster with an ordered
consumer (from the oldest the cluster keeps) and fed to the live analysis of `watch`
(tui.sources.LiveEventSource over a LiveAnalysis of no paths, `feed_events`): the screens show
the findings, the timeline and the evidence as they are for a local watch, and the findings are
those the site's live worker makes, since a site's analysis depends on its events alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from correlator.analysis import Options
from correlator.fleet.agent import EVENTS_STREAM
from correlator.fleet.link import Link, retrying, server_urls
from correlator.fleet.sites import check_site, event_of, events_filter, host_of
from correlator.tui.sources import Changed, LiveEventSource, SourceStatus

#: Events fed to the analysis at once at most.
BATCH = 500
#: Seconds a batch waits for more events before it is fed.
GATHER = 0.05
#: Seconds the events-per-second figure looks back over.
RATE_WINDOW = 5.0


@dataclass
class _Seen:
    """A log of the site as the status bar lists it."""

    file: str
    format: str
    events: int = 0


class RemoteSiteSource(LiveEventSource):
    """The events of `site` on the cluster `nats`, analysed here as they arrive."""

    def __init__(self, nats: str, site: str, options: Options | None = None) -> None:
        super().__init__([], options)
        self.site = check_site(site)
        self.link = Link(server_urls(nats), name=f"correlator-tui@{site}")
        self._follower: Future[None] | None = None
        self._sources: dict[tuple[str, str], _Seen] = {}
        """(host, source) -> what the status bar lists."""
        self._arrivals: deque[tuple[float, int]] = deque()
        self._rate_lock = threading.Lock()

    def start(self, changed: Changed) -> None:
        self._changed = changed
        self._follower = self.link.submit(self._follow())

    def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
        self.link.close()
        self.store.close()

    async def _follow(self) -> None:
        try:
            await self._read()
        except Exception as exc:  # shown in the status bar's errors, as a watch's unreadable file is
            self.errors.append(f"following site {self.site}: {type(exc).__name__}: {exc}")
            if self._changed is not None:
                self._changed()
            raise

    async def _read(self) -> None:
        js = self.link.js
        while True:
            try:
                events = await retrying(lambda: js.subscribe(
                    events_filter(self.site), stream=EVENTS_STREAM, ordered_consumer=True,
                    config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)), what=f"following site {self.site}")
                break
            except NotFoundError:  # no agent has published yet: the stream comes with the first
                await asyncio.sleep(0.5)
        try:
            while True:
                batch = [await events.next_msg(timeout=None)]
                with contextlib.suppress(NatsTimeout, TimeoutError):
                    while len(batch) < BATCH:
                        batch.append(await events.next_msg(timeout=GATHER))
                read = []
                for msg in batch:
                    try:
                        event = event_of(msg.data)
                    except ValueError as exc:
                        self.errors.append(f"{msg.subject}: {exc}")
                        continue
                    read.append(event)
                    seen = self._sources.setdefault((host_of(msg.subject), event.source),
                                                    _Seen(event.file, event.format.split("/")[0]))
                    seen.events += 1
                with self._rate_lock:
                    self._arrivals.append((time.monotonic(), len(read)))
                await asyncio.to_thread(self.analysis.feed_events, read)
        finally:
            with contextlib.suppress(Exception):
                await events.unsubscribe()

    def source_info(self) -> list[SourceStatus]:
        return [SourceStatus(f"{source}@{host}" if host else source, seen.file, seen.format, "", seen.events, 0)
                for (host, source), seen in sorted(self._sources.items())]

    def lines_per_second(self) -> float:
        with self._rate_lock:
            now = time.monotonic()
            while self._arrivals and self._arrivals[0][0] <= now - RATE_WINDOW:
                self._arrivals.popleft()
            return sum(n for _, n in self._arrivals) / RATE_WINDOW

    def status(self) -> str:
        return f"live: site {self.site}"
