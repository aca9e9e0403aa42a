"""`correlator certs` and `correlator probe` as a user runs them: output, JSON and exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from correlator.cli import main
from lab import pki
from lab.broker import Mosquitto
from lab.ports import free_port

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cli-certs")
    ca = pki.make_ca(not_before=AT - timedelta(days=300), key_kind="ec")
    ca.write(base / "ca.pem")
    pki.make_ca("other CA", not_before=AT - timedelta(days=300), key_kind="ec").write(base / "other-ca.pem")
    good = pki.make_leaf("broker", ca, sans=["broker.plant.local", "10.0.0.5"], key_kind="ec",
                         not_before=AT - timedelta(days=10), not_after=AT + timedelta(days=200))
    good.write(base / "good.pem", base / "good.key")
    pki.write_key(base / "good-encrypted.key", good.key, password=b"pw")
    pki.make_leaf("broker", ca, sans=["broker.plant.local"], key_kind="ec", not_before=AT - timedelta(days=100),
                  not_after=AT - timedelta(days=3)).write(base / "expired.pem")
    pki.make_leaf("edge-07", ca, usage=("client",), key_kind="ec", not_before=AT - timedelta(days=1),
                  not_after=AT + timedelta(days=10)).write(base / "client.pem", base / "client.key")
    return base


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_healthy_certificate_exits_0(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["certs", str(files / "good.pem"), "--host", "broker.plant.local", "--ca",
                        str(files / "ca.pem"), "--key", str(files / "good.key"), "--at", "2026-11-23T12:00:00Z"],
                       capsys)
    assert code == 0, out
    assert "200 days left" in out and "DNS:broker.plant.local, IP:10.0.0.5" in out
    assert "(OPC UA thumbprint)" in out and "no problems found" in out
    assert "BEGIN" not in out and "PRIVATE" not in out


def test_expired_and_wrong_host_exit_1_with_causes(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["certs", str(files / "expired.pem"), "--host", "10.9.9.9", "--at", "2026-11-23 12:00"],
                       capsys)
    assert code == 1
    assert "EXPIRED 3.0 days ago" in out
    assert "[tls.server_cert_expired]" in out and "[tls.server_hostname_mismatch]" in out
    assert out.rstrip().endswith("2 problems: tls.server_cert_expired, tls.server_hostname_mismatch")


def test_at_moves_the_clock(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["certs", str(files / "expired.pem"), "--at", "2026-11-01", "--window", "7"], capsys)
    assert code == 0 and "20 days left" in out
    code, out, _ = run(["certs", str(files / "expired.pem"), "--at", "2026-11-01"], capsys)
    assert code == 1 and "[cert.expiring_soon]" in out


def test_client_role_json(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["certs", str(files / "client.pem"), "--role", "client", "--ca", str(files / "other-ca.pem"),
                        "--key", str(files / "good.key"), "--at", "2026-11-23T12:00:00Z", "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 1
    assert data["causes"] == ["cert.expiring_soon", "tls.client_cert_untrusted", "tls.client_key_problem"]
    (report,) = data["certificates"]
    assert report["certificate"]["extended_key_usage"] == ["clientAuth"]
    by_check = {c["check"]: c for c in report["checks"]}
    assert by_check["expiring_soon"]["details"]["days_left"] == 10
    assert by_check["key_match"]["status"] == "problem"
    assert data["keys"][0]["state"] == "loaded" and "BEGIN" not in out


def test_encrypted_key_without_password(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["certs", str(files / "good.pem"), "--key", str(files / "good-encrypted.key"), "--role",
                        "client", "--at", "2026-11-23", "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 1 and "tls.client_key_problem" in data["causes"]
    code, out, _ = run(["certs", str(files / "good.pem"), "--key", str(files / "good-encrypted.key"),
                        "--password", "pw", "--at", "2026-11-23"], capsys)
    assert "pw" not in out.replace("pwd", "")  # the password is never echoed
    assert "good-encrypted.key" in out and "opened; never printed" in out


def test_load_errors_are_one_line_and_the_rest_still_loads(files: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_bytes((files / "good.pem").read_bytes()[:120])
    code, out, _ = run(["certs", str(files / "good.pem"), str(broken), "--at", "2026-11-23"], capsys)
    assert code == 1
    assert f"✘ cannot load {broken}:1: truncated PEM: BEGIN CERTIFICATE has no END" in out
    assert "broker.plant.local" in out


@pytest.mark.parametrize("argv", [
    ["certs"],
    ["certs", "x.pem", "--role", "peer"],
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    capsys.readouterr()


def test_nothing_loadable_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    code, out, err = run(["certs", str(tmp_path / "notes.txt")], capsys)
    assert code == 2 and out == ""
    assert err == f"correlator: error: {tmp_path / 'notes.txt'}: not a certificate or key: text without a PEM block\n"
    code, _, err = run(["certs", str(tmp_path / "notes.txt"), "--ca", str(tmp_path / "absent")], capsys)
    assert code == 2 and "absent: no such file or folder" in err


# --- probe ----------------------------------------------------------------------------------


@pytest.mark.broker
def test_probe_cli_against_a_real_broker(files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         mosquitto_available: str) -> None:
    now = datetime.now(UTC)
    ca = pki.make_ca(not_before=now - timedelta(days=5), key_kind="ec")
    ca.write(tmp_path / "ca.pem")
    pki.make_leaf("localhost", ca, sans=["localhost"], not_before=now - timedelta(days=1),
                  key_kind="ec").write(tmp_path / "s.pem", tmp_path / "s.key")
    config = (f"listener {{port0}} 127.0.0.1\ncafile {tmp_path}/ca.pem\ncertfile {tmp_path}/s.pem\n"
              f"keyfile {tmp_path}/s.key\nallow_anonymous true\n")
    with Mosquitto(tmp_path / "broker", config) as broker:
        target = f"127.0.0.1:{broker.port}"
        code, out, _ = run(["probe", target, "--ca", str(tmp_path / "ca.pem"), "--servername", "localhost",
                            "--mqtt"], capsys)
        assert code == 0, out
        assert "✔ TLS handshake TLSv1.3" in out and "CONNACK 0 connection accepted" in out
        code, out, _ = run(["probe", target, "--ca", str(tmp_path / "ca.pem"), "--format", "json"], capsys)
        data = json.loads(out)
        assert code == 1 and data["cause"] == "tls.server_hostname_mismatch"  # 127.0.0.1 is not in the SAN
    code, out, _ = run(["probe", f"127.0.0.1:{free_port()}", "--plain"], capsys)
    assert code == 1 and "net.connection_refused" in out
