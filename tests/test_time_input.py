"""The one time grammar every option and query parameter reads (`correlator.time_input`), table
by table, then through the CLI's `analyze --since` and `certs --at`, which must agree."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from correlator.errors import CorrelatorError, TimeInputError
from correlator.time_input import parse_epoch, parse_time

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
AT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
PLUS_ONE = timezone(timedelta(hours=1))


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-23T14:00:00Z", AT),
    ("2026-11-23t14:00:00z", AT),  # issue 11 item 6: `analyze --since` refused this
    ("2026-11-23T14:00:00+00:00", AT),
    ("2026-11-23 14:00", AT),
    ("2026-11-23 14:00:00", AT),
    ("2026-11-23T14", AT),
    ("  2026-11-23T14:00:00Z\n", AT),
    ("20261123T140000Z", AT),
    ("2026-11-23", datetime(2026, 11, 23, tzinfo=UTC)),
    ("20261123", datetime(2026, 11, 23, tzinfo=UTC)),
    ("2026-11-23T15:00:00+01:00", AT),
    ("2026-11-23T15:00:00+0100", AT),
    ("2026-11-23T15:00:00+01", AT),
    ("2026-11-23T09:00:00-05:00", AT),
    ("2026-11-23T14:00:00.250Z", AT + timedelta(milliseconds=250)),
    ("2026-11-23T13:59:60Z", AT - timedelta(seconds=1)),  # a leap second is the second before
    ("2026-11-23 13:59:60", AT - timedelta(seconds=1)),
    (str(int(AT.timestamp())), AT),
    (f"{int(AT.timestamp())}.5", AT + timedelta(milliseconds=500)),
    (f"@{int(AT.timestamp())}", AT),
    ("@0", datetime(1970, 1, 1, tzinfo=UTC)),
])
def test_accepted(text: str, expected: datetime) -> None:
    value = parse_time(text, "--since")
    assert value == expected
    assert value.tzinfo is UTC


@pytest.mark.parametrize("text", [
    "yesterday", "", "   ", "2026-13-01", "2026-11-31", "2026-11-23T25:00", "23.11.2026", "11/23/2026",
    "12345678", "-1795444795", "1795444795ms", "99999999999999999999", "@", "2026-11-23T14:00:00+25:00",
    "nowish", "1e9",
])
def test_refused_with_one_message(text: str) -> None:
    with pytest.raises(TimeInputError) as error:
        parse_time(text, "--since")
    message = str(error.value)
    assert message.startswith(f"--since: {text!r} is not an ISO 8601 time or epoch seconds")
    assert "2026-11-23T14:00:00Z" in message and "without a zone is UTC" in message
    assert isinstance(error.value, CorrelatorError)


def test_a_naive_time_is_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Chicago")
    assert parse_time("2026-11-23 14:00", "at") == AT


def test_now_is_the_callers_clock() -> None:
    assert parse_time("now", "--at", now=AT) == AT
    assert parse_time("NOW", "--at", now=AT.astimezone(PLUS_ONE)) == AT
    assert abs(parse_time("now", "--at") - datetime.now(UTC)) < timedelta(seconds=5)


def test_epoch_form() -> None:
    assert parse_epoch(None, "--until") is None
    assert parse_epoch("2026-11-23t14:00:00z", "--until") == AT.timestamp()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "correlator", *args], capture_output=True, text=True, timeout=120)


def _events(since: str) -> int:
    result = _cli("analyze", str(SAMPLES / "server_cert_expired"), "--since", since, "--format", "json")
    assert result.returncode != 2, result.stderr
    events: int = json.loads(result.stdout)["summary"]["events"]
    return events


def test_analyze_since_reads_every_form_alike() -> None:
    """Lower-case ISO (which exited 2 before), upper-case ISO and epoch seconds cut the same events."""
    log = (SAMPLES / "server_cert_expired" / "broker" / "mosquitto.log").read_text().splitlines()
    first = int(log[0].split(":", 1)[0])
    middle = first + 1
    iso = datetime.fromtimestamp(middle, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    counts = {form: _events(form) for form in (iso, iso.lower(), str(middle), f"@{middle}")}
    assert len(set(counts.values())) == 1, counts
    assert 0 < counts[iso] < _events(str(first))


@pytest.mark.parametrize("argv", [
    ["analyze", str(SAMPLES / "mixed"), "--since", "23.11.2026"],
    ["analyze", str(SAMPLES / "mixed"), "--until", "23.11.2026"],
    ["tui", str(SAMPLES / "mixed"), "--since", "23.11.2026"],
    ["certs", str(SAMPLES / "mixed"), "--at", "23.11.2026"],
])
def test_every_command_refuses_a_bad_time_with_the_same_line(argv: list[str]) -> None:
    option = argv[-2]
    result = _cli(*argv)
    assert result.returncode == 2
    assert result.stderr == (f"correlator: error: {option}: '23.11.2026' is not an ISO 8601 time or epoch "
                             "seconds: write e.g. 2026-11-23T14:00:00Z, 2026-11-23 14:00+01:00, 2026-11-23, "
                             "1795444795 or now (a time without a zone is UTC)\n")
