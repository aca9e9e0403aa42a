"""Helpers shared by the TUI tests (conftest holds the fixtures): the sample incidents, a fixed
clock, settings that never blink."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from correlator.tui.app import ScreenSettings
from correlator.tui.sources import StaticEventSource, analyse_with_events

SAMPLES = Path(__file__).resolve().parents[1] / "sample_logs"
#: 2026-11-23 15:00:00 UTC: a few minutes after the sample incidents were recorded.
NOW = 1795446000.0


def settings(**changes: object) -> ScreenSettings:
    base: dict[str, object] = {"title": "correlator test", "clock": lambda: NOW, "tick": 3600.0,
                               "cursor_blink": False}
    base.update(changes)
    return ScreenSettings(**base)  # type: ignore[arg-type]


_loaded: dict[str, StaticEventSource] = {}


def incident(name: str) -> StaticEventSource:
    """A sample incident analysed once per session (the store is read-only for the app)."""
    if name not in _loaded:
        _loaded[name] = analyse_with_events([SAMPLES / name])
    return _loaded[name]


#: The two terminal sizes every screen is proven at: the smallest usual one and a wide one.
SIZES = [(80, 24), (200, 50)]


def screen_lines(app: App[None]) -> list[str]:
    """The screen as the terminal shows it, one string per row (what a user reads)."""
    return ["".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips()]
