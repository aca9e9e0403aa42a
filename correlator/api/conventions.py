"""HTTP conventions the routes would otherwise each have to keep, as one ASGI middleware:

- `HEAD` on every GET route: the GET's status and headers (its `Content-Length` too), no body. A
  HEAD whose GET streams (the live server-sent events) is answered once its headers are out: the
  answer is complete at once, so the stream sees its client gone and ends;
- `OPTIONS` on every route: 204 with `Allow` (a CORS preflight, when `--cors-origin` is given,
  is answered before, by the CORS middleware);
- a weak `ETag` on every GET answer that is not a stream (a hash of the body), and 304 with no
  body when `If-None-Match` names it: a finished analysis never changes, so a dashboard that polls
  its findings or pages through its timeline again gets 304s.

`allowed_methods` is also what the 405 answer's `Allow` says (correlator.api.error_bodies).
"""

from __future__ import annotations

import hashlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The methods routes may have, in the order `Allow` lists them.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
#: Bodies larger than this are passed on as they come, without an ETag.
ETAG_MAX_BYTES = 32 * 1024**2


def allowed_methods(app: ASGIApp, scope: Scope) -> list[str]:
    """Every method some route answers at this path (HEAD with GET, OPTIONS always); empty
    when no route has the path. Asks the router itself, so included routers count."""
    routes = getattr(getattr(app, "router", None), "routes", [])
    found = []
    for method in METHODS:
        probe = {**scope, "method": "GET" if method == "HEAD" else method}
        if any(route.matches(dict(probe))[0] == Match.FULL for route in routes):
            found.append(method)
    return [*found, "OPTIONS"] if found else []


def _etag(body: bytes) -> str:
    return 'W/"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag.removeprefix("W/") in tags


class HttpConventions:
    def __init__(self, app: ASGIApp, *, router_app: ASGIApp) -> None:
        self.app = app
        self.router_app = router_app
        """The application whose routes say which methods a path allows."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "OPTIONS":
            allowed = allowed_methods(self.router_app, scope)
            if allowed:
                await send({"type": "http.response.start", "status": 204,
                            "headers": [(b"allow", ", ".join(allowed).encode())]})
                await send({"type": "http.response.body", "body": b""})
                return
        if method == "HEAD":
            await self.app({**scope, "method": "GET"}, receive, _Cached(scope, send, head=True))
        elif method == "GET":
            await self.app(scope, receive, _Cached(scope, send, head=False))
        else:
            await self.app(scope, receive, send)


class _Cached:
    """The `send` of a GET or HEAD: holds a 200 answer's body to give it an ETag (a stream, or a
    body past ETAG_MAX_BYTES, goes on as it comes); answers 304 when the client has it; drops the
    body of a HEAD."""

    def __init__(self, scope: Scope, send: Send, *, head: bool) -> None:
        self.send = send
        self.head = head
        self.if_none_match = Headers(scope=scope).get("if-none-match")
        self.start: Message | None = None
        self.parts: list[bytes] = []
        self.size = 0
        self.passing = False
        self.answered = False
        """A HEAD's answer is complete: what the route still sends is dropped."""

    async def __call__(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            headers = Headers(raw=message["headers"])
            streamed = headers.get("content-type", "").startswith("text/event-stream")
            if message["status"] != 200 or streamed or "etag" in headers:
                self.passing = True
                await self.send(message)
                if self.head:  # the headers are the whole answer, a stream's too (it would never end)
                    await self._end_head()
            else:
                self.start = message
            return
        if message["type"] != "http.response.body":
            await self.send(message)
            return
        if self.passing:
            await self._body(message)
            return
        body = message.get("body", b"")
        self.parts.append(body)
        self.size += len(body)
        if message.get("more_body", False):
            if self.size > ETAG_MAX_BYTES:  # too large to hold: no ETag
                self.passing = True
                assert self.start is not None
                await self.send(self.start)
                await self._body({"type": "http.response.body", "body": b"".join(self.parts), "more_body": True})
                self.parts = []
            return
        await self._finish(b"".join(self.parts))

    async def _body(self, message: Message) -> None:
        if self.head:
            await self._end_head()
            return
        await self.send(message)

    async def _end_head(self) -> None:
        """Complete a HEAD's answer with an empty body. The server then tells the route that its
        client is gone (its `receive` says `http.disconnect`), which ends a stream."""
        self.answered = True
        await self.send({"type": "http.response.body", "body": b""})

    async def _finish(self, body: bytes) -> None:
        assert self.start is not None
        etag = _etag(body)
        headers = MutableHeaders(raw=list(self.start["headers"]))
        headers["ETag"] = etag
        if self.if_none_match is not None and _matches(self.if_none_match, etag):
            for name in ("content-length", "content-type"):
                del headers[name]
            await self.send({**self.start, "status": 304, "headers": headers.raw})
            await self.send({"type": "http.response.body", "body": b""})
            return
        await self.send({**self.start, "headers": headers.raw})
        await self.send({"type": "http.response.body", "body": b"" if self.head else body})
