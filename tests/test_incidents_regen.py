"""The sample incidents can be made again from scratch, and real software still fails the way
their names say. Each test regenerates one incident into tmp_path and checks what mosquitto and
the clients really wrote, so a change in mosquitto, OpenSSL or paho that alters the evidence shows
up here before the committed samples are trusted again."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lab import incidents

pytestmark = pytest.mark.broker

EPOCH_LINE = re.compile(r"^\d{10}: ")


def _make(name: str, out: Path) -> tuple[Path, dict[str, Any]]:
    incidents.REGISTRY[name].make(out)
    folder = out / name
    expected = json.loads((folder / "expected.json").read_text())
    return folder, expected


def _text(path: Path) -> str:
    return path.read_text(errors="replace")


def _ids(expected: dict[str, Any]) -> list[str]:
    return [cause["id"] for cause in expected["root_causes"]]


def test_server_cert_expired(tmp_path: Path, mosquitto_available: str) -> None:
    folder, expected = _make("server_cert_expired", tmp_path)
    broker = _text(folder / "broker" / "mosquitto.log")
    assert re.search(r"New connection from 127\.0\.0\.1:\d+ on port \d+\.", broker)
    # The broker only hears the client's alert; OpenSSL 3 words it like this.
    assert "sslv3 alert certificate expired" in broker
    assert all(EPOCH_LINE.match(line) for line in broker.splitlines())
    # mosquitto_pub says "Error: A TLS error occurred." or "Unable to connect (A TLS error occurred.)."
    # from one run to the next, with OpenSSL's own line after it.
    pub = _text(folder / "clients" / "edge-01-pub.log")
    assert "A TLS error occurred." in pub and "certificate verify failed" in pub
    assert "certificate verify failed: certificate has expired" in _text(folder / "clients" / "edge-02.log")
    assert _ids(expected) == ["tls.server_cert_expired"]
    assert set(expected["root_causes"][0]["clients"]) == {"edge-01-pub", "edge-02"}
    server = expected["certificates"]["server.pem"][0]
    assert server["not_after"] < expected["made_at"]
    assert (folder / "keys" / "server.key").exists() and not list((folder / "certs").glob("*.key"))


def test_bad_credentials(tmp_path: Path, mosquitto_available: str) -> None:
    folder, expected = _make("bad_credentials", tmp_path)
    broker = _text(folder / "broker" / "mosquitto.log")
    # Wrong password and unknown user look the same on the broker: no client id, no username.
    assert len(re.findall(r"Client <unknown> disconnected, not authorised\.", broker)) >= 2
    assert "Sending CONNACK to 127.0.0.1 (0, 5)" in broker
    assert "as hmi-01" in broker  # the healthy client next to them got in
    assert "Connection Refused: not authorised." in _text(folder / "clients" / "edge-11-pub.log")
    paho = _text(folder / "clients" / "edge-10.log")
    assert "Sending CONNECT (u1, p1," in paho and "Not authorized" in paho
    passwd = _text(folder / "broker" / "passwd")
    assert passwd.startswith(("MyEACM:", "SparkplugViewer:", "HMI:")) and "EdgeNode11" not in passwd
    assert _ids(expected) == ["auth.bad_credentials"]
    assert set(expected["root_causes"][0]["clients"]) == {"edge-10", "edge-11-pub"}


def test_client_cert_missing(tmp_path: Path, mosquitto_available: str) -> None:
    folder, expected = _make("client_cert_missing", tmp_path)
    broker = _text(folder / "broker" / "mosquitto.log")
    assert "peer did not return a certificate" in broker
    assert "require_certificate true" in _text(folder / "broker" / "mosquitto.conf")
    # With TLS 1.3 the refusal arrives after the handshake; mosquitto_pub then says either
    # "Error: The connection was lost." with OpenSSL's alert, or just "Error: Protocol error".
    pub = _text(folder / "clients" / "edge-03-pub.log")
    assert re.search(r"tlsv13 alert certificate required|Error: Protocol error", pub)
    paho = _text(folder / "clients" / "edge-04.log")
    assert re.search(r"certificate required|EOF occurred in violation of protocol", paho)
    assert _ids(expected) == ["tls.client_cert_missing"]


def test_plain_to_tls_port(tmp_path: Path, mosquitto_available: str) -> None:
    folder, expected = _make("plain_to_tls_port", tmp_path)
    broker = _text(folder / "broker" / "mosquitto.log")
    assert "wrong version number" in broker
    assert "Error: The connection was lost." in _text(folder / "clients" / "edge-05-pub.log")
    assert "Connection reset by peer" in _text(folder / "clients" / "edge-06.log")
    assert _ids(expected) == ["tls.protocol_mismatch"]
    assert expected["clients"]["edge-06"]["kind"] == "paho"
    assert expected["made_with"]["mosquitto"] == broker.split("mosquitto version ", 1)[1].split()[0]


def test_tls_version_mismatch_made_and_diagnosed_afresh(tmp_path: Path, mosquitto_available: str) -> None:
    """End to end on today's software: a TLS 1.3-only listener, a TLS 1.2-only paho client, and
    the analysis names that client and not the mosquitto_pub that got through."""
    from correlator.analysis import analyze

    folder, expected = _make("tls_version_mismatch", tmp_path)
    assert _ids(expected) == ["tls.version_mismatch"]
    assert "unsupported protocol" in _text(folder / "broker" / "mosquitto.log")
    assert "TLSV1_ALERT_PROTOCOL_VERSION" in _text(folder / "clients" / "edge-08.log")
    assert "received CONNACK (0)" in _text(folder / "clients" / "edge-07-pub.log")
    findings = {f.id: f for f in analyze([folder]).findings}
    assert "tls.version_mismatch" in findings
    assert findings["tls.version_mismatch"].clients == {"edge-08"}


def test_multi_broker_acl_made_and_diagnosed_afresh(tmp_path: Path, mosquitto_available: str) -> None:
    """Three real brokers at once, two ACLs and one without acl_file: made again, each broker's
    denials are found on its own host and nowhere else."""
    from correlator.analysis import analyze

    folder, expected = _make("multi_broker_acl", tmp_path)
    assert "Denied PUBLISH from viewer-a" in _text(folder / "broker-a" / "mosquitto.log")
    assert "acl_file" not in _text(folder / "broker-c" / "mosquitto.conf")
    found = {(f.host, f.id, tuple(sorted(f.clients))) for f in analyze([folder]).findings}
    assert found == {(host, cause["id"], tuple(cause["clients"]))
                     for host, spec in expected["hosts"].items() for cause in spec["root_causes"]}


def test_mosquitto_21_disconnects_made_and_diagnosed_afresh(tmp_path: Path, mosquitto_available: str) -> None:
    """The real 2.1.2 broker still words its disconnects `Client ID [ADDR:PORT] disconnected: ...`,
    and the analysis of a fresh run names every cause and client. Runs where the lab's 2.1.2 build
    is there already (`python -m lab.mosquitto_build`): building it takes minutes."""
    from correlator.analysis import analyze
    from lab.mosquitto_build import CACHE, MOSQUITTO_21, Built

    if not Built(MOSQUITTO_21, CACHE / f"mosquitto-{MOSQUITTO_21}").ready():
        pytest.skip(f"mosquitto {MOSQUITTO_21} is not built here (PYTHONPATH=tests python -m lab.mosquitto_build)")
    folder, expected = _make("mosquitto_21_disconnects", tmp_path)
    broker = _text(folder / "broker" / "mosquitto.log")
    for reason in ("not authorised", "session taken over", "exceeded timeout", "connection closed by client"):
        assert re.search(rf"^\d+: Client edge-2\d \[127\.0\.0\.1:\d+\] disconnected: {reason}\.$", broker, re.M), reason
    found = {(f.id, tuple(sorted(f.clients))) for f in analyze([folder]).findings if f.id != "config.insecure"}
    clients = {name: info["client_id"] for name, info in expected["clients"].items()}
    assert found == {(cause["id"], tuple(sorted({clients[c] for c in cause["clients"]})))
                     for cause in expected["root_causes"]}


def test_java_clients_made_and_diagnosed_afresh(tmp_path: Path, mosquitto_available: str,
                                                java_available: str) -> None:
    """Today's JDK still answers a broker certificate it cannot chain with the bare alert
    'certificate unknown', and the broker's log alone still names the untrusted certificate, as a
    guess with its look-alikes."""
    from correlator.analysis import analyze

    folder, expected = _make("java_clients", tmp_path)
    assert _ids(expected) == ["tls.server_cert_untrusted"]
    broker = folder / "broker" / "mosquitto.log"
    assert "alert certificate unknown" in _text(broker)
    assert "PKIX path building failed" in _text(folder / "clients" / "java-edge-70.log")
    assert "CONNACK return code 0" in _text(folder / "clients" / "java-edge-72.log")
    [alone] = [f for f in analyze([broker]).findings if f.id != "config.insecure"]
    assert (alone.id, alone.confidence) == ("tls.server_cert_untrusted", "low")
    assert "tls.server_hostname_mismatch" in alone.alternatives
