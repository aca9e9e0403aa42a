"""mosquitto 2.1.1 and 2.1.2 reworded every client-disconnect line (`Client ID [ADDR:PORT]
disconnected: REASON.`). The sample sample_logs/mosquitto_21_disconnects comes from the real 2.1.2
broker and clients (built by lab.mosquitto_build); on it the new lines must give the events the
2.0 wording gives, with the connection's address and port, and the findings must name the causes
and the clients by the new lines.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from correlator.analysis import analyze
from correlator.formats.parse import match_line
from correlator.formats.registry import default_registry
from correlator.formats.scan import RoutineCounts, classifier, hyperscan_available
from correlator.report_model import Analysis, Finding
from correlator.sources.lines import MAX_LINE, iter_lines

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs" / "mosquitto_21_disconnects"
BROKER_LOG = SAMPLE / "broker" / "mosquitto.log"
REGISTRY = default_registry()
MOSQUITTO = REGISTRY.formats["mosquitto"]
NEW_WORDING = re.compile(r"^\d+: Client \S+ \[[^\]]+:\d+\] disconnected")


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    return analyze([SAMPLE])


def _lines(pattern: str) -> list[str]:
    found = [line for line in BROKER_LOG.read_text().splitlines() if re.search(pattern, line)]
    assert found, f"the sample's broker log has no line matching {pattern!r}"
    return found


def _fields(line: str) -> tuple[str, dict[str, object]]:
    found = match_line(MOSQUITTO, line, REGISTRY.evidence)
    assert found is not None and found.message is not None, line
    return found.kind, dict(found.fields)


def test_the_sample_is_mosquitto_2_1_2() -> None:
    assert _lines(r"mosquitto version 2\.1\.2 running")


# The 2.0 line of the same disconnect (mosquitto 2.0.22's src/loop.c), and what each says that 2.0 did not.
SAME_AS_2_0 = [
    (r"Client edge-20 \[.*\] disconnected: not authorised\.", "Client edge-20 disconnected, not authorised."),
    (r"Client edge-24 \[.*\] disconnected: exceeded timeout\.", "Client edge-24 has exceeded timeout, disconnecting."),
    (r"Client edge-25 \[.*\] disconnected: connection closed by client\.", "Client edge-25 closed its connection."),
    (r"Client edge-23 \[.*\] disconnected: session taken over\.",
     "Client edge-23 already connected, closing old connection."),
    (r"Client hmi-20 \[.*\] disconnected\.$", "Client hmi-20 disconnected."),
    (r"\[.*\] disconnected: Protocol error\.", "Client <unknown> disconnected: Protocol error."),
]


@pytest.mark.parametrize(("new", "old"), SAME_AS_2_0, ids=[old for _, old in SAME_AS_2_0])
def test_a_2_1_2_disconnect_is_the_2_0_event_with_the_address_and_port(new: str, old: str) -> None:
    for line in _lines(new):
        stamp = line.split(": ", 1)[0]
        kind, fields = _fields(line)
        old_kind, old_fields = _fields(f"{stamp}: {old}")
        assert kind == old_kind, line
        addr, port = re.search(r"\[(.+):(\d+)\]", line).groups()  # type: ignore[union-attr]
        assert fields.pop("peer_addr") == addr and fields.pop("peer_port") == int(port), line
        if old_fields.get("client_id") == "<unknown>":
            # 2.1 writes the address where 2.0 wrote <unknown>: no client id either way
            assert "client_id" not in fields, line
            old_fields.pop("client_id")
        assert fields == old_fields, line


def test_a_connection_with_no_client_id_is_named_by_nobody() -> None:
    """2.1 writes the peer address where a client id would be; that is no client id."""
    for line in _lines(r"Client 127\.0\.0\.1 \[127\.0\.0\.1:\d+\] disconnected"):
        _, fields = _fields(line)
        assert "client_id" not in fields, line


def test_the_tls_errors_of_2_1_are_read() -> None:
    """2.1 says what it was doing before the index ("OpenSSL Error while trying to get the error[0]")."""
    kind, fields = _fields(_lines(r"OpenSSL Error .*peer did not return a certificate")[0])
    assert (kind, fields["tls_reason"], fields["openssl_code"]) == ("tls.error", "no_client_cert", "0A0000C7")


AT = r"\[127\.0\.0\.1:\d+\]"
OPENSSL_21 = r"OpenSSL Error while trying to get the error\[0\]: "
FINDINGS = [
    ("auth.bad_credentials", {"edge-20", "edge-21"}, rf"Client edge-2[01] {AT} disconnected: not authorised\."),
    ("auth.anonymous_denied", {"edge-22"}, rf"Client edge-22 {AT} disconnected: not authorised\."),
    ("session.client_id_takeover", {"edge-23"}, rf"Client edge-23 {AT} disconnected: session taken over\."),
    ("tls.client_cert_missing", {"edge-26"}, rf"{OPENSSL_21}.*peer did not return a certificate"),
    ("tls.client_cert_untrusted", {"edge-27"}, rf"{OPENSSL_21}.*certificate verify failed"),
    ("tls.protocol_mismatch", {"edge-28"}, rf"Client 127\.0\.0\.1 {AT} disconnected: protocol error\."),
]


def _one(analysis: Analysis, rid: str) -> Finding:
    found = [f for f in analysis.findings if f.id == rid]
    assert len(found) == 1, [(f.id, sorted(f.clients)) for f in analysis.findings]
    return found[0]


@pytest.mark.parametrize(("rid", "clients", "evidence"), FINDINGS, ids=[rid for rid, _, _ in FINDINGS])
def test_the_findings_name_the_cause_and_the_clients_by_the_new_lines(
        analysis: Analysis, rid: str, clients: set[str], evidence: str) -> None:
    finding = _one(analysis, rid)
    assert finding.clients == clients
    assert not finding.alternatives
    assert any(e.side == "broker" and re.search(evidence, e.text) for e in finding.evidence), \
        [e.text for e in finding.evidence]


def test_the_refused_logins_are_told_apart_per_connection(analysis: Analysis) -> None:
    """Each refusal's CONNACK and disconnect (which name the client and the port) join the
    connection accepted from that port, so the client's own CONNECT (with a user name or without)
    decides the cause: no refusal is counted twice or under the other cause."""
    bad = {e.line for e in _one(analysis, "auth.bad_credentials").evidence if e.side == "broker"}
    anonymous = {e.line for e in _one(analysis, "auth.anonymous_denied").evidence if e.side == "broker"}
    assert bad and anonymous and not bad & anonymous
    assert _one(analysis, "session.client_id_takeover").count >= 3


def test_the_keepalive_timeout_and_the_closed_socket_are_no_finding(analysis: Analysis) -> None:
    named = set().union(*(f.clients for f in analysis.findings))
    assert not named & {"edge-24", "edge-25", "hmi-20"}


@pytest.mark.parametrize("engine", ["python", "hyperscan"])
def test_no_new_disconnect_line_is_counted_as_routine(engine: str) -> None:
    """An unknown wording is never routine: every reworded line reaches the parser on both paths."""
    if engine == "hyperscan" and not hyperscan_available():
        pytest.skip("hyperscan and numpy are not installed")
    spec = MOSQUITTO.routine
    assert spec is not None
    data = b"".join(raw + b"\n" for _, raw in iter_lines(BROKER_LOG))
    found = classifier(spec, MAX_LINE, engine).scan(data, RoutineCounts())
    parsed = {data[a:b].rstrip(b"\n").decode() for a, b in found}
    reworded = [line for line in data.decode().splitlines() if NEW_WORDING.match(line)]
    assert len(reworded) > 20
    assert set(reworded) <= parsed
