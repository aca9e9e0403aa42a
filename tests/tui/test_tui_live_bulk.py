"""`watch` over a busy broker's existing log: what the log holds when the watch starts is read by
`analyze`'s two-tier reader (routine traffic counted, not parsed), and following goes on from the
byte where that read stopped. A real mosquitto with `log_type all` keeps writing the whole time
(paho publishers and a subscriber), a client with a wrong password fails after the watch began,
and the watch ends with exactly the lines, counts and findings `analyze` gives on the final files:
every line once, none lost, none twice, also when the log is rotated right after the first read."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from live_plant import busy_plant, finding, line_count, line_starts, stop_plant, wait_until, wrong_password

from correlator.analysis import analyze
from correlator.formats.scan import keeps_lines, scan_engine
from correlator.live_analysis import LiveAnalysis
from correlator.report_model import Analysis, Finding
from correlator.tui.sources import LiveEventSource
from lab.broker import Mosquitto
from lab.incidents import SPARKPLUG_ACL, USERS, Scene

pytestmark = pytest.mark.skipif(not keeps_lines() or scan_engine() == "off",
                                reason="the bulk reader keeps no line places here (no Hyperscan)")

#: Broker lines the log holds before the watch starts: several of the bulk reader's blocks' worth
#: would make the test slow; what matters is that most of them are routine traffic.
BEFORE = 6000


def _settled(source: LiveEventSource, expected: dict[str, int]) -> None:
    """Wait until the watch has read every line of every log: as many as `analyze` counts (logs
    with no line yet are no source live)."""
    expected = {name: n for name, n in expected.items() if n}

    def lines() -> dict[str, int]:
        return {s.name: s.lines for s in source.source_info() if s.lines}

    deadline = time.monotonic() + 90
    while lines() != expected:
        assert time.monotonic() < deadline, f"the watch read {lines()} lines, analyze {expected}"
        time.sleep(0.05)


def _same_findings(live: list[Finding], batch: Analysis) -> None:
    """The same causes; the refused login named by its client id, on the same broker lines.

    Compared by rule, not by group: live, a refusal judged before the client's own lines arrived
    can stay a finding of its own group beside the one they completed, whatever read the log first."""
    assert {f.id for f in live} == {f.id for f in batch.findings}
    refused = [f for f in live if f.id == "auth.bad_credentials"]
    expected = finding(batch.findings, "auth.bad_credentials")
    assert "edge-10" in expected.clients
    assert any("edge-10" in f.clients for f in refused)
    lines = {(e.line, e.text) for f in refused for e in f.evidence if e.side == "broker"}
    assert lines == {(e.line, e.text) for e in expected.evidence if e.side == "broker"}
    assert any("not authorised" in raw for _, raw in lines)


def _store_rows(source: LiveEventSource, file: str) -> list[int]:
    """The offsets of the timeline rows of one file (every line is a row: events and routine)."""
    store = source.store
    index = store.files.index(file)
    return [store.offset[row] for row in range(len(store)) if store.file[row] == index]


def test_watch_reads_a_busy_log_in_bulk_then_follows_it_as_analyze_reads_the_final_file(tmp_path: Path) -> None:
    scene = Scene.create(tmp_path, "busy", "a busy broker watched mid-flow")
    # with an ACL the rules read each client's first Received PUBLISH: the first read thins them
    config = scene.login_listener(USERS, SPARKPLUG_ACL)
    log = scene.root / "broker" / "mosquitto.log"
    with scene.broker(config) as broker:
        busy_plant(scene, broker)
        wait_until(lambda: line_count(log) >= BEFORE, f"{BEFORE} broker lines", timeout=60)
        # a broker line waits this long for its client's lines: ample, on a loaded machine too
        source = LiveEventSource([scene.root], stitch_window=0.5)
        source.start(lambda: None)
        try:
            wait_until(lambda: source.analysis.caught_up, "the first read")
            assert source.routine is not None and source.routine.lines > BEFORE // 2  # counted, not parsed
            wrong_password(scene, broker)
            stop_plant(scene, broker)
            batch = analyze([scene.root])
            expected = {s.info.source: s.info.lines_read for s in batch.sources}
            assert expected["broker"] == line_count(log)
            _settled(source, expected)
        finally:
            source.stop()
    source.store.renumber()  # the routine rows of the first read join the timeline (the screen does this)
    assert source.errors == []
    # every line once (the timeline's order is time's: the stitcher may move a connection's lines)
    assert sorted(_store_rows(source, str(log))) == line_starts(log)
    # in time order: the first read's routine rows of the time of its last events, which the
    # timeline still held when the read ended, went in among them, not before them
    store = source.store
    times = [store.ts[row] for row in range(len(store)) if store.files[store.file[row]] == str(log)]
    assert times == sorted(times)
    _same_findings(source.analysis.findings(), batch)


class _RotatedAfterFirstRead(LiveAnalysis):
    """A watch whose log is rotated (renamed, mosquitto told to reopen it) the moment the bulk
    reader returns, before the tailer reads on: the broker goes on writing to the old file until it
    reopens, then to the new one."""

    broker: Mosquitto

    def _read_existing(self, path: Path, reader: str, end: int) -> bool:
        done = super()._read_existing(path, reader, end)
        path.rename(path.with_name(path.name + ".1"))
        self.broker.reopen_log()
        wait_until(path.exists, "mosquitto to reopen its log")
        return done


def test_a_log_rotated_right_after_the_first_read_loses_and_repeats_no_line(tmp_path: Path) -> None:
    scene = Scene.create(tmp_path, "busy", "a busy broker watched mid-flow, its log rotated")
    config = scene.login_listener(USERS)
    log = scene.root / "broker" / "mosquitto.log"
    rotated = log.with_name("mosquitto.log.1")
    with scene.broker(config) as broker:
        busy_plant(scene, broker)
        wait_until(lambda: line_count(log) >= BEFORE, f"{BEFORE} broker lines", timeout=60)
        _RotatedAfterFirstRead.broker = broker
        live = _RotatedAfterFirstRead([log, scene.root / "clients"], bulk=True, stitch_window=0.5)
        live.start()
        try:
            wait_until(lambda: rotated.exists() and live.caught_up, "the rotation")
            wrong_password(scene, broker)
            stop_plant(scene, broker)
            total = line_count(rotated) + line_count(log) + line_count(scene.root / "clients" / "edge-10.log")
            wait_until(lambda: sum(s.lines for s in live.sources.values()) == total,
                   f"the watch to read all {total} lines of both files", timeout=90)
            time.sleep(0.3)
            assert sum(s.lines for s in live.sources.values()) == total  # and none read twice
            assert sum(s.counted for s in live.sources.values()) > BEFORE // 2  # the first read was the bulk one
        finally:
            live.stop()
    assert live.errors == []
    batch = analyze([rotated, log, scene.root / "clients"])
    assert sum(s.info.lines_read for s in batch.sources) == total
    _same_findings(live.findings(), batch)
