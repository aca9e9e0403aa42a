"""Shared fixtures. Real-broker tests use `mosquitto_available`: locally they skip when mosquitto
is missing, but under CI (CI=true or CORRELATOR_REQUIRE_BROKER=1) they fail, so a machine that
cannot run them never passes silently."""

from __future__ import annotations

import os
import shutil

import pytest

from correlator.lab.broker import BrokerUnavailable, mosquitto_binary

REQUIRE_BROKER = os.environ.get("CI", "").lower() in {"1", "true", "yes"} or bool(
    os.environ.get("CORRELATOR_REQUIRE_BROKER"))


def _missing(what: str) -> None:
    if REQUIRE_BROKER:
        pytest.fail(f"{what} is required in CI but is not installed", pytrace=False)
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def mosquitto_available() -> str:
    """Path of the mosquitto binary, with mosquitto_pub and mosquitto_sub beside it."""
    try:
        binary = mosquitto_binary()
    except BrokerUnavailable:
        _missing("mosquitto")
        raise
    for client in ("mosquitto_pub", "mosquitto_sub"):
        if shutil.which(client) is None:
            _missing(client)
    return binary


@pytest.fixture(scope="session", autouse=True)
def sample_file_times() -> None:
    """Lines with no timestamp (mosquitto_pub -d output) are dated by their file's modification
    time, which a git checkout sets to the moment of the checkout. Give every sample file the time
    of its incident's last broker line instead, so a sample reads the same in any checkout."""
    import re
    from pathlib import Path

    samples = Path(__file__).resolve().parent.parent / "sample_logs"
    for incident in samples.iterdir():
        broker = incident / "broker" / "mosquitto.log"
        if not broker.is_file():
            continue
        stamps = re.findall(r"^(\d{9,11}): ", broker.read_text(errors="replace"), re.M)
        if not stamps:
            continue
        when = float(stamps[-1])
        for path in incident.rglob("*"):
            if path.is_file():
                os.utime(path, (when, when))
