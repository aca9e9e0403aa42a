"""Every line readable and a screen that never lies, at 80x24 and 200x50 (issue 18): tabs and
control characters, long lines, estimated times, resizing, the detail's scroll, the status line,
the jumps to Fix and Evidence, and when a bundle's findings were last seen."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from rich.console import Console
from textual.containers import VerticalScroll
from textual.widgets import Static
from tui_helpers import SIZES, screen_lines

from correlator.printable import printable
from correlator.tui.app import CorrelatorApp
from correlator.tui.event_store import Filter
from correlator.tui.widgets import FindingsTable, Timeline

Make = Callable[..., CorrelatorApp]
pytestmark = pytest.mark.anyio


def _plain(app: CorrelatorApp, selector: str) -> str:
    console = Console(width=400, file=io.StringIO(), record=True)
    console.print(app.query_one(selector, Static).content)
    return console.export_text()


def _row_of(app: CorrelatorApp, needle: str) -> int:
    store = app.source.store
    return next(r for r in range(len(store)) if needle in store.text(r))


def test_printable_expands_tabs_and_shows_control_characters() -> None:
    assert printable("1795444950: \tspBv1.0/# (QoS 1)") == "1795444950:     spBv1.0/# (QoS 1)"
    assert printable("a\x1b[2Jb\x00c\x7fd\x9be") == "a␛[2Jb␀c␡d\ufffde"
    assert printable("plain") == "plain"


@pytest.mark.parametrize("size", SIZES)
async def test_a_tab_in_a_broker_line_never_leaves_leftovers_on_screen(make_app: Make, size: tuple[int, int]) -> None:
    """mosquitto logs a subscription's topic after a tab: drawn raw, the terminal jumped and the
    row showed pieces of an earlier line."""
    app = make_app("mixed")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        row = _row_of(app, "\tspBv1.0/#")
        await pilot.press("t")
        app.query_one(Timeline).go(row)
        await pilot.pause()
        lines = screen_lines(app)
        shown = [line for line in lines if "spBv1.0/# (QoS 1)" in line]
        assert shown, "\n".join(lines)
        assert all("\t" not in line and not re.search(r"[\x00-\x1f\x7f]", line) for line in lines)
        assert all(re.search(r"1795444950: +spBv1\.0/# \(QoS 1\)", line) for line in shown), shown
        assert all(len(line) == size[0] for line in lines)


@pytest.mark.parametrize("size", SIZES)
async def test_a_long_line_scrolls_sideways_and_shows_whole_in_the_bottom_bar(make_app: Make,
                                                                             size: tuple[int, int]) -> None:
    app = make_app("mixed")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        store = app.source.store
        row = max(range(len(store)), key=lambda r: len(store.text(r)))
        text = store.text(row)
        await pilot.press("t")
        timeline = app.query_one(Timeline)
        timeline.go(row)
        await pilot.pause()
        assert len(text) > timeline.text_width()  # the row cuts it ...
        assert " ".join(text.split()) in " ".join(_plain(app, "#row-info").split())  # ... the bar has it whole
        tail = text[-12:]
        assert not any(tail in line for line in screen_lines(app)[:-3])
        for _ in range(1 + (len(text) - timeline.text_width()) // Timeline.SHIFT + 1):
            await pilot.press("right")
        await pilot.pause()
        assert timeline.shift > 0
        cursor_line = next(line for line in screen_lines(app) if "…" in line and tail in line)
        start = re.search(r"[ !◆]▌\d\d:\d\d:\d\d\.\d{3} ", cursor_line)
        assert start is not None  # time and source stay put, the text moved
        assert cursor_line.index("…", start.start()) - start.start() == Timeline.PREFIX, cursor_line
        await pilot.press(*["left"] * 20)
        assert timeline.shift == 0


@pytest.mark.parametrize("size", SIZES)
async def test_estimated_times_are_marked_in_the_timeline(make_app: Make, size: tuple[int, int]) -> None:
    """mosquitto_sub's output has no times: its lines carry their file's time, marked ≈."""
    app = make_app("mixed")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        store = app.source.store
        untimed = next(r for r in range(len(store)) if store.source(r) == "client:hmi-30-sub")
        timed = next(r for r in range(len(store)) if store.source(r) == "broker")
        assert store.estimated(untimed) and not store.estimated(timed)
        await pilot.press("t")
        timeline = app.query_one(Timeline)
        for row, marked in ((untimed, True), (timed, False)):
            timeline.go(row)
            await pilot.pause()
            line = next(line for line in screen_lines(app) if printable(store.text(row))[:20] in line)
            assert ("≈" in line) is marked, line
            assert ("no time of its own" in _plain(app, "#row-info")) is marked


async def test_resizing_recomputes_the_layout_every_time(make_app: Make) -> None:
    """200x50 -> 80x24 -> 200x50: one pane at 80 columns, side by side and titled when wide."""
    app = make_app("mixed")
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        table = app.query_one(FindingsTable)
        title = app.findings[table.keys[0]].title
        for width, height in ((80, 24), (200, 50), (80, 24), (200, 50)):
            await pilot.resize_terminal(width, height)
            await pilot.pause()
            await pilot.pause()
            wide = width >= app.settings.wide_at
            assert app.query_one("#body").has_class("wide") is wide
            timeline = app.query_one(Timeline)
            detail = app.query_one("#detail")
            if wide:
                assert detail.region.width > 40 and timeline.region.width > 80
            else:
                assert detail.region.width == width and timeline.region.width == 0
            row = screen_lines(app)[2]  # the first finding's row: titled when there is room
            assert (title[:30] in row) is wide, row


@pytest.mark.parametrize("size", SIZES)
async def test_choosing_another_finding_shows_its_detail_from_the_top(make_app: Make, size: tuple[int, int]) -> None:
    app = make_app("mixed")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        pane = app.query_one("#detail", VerticalScroll)
        await pilot.press("x")  # scrolled down to the fix
        await pilot.pause()
        if size == (80, 24):
            assert pane.scroll_offset.y > 0
        app.query_one(FindingsTable).focus()
        await pilot.press("down")
        await pilot.pause()
        assert pane.scroll_offset.y == 0
        second = app.findings[app.query_one(FindingsTable).keys[1]]
        assert any(second.id in line for line in screen_lines(app)[6:8])


@pytest.mark.parametrize("size", SIZES)
async def test_x_and_v_bring_the_fix_and_the_evidence_into_view(make_app: Make, size: tuple[int, int]) -> None:
    app = make_app("mixed")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one(FindingsTable)
        table.move_cursor(row=table.keys.index(next(k for k in table.keys if k.startswith("tls."))))
        await pilot.pause()
        for key, heading, then in (("x", "Fix", "$ openssl x509 -in certs/edge-31.pem"), ("v", "Evidence", "OpenSSL")):
            await pilot.press(key)
            await pilot.pause()
            lines = screen_lines(app)
            assert any(line.lstrip(" │").startswith(heading) for line in lines), "\n".join(lines)
            assert any(then in line for line in lines), "\n".join(lines)


@pytest.mark.parametrize("size", SIZES)
async def test_the_status_line_keeps_the_filter_in_sight(make_app: Make, size: tuple[int, int]) -> None:
    app = make_app("mixed")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app._apply_filter(Filter(client="edge-31", kind="tls", min_level="warning"), sync=True)
        await pilot.pause()
        status = screen_lines(app)[0]
        assert "filter: client ~edge-31; kind ~tls; level ≥ warning" in status, status
        assert "3 findings" in status and "BUNDLE" in status
        if size[0] >= 200:
            assert "3 high" in status and "6 sources" in status and "clock corrected: viewer-33 +300s" in status


@pytest.mark.parametrize("size", SIZES)
async def test_a_bundle_says_when_within_the_incident_a_finding_was_last_seen(make_app: Make,
                                                                              size: tuple[int, int]) -> None:
    """`tui` on a bundle days old: 'last' is the time of day in the logs (UTC, as the timeline),
    not '10d'."""
    app = make_app("mixed", clock=lambda: 1795446000.0 + 10 * 86400)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one(FindingsTable)
        lines = screen_lines(app)
        for key in table.keys:
            finding = app.findings[key]
            row = next(line for line in lines if finding.id in line)
            assert "14:42:3" in row and "10d" not in row, row
