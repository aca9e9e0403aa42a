"""Fixtures of the TUI tests: apps built by the real factory over real incidents (sample_logs),
a fixed clock, and no blinking cursor, so what a test or a snapshot sees never depends on when
it runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.widgets import Input
from tui_helpers import incident, settings

from correlator.tui.app import CorrelatorApp, create_app


@pytest.fixture
def anyio_backend() -> str:
    """Pilot runs on asyncio; anyio's pytest plugin (installed with httpx) runs the async tests."""
    return "asyncio"


@pytest.fixture(autouse=True)
def no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blinking cursor makes two screenshots of the same screen differ."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture
def make_app() -> Callable[..., CorrelatorApp]:
    def make(name: str = "mixed", **changes: object) -> CorrelatorApp:
        return create_app(settings(**changes), incident(name))

    return make
