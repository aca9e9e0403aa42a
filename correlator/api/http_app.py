"""`create_app(settings)`: the FastAPI application. No global app or settings: the lifespan opens
the store, re-queues analyses a restart cut short, starts the live watchers, and undoes all of it
on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from correlator import __version__
from correlator.analysis import prepare
from correlator.api import error_bodies
from correlator.api.browsers import BrowserGuard
from correlator.api.conventions import HttpConventions
from correlator.api.deps import reject_unknown_query, require_token
from correlator.api.jobs import Analyser, JobRunner
from correlator.api.limits import BodyLimit
from correlator.api.live_hub import LiveHub
from correlator.api.models import ErrorOut
from correlator.api.observability import Metrics, RequestMiddleware
from correlator.api.routes import analyses, artifacts, live, operations, reports, service, sites
from correlator.api.settings import Settings
from correlator.api.storage import open_store
from correlator.api.webhooks import Notifier

log = logging.getLogger("correlator.api")

API_PREFIX = "/api/v1"
#: Where Swagger UI's scripts and styles are served (the swagger-ui-dist files fastapi-offline ships).
DOCS_ASSETS = "/docs/assets"


def _operation_id(route: APIRoute) -> str:
    """The handler's name: `create_analysis`, `list_findings` ... (what client generators show)."""
    return route.name


def create_app(settings: Settings) -> FastAPI:
    prepared = prepare(settings.analysis_options())  # formats and rules load once, for every analysis
    registry, rules = prepared.registry, prepared.rules

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings.database, settings.state_dir, pool_timeout=settings.pool_timeout)
        store.registry = registry  # routine lines of a timeline page are parsed with the server's formats
        analyser: JobRunner
        if settings.nats:  # the fleet: jobs for `correlator worker`s on the cluster (it connects: off the loop)
            from correlator.fleet.queue import FleetQueue

            analyser = await asyncio.to_thread(FleetQueue, settings, store)
        else:
            analyser = Analyser(settings, store)
        app.state.store = store
        app.state.analyser = analyser
        metrics.watch(analyser, store)
        notifier = Notifier(settings)
        analyser.on_finished.append(notifier.finished)
        for row in store.unfinished():  # cut short by the last shutdown: the upload is still there
            if row.upload and not store.holds_upload(row.upload):
                continue  # another server's (they share a PostgreSQL database): that one resumes it
            if row.upload:
                log.info("resuming analysis %s", row.id)
                await asyncio.to_thread(analyser.submit, row.id, analyser.lane(Path(row.upload)))
            elif not settings.nats:  # (in the fleet, a row without an upload has its bundle in the cluster)
                store.update(row.id, status="failed", phase="failed", message="the upload was lost")
        analyser.purge()
        feed = None
        if settings.nats:  # the sites' live findings, on the fleet's connection
            from correlator.fleet.queue import FleetQueue
            from correlator.fleet.site_feed import SiteFeed
            from correlator.fleet.sites import SiteLimits

            assert isinstance(analyser, FleetQueue)
            feed = await asyncio.to_thread(SiteFeed, analyser.link, SiteLimits.of(settings), store)
            metrics.watch_sites(feed)
        app.state.sites = feed
        hub = None
        if settings.live_paths:
            hub = LiveHub(settings.live_paths, settings.analysis_options(), registry=registry, rules=rules,
                          stitch_window=settings.live_stitch_window)
            hub.start()
        app.state.live = hub
        try:
            yield
        finally:
            if hub is not None:
                hub.stop()
            if feed is not None:
                feed.stop()
            analyser.shutdown()
            notifier.stop()
            store.close()

    app = FastAPI(title="correlator", version=__version__, lifespan=lifespan,
                  description="Root causes of MQTT (mosquitto) and OPC UA connection failures: upload a bundle of "
                  "logs, certificates and configs, read the findings and page through the timeline, follow "
                  "live findings of the files the server tails and of the fleet's sites. Every route but health "
                  "wants the server's bearer token when it has one.",
                  generate_unique_id_function=_operation_id, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(RequestMiddleware, metrics=metrics)
    app.state.registry = registry
    app.state.rules = rules
    app.state.live = None
    app.state.sites = None
    error_bodies.install(app)
    # the last added is the outermost: Host and Origin first, then the body limit, CORS, gzip, and
    # HEAD, OPTIONS and ETags next to the routes (the ETag is the hash of the uncompressed body)
    app.add_middleware(HttpConventions, router_app=app)
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, prefix=API_PREFIX, max_upload_bytes=settings.max_upload_bytes)
    app.add_middleware(BrowserGuard, settings=settings)
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(reject_unknown_query)])
    api.include_router(service.health_router)
    api.include_router(operations.ready_router)
    protected = APIRouter(dependencies=[Depends(require_token)],
                          responses={401: {"model": ErrorOut, "description": "Missing or wrong bearer token"}})
    for router in (service.router, analyses.router, reports.router, artifacts.router, live.router,
                   sites.router):
        protected.include_router(router)
    api.include_router(protected)
    app.include_router(api)
    app.include_router(_docs_router())
    # Swagger UI's own files, served here: plants are offline, and a CDN would leave /docs blank
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")
    app.include_router(operations.metrics_router, dependencies=[Depends(require_token)])
    return app


def _docs_router() -> APIRouter:
    """The schema and its Swagger UI, behind the token like every route but health: they are
    FastAPI's own routes, mounted where the token dependency applies."""
    docs = APIRouter(dependencies=[Depends(require_token), Depends(reject_unknown_query)], include_in_schema=False)
    schema_url = f"{API_PREFIX}/openapi.json"

    @docs.get(schema_url)
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    @docs.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=schema_url, title=f"{request.app.title} - API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    return docs
