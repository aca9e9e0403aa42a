"""Live mode over real files: a finding appears while the logs grow, draws the eye, and pausing
freezes the screen (never the reading) until it is resumed."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static
from tui_helpers import NOW, SAMPLES, incident, settings

from correlator.model import Event
from correlator.tui.app import create_app
from correlator.tui.sources import LiveEventSource, StaticEventSource
from correlator.tui.widgets import FindingsTable, Timeline

pytestmark = pytest.mark.anyio


async def _until(pilot: Pilot[None], predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the screen")
        await pilot.pause(0.05)


def _split(tmp_path: Path) -> tuple[Path, list[str]]:
    """The expired-server-certificate incident with its broker log cut after the start-up lines:
    the rest is appended by the test, as the broker would write it."""
    folder = tmp_path / "incident"
    shutil.copytree(SAMPLES / "server_cert_expired", folder)
    log = folder / "broker" / "mosquitto.log"
    lines = log.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if "New connection" in line)
    log.write_text("".join(lines[:start]))
    for client in (folder / "clients").iterdir():
        client.write_text("")
    return log, lines[start:]


async def test_live_finding_appears_marked_new_and_pause_freezes_the_screen(tmp_path: Path) -> None:
    log, rest = _split(tmp_path)
    source = LiveEventSource([log.parent.parent], stitch_window=0.1)
    # the sample's lines carry the time they were recorded: count them as news whatever their age
    app = create_app(settings(clock=time.time, tick=0.2, history=1e12), source)
    async with app.run_test(size=(80, 24)) as pilot:
        timeline = app.query_one(Timeline)
        await _until(pilot, lambda: timeline.count > 0)
        assert not app.ordered
        with log.open("a") as out:
            out.writelines(rest[: len(rest) // 2])
        await _until(pilot, lambda: any(f.id == "tls.server_cert_expired" for f in app.ordered))
        table = app.query_one(FindingsTable)
        key = next(k for k in table.keys if k.startswith("tls.server_cert_expired"))
        assert app.new_until[key] > time.time()  # marked NEW in the table
        assert any("New finding" in (n.title or "") for n in app._notifications)
        count = app.findings[key].count

        await pilot.press("p")
        assert app.paused
        shown = timeline.count
        with log.open("a") as out:
            out.writelines(rest[len(rest) // 2:])
        await _until(pilot, lambda: len(source.store) > shown + 3)
        await pilot.pause(0.3)
        assert timeline.count == shown and app.findings[key].count == count
        assert "PAUSED" in str(app.query_one("#status", Static).content)

        await pilot.press("p")
        assert not app.paused
        await _until(pilot, lambda: timeline.count == len(source.store))
        await _until(pilot, lambda: app.findings[key].count > count)
        assert "LIVE" in str(app.query_one("#status", Static).content)


class _Flood(StaticEventSource):
    """A finished analysis whose events then arrive one by one from a thread, each with its own
    'changed' signal: the worst flood a source can send."""

    def __init__(self, count: int) -> None:
        base = incident("server_cert_expired")
        super().__init__(base.analysis, [])
        self.count = count
        self.thread: threading.Thread | None = None

    def start(self, changed: Callable[[], None]) -> None:
        def run() -> None:
            for i in range(self.count):
                self.store.extend([Event(ts=1795444800 + i / 1000, time_text="", source="broker", file="flood.log",
                                         line=i + 1, kind="other", raw=f"line {i}")])
                changed()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()


async def test_a_flood_of_updates_collapses_into_few_refreshes() -> None:
    source = _Flood(20_000)
    app = create_app(settings(), source)
    async with app.run_test(size=(80, 24)) as pilot:
        timeline = app.query_one(Timeline)
        await _until(pilot, lambda: timeline.count == 20_000, timeout=30)
        assert source.thread is not None
        source.thread.join(5)
        assert app.refreshes < 2_000, app.refreshes  # one refresh per pending signal, not per line
        assert timeline.cursor == 19_999  # following the tail


async def test_findings_from_old_lines_are_shown_but_not_announced(tmp_path: Path) -> None:
    """watch reads existing logs from their start: yesterday's incident is listed, not trumpeted."""
    folder = tmp_path / "incident"
    shutil.copytree(SAMPLES / "server_cert_expired", folder)
    source = LiveEventSource([folder], stitch_window=0.1)
    app = create_app(settings(clock=lambda: NOW + 3600), source)
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: any(f.id == "tls.server_cert_expired" for f in app.ordered))
        assert not app.new_until
        assert not app._notifications
