"""The long tail of wordings: the same failure in each stack's words (read from their sources:
OpenSSL 1.0/1.1/3.x reason strings, Go's crypto/tls alert.go and crypto/x509 verify.go, Java's
JSSE, Paho Java and the HiveMQ client, .NET's SslStream and MQTTnet, Node's error codes,
mosquitto 1.4 to 2.1, and the OPC UA stacks asyncua, open62541, Eclipse Milo, node-opcua and
UA-.NETStandard) put in place of the real line of a real sample, and the whole sample diagnosed
again: the finding and its client must not change."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from correlator.analysis import analyze
from correlator.engine.evaluate import Engine
from correlator.engine.facts import CHECKS
from correlator.engine.rules import load_rules
from correlator.engine.selftest import StatedFacts, make_event
from correlator.formats.registry import default_registry
from correlator.model import FieldValue
from lab import copy_sample

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
    folder = copy_sample(incident, tmp_path)
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


# ---------------------------------------------------------------------------------------- MQTT refusals

_PAHO_CONNACK = re.compile(r"Received CONNACK \(0, 5\)")


@pytest.mark.parametrize("wording", [
    "org.eclipse.paho.client.mqttv3.MqttSecurityException: Not authorized to connect (5)",  # Paho Java 3
    "org.eclipse.paho.client.mqttv3.MqttSecurityException: Bad user name or password (4)",  # Paho Java 3
    "com.hivemq.client.mqtt.mqtt3.exceptions.Mqtt3ConnAckException: CONNECT failed as CONNACK contained an Error "
    "Code: NOT_AUTHORIZED.",  # HiveMQ client, MQTT 3
    "com.hivemq.client.mqtt.mqtt5.exceptions.Mqtt5ConnAckException: CONNECT failed as CONNACK contained an Error "
    "Code: BAD_USER_NAME_OR_PASSWORD.",  # HiveMQ client, MQTT 5
    "MQTTnet.Adapter.MqttConnectingFailedException: Connecting with MQTT server failed (BadUserNameOrPassword).",  # 4.x
    "MQTTnet.Adapter.MqttConnectingFailedException: Connecting with MQTT server failed "
    "(ConnectionRefusedNotAuthorized).",  # MQTTnet 3.x
])
def test_each_clients_refusal_gives_the_same_finding(tmp_path: Path, wording: str) -> None:
    """Java and .NET clients' words for a refused login, in place of paho's CONNACK line."""
    folder = copy_sample("bad_credentials", tmp_path)
    log = folder / "clients" / "edge-10.log"
    lines = log.read_text().splitlines()
    replaced = [_PAHO_CONNACK.sub(wording, line) for line in lines]
    assert replaced != lines
    log.write_text("\n".join(replaced) + "\n")
    finding = next(f for f in analyze([folder]).findings if f.id == "auth.bad_credentials")
    assert "edge-10" in finding.clients
    assert any(e.file == "clients/edge-10.log" and wording[:30] in e.text for e in finding.evidence)


_REFUSAL = "Client <unknown> disconnected, not authorised."


@pytest.mark.parametrize("wording", [
    "Client <unknown> disconnected, not authorised.",  # 1.4 - 2.0 (src/loop.c)
    "Client <unknown> disconnected, no longer authorised.",  # 1.6, after a reload
    "Client <unknown> disconnected, bad username or password.",  # 2.1: the MQTT 5 reason in words
])
@pytest.mark.parametrize("wrap", ["epoch", "docker_json", "timestamped", "journald_json"])
def test_a_broker_refusal_reads_the_same_whichever_layout_carries_it(tmp_path: Path, wording: str,
                                                                      wrap: str) -> None:
    """mosquitto's refusal in its wording of 1.4, 1.6, 2.0 and 2.1, in the broker's real log as
    mosquitto writes it, as docker's json-file driver stores it, behind `docker logs -t` /
    `kubectl logs --timestamps`, and as `journalctl -o json` prints it: the same broker-side
    finding for the same clients."""
    folder = copy_sample("bad_credentials", tmp_path)
    log = folder / "broker" / "mosquitto.log"
    out = []
    for line in log.read_text().splitlines():
        epoch, _, body = line.partition(": ")
        body = wording if body == _REFUSAL else body
        when = datetime.fromtimestamp(int(epoch), UTC)
        out.append({
            "epoch": f"{epoch}: {body}",
            "docker_json": json.dumps({"log": f"{epoch}: {body}\n", "stream": "stderr",
                                       "time": when.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")}, separators=(",", ":")),
            "timestamped": f"{when.strftime('%Y-%m-%dT%H:%M:%S.000000000Z')} {epoch}: {body}",
            "journald_json": json.dumps({"__REALTIME_TIMESTAMP": f"{epoch}000000", "_HOSTNAME": "broker-01",
                                         "SYSLOG_IDENTIFIER": "mosquitto", "MESSAGE": f"{epoch}: {body}"},
                                        separators=(",", ":")),
        }[wrap])
    log.write_text("\n".join(out) + "\n")
    analysis = analyze([folder])
    source = next(s for s in analysis.sources if s.info.path.endswith("mosquitto.log"))
    assert source.info.format == "mosquitto"
    # edge-10's wrong password, and edge-11's refusal that nothing in the bundle tells from an
    # anonymous one (mosquitto_pub logs no CONNECT flags): a finding of its own, naming both causes
    findings = [f for f in analysis.findings if f.id == "auth.bad_credentials"]
    assert {"edge-10", "edge-11"} <= set().union(*(f.clients for f in findings))
    assert any(e.side == "broker" and wording in e.text for f in findings for e in f.evidence)


def test_mosquitto_2_1_names_tls_to_a_plain_listener(tmp_path: Path) -> None:
    """2.1 says what 2.0 calls a protocol error: a TLS client at a plain listener."""
    folder = copy_sample("tls_to_plain_port", tmp_path)
    log = folder / "broker" / "mosquitto.log"
    out = []
    peer = ""
    for line in log.read_text().splitlines():
        epoch, _, body = line.partition(": ")
        accepted = re.match(r"New connection from (\S+) on port", body)
        peer = accepted.group(1) if accepted else peer
        if body == "Client <unknown> disconnected due to protocol error.":
            host, port = peer.rsplit(":", 1)
            body = f"Client from {host}:{port} appears to be using TLS to connect to a non-TLS listener."
        out.append(f"{epoch}: {body}")
    log.write_text("\n".join(out) + "\n")
    finding = next(f for f in analyze([folder]).findings if f.id == "tls.protocol_mismatch")
    assert any(e.side == "broker" and "appears to be using TLS" in e.text for e in finding.evidence)


# ---------------------------------------------------------------------------------------- peer alerts

#: Alerts the vocabulary leaves without a cause on purpose: they say the record layer broke
#: (a middlebox, a bug), not which certificate or setting is wrong; "decrypt error" belongs to the
#: same-name CA diagnosis.
UNMAPPED_ALERTS = {"decrypt error", "illegal parameter", "decode error", "bad record mac", "unexpected message",
                   "record overflow", "user canceled", "inappropriate fallback", "missing extension",
                   "no application protocol"}
ALERTS = ["bad certificate", "unsupported certificate", "certificate revoked", "certificate expired",
          "certificate unknown", "unknown ca", "access denied", "handshake failure", "protocol version",
          "insufficient security", "internal error", "certificate required", "no certificate", "unrecognized name"]


@pytest.mark.parametrize("alert", ALERTS)
def test_every_peer_alert_has_a_rule_that_uses_it(alert: str) -> None:
    """OpenSSL's alert texts (ssl/ssl_err.c, "sslv3/tlsv1/tlsv13 alert ..."), each a reason that a
    rule reads on the side that hears it (with the artifact checks stating either way)."""
    evidence = default_registry().evidence
    found: dict[str, FieldValue] = {}
    kind = None
    for prefix in ("sslv3 alert ", "tlsv1 alert ", "tlsv13 alert ", "tlsv1 "):
        found, kind = evidence.extract(f"error:0A000000:SSL routines::{prefix}{alert}")
        if "tls_reason" in found:
            break
    assert found.get("tls_alert") is True, found
    rules, _ = load_rules()
    fired = set()
    for side in ("broker", "client:edge"):
        spec = {"source": side, "kind": kind or "tls.error", **found}
        for facts in ({}, dict.fromkeys(CHECKS, True)):
            for rule in rules:
                engine = Engine([rule], StatedFacts(facts))
                event = make_event(spec, 0, rule.file)
                engine.feed_many([event])
                engine.advance_to(event.ts + 86400)
                engine.finish()
                fired |= {f.id for f in engine.findings() if f.id.startswith("tls.")}
    assert fired, f"no rule reads the alert {alert!r} ({found})"


def test_unmapped_alerts_are_not_mistaken_for_another_reason() -> None:
    evidence = default_registry().evidence
    for alert in UNMAPPED_ALERTS - {"decrypt error"}:
        found, _ = evidence.extract(f"error:0A000000:SSL routines::tlsv1 alert {alert}")
        assert "tls_reason" not in found, (alert, found)


# ---------------------------------------------------------------------------------------- OPC UA stacks

@pytest.mark.parametrize(("text", "reason"), [
    # UA-.NETStandard (CertificateValidationCore.cs)
    ("Certificate is not trusted.", "cert_untrusted"),
    ("Certificate Issuer is not trusted.", "cert_untrusted"),
    ("Certificate chain validation incomplete.", "cert_untrusted"),
    ("Certificate has expired or is not yet valid. NotTimeValid: A required certificate is not within its validity "
     "period", "cert_time_invalid"),
    ("The domain 'plc-07.plant' is not listed in the server certificate.", "cert_hostname_invalid"),
    ("Certificate issuer revocation list not found.", "cert_revocation_unknown"),
    # Eclipse Milo
    ("certificate chain did not contain a trusted certificate", "cert_untrusted"),
    ("no match in certificate for application URI 'urn:plant:hmi'", "cert_uri_invalid"),
    ("UaException: status=Bad_SecurityChecksFailed, message=could not verify signature", "signature_failed"),
    # open62541
    ("TCP 5 | SC 1 | Could not verify the signature", "signature_failed"),
    ("SecureChannel 1 | CreateSession: The client certificate's ApplicationUri could not be verified against the "
     "ApplicationUri urn:plant:hmi from the client's ApplicationDescription", "cert_uri_invalid"),
    # node-opcua
    ("Server#OpenSecureChannelRequest : Invalid receiver certificate thumbprint : the thumbprint doesn't match "
     "server certificate !", "receiver_thumbprint_mismatch"),
    ("Cannot decrypt OPN package", "decrypt_failed"),
    ("[NODE-OPCUA-W25] client's server certificate verification has failed", "cert_untrusted"),
])
def test_opcua_stacks_words_are_opcua_reasons_never_tls(text: str, reason: str) -> None:
    found, kind = default_registry().evidence.extract(text)
    assert found.get("opcua_reason") == reason
    assert "tls_reason" not in found and "tls_alert" not in found
    assert kind != "tls.error"


def test_milo_names_its_status_with_an_underscore() -> None:
    found, _ = default_registry().evidence.extract("UaException: status=Bad_CertificateUntrusted, message=x")
    assert (found["opcua_status"], found["opcua_status_code"]) == ("BadCertificateUntrusted", "0x801A0000")


_ASYNCUA_DECRYPT = "ValueError: Decryption failed"


@pytest.mark.parametrize("wording", [
    "TCP 5 | SC 1 | Could not verify the signature",  # open62541
    "AEAD decryption/verification failed",  # open62541, AEAD policies
    "Server#OpenSecureChannelRequest : Invalid receiver certificate thumbprint : the thumbprint doesn't match "
    "server certificate !",  # node-opcua
    "Cannot decrypt OPN package",  # node-opcua
    "UaException: status=Bad_SecurityChecksFailed, message=could not verify signature",  # Eclipse Milo
    "cryptography.exceptions.InvalidSignature",  # asyncua, signed for another key
])
def test_each_servers_words_for_a_renewed_certificate(tmp_path: Path, wording: str) -> None:
    """The server side of opcua_server_cert_changed in each stack's words, in place of asyncua's
    processing error and its traceback."""
    folder = copy_sample("opcua_server_cert_changed", tmp_path)
    log = folder / "server" / "opcua-server.log"
    out: list[str] = []
    in_traceback = False
    for line in log.read_text().splitlines():
        if "Exception raised while processing message from client" in line:
            out.append(line.replace("Exception raised while processing message from client", wording))
            in_traceback = True
            continue
        if in_traceback and not re.match(r"\d{4}-\d\d-\d\d ", line):
            continue  # the traceback (and its "ValueError: Decryption failed") goes with it
        in_traceback = False
        out.append(line)
    assert _ASYNCUA_DECRYPT not in "\n".join(out)
    log.write_text("\n".join(out) + "\n")
    analysis = analyze([folder])
    finding = next(f for f in analysis.findings if f.id == "opcua.server_cert_changed")
    assert finding.clients == {"opcua-client"}
    assert any(e.side == "server" and wording[:30] in e.text for e in finding.evidence)
    assert not [f.id for f in analysis.findings if f.id.startswith("tls.")]


@pytest.mark.parametrize(("incident", "status", "cause", "wording"), [
    ("opcua_cert_untrusted", "BadCertificateUntrusted", "opcua.cert_untrusted",
     "Opc.Ua.ServiceResultException: Certificate is not trusted."),
    ("opcua_cert_untrusted", "BadCertificateUntrusted", "opcua.cert_untrusted",
     "UaException: certificate chain did not contain a trusted certificate"),
    ("opcua_cert_time_invalid", "BadCertificateTimeInvalid", "opcua.cert_time_invalid",
     "Opc.Ua.ServiceResultException: Certificate has expired or is not yet valid."),
])
def test_a_clients_words_without_a_status_code(tmp_path: Path, incident: str, status: str, cause: str,
                                               wording: str) -> None:
    """The client's status lines in another stack's words without a code, the server's log left
    out: the OPC UA cause, and no MQTT TLS cause, from the words alone."""
    folder = copy_sample(incident, tmp_path)
    shutil.rmtree(folder / "server")
    log = folder / "clients" / "opcua-client.log"
    lines = log.read_text().splitlines()
    replaced = [re.sub(r"(: ).*$", lambda m: m.group(1) + wording, line, count=1) if status in line else line
                for line in lines]
    assert replaced != lines and status not in "\n".join(replaced)
    log.write_text("\n".join(replaced) + "\n")
    analysis = analyze([folder])
    finding = next(f for f in analysis.findings if f.id == cause)
    assert "opcua-client" in finding.clients
    assert not [f.id for f in analysis.findings if f.id.startswith("tls.")]
