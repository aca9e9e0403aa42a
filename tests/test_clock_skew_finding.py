"""A client whose clock is hours off is itself a root cause: a real paho client under libfaketime
against a real broker, analysed end to end, yields client.clock_skew with the estimate as its
evidence, and its lines are moved onto the broker's time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from correlator.analysis import Options, analyze
from lab import child_env
from lab.broker import Mosquitto

pytestmark = pytest.mark.broker


def _client(workdir: Path, port: int, client_id: str, shift: str | None) -> None:
    log = workdir / "clients" / f"{client_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "lab.paho_client", "--host", "127.0.0.1", "--port", str(port),
               "--client-id", client_id, "--log-file", str(log), "--attempts", "3", "--session-length", "0.3",
               "--retry-delay", "0.2", "--duration", "3"]
    if shift is not None:
        if shutil.which("faketime") is None:
            pytest.fail("faketime is required (Debian: apt-get install faketime)", pytrace=False)
        command = ["faketime", "-f", shift, *command]
    subprocess.run(command, check=True, timeout=60, capture_output=True, env=child_env())


def test_hours_of_clock_skew_are_a_finding(mosquitto_available: str, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    with Mosquitto(bundle / "broker", "listener {port0} 127.0.0.1\nallow_anonymous true\nlog_type all\n") as broker:
        _client(bundle, broker.port, "edge-51", "-11000")
        _client(bundle, broker.port, "hmi-51", None)
    analysis = analyze([bundle])
    skew = [f for f in analysis.findings if f.id == "client.clock_skew"]
    assert len(skew) == 1, [f.id for f in analysis.findings]
    assert skew[0].clients == {"edge-51"}
    assert "3.1 hours behind the broker's" in skew[0].explanation
    offsets = {s.info.source: s.offset for s in analysis.sources}
    assert abs(offsets["client:edge-51"] + 11000) < 1.0
    assert abs(offsets["client:hmi-51"]) < 1.0
    # the skewed client's lines now sit where the broker saw them
    assert analysis.first_event is not None and analysis.last_event is not None
    assert analysis.last_event - analysis.first_event < 60

    configured = analyze([bundle], Options(clock_offsets=["client:edge-51=-11000s"]))
    assert {s.info.source: s.offset_how for s in configured.sources}["client:edge-51"] == "configured"
