"""The live probe against real mosquitto listeners, one configured per failure; the assertions are on
the root-cause id the probe names and on what the broker itself logged."""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from correlator.artifacts.certs import load_paths
from correlator.artifacts.probe import ProbeResult, connect_packet, parse_connack, parse_target, probe
from correlator.errors import ProbeError
from lab import pki
from lab.broker import Mosquitto
from lab.ports import free_port

pytestmark = pytest.mark.broker

NOW = datetime.now(UTC)


@dataclass
class Lab:
    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name

    def tls_config(self, cert: str, extra: str = "") -> str:
        return (f"listener {{port0}} 127.0.0.1\ncafile {self.dir}/ca.pem\ncertfile {self.dir}/{cert}.pem\n"
                f"keyfile {self.dir}/{cert}.key\nallow_anonymous true\nlog_type all\n{extra}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    base = tmp_path_factory.mktemp("probe-pki")
    ca = pki.make_ca(not_before=NOW - timedelta(days=30), key_kind="ec")
    ca.write(base / "ca.pem")
    pki.make_ca("plant CA", not_before=NOW - timedelta(days=30), key_kind="ec").write(base / "other-ca.pem")
    leaves: dict[str, dict[str, Any]] = {
        "good": {"cn": "localhost", "sans": ["localhost", "127.0.0.1"]},
        "expired": {"cn": "localhost", "sans": ["localhost", "127.0.0.1"], "not_before": NOW - timedelta(days=40),
                    "not_after": NOW - timedelta(days=2)},
        "wrong-host": {"cn": "broker.elsewhere", "sans": ["broker.elsewhere"]},
        "client": {"cn": "edge-07", "sans": [], "usage": ("client",)},
        "client-expired": {"cn": "edge-08", "sans": [], "usage": ("client",), "not_before": NOW - timedelta(days=40),
                           "not_after": NOW - timedelta(days=2)},
    }
    for name, spec in leaves.items():
        issued = pki.make_leaf(spec["cn"], ca, sans=spec["sans"], usage=spec.get("usage", ("server",)),
                               not_before=spec.get("not_before", NOW - timedelta(days=1)),
                               not_after=spec.get("not_after"), key_kind="ec")
        issued.write(base / f"{name}.pem", base / f"{name}.key")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(base / "passwd"), "u1", "right"], check=True,
                   timeout=10, capture_output=True)
    return Lab(base)


def run(tmp_path: Path, config: str, **options: Any) -> tuple[ProbeResult, str]:
    with Mosquitto(tmp_path / "broker", config) as broker:
        result = probe("127.0.0.1", broker.port, timeout=3, **options)
        broker.wait_for_log(r"disconnected|closed its connection|failed:", timeout=5)
        log = broker.log_text()
    json.dumps(result.to_dict())
    return result, log


def test_healthy_tls_listener_with_mqtt(lab: Lab, tmp_path: Path, mosquitto_available: str) -> None:
    result, log = run(tmp_path, lab.tls_config("good"), ca=lab.path("ca.pem"), mqtt=True)
    assert result.ok and result.cause is None, result.message
    assert result.tls_version == "TLSv1.3" and result.mqtt is not None and result.mqtt.return_code == 0
    # OpenSSL completes the broker's chain from its cafile although certfile holds only the leaf.
    assert [c.common_name for c in result.chain] == ["localhost", "correlator lab CA"]
    assert {c.status for c in result.checks} == {"ok"}
    assert "Sending CONNACK to correlator-probe-" in log and "Client <unknown>" not in log


def test_expired_server_certificate(lab: Lab, tmp_path: Path, mosquitto_available: str) -> None:
    result, log = run(tmp_path, lab.tls_config("expired"), ca=lab.path("ca.pem"))
    assert result.causes == ("tls.server_cert_expired",)
    assert result.tls_handshake == "ok" and result.chain[0].not_after < NOW
    assert "Client <unknown> closed its connection." in log  # the probe closes politely: no OpenSSL error


def test_hostname_mismatch(lab: Lab, tmp_path: Path, mosquitto_available: str) -> None:
    result, _ = run(tmp_path, lab.tls_config("wrong-host"), ca=lab.path("ca.pem"), servername="localhost")
    assert result.causes == ("tls.server_hostname_mismatch",)
    (hostname,) = [c for c in result.checks if c.check == "hostname"]
    assert hostname.details["strict"] is False and hostname.details["libmosquitto"] is False


def test_untrusted_server_certificate(lab: Lab, tmp_path: Path, mosquitto_available: str) -> None:
    result, _ = run(tmp_path, lab.tls_config("good"), ca=lab.path("other-ca.pem"))
    assert result.causes == ("tls.server_cert_untrusted",)
    (chain,) = [c for c in result.checks if c.check == "chain"]
    assert chain.details["untrusted_root"] == "CN=correlator lab CA,O=correlator lab"  # sent by the broker


