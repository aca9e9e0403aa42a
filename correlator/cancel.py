"""Giving up a long job: one token to ask for it, one exception that ends the job.

A surface that may stop an analysis it started (the TUI leaving a bundle, the API deleting a
running analysis) hands `analyze()` a CancelToken and calls `cancel()` from any thread. The job
looks at the token between blocks of input and, once asked, raises `Cancelled` from inside itself:
no surface raises through a hook to get out. A TUI search ends the same way.
"""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """The job was given up. Not a CorrelatorError: nothing went wrong, so no surface reports it as
    an error."""


class CancelToken:
    """Set once, from any thread; read by the job between blocks."""

    def __init__(self) -> None:
        self._flag = threading.Event()

    def cancel(self) -> None:
        self._flag.set()

    @property
    def cancelled(self) -> bool:
        return self._flag.is_set()

    def check(self) -> None:
        """Raise Cancelled when the job was asked to stop: the job's own call between blocks."""
        if self._flag.is_set():
            raise Cancelled
