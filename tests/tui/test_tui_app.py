"""The flows an engineer goes through, driven with Pilot at a fixed size over real incidents:
open, choose a finding, read its detail, jump to its evidence, search, filter, errors, copy
the fix, help."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Input, Static
from tui_helpers import SAMPLES, SIZES, settings

from correlator.tui.app import CorrelatorApp, create_app
from correlator.tui.screens import FilterScreen, HelpScreen
from correlator.tui.sources import BundleEventSource
from correlator.tui.widgets import FindingsTable, Timeline

Make = Callable[..., CorrelatorApp]
pytestmark = pytest.mark.anyio


def _plain(app: CorrelatorApp, selector: str) -> str:
    """A Static's content as plain text, unwrapped (assertions look for whole phrases)."""
    console = Console(width=400, file=io.StringIO(), record=True)
    console.print(app.query_one(selector, Static).content)
    return console.export_text()


async def test_open_lists_findings_worst_first_with_detail(make_app: Make) -> None:
    app = make_app("mixed")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one(FindingsTable)
        ids = [key.split("|")[0] for key in table.keys]
        assert sorted(ids) == ["acl.publish_denied", "auth.bad_credentials", "tls.client_cert_expired"]
        assert [app.findings[k].severity for k in table.keys] == ["high", "high", "high"]
        assert app.focused is table
        detail = _plain(app, "#detail-text")
        assert ids[0] in detail and "Evidence" in detail and "Fix" in detail
        status = _plain(app, "#status")
        assert "BUNDLE" in status and "3 findings" in status and "6 sources" in status


async def test_certificate_facts_and_days_expired(make_app: Make) -> None:
    app = make_app("mixed")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(FindingsTable)
        table.move_cursor(row=table.keys.index(next(k for k in table.keys if k.startswith("tls."))))
        await pilot.pause()
        detail = _plain(app, "#detail-text")
        assert "CN=edge-31,O=correlator lab" in detail
        assert "valid until 2026-11-21 14:42:29 UTC  expired 2 days ago" in detail
        assert "$ openssl x509 -in certs/edge-31.pem -noout -subject -enddate" in detail


async def test_enter_jumps_to_the_evidence_and_n_walks_it(make_app: Make) -> None:
    app = make_app("mixed")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one(FindingsTable)
        key = next(k for k in table.keys if k.startswith("tls.client_cert_expired"))
        table.move_cursor(row=table.keys.index(key))
        await pilot.press("enter")
        await pilot.pause()
        timeline = app.query_one(Timeline)
        assert app.focused is timeline and timeline.display
        store = app.source.store
        finding = app.findings[key]
        wanted = {(ref.file, ref.line) for ref in finding.evidence}
        marked = {(store.files[store.file[r]], store.line[r]) for r in timeline.marked}
        assert marked == wanted
        first = timeline.row_at(timeline.cursor)
        assert first is not None and first in timeline.marked
        assert timeline.scroll_offset.y <= timeline.cursor < timeline.scroll_offset.y + timeline.size.height
        await pilot.press("n")
        second = timeline.row_at(timeline.cursor)
        assert second in timeline.marked and second is not None and second > first
        await pilot.press("N")
        assert timeline.row_at(timeline.cursor) == first
        assert "broker/mosquitto.log:32" in _plain(app, "#row-info")


async def test_incremental_search_then_next_and_previous(make_app: Make) -> None:
    app = make_app("mixed")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("g")  # top of the findings table; then the timeline's top
        await pilot.press("t", "g", "slash")
        search = app.query_one("#search", Input)
        assert app.focused is search
        await pilot.press(*"not auth")
        timeline = app.query_one(Timeline)
        store = app.source.store
        first = timeline.row_at(timeline.cursor)
        assert first is not None and "not authorised" in store.text(first)
        assert all("not auth" not in store.text(r) for r in range(first))
        await pilot.press("enter")
        assert isinstance(app.focused, Timeline) and not app.query_one("#search-bar").display
        await pilot.press("n")
        second = timeline.row_at(timeline.cursor)
        assert second is not None and second > first and "not authorised" in store.text(second)
        await pilot.press("N")
        assert timeline.row_at(timeline.cursor) == first


async def test_e_and_E_walk_errors_g_and_G_jump(make_app: Make) -> None:
    app = make_app("mixed")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("t", "g")
        timeline = app.query_one(Timeline)
        assert timeline.cursor == 0
        await pilot.press("e")
        store = app.source.store
        row = timeline.row_at(timeline.cursor)
        assert row is not None and store.level_name(row) in ("error", "critical")
        assert all(store.level_name(r) not in ("error", "critical") for r in range(row))
        await pilot.press("e")
        later = timeline.row_at(timeline.cursor)
        assert later is not None and later > row
        await pilot.press("E")
        assert timeline.row_at(timeline.cursor) == row
        await pilot.press("G")
        assert timeline.cursor == timeline.count - 1 == len(store) - 1


