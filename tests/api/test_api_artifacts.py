"""Certificate inspection of uploaded files and the live probe, over HTTP, with the checks and
root-cause ids of `correlator certs` and `correlator probe`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from api_helpers import SAMPLES, ServerFactory

from lab.ports import free_port


def test_inspect_names_the_expired_server_certificate(start_server: ServerFactory) -> None:
    certs = SAMPLES / "server_cert_expired" / "certs"
    server = start_server()
    with server.client() as client:
        answer = client.post("/certificates/inspect", files=[("files", ("server.pem", (certs / "server.pem")
                                                                        .read_bytes())),
                                                             ("ca", ("ca.pem", (certs / "ca.pem").read_bytes()))],
                             data={"at": "2026-11-23T14:40:00Z", "host": "localhost"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert not body["ok"] and "tls.server_cert_expired" in body["causes"]
    leaf = body["certificates"][0]
    assert leaf["leaf"] and leaf["certificate"]["path"] == "server.pem"
    assert {c["check"] for c in leaf["checks"]} >= {"expired", "hostname", "chain"}


def test_inspect_answers_what_certs_json_prints(start_server: ServerFactory, tmp_path: Path) -> None:
    """One Inspection object behind both: the same checks, causes and counts, field for field."""
    certs = SAMPLES / "server_cert_expired" / "certs"
    for name in ("server.pem", "ca.pem"):
        (tmp_path / name).write_bytes((certs / name).read_bytes())
    cli = subprocess.run([sys.executable, "-m", "correlator", "certs", "server.pem", "--ca", "ca.pem", "--host",
                          "localhost", "--at", "2026-11-23T14:40:00Z", "--window", "400", "--format", "json"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    with start_server().client() as client:
        answer = client.post("/certificates/inspect", files=[("files", ("server.pem", (certs / "server.pem")
                                                                        .read_bytes())),
                                                             ("ca", ("ca.pem", (certs / "ca.pem").read_bytes()))],
                             data={"at": "2026-11-23T14:40:00Z", "host": "localhost", "window": "400"})
    assert cli.returncode == 1, cli.stderr
    assert answer.json() == json.loads(cli.stdout)


def test_inspect_rejects_a_time_that_is_not_iso(start_server: ServerFactory) -> None:
    with start_server().client() as client:
        answer = client.post("/certificates/inspect", files={"files": ("a.pem", b"x")}, data={"at": "yesterday"})
    assert answer.status_code == 422 and "ISO 8601" in answer.json()["message"]


def test_inspect_reads_times_in_the_one_grammar(start_server: ServerFactory) -> None:
    with start_server().client() as client:
        answers = [client.post("/certificates/inspect", files={"files": ("a.pem", b"x")}, data={"at": at}).json()
                   for at in ("2026-11-23t14:40:00z", "1795444800", "@1795444800", "2026-11-23 15:40+01:00")]
    assert {a["at"] for a in answers} == {"2026-11-23T14:40:00Z"}


def test_probe_of_a_closed_port_names_connection_refused(start_server: ServerFactory) -> None:
    port = free_port()  # nothing listens there
    with start_server(probe=True).client() as client:  # without a token the probe is off unless asked for
        answer = client.post("/probe", json={"host": "127.0.0.1", "port": port, "tls": False, "timeout": 2})
        bad = client.post("/probe", json={"host": "127.0.0.1", "port": 70000})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tcp"] == "failed" and body["cause"] == "net.connection_refused" and not body["ok"]
    assert bad.status_code == 422
