"""SVG snapshots of the key screens (pytest-textual-snapshot). Deterministic: fixed terminal
size, the clock fixed by `settings()`, no cursor blink (conftest). After a deliberate change to
the screens, review and accept with `pytest tests/tui --snapshot-update`."""

from __future__ import annotations

from collections.abc import Callable

from correlator.tui.app import CorrelatorApp

Make = Callable[..., CorrelatorApp]
Snap = Callable[..., bool]


def test_findings_and_certificate_detail_80x24(snap_compare: Snap, make_app: Make) -> None:
    # the second finding (worst first, then most recent) is the expired client certificate
    assert snap_compare(make_app("mixed"), press=["down"], terminal_size=(80, 24))


def test_timeline_at_the_evidence_80x24(snap_compare: Snap, make_app: Make) -> None:
    assert snap_compare(make_app("mixed"), press=["down", "enter"], terminal_size=(80, 24))


def test_wide_terminal_detail_beside_timeline(snap_compare: Snap, make_app: Make) -> None:
    assert snap_compare(make_app("server_cert_expired"), press=["enter"], terminal_size=(160, 45))


def test_help_screen(snap_compare: Snap, make_app: Make) -> None:
    assert snap_compare(make_app("mixed"), press=["question_mark"], terminal_size=(80, 24))
