"""What the live-reading tests (tests/tui/test_tui_live_*.py) share: a busy plant of real paho
clients against a real mosquitto, a refused login in it, and the waits and counts they check
the watch against."""

from __future__ import annotations

import random
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from correlator.engine.evaluate import Engine
from correlator.engine.facts import Artifacts
from correlator.engine.rules import load_rules
from correlator.formats.registry import default_registry
from correlator.live_analysis import LiveAnalysis
from correlator.report_model import Finding
from correlator.sources.bundle import open_bundle
from correlator.sources.files import LogFile
from lab.broker import Mosquitto
from lab.incidents import USERS, Scene

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


def line_count(path: Path) -> int:
    """Lines in a log (0 while it does not exist: rotated away, not yet reopened)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def line_starts(path: Path) -> list[int]:
    """The byte offset of every line of a log."""
    data = path.read_bytes()
    starts = [0]
    at = data.find(b"\n")
    while at >= 0 and at + 1 < len(data):
        starts.append(at + 1)
        at = data.find(b"\n", at + 1)
    return starts


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def busy_plant(scene: Scene, broker: Mosquitto) -> None:
    """A subscriber and two QoS 1 publishers (real paho clients) that keep the broker writing
    routine PUBLISH/PUBACK traffic until they are stopped (logging errors only: they have none)."""
    port = broker.port
    scene.paho("hmi-01", port, ["--subscribe", "spBv1.0/#", "--attempts", "1000", "--log-level", "ERROR"],
               client_id="hmi-01", username="HMI", password=USERS["HMI"], duration=120)
    time.sleep(0.5)
    for j in range(2):
        # ten topics each: the client's loop waits up to 50 ms between two rounds of publishes
        topics = [arg for k in range(10) for arg in ("--publish", f"spBv1.0/Plant1/NDATA/edge-0{j}/{k}")]
        scene.paho(f"edge-0{j}", port, [*topics, "--interval", "0.005", "--qos", "1", "--attempts", "1000",
                                        "--log-level", "ERROR"],
                   client_id=f"edge-0{j}", username="MyEACM", password=USERS["MyEACM"], duration=120)


def wrong_password(scene: Scene, broker: Mosquitto) -> None:
    """A paho client (its DEBUG log names its client id and its socket's port) with a wrong password."""
    client = scene.paho("edge-10", broker.port, ["--publish", "spBv1.0/Plant1/NDATA/edge-10", "--attempts", "1"],
                        client_id="edge-10", username="MyEACM", password="eacm-secret-OLD", duration=3)
    broker.wait_for_log(r"not authorised", timeout=60)  # a loaded machine starts Python slowly
    scene.wait(client)


def stop_plant(scene: Scene, broker: Mosquitto) -> None:
    time.sleep(0.5)  # some more flood after the failure
    for client in scene.clients.values():
        if client.proc is not None and client.proc.poll() is None:
            client.proc.send_signal(signal.SIGINT)
    scene.wait(timeout=20)
    broker.stop()


def finding(findings: list[Finding], rule: str) -> Finding:
    found = [f for f in findings if f.id == rule]
    assert found, f"no {rule} among {[f.id for f in findings]}"
    return found[0]


def busy_mixed(tmp_path: Path) -> tuple[Path, Path, list[bytes]]:
    """sample_logs/mixed copied (an ACL file, so acl.publish_denied reads each client's first
    `Received PUBLISH`), its publishes repeated as a busy broker repeats them, and only the first
    half of its broker log written: the folder, the log and all its lines."""
    folder = tmp_path / "mixed"
    shutil.copytree(SAMPLES / "mixed", folder)
    log = folder / "broker" / "mosquitto.log"
    lines = [line * (25 if b" Received PUBLISH from " in line else 1)
             for line in log.read_bytes().splitlines(keepends=True)]
    log.write_bytes(b"".join(lines[:len(lines) // 2]))
    return folder, log, lines


def follow_second_half(folder: Path, log: Path, lines: list[bytes], **hooks: Any) -> set[str]:
    """Follow `folder` live, routine lines counted (`hooks`: LiveAnalysis's callbacks), append the
    second half of `lines` to `log`, and once every line is read, the findings' rules."""
    total = b"".join(lines).count(b"\n")
    live = LiveAnalysis([folder], every_line=False, **hooks)
    live.start()
    try:
        time.sleep(1)
        with log.open("ab") as out:
            out.write(b"".join(lines[len(lines) // 2:]))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(s.lines for s in live.sources.values() if s.path == str(log)) < total:
            time.sleep(0.1)
        return {f.id for f in live.findings()}
    finally:
        live.stop()


def thinned_batch(folder: Path, log: Path, lines: list[bytes]) -> tuple[LogFile, dict[int, str]]:
    """`analyze`'s reader on the final log, thinning as the rules ask (the folder's ACL): the reader
    and its events' kinds by offset, which parse a client's first publishes only."""
    rules, _ = load_rules([])
    with open_bundle([folder]) as bundle:
        engine = Engine(rules, Artifacts.from_bundle(bundle))
    batch = LogFile(log, default_registry())
    batch.count_routine(engine.needs(), engine.first_lines())
    assert batch.thinner is not None
    expected = {e.offset: e.kind for e in batch.events()}
    publishes = b"".join(lines).count(b" Received PUBLISH from ")
    assert 0 < sum(1 for kind in expected.values() if kind == "mqtt.publish") < publishes // 10
    return batch, expected


def follow_in_pieces(path: Path, lines: list[bytes], ending: bytes, rng: random.Random, written: int,
                     **hooks: Any) -> LiveAnalysis:
    """Follow the log at `path` live, routine lines counted (`hooks`: LiveAnalysis's callbacks),
    its first `written` lines already there, while the rest of `lines` is appended as a busy broker
    writes them, in pieces of every size; until every line is read. The analysis, stopped."""
    live = LiveAnalysis([path], every_line=False, **hooks)
    live.start()
    try:
        at = written
        while at < len(lines):
            step = rng.choice([1, 7, 60, 400])
            with path.open("ab") as out:
                out.write(ending.join(lines[at:at + step]) + ending)
            at += step
            time.sleep(0.005)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(s.lines for s in live.sources.values()) < len(lines):
            time.sleep(0.1)
    finally:
        live.stop()
    return live
