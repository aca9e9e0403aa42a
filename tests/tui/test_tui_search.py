"""Search (issue 18 item 11): every hit counted, the count shown, a wrap announced, and esc
cancelling a search for good: its answer never arrives after it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Input
from textual.worker import WorkerState
from tui_helpers import SIZES, incident, screen_lines, settings

from correlator.cancel import Cancelled
from correlator.model import Event
from correlator.tui.app import CorrelatorApp, create_app
from correlator.tui.event_store import EventStore
from correlator.tui.search import SearchIndex, find_rows
from correlator.tui.sources import StaticEventSource
from correlator.tui.widgets import Timeline

Make = Callable[..., CorrelatorApp]
pytestmark = pytest.mark.anyio


def _naive(store: EventStore, needle: str) -> list[int]:
    return [r for r in range(len(store)) if needle.lower() in store.text(r).lower()]


def _big_log(path: Path, count: int) -> list[Event]:
    """A broker log of `count` lines on disk (the sample's wordings, moving epoch seconds) and its
    events with their byte offsets, one line in a thousand refused."""
    events, offset = [], 0
    with path.open("w") as out:
        for i in range(count):
            refused = i % 1000 == 999
            text = (f"{1795444800 + i // 50}: Client edge-{i % 7:02d} disconnected, not authorised." if refused
                    else f"{1795444800 + i // 50}: Received PUBLISH from edge-{i % 7:02d} (d0, q0, r0, m0, "
                         f"'spBv1.0/Plant3/NDATA/edge-{i % 7:02d}', ... (10 bytes))")
            out.write(text + "\n")
            events.append(Event(ts=1795444800 + i / 50, time_text="", source="broker", file=str(path), line=i + 1,
                                kind="mqtt.disconnect" if refused else "mqtt.publish", raw=text, offset=offset,
                                level="warning" if refused else "debug"))
            offset += len(text) + 1
    return events


def test_find_rows_matches_reading_every_row_back(tmp_path: Path) -> None:
    """The bulk file scan finds exactly what reading each row would, over two files, rows whose
    text is kept (their file is gone), and any case."""
    store = EventStore()
    store.extend(_big_log(tmp_path / "a.log", 3000))
    store.extend([Event(ts=1795444900.0, time_text="", source="client:edge-02", file=str(tmp_path / "gone.log"),
                        line=1, kind="other", raw="Connection Refused: NOT AUTHORISED.", offset=0)])
    store.extend(_big_log(tmp_path / "b.log", 2000))
    # a log whose rows came out of file order (its time went backwards): found all the same
    store.extend(reversed(_big_log(tmp_path / "c.log", 1500)))
    index = SearchIndex(store)
    for needle in ("not authorised", "NOT AUTH", "edge-03 (", "m0, 'spb", "nowhere at all", "é"):
        assert find_rows(store, index, needle, len(store)) == _naive(store, needle), needle
    assert find_rows(store, index, "not authorised", 3001) == [r for r in _naive(store, "not authorised") if r < 3001]

    def give_up() -> bool:
        return True

    with pytest.raises(Cancelled):
        find_rows(store, SearchIndex(store), "not authorised", len(store), give_up)


@pytest.mark.parametrize("size", SIZES)
async def test_search_counts_hits_walks_them_and_announces_the_wrap(make_app: Make, size: tuple[int, int]) -> None:
    app = make_app("mixed")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        store = app.source.store
        wanted = _naive(store, "not authorised")
        assert len(wanted) >= 3
        await pilot.press("t", "g", "slash", *"not authorised")
        await pilot.pause()
        timeline = app.query_one(Timeline)
        assert timeline.row_at(timeline.cursor) == wanted[0]
        assert any(f"1/{len(wanted)} 'not authorised'" in line for line in screen_lines(app)), screen_lines(app)
        await pilot.press("enter")
        for number in range(2, len(wanted) + 1):
            await pilot.press("n")
            assert timeline.row_at(timeline.cursor) == wanted[number - 1]
        await pilot.pause()
        assert any(f"{len(wanted)}/{len(wanted)} 'not authorised'" in line for line in screen_lines(app))
        await pilot.press("n")
        await pilot.pause()
        assert timeline.row_at(timeline.cursor) == wanted[0]
        assert any(f"1/{len(wanted)} 'not authorised' wrapped" in line for line in screen_lines(app))
        assert any("wrapped to the top" in n.message for n in app._notifications)
        await pilot.press("N")
        assert timeline.row_at(timeline.cursor) == wanted[-1]
        await pilot.press("slash", *"no such line anywhere")
        await pilot.pause()
        assert any("'no such line anywhere' not found" in line for line in screen_lines(app))


async def test_esc_cancels_a_running_search_and_its_answer_never_comes(tmp_path: Path) -> None:
    base = incident("server_cert_expired")
    source = StaticEventSource(base.analysis, _big_log(tmp_path / "mosquitto.log", 120_000))
    app = create_app(settings(), source)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        # a needle that is not ASCII is tested row by row: slow enough to be caught running
        await pilot.press("t", "slash")
        app.query_one("#search", Input).value = "é"
        deadline = time.monotonic() + 5
        while not any(w.group == "search" for w in app.workers) and time.monotonic() < deadline:
            await pilot.pause(0.01)
        worker = next(w for w in app.workers if w.group == "search")
        assert not worker.is_finished
        await pilot.press("escape")
        deadline = time.monotonic() + 5
        while not worker.is_finished and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert worker.state == WorkerState.CANCELLED
        await pilot.pause(0.3)
        assert app.hits.needle == "" and not app.query_one(Timeline).search
        assert not any("not found" in line.lower() for line in screen_lines(app))
        assert not any("not found" in n.message.lower() for n in app._notifications)
        # a search on a worker still counts its hits: 120 refusals
        await pilot.press("slash", *"not authorised")
        deadline = time.monotonic() + 20
        while app.hits.positions is None and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert app.hits.positions is not None and len(app.hits.positions) == 120
