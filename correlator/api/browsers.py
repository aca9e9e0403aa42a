"""What keeps a web page from driving the server, even on loopback without a token.

A page the user happens to visit can send the server requests in two ways:

- **Cross-site requests.** A form or `fetch(..., {mode: "no-cors"})` may POST `text/plain` or
  multipart to any address without a CORS preflight; the browser marks it with `Origin` (and
  `Sec-Fetch-Site`). Every state-changing request (any method but GET, HEAD and OPTIONS) from a
  browser whose origin is neither the server's own nor a `--cors-origin` is refused (403).
- **DNS rebinding.** The page's own name is made to resolve to 127.0.0.1, so its requests are
  same-origin and can read the answers; they still carry the page's name in `Host`. A `Host`
  that is not the bound address, localhost (on loopback), the machine's name, an IP literal (a
  rebinding needs a name) or an `--allowed-host` is refused (400).

Reading answers cross-origin is the browser's to refuse (CORS is off unless asked for).
"""

from __future__ import annotations

import ipaddress
import socket

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from correlator.api.error_bodies import error_response
from correlator.api.settings import Settings

#: Methods that change nothing (OPTIONS is CORS's preflight).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_browser(headers: Headers) -> bool:
    """Whether a request comes from a web page: browsers send `Origin` on every request but
    same-origin GETs, and `Sec-Fetch-*` on all of them; scripts and curl send neither."""
    return "origin" in headers or "sec-fetch-site" in headers or "sec-fetch-mode" in headers


def host_name(value: str) -> str:
    """The name of a Host header, without port, brackets or trailing dot, in lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class BrowserGuard:
    """ASGI middleware: the Host check for every request, the Origin check for every request
    that changes something."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        names = {host_name(h) for h in settings.allowed_hosts}
        self.any_host = "*" in names
        names.add(host_name(settings.host))
        if settings.loopback:
            names.add("localhost")
        else:
            names.add(socket.gethostname().lower())
        self.hosts = frozenset(names)
        self.origins = frozenset(o.rstrip("/").lower() for o in settings.cors_origins)

    def host_allowed(self, value: str) -> bool:
        name = host_name(value)
        return self.any_host or name in self.hosts or _is_ip(name)

    def origin_allowed(self, scope: Scope, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is None:  # a browser that sent no Origin says where the request comes from
            return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
        origin = origin.rstrip("/").lower()
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
        return origin == own or origin in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        if host is not None and not self.host_allowed(host):
            answer = error_response(400, f"this server does not answer to the host name {host_name(host)!r}: "
                                    "add it with --allowed-host if clients reach the server by that name")
            await answer(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and is_browser(headers) and not self.origin_allowed(scope, headers):
            origin = headers.get("origin") or headers.get("sec-fetch-site", "")
            answer = error_response(403, f"a web page ({origin}) may not change anything on this server: only its "
                                    "own pages and the origins given with --cors-origin may")
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)
