"""Live analysis follows files through the same pipeline as batch analysis: the findings of a
real incident appear while its logs are read, and grow when lines are appended."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from correlator.analysis import analyze
from correlator.live_analysis import LiveAnalysis, LiveUpdate
from correlator.report_model import Finding
from lab import pki
from lab.broker import Mosquitto

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


def _wait(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_live_finds_what_batch_finds_and_follows_appends(tmp_path: Path) -> None:
    folder = tmp_path / "incident"
    shutil.copytree(SAMPLES / "server_cert_expired", folder)
    batch = {f.id: f for f in analyze([folder]).findings}
    updates: list[LiveUpdate] = []
    seen = threading.Event()

    def on_update(update: LiveUpdate) -> None:
        updates.append(update)
        if any(f.id == "tls.server_cert_expired" for f in update.findings):
            seen.set()

    with LiveAnalysis([folder], on_update=on_update) as live:
        assert seen.wait(10), "the finding was never published"
        # occurrences, counted by the side that saw most: the same whether or not live stitching
        # linked each port-less client attempt to the broker connection the batch linked it to
        assert _wait(lambda: {f.id: (f.count, f.clients) for f in live.findings()}.get("tls.server_cert_expired")
                     == (batch["tls.server_cert_expired"].count, batch["tls.server_cert_expired"].clients))
        found = {f.id: f for f in live.findings()}
        before = found["tls.server_cert_expired"].count
        log = folder / "broker" / "mosquitto.log"
        lines = log.read_text().splitlines()
        alert = next(i for i, line in enumerate(lines) if "alert certificate expired" in line)
        with log.open("a") as out:  # one more failed handshake, as the broker wrote the first one
            out.write("\n".join(lines[alert - 1:alert + 2]) + "\n")
        assert _wait(lambda: {f.id: f.count for f in live.findings()}["tls.server_cert_expired"] == before + 1)
        formats = {Path(s.path).name: s.format for s in live.sources.values()}
    assert formats["mosquitto.log"] == "mosquitto"
    assert formats["edge-02.log"] == "python_logging"


def test_live_judges_each_host_by_its_own_artifacts(tmp_path: Path) -> None:
    """watch over a bundle of three brokers (multi_broker_acl): the live findings are the batch
    ones, host by host: broker-a's ACL never judges broker-c, which has no acl_file."""
    import json

    folder = tmp_path / "site"
    shutil.copytree(SAMPLES / "multi_broker_acl", folder)
    spec = json.loads((folder / "expected.json").read_text())
    wanted = {(host, cause["id"], tuple(cause["clients"]))
              for host, found in spec["hosts"].items() for cause in found["root_causes"]}
    with LiveAnalysis([folder]) as live:
        assert _wait(lambda: {(f.host, f.id, tuple(sorted(f.clients))) for f in live.findings()} >= wanted,
                     timeout=30)
        time.sleep(1.0)
        found = {(f.host, f.id, tuple(sorted(f.clients))) for f in live.findings()}
    assert found == wanted
    assert {s.source for s in live.sources.values()} >= {"broker:broker-a", "broker:broker-b", "broker:broker-c"}


def test_lines_per_second_counts_lines_read_and_falls_to_zero_when_the_logs_go_quiet(tmp_path: Path) -> None:
    """The rate is lines read over the last few seconds of wall clock: it shows a burst of real
    broker lines, and is 0 once nothing more arrives (it used to keep the last burst's rate)."""
    from correlator.live_analysis import RATE_WINDOW

    now = [1000.0]
    log = tmp_path / "mosquitto.log"
    lines = (SAMPLES / "healthy_noisy" / "broker" / "mosquitto.log").read_text().splitlines(keepends=True)[:200]
    log.write_text("")
    with LiveAnalysis([log], clock=lambda: now[0], polling=True) as live:
        now[0] += 10.0
        with log.open("a") as out:
            out.writelines(lines)
        assert _wait(lambda: sum(s.lines for s in live.sources.values()) == len(lines))
        assert live.lines_per_second() == len(lines) / RATE_WINDOW
        now[0] += RATE_WINDOW + 0.1
        assert live.lines_per_second() == 0.0


