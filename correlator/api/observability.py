"""What an operator watches: Prometheus metrics (`GET /metrics`), a request id on every request
and in every log line made while serving it, and one log line per request.

Metrics live in a registry per app (tests run several apps in one process):

- `correlator_queue_depth{lane}`: analyses waiting, per lane (small, large; with `--nats`, `fleet`:
  the jobs on the cluster no worker has taken yet);
- `correlator_analyses_running`: analysis processes at work (with `--nats`: jobs workers hold);
- `correlator_jobs_redelivered_total` (with `--nats`): jobs a worker received again after the one
  that had them went silent (killed, cut off), over the whole cluster;
- `correlator_analyses{status}`: kept analyses by status (queued, running, done, failed);
- `correlator_site_lag{site}` (with `--nats`): messages of each site on the cluster that no live
  worker has analysed yet (fleet/sites.py, `site_lags`);
- `correlator_analysis_seconds{status}`: how long finished analyses took;
- `correlator_http_request_duration_seconds{method,route,status}`: request latency, by route
  template (`/api/v1/analyses/{analysis_id}`), so ids do not explode the label set.

The request id is the client's `X-Request-ID` when it sends a sane one (a proxy's), else a new
one; it is answered in `X-Request-ID` and put on log records by `RequestIdFilter`.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from correlator.api.context import request_id
from correlator.api.jobs import JobRunner
from correlator.api.storage import AnalysisRow, Store
from correlator.fleet.site_feed import SiteFeed

log = logging.getLogger("correlator.api")
access = logging.getLogger("correlator.api.access")

HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

#: Request latency buckets (seconds): the API's aim is milliseconds for reads, seconds for uploads.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ANALYSIS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
STATUSES = ("queued", "running", "done", "failed")


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class _StateCollector(Collector):
    """Gauges read at scrape time from the scheduler and the store: always current, no upkeep."""

    def __init__(self, analyser: JobRunner, store: Store) -> None:
        self.analyser = analyser
        self.store = store

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily("correlator_queue_depth", "Analyses waiting for a slot, per lane", labels=["lane"])
        for lane, count in self.analyser.depth().items():
            depth.add_metric([lane], count)
        yield depth
        yield GaugeMetricFamily("correlator_analyses_running", "Analysis processes at work",
                                value=self.analyser.running())
        redelivered = self.analyser.redelivered()
        if redelivered is not None:
            yield CounterMetricFamily("correlator_jobs_redelivered", "Jobs received again by a worker after the "
                                      "worker that had them went silent", value=redelivered)
        kept = GaugeMetricFamily("correlator_analyses", "Kept analyses by status", labels=["status"])
        counts = self.store.status_counts()
        for status in STATUSES:
            kept.add_metric([status], counts.get(status, 0))
        yield kept


class _SiteLagCollector(Collector):
    """The sites' lag as the feed last read it (it reads the cluster every few seconds: a scrape
    never waits for NATS)."""

    def __init__(self, feed: SiteFeed) -> None:
        self.feed = feed

    def collect(self) -> Iterable[Metric]:
        lag = GaugeMetricFamily("correlator_site_lag", "Messages of a site on the cluster no live worker has "
                                "analysed yet", labels=["site"])
        for site, count in sorted(self.feed.lags.items()):
            lag.add_metric([site], count)
        yield lag


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram("correlator_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.analysis = Histogram("correlator_analysis_seconds", "Time an analysis took, from its start to its end",
                                  ["status"], buckets=ANALYSIS_BUCKETS, registry=self.registry)

    def watch(self, analyser: JobRunner, store: Store) -> None:
        self.registry.register(_StateCollector(analyser, store))
        analyser.on_finished.append(self.finished)

    def watch_sites(self, feed: SiteFeed) -> None:
        self.registry.register(_SiteLagCollector(feed))

    def finished(self, row: AnalysisRow, seconds: float) -> None:
        self.analysis.labels(row.status).observe(seconds)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestMiddleware:
    """Pure ASGI (streams pass through untouched): the request id, the latency metric and the
    access log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Request(scope).headers.get(HEADER)
        rid = given if given and _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (HEADER.lower().encode(), rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            template = _template(scope)
            self.metrics.latency.labels(scope["method"], template, str(status)).observe(seconds)
            extra: dict[str, Any] = {"method": scope["method"], "path": scope["path"], "status": status,
                                     "ms": round(seconds * 1000, 2)}
            access.info("%s %s %s %.1f ms", scope["method"], scope["path"], status, seconds * 1000, extra=extra)
            request_id.reset(token)


def _template(scope: Scope) -> str:
    """The route template of a request (`/api/v1/analyses/{analysis_id}`), 'unmatched' for none.
    An included router's route knows only its own part of the path: the part before it is the
    concrete path's, which has no parameters."""
    route = getattr(scope.get("route"), "path", None)
    if not isinstance(route, str):
        return "unmatched"
    path = scope["path"].strip("/").split("/")
    tail = [part for part in route.strip("/").split("/") if part]
    return "/" + "/".join(path[:len(path) - len(tail)] + tail)


def log_config(level: str, fmt: str) -> dict[str, Any]:
    """uvicorn's `log_config` for `correlator serve`: one line per record, JSON (`fmt="json"`,
    with the request id and the fields a record carries) or text; uvicorn's own access log is
    off (RequestMiddleware writes one line per request with its id and time)."""
    formatter: dict[str, Any]
    if fmt == "json":
        formatter = {"()": "pythonjsonlogger.json.JsonFormatter",
                     "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                     "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
    else:
        formatter = {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default", "filters": ["request_id"],
                                 "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "correlator": {"handlers": ["default"], "level": level.upper(), "propagate": False},
        },
    }
