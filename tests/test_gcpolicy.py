"""The batch GC policy raises the collector's thresholds while any batch runs and puts back
exactly what was there when the last one ends, however batches overlap."""

from __future__ import annotations

import gc
import threading

from correlator.gcpolicy import BATCH_THRESHOLD, batch_allocation


def test_thresholds_are_raised_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    with batch_allocation():
        assert gc.get_threshold()[0] >= BATCH_THRESHOLD[0]
        with batch_allocation():
            assert gc.get_threshold()[0] >= BATCH_THRESHOLD[0]
        assert gc.get_threshold()[0] >= BATCH_THRESHOLD[0]  # the outer batch still runs
    assert gc.get_threshold() == before


def test_overlapping_batches_on_threads_restore_the_original() -> None:
    before = gc.get_threshold()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with batch_allocation():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with batch_allocation():
            second_in.set()
            first_out.wait(5)  # the first batch ended while this one runs
            seen.append(gc.get_threshold()[0])

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen and seen[0] >= BATCH_THRESHOLD[0]
    assert gc.get_threshold() == before
