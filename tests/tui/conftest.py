"""Fixtures of the TUI tests: apps built by the real factory over real incidents (sample_logs),
a fixed clock, and no blinking cursor, so what a test or a snapshot sees never depends on when
it runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Input

from correlator.tui.app import CorrelatorApp, Settings, create_app
from correlator.tui.sources import StaticEventSource, analyse_with_events

SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"
#: 2026-11-23 15:00:00 UTC: a few minutes after the sample incidents were recorded.
NOW = 1795446000.0


@pytest.fixture
def anyio_backend() -> str:
    """Pilot runs on asyncio; anyio's pytest plugin (installed with httpx) runs the async tests."""
    return "asyncio"


@pytest.fixture(autouse=True)
def no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blinking cursor makes two screenshots of the same screen differ."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


def settings(**changes: object) -> Settings:
    base: dict[str, object] = {"title": "correlator test", "clock": lambda: NOW, "tick": 3600.0,
                               "cursor_blink": False}
    base.update(changes)
    return Settings(**base)  # type: ignore[arg-type]


_loaded: dict[str, StaticEventSource] = {}


def incident(name: str) -> StaticEventSource:
    """A sample incident analysed once per session (the store is read-only for the app)."""
    if name not in _loaded:
        _loaded[name] = analyse_with_events([SAMPLES / name])
    return _loaded[name]


@pytest.fixture
def make_app() -> Callable[..., CorrelatorApp]:
    def make(name: str = "mixed", **changes: object) -> CorrelatorApp:
        return create_app(settings(**changes), incident(name))

    return make
