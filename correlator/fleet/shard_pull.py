"""A shard's durable pull consumer read in batches by the live worker that owns the shard.

The same pull requests as nats-py's `fetch` (a batch, an expiry, no-wait: the consumer sends what
it has at once and ends the request with a status, or waits up to the expiry for the first
message), read through one subscription whose callback gathers each request's messages. `fetch`
waits for each message of a batch with a task of its own; at a live worker's load (every event a
message) those tasks cost the worker more than reading the messages.

Pull, not push: a push consumer replicated on three nodes copies each delivery to its followers
as it goes out, one Raft entry a message when events arrive one at a time; a pull request's
deliveries go out together, in one entry.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError

#: Seconds past a request's expiry before it is given up on this side (a request or its end lost).
MARGIN = 1.0
#: Tokens of a JetStream message's reply subject without a domain
#: (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`).
_V1_TOKENS = 9


def stream_position(msg: Msg) -> int:
    """A delivered message's sequence in its stream (`msg.metadata.sequence.stream`), read from its
    reply subject alone: a live worker reads it for every message, and nats-py's metadata makes a
    dataclass and a datetime each time."""
    tokens = msg.reply.split(".") if msg.reply else []
    if len(tokens) == _V1_TOKENS and tokens[0] == Msg.Ack.Prefix0 and tokens[1] == Msg.Ack.Prefix1:
        return int(tokens[5])
    return msg.metadata.sequence.stream


class ShardPull:
    """Batches of the messages of `stream`'s consumer `durable`."""

    def __init__(self, client: Client, stream: str, durable: str) -> None:
        self.client = client
        self.next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._prefix = client.new_inbox()
        self._requests = 0
        self._current = ""
        """Reply subject of the request in flight."""
        self._messages: collections.deque[Msg] = collections.deque()
        self._wanted = 0
        self._ended = asyncio.Event()
        self._status = ""
        """The status that ended the current request."""
        self._subscription: Subscription | None = None

    async def start(self) -> ShardPull:
        self._subscription = await self.client.subscribe(f"{self._prefix}.*", cb=self._on_message)
        return self

    async def _on_message(self, msg: Msg) -> None:
        if msg.reply:  # a message (its reply acknowledges it), of this request or one given up: kept in order
            self._messages.append(msg)
            if len(self._messages) >= self._wanted:
                self._ended.set()
        elif msg.subject == self._current:  # the status that ends the request (heartbeats are not asked for)
            self._status = (msg.headers or {}).get("Status", "")
            self._ended.set()

    async def fetch(self, batch: int, wait: float) -> list[Msg]:
        """Up to `batch` messages: those the consumer has now, else the first to come within
        `wait` seconds (TimeoutError: none came; NatsError: the consumer did not answer)."""
        if not self._messages:
            self._requests += 1
            self._current = f"{self._prefix}.{self._requests}"
            self._wanted, self._status = batch, ""
            self._ended.clear()
            request = {"batch": batch, "expires": int(wait * 1e9), "no_wait": True}
            await self.client.publish(self.next_subject, json.dumps(request).encode(), reply=self._current)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), wait + MARGIN)
        out = [self._messages.popleft() for _ in range(min(batch, len(self._messages)))]
        if out:
            return out
        if self._status == "503":
            raise NoRespondersError
        if self._status not in ("", "404", "408"):
            raise NatsError(f"the consumer ended the request: status {self._status}")
        raise TimeoutError

    async def close(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
        self._messages.clear()
