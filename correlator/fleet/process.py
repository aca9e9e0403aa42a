"""What every fleet worker process shares (`correlator worker`, worker_loop.py, and `correlator
worker --live`, live_worker.py): one NATS link, one main coroutine run on the link's loop until the
process is stopped (SIGTERM, Ctrl-C), and giving back what it holds when it stops, so another
worker takes it at once instead of after its lease or ack deadline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

from correlator.fleet.link import Link

#: Seconds a stopping worker waits for its main coroutine to give back what it holds.
STOP_TIMEOUT = 15.0


class LinkedWorker:
    """`run()` until stopped; a subclass sets `link`, writes `_main` (which ends once `_stopping`
    is set, having given back what it holds) and adds what it needs around the stop."""

    link: Link

    def __init__(self) -> None:
        self._stopping = asyncio.Event()

    def _main(self) -> Coroutine[Any, Any, None]:
        raise NotImplementedError

    def starting(self) -> None:
        """Before the main coroutine starts (nothing by default)."""

    def stopping(self) -> None:
        """Once the stop is asked, before waiting for the main coroutine (nothing by default)."""

    def stopped(self) -> None:
        """Once the main coroutine ended (or did not in time), before the link closes."""

    def run(self) -> None:
        self.starting()
        main = self.link.submit(self._main())
        try:
            main.result()
        finally:
            self.close(main)

    def close(self, main: Future[None] | None = None) -> None:
        """Ask the main coroutine to stop, wait for it to give back what it holds, then close."""
        self.link.loop.call_soon_threadsafe(self._stopping.set)
        self.stopping()
        if main is not None:
            with contextlib.suppress(Exception):
                main.result(timeout=STOP_TIMEOUT)
        self.stopped()
        self.link.close()
