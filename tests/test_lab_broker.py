"""The lab broker really runs mosquitto and its log is what mosquitto itself wrote."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.broker import Mosquitto

pytestmark = pytest.mark.broker


def test_broker_runs_and_logs_connections(tmp_path: Path, mosquitto_available: str) -> None:
    with Mosquitto(tmp_path, "listener {port0} 127.0.0.1\nallow_anonymous true\nlog_type all\n") as broker:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "t", "-m", "x",
                        "-i", "lab-test"], check=True, timeout=10)
        lines = broker.wait_for_log(r"New client connected from 127\.0\.0\.1:\d+ as lab-test")
    assert lines and lines[0].split(":", 1)[0].isdigit()
