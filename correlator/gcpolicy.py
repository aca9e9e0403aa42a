"""The garbage collector's pace while a batch is read.

Parsing allocates millions of short-lived objects (an Event and its field dict per line). They
hold no reference cycles and die by reference counting, yet CPython's default thresholds run a
young-generation collection every 700 allocations and an older one every few thousand: measured
on the parse benchmark, about 10% of the whole run spent in collections that free nothing.
While a batch runs the thresholds are raised; cycles are still collected, only less often.

Analyses may run on several threads at once (the API's workers, the TUI's reader), so the
thresholds are raised by the first batch to start and restored by the last one to end.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations between young collections while a batch runs (CPython's default is 700).
BATCH_THRESHOLD = (50_000, 20, 100)

_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def batch_allocation() -> Iterator[None]:
    """Raise the collector's thresholds for the duration of a batch (nested and concurrent uses
    share one raise)."""
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(*(max(now, batch) for now, batch in zip(_saved, BATCH_THRESHOLD, strict=True)))
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.set_threshold(*_saved)
