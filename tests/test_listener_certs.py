"""A broker with several server certificates: the one judged is the certfile of the listener the
failing clients dialled (port -> listener -> certfile through mosquitto.conf), and a valid
certificate is never named as the expired one.

listener_certs is a real run: one mosquitto, two TLS listeners, the first still serving
certs/server-2025.pem (expired 5 days before), the second the renewed certs/server.pem.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from correlator.analysis import analyze

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs" / "listener_certs"


def test_the_failing_listeners_certificate_is_the_expired_one() -> None:
    analysis = analyze([SAMPLE])
    (finding,) = [f for f in analysis.findings if f.id == "tls.server_cert_expired"]
    assert finding.clients == {"edge-70", "edge-72-pub"}  # not edge-71, on the renewed listener
    assert [f.file for f in finding.facts] == ["certs/server-2025.pem"]
    assert "is before the failure" in finding.facts[0].text
    assert finding.context["cert_file"] == "certs/server-2025.pem"
    fix = " ".join(step.text + " " + step.command for step in finding.remediation)
    assert "certs/server.pem" not in finding.explanation + fix


def test_a_valid_certificate_is_never_the_expired_cause(tmp_path: Path) -> None:
    """The same logs with a conf whose every listener serves the renewed, valid certificate:
    the clients still say 'certificate has expired' (a clock, a proxy, another broker), but no
    text calls server.pem expired or gives its dates as the cause."""
    bundle = tmp_path / "listener_certs"
    shutil.copytree(SAMPLE, bundle)
    conf = bundle / "broker" / "mosquitto.conf"
    conf.write_text(conf.read_text().replace("server-2025.pem", "server.pem").replace("server-2025.key", "server.key"))
    analysis = analyze([bundle])
    for finding in analysis.findings:
        if finding.id != "tls.server_cert_expired":
            continue
        assert not any("is before the failure" in f.text for f in finding.facts)
        valid_until = "2027-"
        assert valid_until not in finding.explanation
