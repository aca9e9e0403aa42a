"""Evidence that fits several causes, read without the artifacts that would decide (a rule's
`require_if_known`): a broker log alone, or client logs without certificates, as support often gets
them. The likeliest cause is named with low confidence and its look-alikes beside it; a cause with
evidence of its own wins over it; artifacts that show it false refuse it. Proved on real incidents
in sample_logs/ (java_clients: JDK clients whose only trace on the broker is the alert
'certificate unknown')."""

from __future__ import annotations

import shutil
from pathlib import Path

from correlator.analysis import analyze
from correlator.report_model import Finding

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


def _logs_only(tmp_path: Path, incident: str) -> Path:
    """The incident's logs without its certificates, keys and configuration files."""
    out = tmp_path / incident
    for log in (SAMPLES / incident).rglob("*.log"):
        target = out / log.relative_to(SAMPLES / incident)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(log, target)
    return out


def _failures(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.id not in {"config.insecure", "cert.expiring_soon"}]


def test_a_broker_log_alone_names_the_likeliest_cause_of_a_bare_alert() -> None:
    """JSSE refuses the broker's certificate with 'certificate unknown', no reason given: from the
    broker's log alone, an untrusted certificate, with low confidence and the look-alikes named."""
    analysis = analyze([SAMPLES / "java_clients" / "broker" / "mosquitto.log"])
    [finding] = _failures(analysis.findings)
    assert finding.id == "tls.server_cert_untrusted"
    assert finding.confidence == "low"
    assert {"tls.server_hostname_mismatch", "tls.server_cert_expired"} <= set(finding.alternatives)
    assert [e.line for e in finding.evidence] == [6, 9]
    assert all("alert certificate unknown" in e.text for e in finding.evidence)
    assert "CA file" in finding.confirm_with


def test_the_clients_own_reason_decides_beside_the_bare_alert() -> None:
    """With java-edge-70's log ('PKIX path building failed'), the cause is the client's own word,
    both sides agreeing, and no guess is left standing beside it."""
    analysis = analyze([SAMPLES / "java_clients"])
    [finding] = _failures(analysis.findings)
    assert finding.id == "tls.server_cert_untrusted"
    assert finding.clients == {"java-edge-70"}
    assert finding.confidence == "medium"
    assert finding.alternatives == []
    assert any("SEVERE: connection to ssl://" in e.text and "PKIX path building failed" in e.text
               for e in finding.evidence)  # the head and the line that says why


def test_a_look_alike_with_evidence_of_its_own_wins_over_the_undecided_guess(tmp_path: Path) -> None:
    """The broker hears 'bad certificate', mosquitto_pub says only 'certificate verify failed', and
    paho says 'IP address mismatch'; without the certificate, the mismatch the client names is the
    cause for both clients, and the untrusted-certificate guess is neither a finding nor named."""
    analysis = analyze([_logs_only(tmp_path, "server_hostname_mismatch")])
    [finding] = _failures(analysis.findings)
    assert finding.id == "tls.server_hostname_mismatch"
    assert finding.clients == {"edge-01-pub", "edge-02"}
    assert "tls.server_cert_untrusted" not in finding.alternatives


def test_a_broker_log_alone_names_a_tls_hello_at_a_plain_listener() -> None:
    """mosquitto reads a TLS ClientHello at a plain listener as a broken packet: 'protocol error'
    right after the accept, no CONNECT. Without mosquitto.conf that still names the mismatch, with
    low confidence and what would decide."""
    analysis = analyze([SAMPLES / "tls_to_plain_port" / "broker" / "mosquitto.log"])
    [finding] = _failures(analysis.findings)
    assert finding.id == "tls.protocol_mismatch"
    assert finding.confidence == "low"
    assert finding.count == 3
    assert [e.line for e in finding.evidence] == [5, 6, 7, 8, 9, 10]
    assert "mosquitto.conf" in finding.confirm_with


