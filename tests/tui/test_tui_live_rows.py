"""The routine rows of appended lines join the live timeline in time order (routine_rows.LiveRows):
before the first event of a later second, or of their second and file further on in the file; and
at a tick only once they have waited and no event the timeline still holds is of an earlier time.
The places and events of the first tests are numbers (offsets, seconds), not log text: the order
is the point; the last follows a real broker log (a sample's) with `watch --new-only`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from correlator.analysis import RoutineBlock
from correlator.formats.scan import RoutineLines, keeps_lines
from correlator.model import Event
from correlator.tui.event_store import ROUTINE, EventStore
from correlator.tui.sources import LiveEventSource

pytestmark = pytest.mark.skipif(not keeps_lines(), reason="routine rows need numpy (the fast reader)")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _block(file: str, places: list[tuple[int, int]], before: int = 0) -> RoutineBlock:
    """Routine lines at (second, offset), the n-th of them line `before` + n + 1."""
    import numpy as np

    seconds = np.array([second for second, _ in places], dtype=np.int64)
    starts = np.array([offset for _, offset in places], dtype=np.int64)
    return RoutineBlock(file, "broker", 0.0, 0, before,
                        RoutineLines(starts, np.arange(len(places)), seconds, np.zeros(len(places), dtype=np.int32),
                                     ["mqtt.puback"], ["debug"]))


def _event(file: str, second: int, offset: int, source: str = "broker") -> Event:
    return Event(ts=float(second), time_text=str(second), source=source, file=file, line=offset, kind="mqtt.connect",
                 raw="", offset=offset)


def _rows(store: EventStore) -> list[tuple[str, int, bool]]:
    return [(store.files[store.file[row]], store.offset[row], bool(store.flags[row] & ROUTINE))
            for row in range(len(store))]


def test_routine_rows_go_before_the_events_after_them_in_time_and_file() -> None:
    from correlator.tui.routine_rows import LiveRows

    store = EventStore()
    clock = _Clock()
    rows = LiveRows(store, hold=0.3, clock=clock)
    rows.add(_block("/b.log", [(10, 0), (10, 10), (10, 30), (11, 40)]))
    # an event of second 10 further on than two of them in the same file: they go first; the
    # other two wait (nothing of a later time came out yet)
    rows.place([_event("/b.log", 10, 20)])
    assert _rows(store) == [("/b.log", 0, True), ("/b.log", 10, True), ("/b.log", 20, False)]
    assert rows.waiting == 2 and rows.seconds() == {"broker": {10: 1, 11: 1}}  # the histogram counts them
    # an event of another log, of second 10 too: no routine row of this file goes before it
    rows.place([_event("/c.log", 10, 5, "client:c")])
    assert _rows(store)[-1] == ("/c.log", 5, False) and rows.waiting == 2
    # a later second lets the rest go, in time order, before it
    rows.place([_event("/c.log", 12, 9, "client:c")])
    assert _rows(store)[3:] == [("/c.log", 5, False), ("/b.log", 30, True), ("/b.log", 40, True),
                                ("/c.log", 9, False)]
    assert rows.waiting == 0 and rows.rows == 4 and store.ordered and rows.seconds() == {}
    # at a tick: not before they have waited, nor while an earlier event is still held
    rows.add(_block("/b.log", [(12, 50), (13, 60)], before=4))
    rows.release(held_from=float("inf"))
    assert rows.waiting == 2
    clock.now += 1.0
    rows.release(held_from=13.0)
    assert rows.waiting == 1 and _rows(store)[-1] == ("/b.log", 50, True)
    rows.place([_event("/b.log", 13, 55)])  # the held event: before the routine line after it
    rows.release(held_from=float("inf"))
    assert _rows(store)[-2:] == [("/b.log", 55, False), ("/b.log", 60, True)]
    assert store.ordered and len(store) == 10
    assert [store.line[row] for row in range(len(store)) if store.flags[row] & ROUTINE] == [1, 2, 3, 4, 5, 6]
    broker = store.stats[store.sources.index("broker")]
    assert broker.per_second == {10: 4, 11: 1, 12: 1, 13: 2}


def test_what_still_waits_when_the_follow_ends_goes_in() -> None:
    from correlator.tui.routine_rows import LiveRows

    store = EventStore()
    rows = LiveRows(store, hold=10.0, clock=_Clock())
    rows.add(_block("/b.log", [(20, 0), (21, 10)]))
    rows.add(_block("/b.log", [(19, 20)], before=2))
    rows.release(everything=True)
    assert [store.ts[row] for row in range(len(store))] == [19.0, 20.0, 21.0]
    assert rows.waiting == 0 and rows.rows == 3


SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"


def test_watch_new_only_draws_appended_routine_lines_as_rows(tmp_path: Path) -> None:
    """`watch --new-only`: no first read; the lines appended to a real busy broker's log (the
    healthy_noisy sample's, in pieces) are each a timeline row once, the routine ones counted."""
    lines = (SAMPLES / "healthy_noisy" / "broker" / "mosquitto.log").read_bytes().splitlines(keepends=True)
    log = tmp_path / "mosquitto.log"
    log.write_bytes(b"".join(lines[:100]))
    source = LiveEventSource([log], from_beginning=False, stitch_window=0.05)
    source.start(lambda: None)
    try:
        time.sleep(0.5)
        for at in range(100, len(lines), 250):
            with log.open("ab") as out:
                out.write(b"".join(lines[at:at + 250]))
            time.sleep(0.02)
        appended = len(lines) - 100
        deadline = time.monotonic() + 30
        while sum(s.lines for s in source.source_info()) < appended and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        source.stop()
    assert sum(s.lines for s in source.source_info()) == appended
    store = source.store
    start = len(b"".join(lines[:100]))
    offsets = [start + len(b"".join(lines[100:i])) for i in range(100, len(lines))]
    assert sorted(store.offset[row] for row in range(len(store))) == offsets
    routine = sum(1 for row in range(len(store)) if store.flags[row] & ROUTINE)
    assert routine == sum(s.counted for s in source.analysis.sources.values()) > appended // 2
    assert source.analysis.total_events == appended - routine