def test_missing_intermediate(tmp_path: Path, mosquitto_available: str) -> None:
    """OpenSSL completes the broker's chain from its cafile; only when that lacks the intermediate
    too does the broker send the leaf alone. With the intermediate known from the inputs the probe
    names the incomplete chain; without it, it names the missing issuer."""
    root = pki.make_ca("plant root", not_before=NOW - timedelta(days=30), key_kind="ec")
    issuing = pki.make_ca("plant issuing", issuer=root, not_before=NOW - timedelta(days=30), key_kind="ec")
    root.write(tmp_path / "root.pem")
    issuing.write(tmp_path / "issuing.pem")
    pki.make_leaf("localhost", issuing, sans=["localhost"], not_before=NOW - timedelta(days=1),
                  key_kind="ec").write(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    config = (f"listener {{port0}} 127.0.0.1\ncafile {tmp_path}/root.pem\ncertfile {tmp_path}/leaf.pem\n"
              f"keyfile {tmp_path}/leaf.key\nallow_anonymous true\n")
    with Mosquitto(tmp_path / "broker", config) as broker:
        known = probe("127.0.0.1", broker.port, ca=tmp_path / "root.pem", servername="localhost", timeout=3,
                      pool=load_paths([tmp_path / "issuing.pem"]).certs)
        unknown = probe("127.0.0.1", broker.port, ca=tmp_path / "root.pem", servername="localhost", timeout=3)
    assert [c.common_name for c in known.chain] == ["localhost"]
    assert known.causes == ("tls.server_chain_incomplete",)
    assert "issuing.pem" in known.message
    assert unknown.causes == ("tls.server_cert_untrusted",)
    assert "certfile must carry it" in unknown.message


@pytest.mark.parametrize("mqtt", [False, True])
def test_client_certificate_required(lab: Lab, tmp_path: Path, mosquitto_available: str, mqtt: bool) -> None:
    result, log = run(tmp_path, lab.tls_config("good", "require_certificate true\n"), ca=lab.path("ca.pem"),
                      mqtt=mqtt)
    assert result.causes == ("tls.client_cert_missing",)
    assert result.tls_handshake == "ok"  # TLS 1.3: the refusal comes after the client's handshake
    assert "certificate required" in (result.tls_error or "")
    assert [p.cause for p in result.problems] == ["tls.client_cert_missing"]
    assert result.to_dict()["problems"][0]["message"].endswith("(it requires a client certificate)")
    assert "peer did not return a certificate" in log


def test_client_certificate_accepted(lab: Lab, tmp_path: Path, mosquitto_available: str) -> None:
    result, _ = run(tmp_path, lab.tls_config("good", "require_certificate true\n"), ca=lab.path("ca.pem"),
                    mqtt=True, cert=lab.path("client.pem"), key=lab.path("client.key"))
    assert result.ok, result.message


def test_client_certificate_from_another_ca(lab: Lab, tmp_path: Path, mosquitto_available: str) -> None:
    foreign = pki.make_leaf("edge-07", pki.make_ca("rogue", key_kind="ec"), usage=("client",), key_kind="ec")
    foreign.write(tmp_path / "foreign.pem", tmp_path / "foreign.key")
    result, log = run(tmp_path, lab.tls_config("good", "require_certificate true\n"), ca=lab.path("ca.pem"),
                      mqtt=True, cert=tmp_path / "foreign.pem", key=tmp_path / "foreign.key")
    assert result.causes == ("tls.client_cert_untrusted",)
    assert "certificate verify failed" in log


def test_expired_client_certificate(lab: Lab, tmp_path: Path, mosquitto_available: str) -> None:
    """The broker's 'certificate expired' alert names its cause through the TLS vocabulary
    (parsers/vocab/tls_reasons.toml), as log analysis reads it."""
    result, log = run(tmp_path, lab.tls_config("good", "require_certificate true\n"), ca=lab.path("ca.pem"),
                      mqtt=True, cert=lab.path("client-expired.pem"), key=lab.path("client-expired.key"))
    assert result.causes == ("tls.client_cert_expired",)
    assert "certificate expired" in (result.tls_error or "")
    assert "certificate verify failed" in log


def test_client_key_not_matching(lab: Lab, tmp_path: Path, mosquitto_available: str) -> None:
    result = probe("127.0.0.1", free_port(), ca=lab.path("ca.pem"), cert=lab.path("client.pem"),
                   key=lab.path("good.key"), timeout=2)
    assert result.cause in {"tls.client_key_problem", "net.connection_refused"}
    with Mosquitto(tmp_path / "b", lab.tls_config("good")) as broker:
        result = probe("127.0.0.1", broker.port, ca=lab.path("ca.pem"), cert=lab.path("client.pem"),
                       key=lab.path("good.key"), timeout=2)
    assert result.causes == ("tls.client_key_problem",) and "cannot be used" in result.message


@pytest.mark.parametrize(("username", "cause"), [("u1", "auth.bad_credentials"), (None, "auth.anonymous_denied")])
def test_bad_credentials(lab: Lab, tmp_path: Path, mosquitto_available: str, username: str | None,
                         cause: str) -> None:
    config = lab.tls_config("good").replace("allow_anonymous true",
                                            f"allow_anonymous false\npassword_file {lab.dir}/passwd")
    result, log = run(tmp_path, config, ca=lab.path("ca.pem"), mqtt=True, username=username, password="wrong")
    assert result.causes == (cause,)
    assert result.mqtt is not None and result.mqtt.return_code == 5
    assert "Client <unknown> disconnected, not authorised." in log


def test_nothing_listening(mosquitto_available: str) -> None:
    result = probe("127.0.0.1", free_port(), timeout=2)
    assert result.causes == ("net.connection_refused",) and result.tcp == "failed"


def test_silent_port_times_out(mosquitto_available: str) -> None:
    """A listener that accepts TCP and never speaks (a hung broker, a half-open proxy)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        result = probe("127.0.0.1", server.getsockname()[1], timeout=0.5)
    assert result.causes == ("net.timeout",) and result.tcp == "ok" and result.tls_handshake == "failed"


def test_tls_to_a_plain_listener(lab: Lab, tmp_path: Path, mosquitto_available: str) -> None:
    result, log = run(tmp_path, "listener {port0} 127.0.0.1\nallow_anonymous true\n", ca=lab.path("ca.pem"))
    assert result.causes == ("tls.protocol_mismatch",) and result.tls_handshake == "failed"
    assert "disconnected due to protocol error" in log


def test_plain_mqtt_to_a_tls_listener(lab: Lab, tmp_path: Path, mosquitto_available: str) -> None:
    result, log = run(tmp_path, lab.tls_config("good"), tls=False, mqtt=True)
    assert result.causes == ("tls.protocol_mismatch",)
    assert "wrong version number" in log


def test_plain_listener_accepts_plain_mqtt(tmp_path: Path, mosquitto_available: str) -> None:
    result, _ = run(tmp_path, "listener {port0} 127.0.0.1\nallow_anonymous true\n", tls=False, mqtt=True,
                    username="anyone")
    assert result.ok and result.mqtt is not None and result.mqtt.status == "ok"


# --- pure parts -------------------------------------------------------------------------------


def test_connect_packet_bytes() -> None:
    packet = connect_packet("c1", username="u", password="p", keepalive=60)
    assert packet == bytes.fromhex("101400044d51545404c2003c000263310001750001" + "70")
    assert connect_packet("x" * 200)[1:3] == bytes([0xD4, 0x01])  # 212 as a two-byte remaining length
    assert parse_connack(bytes([0x20, 2, 1, 5])) == (True, 5)
    with pytest.raises(ValueError, match="not a CONNACK"):
        parse_connack(b"\x15\x03\x01\x00")


@pytest.mark.parametrize(("text", "expected"), [
    ("broker:8883", ("broker", 8883)), ("10.0.0.5", ("10.0.0.5", 8883)), ("[::1]:1883", ("::1", 1883)),
])
def test_parse_target(text: str, expected: tuple[str, int]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["broker:x", ":8883", "broker:70000"])
def test_parse_target_errors(text: str) -> None:
    with pytest.raises(ProbeError):
        parse_target(text)


@pytest.mark.parametrize(("cn", "sans"), [
    ("127.0.0.1", []),                    # the vendor recipe: IP in the CN, no SAN
    ("127.0.0.1", ["other.example"]),     # a DNS SAN disables the CN fallback
    ("127.0.0.1", ["10.9.9.9"]),          # an IP-only SAN does not
    ("broker", ["127.0.0.1"]),
])
def test_libmosquitto_verdict_matches_mosquitto_pub(tmp_path: Path, mosquitto_available: str, cn: str,
                                                     sans: list[str]) -> None:
    ca = pki.make_ca(not_before=NOW - timedelta(days=5), key_kind="ec")
    ca.write(tmp_path / "ca.pem")
    leaf = pki.make_leaf(cn, ca, sans=sans, not_before=NOW - timedelta(days=1), key_kind="ec")
    leaf.write(tmp_path / "s.pem", tmp_path / "s.key")
    config = (f"listener {{port0}} 127.0.0.1\ncafile {tmp_path}/ca.pem\ncertfile {tmp_path}/s.pem\n"
              f"keyfile {tmp_path}/s.key\nallow_anonymous true\n")
    with Mosquitto(tmp_path / "broker", config) as broker:
        pub = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "--cafile",
                              str(tmp_path / "ca.pem"), "-t", "t", "-m", "x"], capture_output=True, timeout=10)
        result = probe("127.0.0.1", broker.port, ca=tmp_path / "ca.pem", timeout=3)
    (hostname,) = [c for c in result.checks if c.check == "hostname"]
    assert hostname.details["libmosquitto"] is (pub.returncode == 0), pub.stderr
