"""A watched broker log rotated under the watch: every timeline row reads back the line it was.

A real mosquitto (`log_type all`) floods its log with real paho clients' PUBLISH/PUBACK traffic
while `watch` (the TUI's live source) follows it. The log is rotated the two ways logrotate does:

- rename: mosquitto.log becomes mosquitto.log.1 and mosquitto goes on writing to its open
  descriptor (the renamed file) until SIGHUP makes it reopen mosquitto.log, a new file;
- copytruncate: mosquitto.log is copied to mosquitto.log.1 and truncated in place, mosquitto
  writing on at the (new) end of the same file.

Rows (events and the routine rows read back from the file) are keyed to the followed name; each
must read back the line that was written, from whichever file holds it now (the renamed or copied
old one, or the new one): the rows' texts are exactly the lines of the old file and the new one,
none lost, none doubled, none another line's.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from live_plant import line_count, wait_until

from correlator.analysis import analyze
from correlator.formats.scan import keeps_lines, scan_engine
from correlator.redaction import redact
from correlator.tui.event_store import ROUTINE
from correlator.tui.search import SearchIndex, find_rows
from correlator.tui.sources import LiveEventSource
from lab.broker import Mosquitto
from lab.incidents import USERS, Scene

pytestmark = pytest.mark.skipif(not keeps_lines() or scan_engine() == "off",
                                reason="the bulk reader keeps no line places here (no Hyperscan)")


def _flood(scene: Scene, broker: Mosquitto, name: str) -> None:
    """A QoS 1 publisher (a real paho client) that keeps the broker writing routine traffic."""
    topics = [arg for k in range(5) for arg in ("--publish", f"spBv1.0/Plant1/NDATA/{name}/{k}")]
    scene.paho(name, broker.port, [*topics, "--interval", "0.01", "--qos", "1", "--attempts", "1000",
                                   "--log-level", "ERROR"],
               client_id=name, username="MyEACM", password=USERS["MyEACM"], duration=120)


def _login(scene: Scene, broker: Mosquitto, name: str, password: str) -> None:
    """A short-lived paho client: the broker logs its connection (events, not routine traffic)."""
    client = scene.paho(name, broker.port, ["--publish", f"spBv1.0/Plant1/NDATA/{name}", "--attempts", "1"],
                        client_id=name, username="MyEACM", password=password, duration=2)
    scene.wait(client)


def _stop(scene: Scene, name: str) -> None:
    client = scene.clients[name]
    if client.proc is not None and client.proc.poll() is None:
        client.proc.send_signal(signal.SIGINT)
    scene.wait(client, timeout=20)


def _check_rows(source: LiveEventSource, log: Path, old: Path) -> None:
    """Every row of the followed log reads back a line of the old file or the new one, each once."""
    store = source.store
    live = source.analysis
    assert source.errors == [] and live.errors == []
    file = store.files.index(str(log))
    rows = [row for row in range(len(store)) if store.file[row] == file]
    written = old.read_text().splitlines() + log.read_text().splitlines()
    state = next(s for s in live.sources.values() if s.source == "broker")
    assert state.lines == len(written)
    assert any(store.flags[row] & ROUTINE for row in rows) and any(not store.flags[row] & ROUTINE for row in rows)
    shown = Counter(store.text(row) for row in rows)
    expected = Counter(redact(line) for line in written)
    assert shown == expected, (sorted((shown - expected).items())[:5], sorted((expected - shown).items())[:5])
    # read back from the old file (renamed, or the copy) and the new one, each kept open
    files = [(base, ident) for base, fd, ident in live.read_back[str(log)].parts if fd >= 0]
    assert [ident for _, ident in files] == [(p.stat().st_dev, p.stat().st_ino) for p in (old, log)]
    # the search finds the lines of both files
    hits = find_rows(store, SearchIndex(store), "puback", len(store))
    assert [store.text(row) for row in hits] and len(hits) == sum(1 for line in written if "PUBACK" in line)
    # the lines, per-second counts and findings `analyze` gives on the final files
    batch = analyze([old, log])
    assert sum(s.info.lines_read for s in batch.sources if s.info.source == "broker") == state.lines
    assert live.session.histogram["broker"] == batch.histogram["broker"]
    assert {f.id for f in live.findings()} == {f.id for f in batch.findings} >= {"auth.bad_credentials"}

def _watch(tmp_path: Path, what: str, rotate: Callable[[Scene, Mosquitto, Path, Path], None]) -> None:
    scene = Scene.create(tmp_path, "rotated", what)
    config = scene.login_listener(USERS)
    log = scene.root / "broker" / "mosquitto.log"
    old = log.with_name("mosquitto.log.1")
    with scene.broker(config) as broker:
        wait_until(lambda: line_count(log) > 0, "the broker's first lines")
        _login(scene, broker, "edge-20", USERS["MyEACM"])  # events in the existing content
        source = LiveEventSource([log], stitch_window=0.5)
        source.start(lambda: None)
        try:
            wait_until(lambda: source.analysis.caught_up, "the first read")
            _flood(scene, broker, "edge-00")
            wait_until(lambda: line_count(log) >= 1500, "routine traffic before the rotation")
            rotate(scene, broker, log, old)
            wait_until(lambda: line_count(log) >= 1500, "routine traffic after the rotation")
            _login(scene, broker, "edge-10", "eacm-secret-OLD")  # a refused login in the new file
            _stop(scene, "edge-00")
            broker.stop()
            total = line_count(old) + line_count(log)

            def read() -> int:
                return sum(s.lines for s in source.source_info() if s.name == "broker")

            wait_until(lambda: read() == total, f"the watch to read {total} lines ({read()} so far)", 90)
            time.sleep(1.0)  # the held events and routine rows out of the timeline
        finally:
            source.stop()
    source.store.renumber()  # the first read's routine rows, had it any (the screen does this)
    _check_rows(source, log, old)


def _rename(scene: Scene, broker: Mosquitto, log: Path, old: Path) -> None:
    """mosquitto.log renamed; mosquitto writes on to the renamed file (events too) until SIGHUP."""
    os.rename(log, old)
    at_rename = line_count(old)
    _login(scene, broker, "edge-30", USERS["MyEACM"])
    wait_until(lambda: line_count(old) >= at_rename + 1000 and b"edge-30" in old.read_bytes(),
           "lines written to the renamed file")
    broker.reopen_log()
    wait_until(lambda: line_count(log) > 0, "the reopened log")


def _copytruncate(scene: Scene, broker: Mosquitto, log: Path, old: Path) -> None:
    """logrotate's copytruncate in a pause of the traffic (a line written between the copy and the
    truncation exists nowhere, by design): the copy holds the old lines, the log goes on from 0."""
    _stop(scene, "edge-00")
    time.sleep(1.0)  # the watch reads to the end of what was written
    shutil.copyfile(log, old)
    os.truncate(log, 0)
    _login(scene, broker, "edge-30", USERS["MyEACM"])
    _flood(scene, broker, "edge-01")
    wait_until(lambda: line_count(log) >= 1500, "routine traffic after the truncation")
    _stop(scene, "edge-01")
    scene.clients["edge-00"] = scene.clients["edge-01"]  # what _watch stops next


def test_rows_read_back_their_lines_after_a_rename_rotation(tmp_path: Path) -> None:
    _watch(tmp_path, "a busy broker's log renamed and reopened (SIGHUP) while it is watched", _rename)


def test_rows_read_back_their_lines_after_copytruncate(tmp_path: Path) -> None:
    _watch(tmp_path, "a busy broker's log copied and truncated while it is watched", _copytruncate)
