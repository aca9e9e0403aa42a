"""The tailed sources of a running server: one LiveAnalysis (the same pipeline as the CLI's live
mode) and the fan-out of its updates to server-sent-event subscribers.

LiveAnalysis calls back on its worker threads; each subscriber is an asyncio queue on the
server's loop, fed with `call_soon_threadsafe`, so a slow dashboard never blocks the analysis
(its queue drops the oldest update past a bound; the finding's next revision brings it back).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from correlator.analysis import Options
from correlator.engine.rules import Rule
from correlator.formats.registry import Registry
from correlator.live_analysis import LiveAnalysis, LiveUpdate
from correlator.report_model import Finding

#: Updates a subscriber may have pending before the oldest are dropped.
QUEUE_BOUND = 1_000


def live_key(finding: Finding) -> str:
    return finding.id if not finding.group else f"{finding.id}:{finding.group}"


def finding_dict(finding: Finding) -> dict[str, Any]:
    return {"key": live_key(finding), **finding.to_dict()}


class _Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def put(self, item: dict[str, Any] | None) -> None:
        """On the loop's thread."""
        while self.queue.qsize() >= QUEUE_BOUND:
            self.queue.get_nowait()
        self.queue.put_nowait(item)


class LiveHub:
    def __init__(self, paths: Sequence[Path], options: Options, *, registry: Registry, rules: Sequence[Rule],
                 stitch_window: float) -> None:
        self.paths = list(paths)
        self._subscribers: set[_Subscriber] = set()
        self._lock = threading.Lock()
        self.analysis = LiveAnalysis(self.paths, options, registry=registry, rules=rules,
                                     on_update=self._on_update, stitch_window=stitch_window)

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
        if not update.findings:
            return
        items = [finding_dict(f) for f in update.findings]  # under the analysis's lock: a consistent copy
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            for item in items:
                with contextlib.suppress(RuntimeError):
                    sub.loop.call_soon_threadsafe(sub.put, item)

    def subscribe(self) -> tuple[_Subscriber, list[dict[str, Any]]]:
        """A new subscriber and the findings as they stand (sent first, so a dashboard that
        connects late starts complete). Registered before the snapshot: nothing falls between."""
        sub = _Subscriber(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(sub)
        return sub, self.snapshot()

    def unsubscribe(self, sub: _Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def snapshot(self) -> list[dict[str, Any]]:
        """The current findings as dicts, taken under the analysis's lock: its worker threads
        update findings in place."""
        with self.analysis._lock:
            return [finding_dict(f) for f in self.analysis.session.findings(self.analysis.options.min_severity)]