def test_a_protocol_error_after_an_openssl_error_is_no_plain_listener(tmp_path: Path) -> None:
    """At a TLS listener mosquitto 2.0 ends a failed handshake with 'Protocol error' too, after its
    OpenSSL error: that connection shows the listener speaks TLS, so no mismatch is guessed."""
    for incident, cause in (("server_cert_expired", "tls.server_cert_expired"),
                            ("client_cert_missing", "tls.client_cert_missing"),
                            ("tls_version_mismatch", "tls.version_mismatch")):
        analysis = analyze([_logs_only(tmp_path, incident)])
        assert [f.id for f in _failures(analysis.findings)] == [cause], incident


def test_a_clock_no_zone_explains_is_named_over_the_certificate_it_blames(tmp_path: Path) -> None:
    """edge-95's naive log runs a whole day behind a broker stamping epoch times: no zone is 24 h
    from UTC, so that is its clock, and its 'certificate is not yet valid' joins the clock finding,
    the certificate cause named beside it, even without the certificate to check."""
    with_artifacts = _failures(analyze([SAMPLES / "clock_a_day_behind"]).findings)
    assert [f.id for f in with_artifacts] == ["client.clock_skew"]  # (no untrusted guess either)
    analysis = analyze([_logs_only(tmp_path, "clock_a_day_behind")])
    [finding] = _failures(analysis.findings)
    assert finding.id == "client.clock_skew"
    assert finding.clients == {"edge-95"}
    assert finding.alternatives == ["tls.server_cert_not_yet_valid"]
    assert any("certificate is not yet valid" in e.text and e.file.endswith("edge-95.log")
               for e in finding.evidence)
    offsets = {s.info.source: s.offset for s in analysis.sources}
    assert round(offsets["client:edge-95"] / 3600) == -24
    # hmi-97 (Asia/Kolkata, +5:30 against the epoch broker) is still read as a zone, not a clock
    assert not any(f.id == "client.clock_skew" and "hmi-97" in f.clients for f in analysis.findings)


def test_a_reasonless_node_red_failure_and_the_brokers_eof_name_the_refused_certificate(tmp_path: Path) -> None:
    """Node-RED says only 'Connection failed to broker' and the broker 'unexpected eof': Node's TLS
    checks the certificate after the handshake and closes the socket. Stitched into one connection
    (time and the listener's port), the two name the refused certificate from the logs alone, with
    low confidence (nothing decides it from its look-alikes) and those named beside it."""
    analysis = analyze([_logs_only(tmp_path, "node_red_untrusted_ca")])
    [finding] = _failures(analysis.findings)
    assert finding.id == "tls.server_cert_untrusted"
    assert finding.clients == {"nodered-gw"}
    assert finding.confidence == "low"
    assert "look-alikes" in finding.confidence_reason
    assert {"tls.server_hostname_mismatch", "tls.server_cert_expired"} <= set(finding.alternatives)
    texts = [e.text for e in finding.evidence]
    assert any("unexpected eof while reading" in t for t in texts)
    assert any("Connection failed to broker: nodered-gw@mqtts://" in t for t in texts)


def test_the_brokers_eof_alone_or_node_reds_failure_alone_names_nothing(tmp_path: Path) -> None:
    """Either half alone is no evidence of a refused certificate: an 'unexpected eof' is also a
    port check or a killed client, and Node-RED says 'Connection failed' for any failure."""
    logs = _logs_only(tmp_path, "node_red_untrusted_ca")
    assert _failures(analyze([logs / "broker" / "mosquitto.log"]).findings) == []
    assert _failures(analyze([logs / "clients" / "nodered.log"]).findings) == []


def test_the_brokers_view_of_the_same_failure_joins_the_clients_reason(tmp_path: Path) -> None:
    """Logs only: the clients say 'IP address mismatch' (their own reason), the broker hears 'alert
    bad certificate' on the same connections (alone, an undecided guess). The client's reason
    wins, and the broker's lines join it as the other side's view: both sides agree, medium, the
    client's own line first."""
    [finding] = _failures(analyze([_logs_only(tmp_path, "server_hostname_mismatch")]).findings)
    assert (finding.id, finding.confidence) == ("tls.server_hostname_mismatch", "medium")
    assert finding.confidence_reason.startswith("both sides of the connection agree")
    assert "IP address mismatch" in finding.evidence[0].text
    assert any(e.side == "broker" and "alert bad certificate" in e.text for e in finding.evidence)
    assert finding.alternatives == []
