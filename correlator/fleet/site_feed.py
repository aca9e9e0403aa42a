"""An API node's side of the central live analysis: the sites' findings as server-sent events,
and each site's lag for `/metrics`.

A site stream follows the findings stream (`CORRELATOR_FINDINGS`, sites.py) from a position with
an ordered consumer of its own, so any API node serves any site, and the SSE `id` of an event is
its sequence number on that stream: a client that reconnects with `Last-Event-ID`, to this node or
another, resumes after it while the stream still keeps what followed; one that was gone longer
(or a new one) first gets the current findings from the store, then what the stream adds.
Messages cross from the link's loop to the server's loop through the live hub's bounded
subscriber queues (api/live_hub.py), so a slow dashboard never holds the connection up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from correlator.api.live_hub import StreamEvent, Subscriber, removal
from correlator.api.storage import Store
from correlator.fleet.link import Link, retrying
from correlator.fleet.sites import (
    FINDINGS_STREAM,
    FINDINGS_SUBJECTS,
    LAG_SITES,
    SiteLimits,
    ensure_live,
    findings_subject,
    lag_view,
    site_lags,
)

log = logging.getLogger("correlator.api")

#: Seconds between two looks at the sites' lag.
LAG_EVERY = 2.0
LAG_TIMEOUT = 5.0


class SiteStream:
    """One client's stream: what to send first, then `subscriber.queue` (None: the server stops)."""

    def __init__(self, subscriber: Subscriber, first: list[StreamEvent], close: Callable[[], None]) -> None:
        self.subscriber = subscriber
        self.first = first
        self.close = close


def stream_event(seq: int, body: dict[str, Any]) -> StreamEvent | None:
    """A findings message as an SSE event (None for one that is neither kind)."""
    if body.get("kind") == "finding" and isinstance(body.get("finding"), dict):
        return StreamEvent(seq, "finding", {"site": body.get("site"), **body["finding"]})
    if body.get("kind") == "removed" and isinstance(body.get("key"), str):
        return StreamEvent(seq, "removed", {"site": body.get("site"), **removal(body["key"])})
    return None


class SiteFeed:
    def __init__(self, link: Link, limits: SiteLimits, store: Store) -> None:
        self.link = link
        self.store = store
        link.run(ensure_live(link.js, limits))
        self.lags: dict[str, int] = {}
        """Messages of each site no live worker has analysed yet (refreshed every LAG_EVERY s)."""
        self._lag_turn = 0
        """Where among the lagging sites the next look starts counting (sites.site_lags)."""
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch_lags, name="correlator-site-lags", daemon=True)
        self._thread.start()

    def _watch_lags(self) -> None:
        while not self._stopping.wait(LAG_EVERY):
            try:
                self.lags = self._read_lags()
            except Exception as exc:  # keep the last numbers; readiness says when the link is down
                log.debug("reading the sites' lag failed: %s", exc)

    def _read_lags(self) -> dict[str, int]:
        """Each site's lag (sites.site_lags); the store's positions are read only when a shard lags."""
        view = self.link.run(lag_view(self.link.js), timeout=LAG_TIMEOUT)
        positions = {row.site: row.position for row in self.store.sites()} if view.lagging() else {}
        lags = self.link.run(site_lags(self.link.js, view, positions, LAG_SITES, self._lag_turn),
                             timeout=LAG_TIMEOUT * 4)
        self._lag_turn += LAG_SITES
        return lags

    def stop(self) -> None:
        """End the open streams (the link is its owner's to close)."""
        self._stopping.set()
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            with contextlib.suppress(RuntimeError):  # loop already closed
                sub.loop.call_soon_threadsafe(sub.put, None)

    async def open(self, site: str | None, last_event_id: int | None) -> SiteStream:
        """A stream of one site's findings (or every site's, `site` None), resumed after
        `last_event_id` when the cluster still keeps what followed it. Call on the server's loop."""
        sub = Subscriber(asyncio.get_running_loop())
        info = await asyncio.wrap_future(self.link.submit(retrying(
            lambda: self.link.js.stream_info(FINDINGS_STREAM), what="reading the findings stream")))
        first_seq, last_seq = info.state.first_seq, info.state.last_seq
        first: list[StreamEvent] = []
        if last_event_id is not None and first_seq - 1 <= last_event_id <= last_seq:
            start = last_event_id + 1
        else:  # the findings as they stand, then what the stream adds after them
            start = last_seq + 1
            sites = [site] if site is not None else [row.site for row in await asyncio.to_thread(self.store.sites)]
            for name in sites:
                for _, finding in await asyncio.to_thread(self.store.site_findings, name):
                    first.append(StreamEvent(last_seq, "finding", {"site": name, **finding}))

        def forward(msg: Msg) -> None:
            try:
                event = stream_event(msg.metadata.sequence.stream, json.loads(msg.data))
            except (ValueError, TypeError):
                event = None
            if event is not None:
                with contextlib.suppress(RuntimeError):
                    sub.loop.call_soon_threadsafe(sub.put, event)

        async def callback(msg: Msg) -> None:
            forward(msg)

        subject = findings_subject(site) if site is not None else FINDINGS_SUBJECTS
        follower = await asyncio.wrap_future(self.link.submit(self.link.js.subscribe(
            subject, stream=FINDINGS_STREAM, cb=callback, ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start))))
        with self._lock:
            self._subscribers.add(sub)

        def close() -> None:
            with self._lock:
                self._subscribers.discard(sub)
            if not self.link.loop.is_closed():
                self.link.submit(follower.unsubscribe())

        return SiteStream(sub, first, close)