async def test_filter_by_client_kind_and_level_through_the_dialog(make_app: Make) -> None:
    app = make_app("mixed")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f")
        assert isinstance(app.screen, FilterScreen)
        await pilot.press(*"edge-31", "enter")
        await pilot.pause()
        timeline = app.query_one(Timeline)
        store = app.source.store
        rows = [r for p in range(timeline.count) if (r := timeline.row_at(p)) is not None]
        edge = store.clients.index("edge-31")
        conns = {c for c, named in store.conn_clients.items() if edge in named}
        assert rows and all(store.client[r] == edge or store.conn[r] in conns for r in rows)
        # the broker's lines of its failed handshakes say `Client <unknown>`: they are its evidence
        broker = [r for r in rows if store.source(r) == "broker" and not store.clients[store.client[r]]]
        assert any("certificate" in store.text(r) for r in broker), [store.text(r) for r in broker]
        assert "client ~edge-31" in _plain(app, "#status")
        await pilot.press("F")
        assert timeline.count == len(store)
        # kind, level and source through the same dialog
        await pilot.press("f")
        screen = app.screen
        assert isinstance(screen, FilterScreen)
        screen.query_one("#filter-client", Input).value = ""
        screen.query_one("#filter-kind", Input).value = "tls"
        screen.query_one("#filter-level").value = "error"  # type: ignore[attr-defined]
        screen.query_one("#filter-sources").select("broker")  # type: ignore[attr-defined]
        screen.action_apply()
        await pilot.pause()
        shown = [timeline.row_at(p) for p in range(timeline.count)]
        assert shown
        for r in shown:
            assert r is not None
            assert store.source(r) == "broker" and "tls" in store.kinds[store.kind[r]]
            assert store.level_name(r) in ("error", "critical")


async def test_jump_to_evidence_clears_a_filter_that_hides_it(make_app: Make) -> None:
    app = make_app("mixed")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f", *"viewer-33", "enter")
        await pilot.pause()
        table = app.query_one(FindingsTable)
        table.focus()
        table.move_cursor(row=table.keys.index(next(k for k in table.keys if k.startswith("tls."))))
        await pilot.press("enter")
        await pilot.pause()
        assert not app.filter.active
        timeline = app.query_one(Timeline)
        assert timeline.row_at(timeline.cursor) in timeline.marked


async def test_copy_fix_puts_the_commands_on_the_clipboard(make_app: Make) -> None:
    app = make_app("mixed")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one(FindingsTable)
        table.move_cursor(row=table.keys.index(next(k for k in table.keys if k.startswith("tls."))))
        await pilot.press("c")
        assert app.clipboard == app.last_copied
        lines = app.clipboard.splitlines()
        assert lines[0] == "openssl x509 -in certs/edge-31.pem -noout -subject -enddate"
        assert any(line.startswith("# ") for line in lines)  # a step without a command stays readable


async def test_help_lists_the_keys(make_app: Make) -> None:
    app = make_app("mixed")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_wide_terminal_shows_detail_and_timeline_side_by_side(make_app: Make) -> None:
    app = make_app("server_cert_expired")
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert app.query_one("#detail").display and app.query_one("#timeline-pane").display
        assert app.query_one("#detail").region.width > 0 and app.query_one(Timeline).region.width > 0
    app = make_app("server_cert_expired")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.query_one("#detail").region.width > 0
        assert app.query_one(Timeline).region.width == 0


async def test_tui_bundle_reads_on_a_worker_and_fills_the_screen(tmp_path: Path) -> None:
    """`correlator tui` on an archive: the first frame says it is reading, then the findings and
    the timeline arrive; lines are read back from the extracted files."""
    archive = shutil.make_archive(str(tmp_path / "incident"), "zip", SAMPLES, "server_cert_expired")
    source = BundleEventSource([archive])
    app = create_app(settings(), source)
    async with app.run_test(size=(80, 24)) as pilot:
        while source.status() != "done":
            await pilot.pause(0.05)
        await pilot.pause(0.1)
        assert "tls.server_cert_expired" in [f.id for f in app.ordered]
        assert "BUNDLE" in _plain(app, "#status")
        await pilot.press("enter")
        timeline = app.query_one(Timeline)
        row = timeline.row_at(timeline.cursor)
        assert row is not None and row in timeline.marked
        finding = app.ordered[0]
        store = source.store
        ref = next(r for r in finding.evidence if (r.file, r.line) == (store.files[store.file[row]], store.line[row]))
        assert store.text(row) == ref.text  # read back from the extracted file, as the engine saw it
        assert not store._raw


async def test_a_click_on_the_timeline_moves_the_cursor_there(make_app: Make) -> None:
    app = make_app("mixed")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("t", "g")
        timeline = app.query_one(Timeline)
        await pilot.click(Timeline, offset=(20, 3))
        assert timeline.cursor == timeline.scroll_offset.y + 3
        assert app.focused is timeline


@pytest.mark.parametrize("size", SIZES)
async def test_the_filter_dialog_opens_on_its_first_field(make_app: Make, size: tuple[int, int]) -> None:
    """It opened on its second field, so a Tab put the client id into 'kind contains'."""
    app = make_app("mixed")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("f")
        screen = app.screen
        assert isinstance(screen, FilterScreen)
        first = screen.query_one("#filter-client", Input)
        assert app.focused is first
        assert first.region.y == min(w.region.y for w in screen.query("Input, Select, SelectionList"))
        await pilot.press("tab", *"tls", "enter")
        await pilot.pause()
        assert app.filter.kind == "tls" and not app.filter.client


async def test_a_bundle_of_several_hosts_names_each_findings_host(make_app: Make) -> None:
    """gateway_clock holds the central broker and a gateway with its own clock: the findings list
    says whose each finding is, the detail names the host, and the clock finding names the
    gateway's clock, not only the log that showed it."""
    app = make_app("gateway_clock")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(FindingsTable)
        hosts = {str(table.get_row_at(row)[0]): table.keys[row].split("|")[0] for row in range(len(table.keys))}
        assert hosts["central"] == "auth.bad_credentials"
        assert {"central", "gw-01"} == set(hosts)
        table.move_cursor(row=next(r for r, k in enumerate(table.keys) if k.startswith("client.clock_skew")))
        await pilot.pause()
        detail = _plain(app, "#detail-text")
        assert "clients: gw-01-" in detail and "· host: gw-01" in detail
        assert "The clock of host gw-01 (as its log client:gw-01-" in detail
