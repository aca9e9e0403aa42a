"""Clock skew: a real client whose clock libfaketime moves by minutes or days, against a real
broker, must be paired with the broker's connections and its offset found within a second; pairing
must not assume the clocks are close; ambiguity and missing evidence say so instead of guessing."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_timeline_connections import client_registry, run_client

from correlator.formats.registry import load_registry
from correlator.model import Event
from correlator.sources.files import LogFile
from correlator.timeline.skew import (
    CLOCK_SKEW_THRESHOLD,
    Anchor,
    SkewError,
    SkewEstimate,
    apply_offset,
    configured_offset,
    estimate,
    estimate_sources,
    parse_offset,
    parse_offset_options,
)
from lab.broker import Mosquitto

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


@pytest.fixture(scope="module")
def faketime(faketime_available: str) -> str:
    return faketime_available


@pytest.mark.broker
@pytest.mark.parametrize("shift", ["+300", "-2d"])
def test_real_client_under_faketime(mosquitto_available: str, faketime: str, tmp_path: Path, shift: str) -> None:
    expected = 300.0 if shift == "+300" else -2 * 86400.0
    registry = client_registry(tmp_path / "formats")
    with Mosquitto(tmp_path / "broker", "listener {port0} 127.0.0.1\nallow_anonymous true\n") as broker:
        skewed = run_client(tmp_path, broker.port, "edge-50", attempts=4, faketime=shift)
        on_time = run_client(tmp_path, broker.port, "hmi-50", attempts=2)
        broker.wait_for_log(r"Client hmi-50 disconnected", count=2)
    by_source = {}
    for path in (broker.log_path, skewed, on_time):
        log = LogFile(path, registry)
        by_source[log.info.source] = list(log.events())
    estimates = estimate_sources(by_source)

    skew = estimates["client:edge-50"]
    assert abs(skew.offset - expected) < 1.0, skew
    assert skew.how == "estimated from 4 pairs" and skew.strong and len(skew.pairs) == 4
    assert skew.spread < 1.0
    assert skew.significant() and not skew.zone_like
    # each pair is one attempt and the broker's accept for the same source port
    for pair in skew.pairs:
        assert pair.broker.event.kind == "net.accept"
        assert pair.client.port == pair.broker.port == pair.broker.event.fields["peer_port"]

    fine = estimates["client:hmi-50"]
    assert abs(fine.offset) < 1.0 and fine.how == "estimated from 2 pairs" and not fine.significant()

    # applying it puts the client's lines next to the broker's, and records the correction
    events = by_source["client:edge-50"]
    before = [e.ts for e in events]
    apply_offset(events, skew.offset)
    assert all(e.skew == -skew.offset for e in events)
    assert [round(b - e.ts, 6) for b, e in zip(before, events, strict=True)] == [round(skew.offset, 6)] * len(events)
    accepts = [p.broker.event.ts for p in skew.pairs]
    starts = [p.client.event.ts for p in skew.pairs]
    assert all(abs(c - b) < 1.5 for c, b in zip(starts, accepts, strict=True))


def anchor(ts: float, outcome: str, *, port: int | None = None, client_id: str | None = None) -> Anchor:
    event = Event(ts=ts, time_text=f"{ts:.3f}", source="x", file="x.log", line=1, kind="net.accept", raw="")
    return Anchor(ts, client_id, port, outcome, event)


def test_days_off_without_ports_pairs_by_outcome_and_order() -> None:
    # a client retries every 2 s and fails TLS, then connects; the broker saw other clients too
    broker = [anchor(1000.5, "connected", client_id="other"), anchor(1003.5, "tls_failed"),
              anchor(1005.5, "tls_failed"), anchor(1007.5, "tls_failed"), anchor(1009.5, "connected", client_id="me"),
              anchor(1030.5, "refused")]
    offset = 3 * 86400 + 17.25
    client = [anchor(1003.2 + offset, "tls_failed"), anchor(1005.3 + offset, "tls_failed"),
              anchor(1007.1 + offset, "tls_failed"), anchor(1009.4 + offset, "connected", client_id="me")]
    found = estimate("client:me", client, broker)
    assert abs(found.offset - offset) < 0.5 and len(found.pairs) == 4
    assert found.strong  # the connected attempt's client id agrees; the rest agree by order
    assert [p.broker.ts for p in found.pairs] == [1003.5, 1005.5, 1007.5, 1009.5]


def test_no_evidence_and_ambiguity_say_none() -> None:
    assert estimate("c", [], [anchor(1.0, "connected")]).how == "none: no client connection attempts to pair"
    single = estimate("c", [anchor(50.0, "tls_failed")], [anchor(1.0, "tls_failed")])
    assert single.how == "none: a single attempt matched by time only" and not single.significant()
    # two attempts 10 s apart against broker failures 10 s apart: a shift of 10 s fits as well
    # as none, once the broker saw three
    ambiguous = estimate("c", [anchor(100.0, "tls_failed"), anchor(110.0, "tls_failed")],
                         [anchor(90.0, "tls_failed"), anchor(100.0, "tls_failed"), anchor(110.0, "tls_failed"),
                          anchor(120.0, "tls_failed")])
    assert ambiguous.how.startswith("none: ambiguous")
    mismatch = estimate("c", [anchor(5.0, "connected", port=1)], [anchor(5.0, "connected", port=2)])
    assert mismatch.how == "none: no attempt matches a broker connection"


def test_wrong_zone_looks_like_whole_hours() -> None:
    log = SAMPLES / "client_cert_expired" / "clients" / "edge-04.log"
    if not log.exists():
        pytest.skip("sample_logs/client_cert_expired not captured yet")
    registry = load_registry(collect=True)
    by_source = {}
    for path in (log.parent.parent / "broker" / "mosquitto.log", log):
        parsed = LogFile(path, registry)
        by_source[parsed.info.source] = list(parsed.events())
    found = estimate_sources(by_source)["client:edge-04"]
    # the capture ran that client in Europe/Berlin and its log has no zone: read as UTC it is an
    # hour ahead, and the estimate says that looks like a zone, not a clock
    assert abs(found.offset - 3600) < 1.5 and found.zone_like and found.significant(CLOCK_SKEW_THRESHOLD)


def test_a_zone_is_at_most_its_own_offset_from_absolute_broker_times() -> None:
    """Against an epoch-stamped broker a naive client log can be off by its own zone only
    (UTC-12 to UTC+14); between two naive logs by as much as two zones apart (26 h)."""
    def skew(offset: float, absolute: bool) -> SkewEstimate:
        return SkewEstimate("client:c", offset, "estimated from 3 pairs", reference_absolute=absolute)

    assert skew(-86400.0, absolute=False).zone_like
    assert not skew(-86400.0, absolute=True).zone_like
    assert skew(-12 * 3600.0, absolute=True).zone_like and skew(14 * 3600.0, absolute=True).zone_like
    assert not skew(-13 * 3600.0, absolute=True).zone_like and not skew(15 * 3600.0, absolute=True).zone_like
    assert skew(19800.0, absolute=True).zone_like  # UTC+5:30
    assert not skew(19800.0 + 300, absolute=True).zone_like


def test_configured_offsets() -> None:
    assert parse_offset("+300") == 300.0
    assert parse_offset("-5m") == -300.0
    assert parse_offset("2h") == 7200.0
    assert parse_offset("+1.5d") == 1.5 * 86400
    rules = parse_offset_options(["client:edge-07=+300s", "clients/plc*.log=-2h"])
    assert configured_offset(rules, "client:edge-07", "/x/clients/edge-07.log") is not None
    plc = configured_offset(rules, "client:plc-1", "/x/clients/plc-1.log")
    assert plc is not None and (plc.offset, plc.how) == (-7200.0, "configured")
    assert configured_offset(rules, "client:hmi", "/x/clients/hmi.log") is None
    with pytest.raises(SkewError, match="not a duration"):
        parse_offset_options(["client:x=soon"])
    with pytest.raises(SkewError, match="SOURCE=OFFSET"):
        parse_offset_options(["+300"])
