"""How `correlator serve` runs uvicorn: with time bounds on every phase of a request and a cap on
connections, so half-open sockets and stalled uploads cannot hold the server (issue 16, item 8).

uvicorn bounds only the idle time between two requests of one connection (`timeout_keep_alive`).
`TimedH11Protocol` adds the rest: a connection must deliver its request's headers within
HEADER_TIMEOUT of opening, and its body within BODY_TIMEOUT of the headers; otherwise it is
closed (the route reading the body sees the client disconnect). `limit_concurrency` answers 503
beyond MAX_CONNECTIONS open connections or running requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Seconds from a connection's opening to its request's last header line.
HEADER_TIMEOUT = 10.0
#: Seconds from the headers to the body's last byte (a 512 MB upload at 20 MB/s is 26 s).
BODY_TIMEOUT = 120.0
#: Seconds an idle keep-alive connection is kept between requests.
KEEP_ALIVE = 5.0
#: Seconds a stream has, once told its client is gone at shutdown, before its connection closes.
STREAM_CLOSE_DELAY = 0.1
#: Open connections (and running requests) at most; beyond, new requests get 503.
MAX_CONNECTIONS = 256


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the headers and one for the body."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEADER_TIMEOUT)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm(BODY_TIMEOUT, "body")
        elif state is not h11.IDLE:
            self._disarm()  # the request is in: the app and uvicorn's keep-alive timer take over

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown waits for every response to end, and a server-sent-event
        stream never ends by itself: the server would wait out its whole graceful timeout and
        then cancel the stream ("Cancel 1 running task(s)"). A response that has started and is
        not complete is such a stream: tell the app its client is gone (it ends the stream and
        unsubscribes at once), then close the connection."""
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
            self.loop.call_later(STREAM_CLOSE_DELAY, self._close_stream)
        super().shutdown()

    def _close_stream(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm()

    _phase = "headers"

    def _arm(self, seconds: float, phase: str = "headers") -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = ""

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection whose request %s did not arrive in time", self._phase)
            self.transport.close()


def uvicorn_options() -> dict[str, Any]:
    """The options `correlator serve` passes to uvicorn.run."""
    return {"http": TimedH11Protocol, "timeout_keep_alive": KEEP_ALIVE, "limit_concurrency": MAX_CONNECTIONS,
            "h11_max_incomplete_event_size": 16 * 1024}
