"""Clients named by identity: a finding names the MQTT client id the client's own lines give (its
CONNECT, the library's or the application's start line), not its log file; one client named
twice (`hmi-32` by the broker, `hmi-32-pub` by its file) is one; a file's name is used only when
the lines name no id, and the finding says so; a server is never a client."""

from __future__ import annotations

from pathlib import Path

from correlator.analysis import analyze

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


def test_one_client_named_once_by_its_id() -> None:
    analysis = analyze([SAMPLES / "mixed"])
    finding = next(f for f in analysis.findings if f.id == "auth.bad_credentials")
    assert finding.clients == {"hmi-32"}  # mosquitto_pub -i hmi-32, logged as clients/hmi-32-pub.log
    assert "named by its log file" not in finding.confidence_reason


def test_a_client_whose_lines_name_no_id_is_named_by_its_file_and_says_so() -> None:
    """mosquitto_pub's TLS failure comes before any CONNECT: no id in its lines."""
    analysis = analyze([SAMPLES / "server_cert_expired"])
    finding = next(f for f in analysis.findings if f.id == "tls.server_cert_expired")
    assert finding.clients == {"edge-01-pub", "edge-02"}  # edge-02 by its paho application's start line
    assert finding.confidence_reason.endswith("; edge-01-pub is named by its log file (no client id in its lines)")


def test_a_client_that_began_with_an_empty_id_is_not_named_by_the_random_one() -> None:
    """paho retries a refused empty client id with a random one: the client is the one without."""
    analysis = analyze([SAMPLES / "client_id_rejected"])
    finding = next(f for f in analysis.findings if f.id == "auth.client_id_rejected")
    assert "edge-60" in finding.clients
    assert not any(len(name) == 22 and name.isalnum() for name in finding.clients - {"edge-60"})


def test_a_server_is_never_a_client() -> None:
    for incident in ("opcua_user_access_denied", "opcua_cert_untrusted"):
        analysis = analyze([SAMPLES / incident])
        servers = {s.info.source.split(":", 1)[-1] for s in analysis.sources
                   if s.info.source.startswith("opcua-server")}
        assert servers
        for finding in analysis.findings:
            assert not finding.clients & servers, (incident, finding.id, finding.clients)


def test_a_compose_service_is_named_by_its_client_id(tmp_path: Path) -> None:
    broker = (SAMPLES / "bad_credentials" / "broker" / "mosquitto.log").read_text().splitlines()
    client = (SAMPLES / "bad_credentials" / "clients" / "edge-10.log").read_text().splitlines()
    paste = tmp_path / "compose.txt"
    paste.write_text("\n".join([*(f"mosquitto-1  | {line}" for line in broker),
                                *(f"edge-10-1    | {line}" for line in client)]) + "\n")
    analysis = analyze([paste])
    finding = next(f for f in analysis.findings if f.id == "auth.bad_credentials")
    assert "edge-10" in finding.clients and "edge-10-1" not in finding.clients
