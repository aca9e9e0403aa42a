"""The TUI draws a hostile topic (terminal control sequences) as pictures on every screen that
shows it: the finding's detail, its evidence and the timeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_text import CONTROL, plant
from tui_helpers import screen_lines, settings

from correlator.tui.app import create_app
from correlator.tui.sources import analyse_with_events
from correlator.tui.widgets import Timeline

pytestmark = pytest.mark.anyio


async def test_no_screen_sends_a_control_character(tmp_path: Path) -> None:
    app = create_app(settings(), analyse_with_events([plant(tmp_path)]))
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        screens = ["\n".join(screen_lines(app))]
        await pilot.press("v")
        await pilot.pause()
        screens.append("\n".join(screen_lines(app)))
        await pilot.press("t")
        store = app.source.store
        app.query_one(Timeline).go(next(r for r in range(len(store)) if "\x1b]52" in store.text(r)))
        await pilot.pause()
        screens.append("\n".join(screen_lines(app)))
    shown = "\n".join(screens)
    assert "␛]52;c;" in shown
    assert not CONTROL.search(shown)
