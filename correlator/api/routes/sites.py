"""The fleet's sites under central live analysis (`correlator agent` at each site, `correlator
worker --live` in the centre): the sites, each one's current findings, and server-sent event
streams of their findings, per site or for all, as the live routes stream the tailed files'
(same events, same keys, `Last-Event-ID` resume; the ids are sequence numbers of the cluster's
findings stream, so a client may resume on any API node)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Request, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from correlator.api.deps import SiteFeedDep, StoreDep, off_loop
from correlator.api.models import SiteFindingList, SiteList, SiteOut
from correlator.api.routes.analyses import ERRORS
from correlator.api.storage import iso
from correlator.fleet.site_feed import SiteStream

router = APIRouter(prefix="/sites", tags=["sites"])

SitePath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The site's name, as its agents give "
                               "it (`correlator agent --site`)", examples=["plant-7"])]
LastEventId = Annotated[str | None, Header(
    alias="Last-Event-ID", max_length=20,
    description="the `id` of the last event received: the stream resumes after it (or starts with the current "
    "findings when the cluster no longer keeps what followed it)")]
STREAM_SUMMARY = ("`event: finding` with each new or updated finding (the current ones first), `event: removed` "
                  "(`{site, key, id}`) when one is no longer current; each event's data names its `site`; resumes "
                  "after `Last-Event-ID`")


@router.get("", responses=ERRORS, summary="The sites under live analysis: hosts, events analysed, findings, lag")
async def list_sites(store: StoreDep, request: Request) -> SiteList:
    feed = request.app.state.sites
    lags = feed.lags if feed is not None else None
    rows = await off_loop(store, store.sites)
    return SiteList(items=[SiteOut(site=r.site, hosts=r.hosts, events=r.events, lines=r.lines, findings=r.findings,
                                   worst_severity=r.worst,  # type: ignore[arg-type]
                                   last_event=iso(r.last_event) if r.last_event is not None else None,
                                   updated=iso(r.updated), lag=None if lags is None else lags.get(r.site, 0))
                           for r in rows])


@router.get("/stream", response_class=EventSourceResponse, responses=ERRORS,
            summary=f"Server-sent events of every site: {STREAM_SUMMARY}")
async def stream_all_site_findings(feed: SiteFeedDep, last_event_id: LastEventId = None
                                   ) -> AsyncIterator[ServerSentEvent]:
    async for event in _stream(await feed.open(None, _resume(last_event_id))):
        yield event


@router.get("/{site}/findings", responses=ERRORS, summary="A site's current live findings, worst first")
async def list_site_findings(site: SitePath, store: StoreDep) -> SiteFindingList:
    if await off_loop(store, store.site, site) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site!r}: no live worker has analysed events of it")
    found = await off_loop(store, store.site_findings, site)
    return SiteFindingList.model_validate({"site": site, "items": [{**f, "key": key} for key, f in found]})


@router.get("/{site}/stream", response_class=EventSourceResponse, responses=ERRORS,
            summary=f"Server-sent events of one site (a site with no findings yet streams them as they come): "
            f"{STREAM_SUMMARY}")
async def stream_site_findings(site: SitePath, feed: SiteFeedDep, last_event_id: LastEventId = None
                               ) -> AsyncIterator[ServerSentEvent]:
    async for event in _stream(await feed.open(site, _resume(last_event_id))):
        yield event


def _resume(last_event_id: str | None) -> int | None:
    return int(last_event_id) if last_event_id and last_event_id.isascii() and last_event_id.isdigit() else None


async def _stream(stream: SiteStream) -> AsyncIterator[ServerSentEvent]:
    try:
        for event in stream.first:
            yield ServerSentEvent(data=event.data, event=event.kind, id=str(event.seq))
        while True:
            update = await stream.subscriber.queue.get()
            if update is None:  # the server is stopping
                return
            yield ServerSentEvent(data=update.data, event=update.kind, id=str(update.seq))
    finally:
        stream.close()
