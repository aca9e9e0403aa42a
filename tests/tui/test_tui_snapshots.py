"""SVG snapshots of the key screens (pytest-textual-snapshot). Deterministic: fixed terminal
size, the clock fixed by `settings()`, no cursor blink (conftest). After a deliberate change to
the screens, review and accept with `pytest tests/tui --snapshot-update`."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

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


def test_histogram_80x24(snap_compare: Snap, make_app: Make) -> None:
    assert snap_compare(make_app("mixed"), press=["i"], terminal_size=(80, 24))


def test_histogram_per_source_200x50(snap_compare: Snap, make_app: Make) -> None:
    assert snap_compare(make_app("mixed"), press=["i", "s"], terminal_size=(200, 50))


async def _long_line(pilot: Pilot[None]) -> None:
    """The timeline on edge-31's TLS error (cut in its row, whole in the bottom bar), with the
    untimed mosquitto_sub lines (≈) below it, searched for 'certificate'."""
    app = pilot.app
    assert isinstance(app, CorrelatorApp)
    await pilot.press("t", "g", "slash", *"SSLV3_ALERT", "enter")


def test_long_line_search_and_estimated_times_80x24(snap_compare: Snap, make_app: Make) -> None:
    assert snap_compare(make_app("mixed"), run_before=_long_line, terminal_size=(80, 24))


def test_long_line_search_and_estimated_times_200x50(snap_compare: Snap, make_app: Make) -> None:
    assert snap_compare(make_app("mixed"), run_before=_long_line, terminal_size=(200, 50))


async def _resized(pilot: Pilot[None]) -> None:
    await pilot.resize_terminal(80, 24)
    await pilot.pause()
    await pilot.resize_terminal(200, 50)
    await pilot.pause()


def test_back_to_200x50_after_80x24(snap_compare: Snap, make_app: Make) -> None:
    assert snap_compare(make_app("mixed"), run_before=_resized, terminal_size=(200, 50))
