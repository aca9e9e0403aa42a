"""Lines appended while a busy broker's log is followed are read as `analyze` reads the final file:
each batch is classified by the batch reader's classifier, its routine traffic counted and kept as
places (timeline rows read back from the file, in `watch`), never parsed, and only the rest become
events. A real mosquitto with `log_type all` starts writing its PUBLISH/PUBACK flood (real paho
publishers and a subscriber) after the watch began, a client with a wrong password fails later,
and the watch (and `serve PATH`, through its HTTP API) ends with exactly the lines, counts,
histogram and finding `analyze` gives on the final files, every line a timeline row once."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import RunningServer
from live_plant import busy_plant, finding, line_count, line_starts, stop_plant, wait_until, wrong_password

from correlator.analysis import analyze
from correlator.api import Settings
from correlator.formats.scan import keeps_lines, scan_engine
from correlator.report_model import Analysis
from correlator.tui.event_store import ROUTINE
from correlator.tui.search import SearchIndex, find_rows
from correlator.tui.sources import LiveEventSource
from lab.incidents import SPARKPLUG_ACL, USERS, Scene

pytestmark = pytest.mark.skipif(not keeps_lines() or scan_engine() == "off",
                                reason="the bulk reader keeps no line places here (no Hyperscan)")

#: Broker lines appended while the log is followed: most of them routine traffic.
APPENDED = 6000


def _refusal(batch: Analysis) -> tuple[set[str], set[tuple[int | None, str]]]:
    """The refused login `analyze` names: its clients and its broker evidence lines."""
    expected = finding(batch.findings, "auth.bad_credentials")
    assert "edge-10" in expected.clients
    lines = {(e.line, e.text) for e in expected.evidence if e.side == "broker"}
    assert any("not authorised" in text for _, text in lines)
    return expected.clients, lines


def _line_counts(histogram: dict[str, dict[int, list[int]]], source: str) -> dict[int, int]:
    return {second: cell[0] for second, cell in histogram.get(source, {}).items()}


def test_watch_counts_appended_routine_lines_as_analyze_does_and_draws_each_once(tmp_path: Path) -> None:
    scene = Scene.create(tmp_path, "busy", "a busy broker whose flood starts while it is watched")
    # with an ACL the rules read each client's first Received PUBLISH: the appended lines are thinned
    config = scene.login_listener(USERS, SPARKPLUG_ACL)
    log = scene.root / "broker" / "mosquitto.log"
    with scene.broker(config) as broker:
        wait_until(lambda: log.exists() and line_count(log) > 0, "the broker's first lines")
        source = LiveEventSource([scene.root], stitch_window=0.5)
        source.start(lambda: None)
        try:
            wait_until(lambda: source.analysis.caught_up, "the first read")
            at_start = line_count(log)
            busy_plant(scene, broker)
            wait_until(lambda: line_count(log) >= at_start + APPENDED, f"{APPENDED} appended broker lines")
            wrong_password(scene, broker)
            stop_plant(scene, broker)
            batch = analyze([scene.root])
            expected = {s.info.source: s.info.lines_read for s in batch.sources if s.info.lines_read}
            assert expected["broker"] == line_count(log)

            def lines() -> dict[str, int]:
                return {s.name: s.lines for s in source.source_info() if s.lines}

            wait_until(lambda: lines() == expected, f"the watch to read {expected} lines ({lines()} so far)", 90)
        finally:
            source.stop()
    source.store.renumber()  # the first read's routine rows, had it any (the screen does this)
    live = source.analysis
    assert source.errors == [] and live.errors == []
    broker_state = next(s for s in live.sources.values() if s.source == "broker")
    total = line_count(log)
    # the appended routine lines were counted, not parsed: only the rest are events
    assert live_rows(source) >= APPENDED // 2
    assert broker_state.counted >= live_rows(source)
    assert broker_state.lines == total and broker_state.counted + broker_events(source) == total
    # each line is a timeline row once: events and routine rows alike, routine rows those counted
    store = source.store
    file = store.files.index(str(log))
    rows = [row for row in range(len(store)) if store.file[row] == file]
    assert sorted(store.offset[row] for row in rows) == line_starts(log)
    assert sum(1 for row in rows if store.flags[row] & ROUTINE) == broker_state.counted
    # in time order, every row's text its line's
    back = [(a, b) for a, b in pairwise(rows) if store.ts[a] > store.ts[b]]
    assert not back, [(store.ts[a], store.ts[b], store.flags[a], store.flags[b], store.kinds[store.kind[a]],
                       store.kinds[store.kind[b]], store.line[a], store.line[b]) for a, b in back[:10]]
    text = log.read_text().splitlines()
    assert all(store.text(row) == text[store.line[row] - 1] for row in rows[:: max(1, len(rows) // 500)])
    # and the search finds them: every PUBACK line of the log is a row it finds
    hits = find_rows(store, SearchIndex(store), "puback", len(store))
    assert len(hits) == sum(1 for line in text if "puback" in line.lower()) > APPENDED // 4
    assert all(store.flags[row] & ROUTINE for row in hits)
    # the histogram's picture and the timeline's per-second counts are the batch's
    assert _line_counts(live.session.histogram, "broker") == _line_counts(batch.histogram, "broker")
    assert store.stats[store.sources.index("broker")].per_second == _line_counts(batch.histogram, "broker")
    # the same cause, named by its client id, on the same broker lines
    clients, evidence = _refusal(batch)
    found = live.findings()
    assert {f.id for f in found} == {f.id for f in batch.findings}
    refused = [f for f in found if f.id == "auth.bad_credentials"]
    assert any(clients <= f.clients for f in refused)
    assert {(e.line, e.text) for f in refused for e in f.evidence if e.side == "broker"} == evidence


def live_rows(source: LiveEventSource) -> int:
    assert source.live_rows is not None
    return source.live_rows.rows


def broker_events(source: LiveEventSource) -> int:
    """The broker's lines that became events (timeline rows that are no routine row)."""
    store = source.store
    broker = store.sources.index("broker")
    return sum(1 for row in range(len(store)) if store.src[row] == broker and not store.flags[row] & ROUTINE)


