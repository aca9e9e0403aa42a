"""Dependencies the routes declare with `Annotated` aliases. Everything comes from the app's
state (set by `create_app` and its lifespan), never from module globals, so tests can build
several apps side by side or override one dependency.

They are `async def`: each is a few attribute reads or one indexed row, and a plain `def` would
cost a thread-pool hop apiece on every request. A row read from the embedded SQLite file is read
on the event loop; one from a database over the network on a worker thread (`off_loop`), so a
slow or restarting database never stalls the loop (and /health, /ready) for everyone."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from correlator.api.jobs import JobRunner
from correlator.api.live_hub import LiveHub
from correlator.api.settings import Settings
from correlator.api.storage import AnalysisRow, Store
from correlator.fleet.site_feed import SiteFeed

P = ParamSpec("P")
R = TypeVar("R")

_bearer = HTTPBearer(auto_error=False, description="The server's token (--token / CORRELATOR_TOKEN)")


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def off_loop(store: Store, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`call(*args, **kwargs)`, a store read or write an async route makes: at once for the
    embedded SQLite file (a local read is cheaper than a thread hop), on a worker thread for a
    database over the network."""
    if store.embedded:
        return call(*args, **kwargs)
    return await run_in_threadpool(call, *args, **kwargs)


async def get_analyser(request: Request) -> JobRunner:
    analyser: JobRunner = request.app.state.analyser
    return analyser


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
AnalyserDep = Annotated[JobRunner, Depends(get_analyser)]


async def require_token(settings: SettingsDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Without a configured token (loopback only) every caller is trusted; with one, every route
    but health wants it, compared in constant time."""
    if settings.token is None:
        return
    expected = settings.token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    if credentials is None or not secrets.compare_digest(given, expected):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})


async def get_live(request: Request) -> LiveHub:
    hub: LiveHub | None = request.app.state.live
    if hub is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "live tailing is off: start `correlator serve` with files "
                            "or folders to follow")
    return hub


LiveDep = Annotated[LiveHub, Depends(get_live)]


async def get_site_feed(request: Request) -> SiteFeed:
    feed: SiteFeed | None = request.app.state.sites
    if feed is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the sites' live findings come from the NATS cluster: start "
                            "`correlator serve` with --nats (and `correlator worker --live` to analyse them)")
    return feed


SiteFeedDep = Annotated[SiteFeed, Depends(get_site_feed)]


async def get_analysis(analysis_id: str, store: StoreDep) -> AnalysisRow:
    row = await off_loop(store, store.get, analysis_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no analysis {analysis_id!r}")
    return row


AnalysisDep = Annotated[AnalysisRow, Depends(get_analysis)]


async def get_finished_analysis(row: AnalysisDep) -> AnalysisRow:
    """Findings, timeline and sources exist once the analysis is done; before, say so (409) with
    what it is doing, rather than an empty list that reads as 'nothing wrong'."""
    if row.status == "failed":
        raise HTTPException(status.HTTP_409_CONFLICT, f"analysis {row.id} failed: {row.message}")
    if row.status != "done":
        raise HTTPException(status.HTTP_409_CONFLICT, f"analysis {row.id} is {row.status} ({row.phase}, "
                            f"{row.progress:.0%}): try again when its status is done")
    return row


FinishedDep = Annotated[AnalysisRow, Depends(get_finished_analysis)]


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not take: FastAPI ignores them, and a typo
    (`?serverity=high`) would answer every finding as if no filter had been asked for."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in known]
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise RequestValidationError([{"type": "extra_forbidden", "loc": ("query", name),
                                       "msg": f"unknown query parameter (this route takes: {accepted})",
                                       "input": request.query_params.get(name)} for name in unknown])
