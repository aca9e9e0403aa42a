"""The tailed sources of a running server: one LiveAnalysis (the same pipeline as the CLI's live
mode) and the fan-out of its updates to server-sent-event subscribers.

The files are read as `analyze` and `watch` read them: what they hold when the server starts by the
two-tier reader (routine traffic counted at C speed, not parsed), and the routine lines appended
later classified alike and counted, so only the other lines become events (`/live/events`), while
`/live`'s line counts stay exact.

LiveAnalysis calls back on its worker threads; each subscriber is an asyncio queue on the
server's loop, fed with `call_soon_threadsafe`, so a slow dashboard never blocks the analysis
(its queue drops the oldest update past a bound; the finding's next revision brings it back).

Every event has a sequence number (the SSE `id`): `finding` with a new or updated finding, and
`removed` when a finding the stream showed is no longer among the current ones (a more specific
cause now explains it, or it fell below the severity floor). The last REPLAY events are kept, so
a client that reconnects with `Last-Event-ID` gets what it missed, in order; one that was gone
longer gets the current findings again, as a new subscriber does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from correlator.analysis import Options
from correlator.api.finding_keys import ShownFindings, finding_dict
from correlator.engine.rules import Rule
from correlator.formats.registry import Registry
from correlator.live_analysis import LiveAnalysis, LiveUpdate

#: Updates a subscriber may have pending before the oldest are dropped.
QUEUE_BOUND = 1_000
#: Events kept for clients that reconnect with Last-Event-ID.
REPLAY = 1_000


@dataclass(frozen=True)
class StreamEvent:
    seq: int
    kind: str
    """'finding' or 'removed'."""
    data: dict[str, Any]


def removal(key: str) -> dict[str, Any]:
    """The data of a `removed` event: the finding's key and rule id."""
    return {"key": key, "id": key.split("~", 1)[0]}


class Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()

    def put(self, item: StreamEvent | None) -> None:
        """On the loop's thread."""
        while self.queue.qsize() >= QUEUE_BOUND:
            self.queue.get_nowait()
        self.queue.put_nowait(item)


class LiveHub:
    def __init__(self, paths: Sequence[Path], options: Options, *, registry: Registry, rules: Sequence[Rule],
                 stitch_window: float) -> None:
        self.paths = list(paths)
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._seq = 0
        self._recent: deque[StreamEvent] = deque(maxlen=REPLAY)
        self._shown = ShownFindings()
        # read as `analyze` reads: what the files hold at the start by the two-tier reader, and the
        # routine lines of appended batches counted (the API keeps no live line that is not an event)
        self.analysis = LiveAnalysis(self.paths, options, registry=registry, rules=rules,
                                     on_update=self._on_update, stitch_window=stitch_window,
                                     every_line=False, bulk=True)

    def start(self) -> None:
        self.analysis.start()

    def stop(self) -> None:
        self.analysis.stop()
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:  # end the open streams
            with contextlib.suppress(RuntimeError):  # loop already closed
                sub.loop.call_soon_threadsafe(sub.put, None)

    def _on_update(self, update: LiveUpdate) -> None:
        """On the analysis's thread, under its lock (the findings are a consistent copy)."""
        if not update.findings:
            return
        current = self.analysis.session.findings(self.analysis.options.min_severity)
        with self._lock:
            updated, gone = self._shown.step(current, update.findings)
            events = [self._event("finding", item) for item in updated]
            events += [self._event("removed", removal(key)) for key in gone]
            subscribers = list(self._subscribers)
        for sub in subscribers:
            for event in events:
                with contextlib.suppress(RuntimeError):
                    sub.loop.call_soon_threadsafe(sub.put, event)

    def _event(self, kind: str, data: dict[str, Any]) -> StreamEvent:
        """Under self._lock."""
        self._seq += 1
        event = StreamEvent(self._seq, kind, data)
        self._recent.append(event)
        return event

    def subscribe(self, last_event_id: int | None = None) -> tuple[Subscriber, list[StreamEvent]]:
        """A new subscriber and what it is to be sent first: the events after `last_event_id` when
        they are all still kept, else the findings as they stand (so a dashboard that connects late
        starts complete). Registered under the lock that orders events: nothing falls between."""
        sub = Subscriber(asyncio.get_running_loop())
        with self.analysis._lock, self._lock:  # the order _on_update takes them in
            self._subscribers.add(sub)
            oldest = self._recent[0].seq if self._recent else self._seq + 1
            if last_event_id is not None and oldest - 1 <= last_event_id <= self._seq:
                return sub, [e for e in self._recent if e.seq > last_event_id]
            current = self.snapshot()
            self._shown.keys |= {item["key"] for item in current}
            return sub, [StreamEvent(self._seq, "finding", item) for item in current]

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    @property
    def subscriber_count(self) -> int:
        """Streams open now (a test or a caller waits on it rather than on time)."""
        with self._lock:
            return len(self._subscribers)

    def snapshot(self) -> list[dict[str, Any]]:
        """The current findings as dicts, taken under the analysis's lock: its worker threads
        update findings in place."""
        with self.analysis._lock:
            return [finding_dict(f) for f in self.analysis.session.findings(self.analysis.options.min_severity)]
