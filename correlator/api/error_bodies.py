"""Every error is JSON (`ErrorOut`): the status again, a short code and a sentence for a person.
Validation errors say which parameter is wrong; a bug answers 500 with no trace (the trace goes
to the server log)."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from correlator.api.conventions import allowed_methods
from correlator.api.models import ErrorDetail, ErrorOut
from correlator.api.storage import RETRY_AFTER, StoreUnavailable
from correlator.errors import CorrelatorError
from correlator.fleet import QueueUnavailable

log = logging.getLogger("correlator.api")


def error_response(status: int, message: str, details: list[ErrorDetail] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    try:
        code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        code = "error"
    body = ErrorOut(status=status, error=code, message=message, details=details or [])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _location(loc: tuple[int | str, ...]) -> list[str | int]:
    return [part for part in loc if part not in ("body",)] or list(loc)


def install(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.url.path}"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
            # every method of every route at this path: the router's own Allow names only those of
            # the first route that matched the path, and GET and POST /analyses are two routes
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request.app, request.scope))}
        return error_response(exc.status_code, message, headers=headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [ErrorDetail(loc=_location(tuple(e.get("loc", ()))), message=str(e.get("msg", "invalid")))
                   for e in exc.errors()]
        text = "; ".join(f"{'.'.join(map(str, d.loc))}: {d.message}" for d in details[:5])
        return error_response(422, f"invalid request: {text}" if text else "invalid request", details)

    async def correlator_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(400, str(exc))

    async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("the database does not answer on %s %s: %s", request.method, request.url.path, exc)
        return error_response(503, "the database does not answer; try again shortly",
                              headers={"Retry-After": str(RETRY_AFTER)})
    async def queue_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("the NATS cluster does not answer on %s %s: %s", request.method, request.url.path, exc)
        return error_response(503, f"the job queue does not answer; try again shortly ({exc})",
                              headers={"Retry-After": "5"})

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal error; the server log has the details")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(CorrelatorError, correlator_error)
    app.add_exception_handler(StoreUnavailable, store_unavailable)
    app.add_exception_handler(QueueUnavailable, queue_unavailable)
    app.add_exception_handler(Exception, internal_error)
