"""One NATS connection per process, on a thread of its own with its own event loop.

Why a thread: nats-py is asyncio, while the analysis scheduler (api/jobs.py), the HTTP routes'
thread pool and the worker's job handlers are threads. Each of them hands a coroutine to
`Link.run` (wait for it) or `Link.submit` (a concurrent Future), so there is one connection, one
loop and one place that knows how to reach the cluster, whatever thread asks.

The connection is given every node's URL and reconnects forever: a node that dies (the fault
tests SIGKILL one) is left for another, and a request sent while the stream elects a new leader
is retried (`publish`), with a `Nats-Msg-Id` that makes a retry of a stored message a duplicate
JetStream drops rather than a second message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.errors import ConnectionReconnectingError, NoRespondersError, OutboundBufferLimitError
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError, ServiceUnavailableError

from correlator.errors import CorrelatorError
from correlator.fleet import QueueUnavailable

log = logging.getLogger("correlator.fleet")

T = TypeVar("T")

#: Seconds to reach a first node at start-up before giving up with a message.
CONNECT_TIMEOUT = 15.0
#: Seconds one JetStream request waits for its answer before it is tried again.
REQUEST_TIMEOUT = 2.0
#: Seconds closing the connection may take.
CLOSE_TIMEOUT = 5.0
#: Seconds a publish is retried (a leader election takes a few; a cluster that lost its quorum, forever).
PUBLISH_PATIENCE = 30.0

#: What a request sent during a fail-over or an outage may meet: no answer, no responder yet, a
#: stream that momentarily has no leader, a connection still reconnecting whose buffer is full.
#: Each is worth another try.
TRANSIENT: tuple[type[BaseException], ...] = (NatsTimeout, NoRespondersError, NoStreamResponseError,
                                              ServiceUnavailableError, asyncio.TimeoutError,
                                              OutboundBufferLimitError, ConnectionReconnectingError)


def server_urls(value: str | list[str]) -> list[str]:
    """`--nats` takes one URL or several, comma-separated (`nats://a:4222,nats://b:4222`), as
    NATS's own tools do; a bare host:port gets the nats:// scheme."""
    parts = value if isinstance(value, list) else [value]
    urls = [u.strip() for part in parts for u in part.split(",") if u.strip()]
    if not urls:
        raise CorrelatorError("--nats needs at least one server URL (nats://HOST:4222)")
    return [u if "://" in u else f"nats://{u}" for u in urls]


class Link:
    """The connection and its loop thread. `Link(urls, name)` connects (or raises
    QueueUnavailable); `close()` drains and stops the thread."""

    def __init__(self, urls: list[str], name: str) -> None:
        self.urls = urls
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"correlator-nats-{name}", daemon=True)
        self._thread.start()
        self.connected = threading.Event()
        self.reconnects = 0
        """Reconnections so far: a live worker then checks that its consumers were kept."""
        try:
            self.client: Client = self.run(self._connect(name), timeout=CONNECT_TIMEOUT + 5)
        except BaseException:
            self._stop_loop()
            raise
        self.js: JetStreamContext = self.client.jetstream(timeout=REQUEST_TIMEOUT)

    async def _connect(self, name: str) -> Client:
        async def disconnected() -> None:
            self.connected.clear()
            log.warning("lost the NATS server; reconnecting to another node")

        async def reconnected() -> None:
            self.reconnects += 1
            self.connected.set()
            log.info("reconnected to NATS at %s", self.client.connected_url.netloc if self.client.connected_url
                     else "?")

        async def error(exc: Exception) -> None:
            log.debug("NATS client: %s", exc)

        try:
            client = await asyncio.wait_for(nats.connect(
                servers=self.urls, name=name, connect_timeout=2, reconnect_time_wait=0.25,
                max_reconnect_attempts=-1, allow_reconnect=True, disconnected_cb=disconnected,
                reconnected_cb=reconnected, error_cb=error), CONNECT_TIMEOUT)
        except (TimeoutError, OSError, NatsError) as exc:
            raise QueueUnavailable(f"cannot reach NATS at {', '.join(self.urls)} ({type(exc).__name__}: {exc}); "
                                   "is nats-server running with JetStream on?") from None
        self.connected.set()
        return client

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run on the link's loop and wait (from any other thread)."""
        return self.submit(coroutine).result(timeout)

    async def publish(self, subject: str, payload: bytes, msg_id: str,
                      headers: dict[str, str] | None = None) -> PubAck:
        """Publish to a stream until it is stored: retried through fail-overs for
        PUBLISH_PATIENCE seconds, the same `msg_id` each time (a duplicate is acknowledged, not
        stored twice). A refusal (a full stream) raises QueueUnavailable at once."""
        return await retrying(lambda: self.js.publish(subject, payload, timeout=REQUEST_TIMEOUT,
                                                      headers={**(headers or {}), "Nats-Msg-Id": msg_id}),
                              what=f"publishing to {subject}")

    def close(self) -> None:
        """Flush what was published and close; what still runs on the loop is cancelled."""
        if self.loop.is_closed():
            return
        try:
            self.run(self._close(), timeout=CLOSE_TIMEOUT + 5)
        except Exception as exc:  # closing must not fail a shutdown
            log.debug("closing the NATS connection: %s", exc)
        self._stop_loop()

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.flush(), CLOSE_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.close(), CLOSE_TIMEOUT)

    def _stop_loop(self) -> None:
        async def cancel_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_rest(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


async def retrying(call: Callable[[], Awaitable[T]], what: str, patience: float = PUBLISH_PATIENCE) -> T:
    """`call()` again after each transient failure (TRANSIENT) until `patience` seconds passed;
    JetStream's refusals (APIError other than 503) are not transient and raise QueueUnavailable;
    NotFoundError (no such object, stream or consumer) is the caller's to handle."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = 0.1
    while True:
        try:
            return await call()
        except TRANSIENT as exc:
            if loop.time() > deadline:
                raise QueueUnavailable(f"NATS did not answer {what} for {patience:.0f} s ({type(exc).__name__})"
                                       ) from None
        except NotFoundError:
            raise
        except APIError as exc:
            raise QueueUnavailable(f"NATS refused {what}: {exc.description or exc}") from None
        await asyncio.sleep(delay)
        delay = min(1.0, delay * 2)
