"""Source zones: `--tz` option parsing with clear errors, the order rules apply in, and re-zoning a
naive source (DST included) while absolute timestamps never move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from correlator.errors import CorrelatorError
from correlator.formats.registry import default_registry
from correlator.model import Event
from correlator.sources.files import LogFile
from correlator.timeline.zones import (
    Rezoner,
    ZoneError,
    guess_zoned,
    has_zone,
    parse_zone,
    parse_zone_options,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
BERLIN = ZoneInfo("Europe/Berlin")


def test_parse_zone_forms() -> None:
    assert parse_zone("UTC") is UTC
    assert parse_zone("Europe/Berlin") == BERLIN
    assert parse_zone("+01:00") == timezone(timedelta(hours=1))
    assert parse_zone("UTC-5") == timezone(timedelta(hours=-5))
    assert parse_zone("+0530") == timezone(timedelta(hours=5, minutes=30))


@pytest.mark.parametrize(("option", "message"), [
    ("broker=Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ("=UTC", "missing source name or file glob"),
    ("clients/*=+25:00", "out of range"),
    ("broker=", "empty time zone"),
])
def test_bad_options_name_the_option(option: str, message: str) -> None:
    with pytest.raises(ZoneError) as info:
        parse_zone_options([option])
    assert isinstance(info.value, CorrelatorError)
    assert message in str(info.value)
    assert f"--tz {option}" in str(info.value)


def test_rules_by_name_glob_and_default() -> None:
    config = parse_zone_options(["broker=UTC", "clients/*=Europe/Berlin", "clients/hmi-*.log=+02:00",
                                 "America/New_York"])
    assert config.choose("broker", "/x/broker/mosquitto.log", broker_epoch=True).how == "configured (--tz broker=UTC)"
    berlin = config.choose("client:edge-10", "/inc/clients/edge-10.log")
    assert berlin.zone == BERLIN and berlin.name == "Europe/Berlin"
    # the later, more specific option wins
    assert config.choose("client:hmi-01", "/inc/clients/hmi-01.log").zone == timezone(timedelta(hours=2))
    other = config.choose("client:plc", "/inc/plc.log")
    assert (other.name, other.how) == ("America/New_York", "default")
    assert config.choose("client:plc", "/inc/plc.log", zoned_text=True).how == "from timestamps"
    bare = parse_zone_options([])
    assert bare.choose("broker", "b.log", broker_epoch=True).how == "broker epoch"
    assert bare.choose("client:x", "x.log").how == "UTC (no zone known)"
    # a plain word also names a file
    assert parse_zone_options(["plc.log=UTC"]).override("client:plc", "/inc/plc.log") is not None


def test_has_zone() -> None:
    assert has_zone("1795444344")
    assert has_zone("2026-11-23T14:32:24+01:00")
    assert has_zone("2026-11-23T14:32:24.5Z")
    assert has_zone("2026-11-23 14:32:24 UTC")
    assert not has_zone("2026-11-23 14:32:24,424")
    assert not has_zone("23.11.2026 14:20:00")
    assert not has_zone("")


def test_rezoning_a_real_client_log_matches_parsing_it_in_that_zone() -> None:
    log = SAMPLES / "bad_credentials" / "clients" / "edge-10.log"
    if not log.exists():
        pytest.skip("sample_logs/bad_credentials not captured yet")
    registry = default_registry()
    as_utc = list(LogFile(log, registry).events())
    as_berlin = list(LogFile(log, registry, tz=BERLIN).events())
    assert not guess_zoned(as_utc)
    moved = Rezoner(UTC, BERLIN).apply(as_utc)
    assert moved == len(as_utc)
    assert [e.ts for e in as_utc] == [e.ts for e in as_berlin]
    # November: Berlin is UTC+1, and the original text is untouched
    first = as_utc[0]
    assert log.read_text().startswith(first.time_text)
    wall = datetime.strptime(first.time_text, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
    assert first.time == wall - timedelta(hours=1)


def test_rezone_leaves_absolute_times_and_follows_dst() -> None:
    broker = SAMPLES / "bad_credentials" / "broker" / "mosquitto.log"
    if broker.exists():
        events = list(LogFile(broker, default_registry()).events())
        before = [e.ts for e in events]
        assert guess_zoned(events)
        assert Rezoner(UTC, BERLIN).apply(events) == 0
        assert [e.ts for e in events] == before

    def naive(text: str) -> Event:
        ts = datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
        return Event(ts=ts, time_text=text, source="client:x", file="x.log", line=1, kind="other", raw="")

    summer, winter = naive("2026-10-25 01:30:00"), naive("2026-10-25 03:30:00")
    untimed = Event(ts=winter.ts, time_text="", source="client:x", file="x.log", line=2, kind="other", raw="",
                    estimated=True)
    Rezoner(UTC, BERLIN).apply([summer, winter, untimed])
    assert summer.time == datetime(2026, 10, 24, 23, 30, tzinfo=UTC)  # CEST, UTC+2
    assert winter.time == datetime(2026, 10, 25, 2, 30, tzinfo=UTC)  # CET, UTC+1
    assert untimed.ts == winter.ts  # an estimated time moves with the time it was borrowed from
