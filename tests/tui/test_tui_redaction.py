"""The TUI draws what the reports and the API serve: no screen holds a secret planted in the
bundle (tests/planted_secrets.py), neither the findings and their detail nor any row of the
timeline, though the timeline reads its rows back from the files, which still hold them."""

from __future__ import annotations

from pathlib import Path

import pytest
from planted_secrets import leaks, plant
from tui_helpers import screen_lines, settings

from correlator.redaction import PASSWORD_REMOVED
from correlator.tui.app import create_app
from correlator.tui.sources import analyse_with_events
from correlator.tui.widgets import Timeline

pytestmark = pytest.mark.anyio


async def test_no_screen_holds_a_planted_secret(tmp_path: Path) -> None:
    bundle, secrets = plant(tmp_path)
    app = create_app(settings(), analyse_with_events([bundle]))
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        screens = ["\n".join(screen_lines(app))]
        await pilot.press("v")  # the detail's evidence
        await pilot.pause()
        screens.append("\n".join(screen_lines(app)))
        await pilot.press("t")
        timeline = app.query_one(Timeline)
        rows = len(app.source.store)
        for row in range(0, rows, 20):
            timeline.go(row)
            await pilot.pause()
            screens.append("\n".join(screen_lines(app)))
    shown = "\n".join(screens)
    assert not leaks(shown, secrets)
    assert PASSWORD_REMOVED in shown
    assert not leaks("\n".join(app.source.store.text(r) for r in range(rows)), secrets)
