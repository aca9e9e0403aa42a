"""One body limit for every route, enforced while the body is read (ASGI `receive`), never after
it was spooled: a declared `Content-Length` over the limit is answered 413 before one byte of the
body is read, and a chunked body is cut off at the first chunk past it. Bounded memory and disk
whatever the route does with its body (a JSON model, a multipart form, a streamed upload).

Only bundle uploads may be as large as `--max-upload-mb`; routes that take certificate files or a
JSON document have smaller limits of their own, under that same ceiling.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from correlator.api.error_bodies import error_response

MB = 1024**2
#: Routes that take a bundle (the path below the API prefix): up to the server's upload limit.
UPLOAD_ROUTES = frozenset({("POST", "/analyses")})
#: Certificate files (1 MB each at most) and their CA files in one multipart form.
FILE_ROUTES = frozenset({("POST", "/certificates/inspect")})
FILES_BODY = 16 * MB
#: Every other body: a JSON document (a probe carries a few PEM blocks).
SMALL_BODY = 1 * MB


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body outgrows its route's limit; an HTTPException, so the
    route's own clean-up runs and the error handler answers 413 in the one JSON error shape."""

    def __init__(self, limit: int, upload: bool) -> None:
        what = "upload" if upload else "request body"
        hint = " (--max-upload-mb)" if upload else ""
        super().__init__(413, f"{what} larger than the limit of {limit} bytes{hint}")


class BodyLimit:
    """ASGI middleware: every http request's body is counted as it arrives."""

    def __init__(self, app: ASGIApp, *, prefix: str, max_upload_bytes: int) -> None:
        self.app = app
        self.prefix = prefix
        self.max_upload_bytes = max_upload_bytes

    def limit_of(self, method: str, path: str) -> tuple[int, bool]:
        """The route's limit, and whether it takes uploads."""
        route = (method, path.removeprefix(self.prefix).rstrip("/"))
        if route in UPLOAD_ROUTES:
            return self.max_upload_bytes, True
        return min(FILES_BODY if route in FILE_ROUTES else SMALL_BODY, self.max_upload_bytes), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, upload = self.limit_of(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            exc = BodyTooLarge(limit, upload)
            await error_response(413, exc.detail, headers={"Connection": "close"})(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, upload)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge as exc:  # read outside a route (a middleware): answer here if still possible
            if started:
                raise
            await error_response(413, exc.detail, headers={"Connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # ASCII digits only (int() also takes '١٢'); a malformed length is the server's to refuse
            return int(value) if value.isdigit() and len(value) < 20 else None
    return None
