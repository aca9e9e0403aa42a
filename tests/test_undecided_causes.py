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


def test_a_wrong_client_clock_is_not_taken_for_an_untrusted_certificate(tmp_path: Path) -> None:
    """clock_a_day_behind: the broker's bare alert is stitched to edge-95, whose own log says the
    certificate is not yet valid: with the certificates, the clock; without, not yet valid."""
    with_artifacts = _failures(analyze([SAMPLES / "clock_a_day_behind"]).findings)
    assert [f.id for f in with_artifacts] == ["client.clock_skew"]
    logs_only = _failures(analyze([_logs_only(tmp_path, "clock_a_day_behind")]).findings)
    assert [f.id for f in logs_only] == ["tls.server_cert_not_yet_valid"]
