"""The files the server tails: their findings, their recent events, and a server-sent-event
stream that pushes every new or updated finding as it happens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from correlator.api.deps import LiveDep
from correlator.api.models import EventOut, LiveEventPage, LiveFindingList, LiveSourceOut, LiveStatus
from correlator.api.routes.analyses import ERRORS
from correlator.api.storage import client_of

router = APIRouter(prefix="/live", tags=["live"])


@router.get("", responses=ERRORS, summary="What the server tails: sources, event count, rate, errors")
def get_live_status(hub: LiveDep) -> LiveStatus:
    live = hub.analysis
    with live._lock:
        sources = [LiveSourceOut(path=s.path, source=s.source, format=s.format, zone=s.zone, lines=s.lines,
                                 unparsed=s.unparsed) for s in live.sources.values()]
        events = live.total_events
        errors = list(live.errors)
    return LiveStatus(paths=[str(p) for p in hub.paths], sources=sources, events=events,
                      findings=len(hub.snapshot()), lines_per_second=round(live.lines_per_second(), 1),
                      errors=errors)


@router.get("/findings", responses=ERRORS, summary="The findings of the tailed sources as they stand")
def list_live_findings(hub: LiveDep) -> LiveFindingList:
    return LiveFindingList.model_validate({"items": hub.snapshot()})


@router.get("/events", responses=ERRORS, summary="Recent events of the tailed sources, after a cursor")
def list_live_events(hub: LiveDep, after: Annotated[int, Query(ge=0, le=2**62)] = 0,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> LiveEventPage:
    events, total = hub.analysis.events_since(after)
    start = total - len(events)
    page = events[:limit]
    items = [EventOut.model_validate({**e.to_dict(), "seq": start + i + 1, "client": client_of(e)})
             for i, e in enumerate(page)]
    return LiveEventPage(items=items, next_cursor=start + len(page) if events else total)


@router.get("/stream", response_class=EventSourceResponse, responses=ERRORS,
            summary="Server-sent events: `finding` with each new or updated finding (the current ones first), "
            "`removed` when one is dropped; resumes after `Last-Event-ID`")
async def stream_live_findings(hub: LiveDep, request: Request,
                               last_event_id: Annotated[str | None, Header(
                                   alias="Last-Event-ID", max_length=20,
                                   description="the `id` of the last event received: the stream resumes after it "
                                   "(or starts with the current findings when it is too old)")] = None,
                               ) -> AsyncIterator[ServerSentEvent]:
    resume = int(last_event_id) if last_event_id and last_event_id.isascii() and last_event_id.isdigit() else None
    sub, first = hub.subscribe(resume)
    try:
        for event in first:
            yield ServerSentEvent(data=event.data, event=event.kind, id=str(event.seq))
        while True:
            update = await sub.queue.get()
            if update is None:  # the server is stopping
                return
            yield ServerSentEvent(data=update.data, event=update.kind, id=str(update.seq))
    finally:
        hub.unsubscribe(sub)