@pytest.mark.broker
def test_a_client_named_by_its_untimed_lines_says_they_were_dated_by_their_arrival(
        tmp_path: Path, mosquitto_available: str) -> None:
    """mosquitto_pub -d (no times, no ports) fails a real broker's handshake while the watch runs:
    its lines are dated by their arrival and tie it to the broker's connection. Its own bare
    "certificate verify failed" joins the broker's "unknown ca" (the artifacts cannot say which CA
    file it used), so the client is named by what it says, not by the pairing alone."""
    now = datetime.now(UTC)
    root = tmp_path / "incident"
    ca = pki.make_ca("plant CA", not_before=now - timedelta(days=30), days=3650)
    ca.write(root / "certs" / "ca.pem")
    pki.make_leaf("broker.lab", ca, sans=("localhost", "127.0.0.1"), usage=("server",),
                  not_before=now - timedelta(days=30), not_after=now + timedelta(days=300),
                  ).write(root / "certs" / "server.pem", root / "keys" / "server.key")
    pki.make_ca("other CA", not_before=now - timedelta(days=30), days=3650).write(tmp_path / "other-ca.pem")
    config = ("listener {port0} 127.0.0.1\ncafile ../certs/ca.pem\ncertfile ../certs/server.pem\n"
              "keyfile ../keys/server.key\nallow_anonymous true\nlog_dest file mosquitto.log\nlog_type all\n")
    log = root / "clients" / "edge-07.log"
    log.parent.mkdir(parents=True)

    def fail(port: int) -> None:
        with log.open("ab") as out:  # appended as a user's shell redirect would
            subprocess.run(["mosquitto_pub", "-d", "-h", "127.0.0.1", "-p", str(port), "--cafile",
                            str(tmp_path / "other-ca.pem"), "-i", "edge-07", "-t", "plant/edge-07", "-m", "21.5"],
                           stdout=out, stderr=subprocess.STDOUT, timeout=20, check=False)

    with Mosquitto(root / "broker", config) as broker, LiveAnalysis([root]) as live:
        time.sleep(1.0)
        fail(broker.port)

        def untrusted() -> Finding | None:  # once the client's own lines have joined the broker's
            return next((f for f in live.findings() if f.id == "tls.server_cert_untrusted" and f.clients
                         and any(e.side == "client" for e in f.evidence)), None)
        assert _wait(lambda: untrusted() is not None, timeout=20)
    finding = untrusted()
    assert finding is not None and finding.clients == {"edge-07"}
    assert finding.confidence_reason.startswith("both sides of the connection agree")
    assert "arrived" not in finding.confidence_reason  # not the pairing alone: its own words
    spoken = [e for e in finding.evidence if e.side == "client"]
    assert spoken and all(e.estimated and "certificate verify failed" in e.text for e in spoken)


def _steady(live: LiveAnalysis, seconds: float = 30) -> set[tuple[str, str, tuple[str, ...]]]:
    """The live findings once they stopped changing for 1.5 s (host, id, clients)."""
    deadline = time.monotonic() + seconds
    last: object = None
    steady = 0
    while time.monotonic() < deadline and steady < 15:
        now = {(f.host, f.id, tuple(sorted(f.clients))) for f in live.findings()}
        steady = steady + 1 if now == last else 0
        last = now
        time.sleep(0.1)
    assert isinstance(last, set)
    return last


def test_logs_that_appear_after_the_watch_began_join_their_hosts(tmp_path: Path) -> None:
    """watch over multi_broker_acl's three broker folders while they hold only their configs: the
    brokers' logs arrive afterwards, and the clients' logs in a folder made afterwards. Each log
    joins its host (its folder), so each broker's events are judged by its own ACL, as `analyze`
    judges them once all is there."""
    import json

    sample = SAMPLES / "multi_broker_acl"
    folder = tmp_path / "site"
    shutil.copytree(sample, folder, ignore=shutil.ignore_patterns("*.log", "clients"))
    spec = json.loads((sample / "expected.json").read_text())
    wanted = {(host, cause["id"], tuple(cause["clients"]))
              for host, found in spec["hosts"].items() for cause in found["root_causes"]}
    with LiveAnalysis([folder], polling=True) as live:
        time.sleep(0.5)
        (folder / "clients").mkdir()
        for log in sorted((sample / "clients").glob("*.log")):
            shutil.copy(log, folder / "clients" / log.name)
        for broker in ("broker-a", "broker-b", "broker-c"):
            shutil.copy(sample / broker / "mosquitto.log", folder / broker / "mosquitto.log")
        found = _steady(live)
        sources = {s.source for s in live.sources.values()}
    assert found == wanted
    assert {"broker:broker-a", "broker:broker-b", "broker:broker-c", "client:viewer-a"} <= sources
    assert {(f.host, f.id, tuple(sorted(f.clients))) for f in analyze([folder]).findings} == wanted


def _two_hosts_syslog(lines: list[str]) -> str:
    """The real RFC 3164 file of syslog_variants as a central syslog server's one file of two
    brokers: every other line given another host name (as tests/test_hosts.py makes it)."""
    mixed = [line.replace(" vm mosquitto[", " mqtt-b mosquitto[") if i % 2 else line.replace(
        " vm mosquitto[", " mqtt-a mosquitto[") for i, line in enumerate(lines)]
    return "\n".join(mixed) + "\n"


def test_a_syslog_file_of_two_hosts_is_split_per_host_live(tmp_path: Path) -> None:
    """The same file followed: one source per host with the file's line numbers, findings on the
    hosts `analyze` gives them, whether the file was there when the watch began or came later."""
    lines = (SAMPLES / "syslog_variants" / "broker" / "syslog-rfc3164.log").read_text().splitlines()
    text = _two_hosts_syslog(lines)
    before = tmp_path / "before"
    before.mkdir()
    (before / "messages.log").write_text(text)
    batch = analyze([before])
    wanted = {(f.host, f.id, tuple(sorted(f.clients))) for f in batch.findings}
    assert {f.host for f in batch.findings} == {"mqtt-a", "mqtt-b"}
    later = tmp_path / "later"
    later.mkdir()
    for folder in (before, later):
        with LiveAnalysis([folder], polling=True) as live:
            if folder is later:
                time.sleep(0.5)
                (later / "messages.log").write_text(text)
            found = _steady(live)
            sources = {s.source for s in live.sources.values() if s.source}
            evidence = [(ref.file, ref.line) for f in live.findings() for ref in f.evidence]
        assert found == wanted, folder.name
        assert sources == {"broker:mqtt-a", "broker:mqtt-b"}
        for file, line in evidence:
            host = "mqtt-a" if (line or 1) % 2 else "mqtt-b"  # line numbers are the file's
            assert file.endswith(f"messages.log [{host}]"), (file, line)
