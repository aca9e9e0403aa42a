"""`correlator analyze` as a user runs it: the four report formats, exit codes by severity,
options, and one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "correlator", *args], capture_output=True, text=True, timeout=120)


def test_text_report_leads_with_the_cause_its_evidence_and_fix() -> None:
    result = run("analyze", str(SAMPLES / "server_cert_expired"))
    assert result.returncode == 5  # critical
    out = result.stdout
    first = out.index("tls.server_cert_expired")
    assert first < out.index("Evidence") < out.index("Fix") < out.index("Sources")
    assert re.search(r"broker/mosquitto\.log:\d+", out)
    assert "openssl x509 -in certs/server.pem" in out


def test_json_report_follows_the_documented_schema() -> None:
    result = run("analyze", str(SAMPLES / "mixed"), "--format", "json")
    data = json.loads(result.stdout)
    assert data["schema"] == "correlator.analysis/2"
    finding = data["findings"][0]
    for key in ("id", "severity", "title", "explanation", "clients", "first_seen", "last_seen", "count",
                "confidence", "evidence", "remediation"):
        assert key in finding
    assert {"file", "line"} <= set(finding["evidence"][0])
    assert {s["format"] for s in data["sources"]} >= {"mosquitto", "python_logging", "mosquitto_clients"}
    assert result.returncode == 4  # the worst finding is high


def test_markdown_and_html_reports(tmp_path: Path) -> None:
    md = run("analyze", str(SAMPLES / "publish_denied"), "--format", "md").stdout
    assert md.startswith("# correlator report") and "| high | `acl.publish_denied` |" in md
    out = tmp_path / "report.html"
    result = run("analyze", str(SAMPLES / "publish_denied"), "--format", "html", "-o", str(out))
    page = out.read_text()
    assert result.returncode == 4 and "report written to" in result.stderr
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "acl.publish_denied" in page
    assert not re.search(r"""(src|href)=["']https?://""", page)  # self-contained


@pytest.mark.parametrize(("name", "starts"), [("report.HTML", "<!DOCTYPE html>"), ("report.md", "# correlator report"),
                                            ("report.json", "{"), ("report.txt", "correlator ")])
def test_the_output_files_suffix_chooses_the_format_unless_format_says(tmp_path: Path, name: str,
                                                                        starts: str) -> None:
    """`-o report.html` is a page a browser draws, not the terminal's text in a file named .html."""
    out = tmp_path / name
    run("analyze", str(SAMPLES / "publish_denied"), "-o", str(out))
    assert out.read_text().startswith(starts) and "acl.publish_denied" in out.read_text()
    run("analyze", str(SAMPLES / "publish_denied"), "--format", "md", "-o", str(out))
    assert out.read_text().startswith("# correlator report")


def test_healthy_log_exits_zero_and_says_so() -> None:
    result = run("analyze", str(SAMPLES / "healthy_noisy"), "--min-severity", "high")
    assert result.returncode == 0
    assert "No root cause found" in result.stdout


def test_time_range_and_zone_options() -> None:
    result = run("analyze", str(SAMPLES / "server_cert_expired"), "--since", "2000-01-01T00:00:00Z",
                 "--until", "2000-01-02T00:00:00Z", "--format", "json")
    report = json.loads(result.stdout)
    assert report["summary"]["events"] == 0
    assert any(n.startswith("--since/--until left out 28 events and kept none") for n in report["notes"])
    result = run("analyze", str(SAMPLES / "client_cert_expired"), "--tz", "clients/*.log=Europe/Berlin",
                 "--format", "json")
    zones = {s["path"]: s["zone"] for s in json.loads(result.stdout)["sources"]}
    assert zones["clients/edge-04.log"] == "Europe/Berlin"


@pytest.mark.parametrize(("args", "message"), [
    (["analyze", "/no/such/place"], "no such file or folder"),
    (["analyze", str(SAMPLES / "mixed"), "--since", "yesterday"], "--since: 'yesterday' is not an ISO 8601 time"),
    (["analyze", str(SAMPLES / "mixed"), "--tz", "Mars/Olympus"], "Mars/Olympus"),
])
def test_errors_are_one_line_without_traceback(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_files_that_are_not_read_are_named_in_every_report(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "broker").mkdir(parents=True)
    log = SAMPLES / "server_cert_expired" / "broker" / "mosquitto.log"
    (bundle / "broker" / "mosquitto.log").write_bytes(log.read_bytes())
    (bundle / "core.dump").write_bytes(b"\x7fELF\x00\x01\x02\xff\xfe" * 50)
    text = run("analyze", str(bundle)).stdout
    assert "Not read" in text and "core.dump (binary)" in text
    md = run("analyze", str(bundle), "--format", "md").stdout
    assert "## Not read" in md and "- core.dump (binary)" in md
    out = tmp_path / "report.html"
    run("analyze", str(bundle), "--format", "html", "-o", str(out))
    assert "<li>core.dump (binary)</li>" in out.read_text()


def test_lines_without_a_time_are_marked_and_do_not_stretch_the_span() -> None:
    """hmi-32-pub's mosquitto_pub -d lines carry no time: they are dated by their file, which was
    written seconds after the broker's refusals. The evidence says so (≈, `estimated`), and the
    finding's span stays on the broker's real times."""
    data = json.loads(run("analyze", str(SAMPLES / "mixed"), "--format", "json").stdout)
    finding = next(f for f in data["findings"] if f["id"] == "auth.bad_credentials")
    untimed = [e for e in finding["evidence"] if e["file"] == "clients/hmi-32-pub.log"]
    timed = [e for e in finding["evidence"] if e["file"] == "broker/mosquitto.log"]
    assert untimed and all(e["estimated"] for e in untimed)
    assert timed and not any(e["estimated"] for e in timed)
    assert finding["last_seen"] < min(e["time"] for e in untimed)
    text = run("analyze", str(SAMPLES / "mixed")).stdout
    assert re.search(r"clients/hmi-32-pub\.log:\d+  ≈\d\d:\d\d:\d\d", text)
