"""Lines appended while a busy broker's log is followed are read as `analyze` reads the final file:
each batch is classified by the batch reader's classifier, its routine traffic counted and kept as
places (timeline rows read back from the file, in `watch`), never parsed, and only the rest become
events. A real mosquitto with `log_type all` starts writing its PUBLISH/PUBACK flood (real paho
publishers and a subscriber) after the watch began, a client with a wrong password fails later,
and the watch (and `serve PATH`, through its HTTP API) ends with exactly the lines, counts,
histogram and finding `analyze` gives on the final files, every line a timeline row once."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import RunningServer

from correlator.analysis import analyze
from correlator.api import Settings
from correlator.formats.scan import keeps_lines, scan_engine
from correlator.report_model import Analysis, Finding
from correlator.tui.event_store import ROUTINE
from correlator.tui.search import SearchIndex, find_rows
from correlator.tui.sources import LiveEventSource
from lab.broker import Mosquitto
from lab.incidents import SPARKPLUG_ACL, USERS, Scene

pytestmark = pytest.mark.skipif(not keeps_lines() or scan_engine() == "off",
                                reason="the bulk reader keeps no line places here (no Hyperscan)")

#: Broker lines appended while the log is followed: most of them routine traffic.
APPENDED = 6000


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n")


def _starts(path: Path) -> list[int]:
    data = path.read_bytes()
    starts = [0]
    at = data.find(b"\n")
    while at >= 0 and at + 1 < len(data):
        starts.append(at + 1)
        at = data.find(b"\n", at + 1)
    return starts


def _until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _busy_plant(scene: Scene, broker: Mosquitto) -> None:
    """A subscriber and two QoS 1 publishers (real paho clients) that keep the broker writing
    routine PUBLISH/PUBACK traffic until they are stopped (logging errors only: they have none)."""
    port = broker.port
    scene.paho("hmi-01", port, ["--subscribe", "spBv1.0/#", "--attempts", "1000", "--log-level", "ERROR"],
               client_id="hmi-01", username="HMI", password=USERS["HMI"], duration=120)
    time.sleep(0.5)
    for j in range(2):
        topics = [arg for k in range(10) for arg in ("--publish", f"spBv1.0/Plant1/NDATA/edge-0{j}/{k}")]
        scene.paho(f"edge-0{j}", port, [*topics, "--interval", "0.005", "--qos", "1", "--attempts", "1000",
                                        "--log-level", "ERROR"],
                   client_id=f"edge-0{j}", username="MyEACM", password=USERS["MyEACM"], duration=120)


def _wrong_password(scene: Scene, broker: Mosquitto) -> None:
    """A paho client (its DEBUG log names its client id and its socket's port) with a wrong password."""
    client = scene.paho("edge-10", broker.port, ["--publish", "spBv1.0/Plant1/NDATA/edge-10", "--attempts", "1"],
                        client_id="edge-10", username="MyEACM", password="eacm-secret-OLD", duration=3)
    broker.wait_for_log(r"not authorised", timeout=60)
    scene.wait(client)


def _stop_plant(scene: Scene, broker: Mosquitto) -> None:
    time.sleep(0.5)  # some more flood after the failure
    for client in scene.clients.values():
        if client.proc is not None and client.proc.poll() is None:
            client.proc.send_signal(signal.SIGINT)
    scene.wait(timeout=20)
    broker.stop()


def _finding(findings: list[Finding], rule: str) -> Finding:
    found = [f for f in findings if f.id == rule]
    assert found, f"no {rule} among {[f.id for f in findings]}"
    return found[0]


def _refusal(batch: Analysis) -> tuple[set[str], set[tuple[int | None, str]]]:
    """The refused login `analyze` names: its clients and its broker evidence lines."""
    expected = _finding(batch.findings, "auth.bad_credentials")
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
        _until(lambda: log.exists() and _lines(log) > 0, "the broker's first lines")
        source = LiveEventSource([scene.root], stitch_window=0.5)
        source.start(lambda: None)
        try:
            _until(lambda: source.analysis.caught_up, "the first read")
            at_start = _lines(log)
            _busy_plant(scene, broker)
            _until(lambda: _lines(log) >= at_start + APPENDED, f"{APPENDED} appended broker lines")
            _wrong_password(scene, broker)
            _stop_plant(scene, broker)
            batch = analyze([scene.root])
            expected = {s.info.source: s.info.lines_read for s in batch.sources if s.info.lines_read}
            assert expected["broker"] == _lines(log)

            def lines() -> dict[str, int]:
                return {s.name: s.lines for s in source.source_info() if s.lines}

            _until(lambda: lines() == expected, f"the watch to read {expected} lines ({lines()} so far)", 90)
        finally:
            source.stop()
    source.store.renumber()  # the first read's routine rows, had it any (the screen does this)
    live = source.analysis
    assert source.errors == [] and live.errors == []
    broker_state = next(s for s in live.sources.values() if s.source == "broker")
    total = _lines(log)
    # the appended routine lines were counted, not parsed: only the rest are events
    assert live_rows(source) >= APPENDED // 2
    assert broker_state.counted >= live_rows(source)
    assert broker_state.lines == total and broker_state.counted + broker_events(source) == total
    # each line is a timeline row once: events and routine rows alike, routine rows those counted
    store = source.store
    file = store.files.index(str(log))
    rows = [row for row in range(len(store)) if store.file[row] == file]
    assert sorted(store.offset[row] for row in rows) == _starts(log)
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
        _busy_plant(scene, broker)
        _until(lambda: log.exists() and _lines(log) >= BEFORE, f"{BEFORE} broker lines")
        server = RunningServer(Settings(state_dir=tmp_path / "state", live_paths=[scene.root],
                                        live_stitch_window=0.5)).start()
        try:
            hub = server.app.state.live
            with server.client() as client:
                _until(lambda: hub.analysis.caught_up, "the first read")
                first = sum(s.counted for s in hub.analysis.sources.values())
                assert first >= BEFORE // 2  # the existing lines' routine traffic was counted, not parsed
                at_start = _lines(log)
                _until(lambda: _lines(log) >= at_start + APPENDED, f"{APPENDED} appended broker lines")
                _wrong_password(scene, broker)
                _stop_plant(scene, broker)
                batch = analyze([scene.root])
                expected = {s.info.source: s.info.lines_read for s in batch.sources if s.info.lines_read}

                def lines() -> dict[str, int]:
                    return {s["source"]: s["lines"] for s in _status(client)["sources"] if s["lines"]}

                _until(lambda: lines() == expected, f"the server to read {expected} lines ({lines()} so far)", 90)
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
