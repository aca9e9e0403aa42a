"""The long tail of wordings: the same failure in each stack's words (read from their sources:
OpenSSL 1.0/1.1/3.x reason strings, Go's crypto/tls alert.go and crypto/x509 verify.go, Java's
JSSE, .NET's SslStream, Node's error codes) put in place of the real client line of a real
sample, and the whole sample diagnosed again: the finding and its client must not change."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from correlator.analysis import analyze
from correlator.formats.registry import default_registry

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
_PYTHON_SSL = re.compile(r"SSLCertVerificationError: \[SSL: CERTIFICATE_VERIFY_FAILED\] certificate verify failed: .*$")

CASES = [
    ("server_cert_untrusted", "tls.server_cert_untrusted", [
        "x509: certificate signed by unknown authority",  # Go crypto/x509 UnknownAuthorityError
        "tls: failed to verify certificate: x509: certificate signed by unknown authority",  # Go 1.20+
        "javax.net.ssl.SSLHandshakeException: PKIX path building failed: sun.security.provider.certpath."
        "SunCertPathBuilderException: unable to find valid certification path to requested target",  # JSSE
        "The remote certificate is invalid because of errors in the certificate chain: UntrustedRoot",  # .NET
        "Error: unable to get local issuer certificate",  # Node (OpenSSL's X509 verify text)
        "error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed "
        "(unable to get local issuer certificate)",  # OpenSSL 1.1
    ]),
    ("server_cert_expired", "tls.server_cert_expired", [
        "x509: certificate has expired or is not yet valid: current time 2026-11-23T14:39:55Z is after "
        "2026-11-11T14:39:54Z",  # Go
        "java.security.cert.CertificateExpiredException: NotAfter: Wed Nov 11 14:39:54 UTC 2026",  # JSSE
        "The remote certificate is invalid because of errors in the certificate chain: NotTimeValid",  # .NET
        "Error: certificate has expired",  # Node CERT_HAS_EXPIRED
        "error:14090086:SSL routines:ssl3_get_server_certificate:certificate verify failed "
        "(certificate has expired)",  # OpenSSL 1.0
    ]),
    ("server_hostname_mismatch", "tls.server_hostname_mismatch", [
        "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs",  # Go
        "x509: certificate is valid for 10.3.0.11, not 127.0.0.1",  # Go
        "java.security.cert.CertificateException: No subject alternative names matching IP address 127.0.0.1 "
        "found",  # JSSE
        "The remote certificate is invalid according to the validation procedure: "
        "RemoteCertificateNameMismatch",  # .NET
        "Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 "
        "is not in the cert's list: ",  # Node
    ]),
]
TABLE = [(incident, cause, wording) for incident, cause, wordings in CASES for wording in wordings]


@pytest.mark.parametrize(("incident", "cause", "wording"), TABLE, ids=[f"{c}:{w[:40]}" for _, c, w in TABLE])
def test_each_stacks_wording_gives_the_same_finding(tmp_path: Path, incident: str, cause: str, wording: str) -> None:
    folder = tmp_path / incident
    shutil.copytree(SAMPLES / incident, folder, ignore=shutil.ignore_patterns("expected.json"))
    log = folder / "clients" / "edge-02.log"
    lines = log.read_text().splitlines()
    replaced = [_PYTHON_SSL.sub(wording, line) for line in lines]
    assert replaced != lines
    log.write_text("\n".join(replaced) + "\n")
    analysis = analyze([folder])
    finding = next((f for f in analysis.findings if f.id == cause or cause in f.alternatives), None)
    assert finding is not None, [f.id for f in analysis.findings]
    assert "edge-02" in finding.clients
    assert any(e.file == "clients/edge-02.log" and wording[:30] in e.text for e in finding.evidence)


@pytest.mark.parametrize(("text", "reason"), [
    # a peer's alert in each stack's words (tls_alert): OpenSSL, Java, Go, .NET, Node
    ("error:0A000418:SSL routines::tlsv1 alert unknown ca", "unknown_ca"),
    ("javax.net.ssl.SSLHandshakeException: Received fatal alert: unknown_ca", "unknown_ca"),
    ("remote error: tls: unknown certificate authority", "unknown_ca"),
    ("Authentication failed because the remote party sent a TLS alert: 'UnknownCA'.", "unknown_ca"),
    ("Error: 140:error:0A000418:SSL routines::tlsv1 alert unknown ca ERR_SSL_TLSV1_ALERT_UNKNOWN_CA", "unknown_ca"),
    ("error:14094412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate", "bad_certificate"),
    ("remote error: tls: bad certificate", "bad_certificate"),
    ("Received fatal alert: bad_certificate", "bad_certificate"),
    ("error:0A000415:SSL routines::sslv3 alert certificate expired", "cert_expired"),
    ("remote error: tls: expired certificate", "cert_expired"),
    ("Authentication failed because the remote party sent a TLS alert: 'CertificateExpired'.", "cert_expired"),
    ("error:0A00045C:SSL routines::tlsv13 alert certificate required", "no_client_cert"),
    ("remote error: tls: certificate required", "no_client_cert"),
    ("error:0A00042E:SSL routines::tlsv1 alert protocol version", "protocol_version"),
    ("remote error: tls: protocol version not supported", "protocol_version"),
    ("Authentication failed because the remote party sent a TLS alert: 'ProtocolVersion'.", "protocol_version"),
])
def test_a_peers_alert_in_every_stacks_words(text: str, reason: str) -> None:
    found, kind = default_registry().evidence.extract(text)
    assert (kind, found["tls_reason"], found["tls_alert"]) == ("tls.error", reason, True)


@pytest.mark.parametrize(("text", "reason"), [
    # a stack's own verdict (not an alert): Go, JSSE, .NET, OpenSSL 1.0/1.1/3.x
    ("tls: server selected unsupported protocol version 301", "protocol_version"),
    ("tls: no supported versions satisfy MinVersion and MaxVersion", "protocol_version"),
    ("error:1417118C:SSL routines:tls_process_client_hello:version too low", "protocol_version"),
    ("javax.net.ssl.SSLHandshakeException: Empty client certificate chain", "no_client_cert"),
    ("tls: client didn't provide a certificate", "no_client_cert"),
    ("error:140760FC:SSL routines:SSL23_GET_CLIENT_HELLO:unknown protocol", "wrong_version"),
    ("The handshake failed due to an unexpected packet format.", "wrong_version"),
    ("x509: certificate relies on legacy Common Name field, use SANs instead", "hostname_mismatch"),
])
def test_a_stacks_own_verdict(text: str, reason: str) -> None:
    found, _ = default_registry().evidence.extract(text)
    assert (found["tls_reason"], found["tls_alert"]) == (reason, False)