#: Broker lines the log holds before the server starts (its first read is the bulk reader's).
BEFORE = 4000


def _status(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/live")
    assert response.status_code == 200
    status: dict[str, Any] = response.json()
    return status


def test_serve_reads_a_busy_log_in_bulk_and_counts_appended_routine_lines(tmp_path: Path) -> None:
    scene = Scene.create(tmp_path, "busy", "a busy broker tailed by the API while it writes")
    config = scene.login_listener(USERS, SPARKPLUG_ACL)
    log = scene.root / "broker" / "mosquitto.log"
    with scene.broker(config) as broker:
        busy_plant(scene, broker)
        wait_until(lambda: log.exists() and line_count(log) >= BEFORE, f"{BEFORE} broker lines")
        server = RunningServer(Settings(state_dir=tmp_path / "state", live_paths=[scene.root],
                                        live_stitch_window=0.5)).start()
        try:
            hub = server.app.state.live
            with server.client() as client:
                wait_until(lambda: hub.analysis.caught_up, "the first read")
                first = sum(s.counted for s in hub.analysis.sources.values())
                assert first >= BEFORE // 2  # the existing lines' routine traffic was counted, not parsed
                at_start = line_count(log)
                wait_until(lambda: line_count(log) >= at_start + APPENDED, f"{APPENDED} appended broker lines")
                wrong_password(scene, broker)
                stop_plant(scene, broker)
                batch = analyze([scene.root])
                expected = {s.info.source: s.info.lines_read for s in batch.sources if s.info.lines_read}

                def lines() -> dict[str, int]:
                    return {s["source"]: s["lines"] for s in _status(client)["sources"] if s["lines"]}

                wait_until(lambda: lines() == expected, f"the server to read {expected} lines ({lines()} so far)", 90)
                time.sleep(1.0)  # the stitcher's window and the engine's last revisions
                status = _status(client)
                items = client.get("/live/findings").json()["items"]
                counted = sum(s.counted for s in hub.analysis.sources.values())
        finally:
            server.stop()
    assert status["errors"] == []
    total = sum(expected.values())
    # the appended routine lines were counted too: the events are the other lines
    assert counted - first >= APPENDED // 2
    assert status["events"] + counted == total
    assert _line_counts(hub.analysis.session.histogram, "broker") == _line_counts(batch.histogram, "broker")
    clients, evidence = _refusal(batch)
    assert {item["id"] for item in items} == {f.id for f in batch.findings}
    refused = [item for item in items if item["id"] == "auth.bad_credentials"]
    assert any(clients <= set(item["clients"]) for item in refused)
    assert {(e["line"], e["text"]) for item in refused for e in item["evidence"] if e["side"] == "broker"} == evidence
