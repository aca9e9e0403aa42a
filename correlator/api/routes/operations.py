"""For the platform running the server: readiness (no token, as health) and Prometheus metrics
(the token, when the server has one; Prometheus sends it with `authorization`)."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from correlator.api.jobs import JobRunner
from correlator.api.models import ErrorOut, ReadyOut
from correlator.api.storage import Store

ready_router = APIRouter(tags=["service"])
metrics_router = APIRouter(tags=["service"])

#: Free space (bytes) the state folder needs for the server to take uploads.
MIN_FREE_BYTES = 64 * 1024**2


def readiness(request: Request) -> list[str]:
    """Why the server cannot take work now (empty: ready)."""
    problems = []
    store: Store | None = getattr(request.app.state, "store", None)
    analyser: JobRunner | None = getattr(request.app.state, "analyser", None)
    if store is None or analyser is None:
        return ["starting or stopping"]
    try:
        store.status_counts()
    except Exception as exc:  # the database is the server's memory: any failure means not ready
        problems.append(f"the database does not answer ({type(exc).__name__})")
    if not analyser.accepting():
        problems.append("the NATS cluster does not answer" if request.app.state.settings.nats else
                        "the analysis scheduler is not running")
    try:
        free = shutil.disk_usage(store.state_dir).free
        if free < MIN_FREE_BYTES:
            problems.append(f"the state folder has {free // 1024**2} MB free, less than {MIN_FREE_BYTES // 1024**2}")
    except OSError as exc:
        problems.append(f"the state folder cannot be read ({exc.strerror})")
    return problems


@ready_router.get("/ready", summary="Can the server take work now (no token needed)",
                  responses={503: {"model": ReadyOut, "description": "Not ready, with the reasons"}})
async def ready(request: Request) -> Response:
    store: Store | None = getattr(request.app.state, "store", None)
    # a database over the network is asked on a worker thread: a restarting one must not stall the loop
    problems = readiness(request) if store is None or store.embedded else await run_in_threadpool(readiness, request)
    body = ReadyOut(status="not ready" if problems else "ready", problems=problems)
    code = status.HTTP_503_SERVICE_UNAVAILABLE if problems else status.HTTP_200_OK
    return JSONResponse(body.model_dump(), status_code=code, headers={"Retry-After": "5"} if problems else None)


@metrics_router.get("/metrics", summary="Prometheus metrics: queue depth, analyses by status, analysis seconds, "
                    "request latency", response_class=Response,
                    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                     "description": "Prometheus text exposition format"},
                               401: {"model": ErrorOut, "description": "Missing or wrong bearer token"}})
async def metrics(request: Request) -> Response:
    store: Store = request.app.state.store
    response: Response = (request.app.state.metrics.render() if store.embedded
                          else await run_in_threadpool(request.app.state.metrics.render))
    return response
