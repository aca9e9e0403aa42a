"""Helpers shared by the TUI tests (conftest holds the fixtures): the sample incidents, a fixed
clock, settings that never blink."""

from __future__ import annotations

from pathlib import Path

from correlator.tui.app import ScreenSettings
from correlator.tui.sources import StaticEventSource, analyse_with_events

SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"
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
