"""Every structure that grows with input has a cap or ages out, and what a cap lets go is counted
(issue 16, item 1). The caps are lowered here so a few thousand events reach them; the storms at
full size are timed by benchmarks/hostile.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile.storms import STORMS, write

from correlator.analysis import analyze
from correlator.engine import evaluate
from correlator.engine.evaluate import Engine
from correlator.engine.rules import load_rule
from correlator.engine.selftest import make_event
from correlator.formats.registry import default_registry
from correlator.model import Event
from correlator.sources.files import LogFile
from correlator.timeline.connections import Connection, Stitcher
from correlator.timeline.pipeline import BatchTimeline


def accept(line: int, ts: float, port: int, addr: str = "127.0.0.1") -> Event:
    return Event(ts=ts, time_text="", source="broker", file="broker.log", line=line, kind="net.accept", raw="",
                 fields={"peer_addr": addr, "peer_port": port, "listener_port": 1883})


def test_a_storm_in_one_second_keeps_the_stitcher_small_and_counts_what_it_let_go() -> None:
    stitcher = Stitcher(max_open=100, max_pending=50, max_hold=200, max_unlinked=30)
    released = 0
    for n in range(3000):
        released += len(stitcher.push(accept(n + 1, 10.0, 1024 + n)))
        assert len(stitcher._where) <= 100 + 64 and len(stitcher._hold) <= 200
        assert len(stitcher._unlinked_broker) <= 30
    released += len(stitcher.flush())
    assert released == 3000  # every event comes out once
    assert stitcher.overflow["pending"] == 3000 - 50
    assert stitcher.let_go_from == {"127.0.0.1": 3000 - 50}
    assert stitcher.overflow["hold"] == 3000 - 200
    notes = stitcher.overflow_notes()
    assert notes[0].startswith("2,950 connections were let go before they ended (2,950 from 127.0.0.1)")


def test_a_reused_port_ends_the_connection_that_had_it() -> None:
    stitcher = Stitcher()
    for n in range(1000):
        stitcher.push(accept(n + 1, 10.0, 40000))
    assert len(stitcher.open_connections()) == 1
    stitcher.flush()
    assert stitcher.overflow == {}


def test_an_open_connection_of_the_pipeline_keeps_a_summary_not_its_lines(tmp_path: Path) -> None:
    """A client that stays connected and publishes for ever: the connection the analysis keeps
    open holds its first line and counts, however many lines it has had."""
    head = "1795444950: New connection from 10.0.0.7:50000 on port 1883.\n" \
        "1795444950: New client connected from 10.0.0.7:50000 as dev-1 (p2, c1, k60, u'fleet').\n"
    denied = "1795444951: Denied PUBLISH from dev-1 (d0, q1, r0, m1, 'spBv1.0/Plant3/NDATA/dev-1', ... (12 bytes))\n"
    log = tmp_path / "mosquitto.log"
    log.write_text(head + denied * 500)
    connections: list[Connection] = []
    for _ in BatchTimeline([LogFile(log, default_registry())], on_connection=connections.append).chunks():
        pass
    (conn,) = connections  # open to the end (the log's end closes it)
    assert (conn.client_id, conn.broker_lines) == ("dev-1", 502)
    assert [e.kind for e in conn.broker_events] == ["net.accept"] and conn.dropped_events == 501


def _engine(tmp_path: Path, body: str) -> Engine:
    path = tmp_path / "r.toml"
    path.write_text('[rule]\nid = "x.y"\ntitle = "t"\nseverity = "high"\nexplanation = "{clients}: {count}"\n'
                    'group_by = ["client_id"]\ncount = "event"\n' + body)
    return Engine([load_rule(path)])


def test_partial_matches_are_capped_per_match_and_the_drop_is_counted(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate, "MAX_KEYS", 100)
    engine = _engine(tmp_path, '''
[[match]]
type = "sequence"
by = "client_id"
maxspan = "1d"
steps = [{ where = { kind = "mqtt.connect" } }, { where = { kind = "mqtt.publish" } }]
''')
    for n in range(1000):
        engine.feed(make_event({"kind": "mqtt.connect", "client_id": f"c{n}", "t": n}, n, ""))
    state = engine._states[0][1]
    assert len(state.partials) == 100 and state.dropped == 900
    # the newest keys are kept and still complete
    engine.feed(make_event({"kind": "mqtt.publish", "client_id": "c999", "t": 1000}, 1000, ""))
    (finding,) = engine.findings()
    assert finding.clients == {"c999"}
    assert engine.overflow_notes() == ["x.y: 900 partial matches were dropped unfinished: more than 100 "
                                       "connections, clients or sources were waiting for their next step at once"]


def test_expired_partials_are_swept_once_per_window_not_every_second(tmp_path: Path) -> None:
    engine = _engine(tmp_path, '''
[[match]]
type = "sequence"
by = "client_id"
maxspan = "10s"
steps = [{ where = { kind = "mqtt.connect" } }, { where = { kind = "mqtt.publish" } }]
''')
    for n in range(100):
        engine.feed(make_event({"kind": "mqtt.connect", "client_id": f"c{n}", "t": n}, n, ""))
    state = engine._states[0][1]
    assert len(state.partials) <= 21  # at most two windows' worth is ever held
    # an expired partial never completes, swept or not
    engine.feed(make_event({"kind": "mqtt.publish", "client_id": "c85", "t": 100}, 100, ""))
    assert engine.findings() == []


def test_groups_and_names_beyond_the_caps_fold_into_one_finding_and_are_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate, "MAX_GROUPS", 10)
    monkeypatch.setattr(evaluate, "MAX_NAMES", 5)
    engine = _engine(tmp_path, '[[match]]\ntype = "event"\nwhere = { kind = "acl.denied" }\n')
    for n in range(100):
        for repeat in range(3):
            engine.feed(make_event({"kind": "acl.denied", "client_id": f"c{n}", "t": n}, 3 * n + repeat, ""))
    findings = engine.findings()
    assert len(findings) == 11
    (rest,) = [f for f in findings if f.group == "every group beyond the first 10"]
    assert rest.count == 270 and len(rest.clients) == 5 and rest.omitted == {"clients": 85}
    assert engine.overflow_notes() == ["x.y: 270 occurrences beyond its first 10 groups are folded into one finding"]


@pytest.mark.parametrize("storm", sorted(STORMS))
def test_storms_are_analysed_and_say_what_they_folded(tmp_path: Path, storm: str) -> None:
    log = write(tmp_path / f"{storm}.log", STORMS[storm](30_000))
    analysis = analyze([log])
    assert analysis.events == 30_001 - (0 if storm == "reconnect_storm" else 30_000 % 3)
    if storm == "repeated_error":
        (finding,) = analysis.findings
        assert finding.id == "auth.bad_credentials" and finding.count == 10_000
    elif storm == "distinct_clients":
        assert {f.id for f in analysis.findings} == {"acl.publish_denied"}
        assert sum(f.count for f in analysis.findings) == 10_000
        assert len(analysis.findings) == 1001
        assert "acl.publish_denied: 9,000 occurrences beyond its first 1,000 groups are folded into one finding" \
            in analysis.notes
    else:
        # each accept ends the one before on its port; the ended ones waiting for a client side
        # beyond MAX_OPEN are let go, and said so
        assert analysis.findings == []
        assert analysis.notes[0].startswith("9,951 connections were let go before they ended (9,951 from 127.0.0.1)")
