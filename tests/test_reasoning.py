"""Reasoning over what a bundle really says (issue 14): one connection classified from all of its
lines, the same-name CA told by its key, certificates judged at reliable times, a wrong clock told
from a time zone, and counts that match the broker's. Each proved on a real incident in sample_logs/
(its golden test asserts the exact causes and client ids); these tests pin the reasoning itself."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from correlator.analysis import analyze
from correlator.live_analysis import LiveAnalysis
from correlator.model import Event
from correlator.report_model import Finding
from correlator.timeline.connections import stitch

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


def _event(source: str, ts: float, kind: str, line: int, **fields: object) -> Event:
    return Event(ts=ts, time_text=str(ts), source=source, file=f"{source}.log", line=line, kind=kind,
                 raw=kind, fields=dict(fields))  # type: ignore[arg-type]


def test_a_refusal_line_carries_what_its_connection_said() -> None:
    """The broker's 'not authorised' names no one and says nothing of the CONNECT; stitched to the
    client's attempt (by port), it carries the CONNECT's user name flag and the listener port."""
    events = [
        _event("broker", 100.0, "net.accept", 1, peer_addr="127.0.0.1", peer_port=40001, listener_port=1883),
        _event("broker", 100.0, "mqtt.disconnect", 2, client_id="<unknown>", reason="not_authorised"),
        _event("client:edge-70", 100.3, "mqtt.connect", 1, has_username=0, client_id="edge-70"),
        _event("client:edge-70", 100.3, "net.connected", 2, local_port=40001, local_addr="127.0.0.1"),
    ]
    out, connections = stitch(events)
    refusal = next(e for e in out if e.kind == "mqtt.disconnect")
    assert refusal.fields["has_username"] == 0
    assert refusal.fields["listener_port"] == 1883
    assert [c.has_username for c in connections] == [0]


def test_a_client_configured_without_a_user_name_says_so_for_every_attempt() -> None:
    """An application that logs its configuration before it connects (`user=None`) tells every
    attempt's CONNECT, though paho's DEBUG lines are not in its log."""
    events = [
        _event("client:edge-81", 99.0, "client.start", 1, client_id="edge-81", has_username=0),
        _event("broker", 100.0, "net.accept", 1, peer_addr="127.0.0.1", peer_port=40002, listener_port=1883),
        _event("broker", 100.0, "mqtt.disconnect", 2, client_id="<unknown>", reason="not_authorised"),
        _event("client:edge-81", 100.2, "net.connecting", 2),
        _event("client:edge-81", 100.2, "net.connected", 3, local_port=40002, local_addr="127.0.0.1"),
    ]
    out, _ = stitch(events)
    assert next(e for e in out if e.kind == "mqtt.disconnect").fields["has_username"] == 0


def test_an_anonymous_client_is_not_a_wrong_password() -> None:
    analysis = analyze([SAMPLES / "login_per_connection"])
    by_id = {f.id: f for f in analysis.findings}
    assert by_id["auth.anonymous_denied"].clients == {"edge-70"}
    assert by_id["auth.bad_credentials"].clients == {"edge-71"}
    # viewer-73's PUBACK 135 (Not authorized) after CONNACK 0 is the ACL, not a refused login
    assert by_id["acl.publish_denied"].clients == {"viewer-73"}
    assert "The client's CONNECT carried no user name" in by_id["auth.anonymous_denied"].explanation
    assert by_id["auth.anonymous_denied"].users == set()  # the application's `user=None` is no user "None"


def test_a_refusal_nothing_decides_names_both_and_what_would_decide() -> None:
    analysis = analyze([SAMPLES / "login_undecided"])
    undecided = next(f for f in analysis.findings if "edge-80" in f.clients)
    assert (undecided.id, undecided.alternatives) == ("auth.bad_credentials", ["auth.anonymous_denied"])
    assert undecided.clients == {"edge-80"}
    assert undecided.confidence != "high"
    assert "decides" in undecided.explanation and "Sending CONNECT (u0" in undecided.explanation
    # the second listener lets anonymous clients in: its refusal is a wrong login, decided by the config
    decided = next(f for f in analysis.findings if "edge-81" in f.clients)
    assert (decided.id, decided.alternatives, decided.clients) == ("auth.bad_credentials", [], {"edge-81"})
    assert any("allow_anonymous true" in fact.text for fact in decided.facts)


def test_the_user_a_client_was_configured_with_names_its_refused_login() -> None:
    """login_from_config: the application logs only that it was refused and the broker logs
    'Client <unknown> disconnected, not authorised': the user is in the client's own INI file.
    Every refusal of its connections is one wrong-password finding naming that user, with the
    configuration and the password file as evidence and the user in the fix."""
    analysis = analyze([SAMPLES / "login_from_config"])
    assert [f.id for f in analysis.findings] == ["auth.bad_credentials"]
    found = analysis.findings[0]
    assert found.clients == {"line-3"} and found.users == {"HMI"}
    assert found.count == 2
    facts = {(f.file, f.text) for f in found.facts}
    assert ("clients/line-3.ini", "mqtt: user name 'HMI'") in facts
    assert ("broker/passwd", "user 'HMI' exists") in facts
    assert "configuration (clients/line-3.ini:2) gives it user HMI" in found.explanation
    assert all(step.command == "mosquitto_passwd broker/passwd HMI" for step in found.remediation[:2])


def test_a_configuration_speaks_only_for_its_own_client(tmp_path: Path) -> None:
    """Another client's configuration never names the user of a refusal: in login_undecided the
    refusals stay as they were when an INI file of some other client names a user."""
    folder = tmp_path / "bundle"
    shutil.copytree(SAMPLES / "login_undecided", folder)
    (folder / "clients" / "other.ini").write_text("[mqtt]\nhost = 127.0.0.1\nclient_id = other\nusername = Nobody\n")
    before = {(f.id, f.group, f.count) for f in analyze([SAMPLES / "login_undecided"]).findings}
    after = analyze([folder])
    assert {(f.id, f.group, f.count) for f in after.findings} == before
    assert not any("Nobody" in f.users for f in after.findings)


def test_a_ca_made_again_under_the_same_name_is_named_with_both_keys() -> None:
    """A CA found by its name whose key did not sign: the finding names both CA files and both
    keys' fingerprints, both ways (the clients' trust, the broker's cafile)."""
    from correlator.artifacts.certs import load_paths

    analysis = analyze([SAMPLES / "same_name_ca"])
    by_id = {f.id: f for f in analysis.findings}
    assert by_id["tls.server_cert_untrusted"].clients == {"edge-90"}
    assert by_id["tls.client_cert_untrusted"].clients == {"edge-92"}
    prints = {Path(c.path).name: c.public_key_sha256
              for c in load_paths([SAMPLES / "same_name_ca" / "certs" / n for n in ("ca.pem", "ca-2025.pem")]).certs}
    for cause in ("tls.server_cert_untrusted", "tls.client_cert_untrusted"):
        said = " ".join(fact.text for fact in by_id[cause].facts)
        for name, fingerprint in prints.items():
            assert f"certs/{name}" in said and fingerprint in said, (cause, said)
    # the broker hears the client's alert 'decrypt error', the client hears the broker's
    reasons = {e.text.split("routines::")[-1].rstrip(".") for e in by_id["tls.client_cert_untrusted"].evidence
               if e.side == "broker"}
    assert {"invalid padding", "padding check failed"} <= reasons


def test_one_failed_accept_is_one_failure_however_many_lines_openssl_gave() -> None:
    """mosquitto writes `Client connection from ip failed: ...` once per entry of OpenSSL's error
    queue (rsa routines, then SSL routines): edge-92's two failed handshakes are two."""
    analysis = analyze([SAMPLES / "same_name_ca"])
    finding = next(f for f in analysis.findings if f.id == "tls.client_cert_untrusted")
    assert finding.count == 2


def _counts(findings: list[Finding]) -> list[tuple[str, str, int, tuple[str, ...]]]:
    return sorted((f.id, f.group, f.count, tuple(sorted(f.clients))) for f in findings)


def test_counts_never_exceed_what_the_broker_logged() -> None:
    folder = SAMPLES / "login_per_connection"
    refused = (folder / "broker" / "mosquitto.log").read_text().count("disconnected, not authorised.")
    found = analyze([folder]).findings
    assert sum(f.count for f in found if f.id.startswith("auth.")) == refused == 4


def test_a_log_read_twice_is_counted_once(tmp_path: Path) -> None:
    """The same folder given twice, or a copy of the broker's log beside it, is read once."""
    folder = tmp_path / "incident"
    shutil.copytree(SAMPLES / "login_per_connection", folder)
    once = _counts(analyze([folder]).findings)
    assert _counts(analyze([folder, folder]).findings) == once
    shutil.copy(folder / "broker" / "mosquitto.log", folder / "broker" / "mosquitto-copy.log")
    again = analyze([folder])
    assert _counts(again.findings) == once
    assert any("the same log as broker/mosquitto" in s and "read once" in s for s in again.skipped)


@pytest.mark.parametrize("incident", ["login_per_connection", "login_undecided", "same_name_ca"])
def test_watch_over_files_that_hold_failures_counts_as_analyze(tmp_path: Path, incident: str) -> None:
    """`watch` reads what the files already hold before it follows them: the findings, their
    counts and their clients are those of `analyze` on the same files."""
    folder = tmp_path / incident
    shutil.copytree(SAMPLES / incident, folder)
    batch = _counts(analyze([folder]).findings)
    with LiveAnalysis([folder]) as live:
        deadline = time.monotonic() + 30
        last: object = None
        steady = 0
        while time.monotonic() < deadline and steady < 15:
            now = _counts(live.findings())
            steady = steady + 1 if now == last else 0
            last = now
            time.sleep(0.1)
    assert last == batch


def test_a_whole_day_off_is_the_clock_when_the_certificate_says_so() -> None:
    """edge-95's clock is a day behind (faketime): an offset of whole quarter hours, which alone
    reads like a time zone, but it calls a certificate not yet valid that is valid at the broker's
    time. hmi-97 (UTC+5:30, no zone in its log) is read as a zone: nothing contradicts it."""
    analysis = analyze([SAMPLES / "clock_a_day_behind"])
    skews = [f for f in analysis.findings if f.id == "client.clock_skew"]
    assert [f.clients for f in skews] == [{"edge-95"}]
    assert "24.0 hours behind" in skews[0].explanation and "valid from" in skews[0].explanation
    assert not [f for f in analysis.findings if f.id == "tls.server_cert_not_yet_valid"]
    offsets = {Path(s.info.path).name: round(s.offset) for s in analysis.sources}
    assert abs(offsets["edge-95.log"] + 86400) <= 2
    assert abs(offsets["hmi-97.log"] - 19800) <= 2


def test_certificates_are_judged_at_the_broker_time_not_the_file_time() -> None:
    """edge-98-pub's lines are dated by their file's time, which lies past the broker
    certificate's end; paired with the broker's connection, the failure is judged at the broker's
    time, when the certificate was valid: untrusted, not expired."""
    analysis = analyze([SAMPLES / "cert_judged_at_estimate"])
    causes = {f.id: f.clients for f in analysis.findings if f.id not in ("config.insecure", "cert.expiring_soon")}
    assert causes == {"tls.server_cert_untrusted": {"edge-98"}}


def test_with_only_an_estimated_time_a_certificate_is_not_judged(tmp_path: Path) -> None:
    """Moved past the pairing window, the client's file time is all there is: the checks do not
    call the certificate expired at it, and say why."""
    import os

    from correlator.engine.facts import Artifacts
    from correlator.sources.bundle import open_bundle

    folder = tmp_path / "incident"
    shutil.copytree(SAMPLES / "cert_judged_at_estimate", folder)
    log = folder / "clients" / "edge-98-pub.log"
    later = log.stat().st_mtime + 120
    os.utime(log, (later, later))
    assert not [f for f in analyze([folder]).findings if f.id == "tls.server_cert_expired"]
    with open_bundle([folder]) as bundle:
        arts = Artifacts.from_bundle(bundle)
    line = Event(ts=later, time_text="", source="client:edge-98-pub", file="clients/edge-98-pub.log", line=3,
                 kind="tls.error", raw="certificate verify failed", estimated=True,
                 fields={"tls_reason": "verify_failed"})
    result = arts.check("server_cert_expired", [line], {})
    assert not result.ran and "estimated time" in result.message
    assert arts.check("server_cert_expired", [line], {"connection_time": later - 100}).ran


def test_a_finding_judged_only_at_an_estimate_says_so_and_drops_its_confidence() -> None:
    from correlator.check_result import JUDGED_AT_ESTIMATE, CheckResult
    from correlator.engine.evaluate import Engine
    from correlator.engine.rules import load_rules

    class Stated:
        def __init__(self, values: dict[str, object]) -> None:
            self.values = values

        def check(self, name: str, events: list[Event], context: dict[str, object]) -> CheckResult:
            return CheckResult.not_run(name, "not judged", values=self.values)

        def can_hold(self, name: str) -> bool:
            return True

    rules, _ = load_rules([])
    rule = next(r for r in rules if r.id == "tls.server_cert_expired")

    def judged(values: dict[str, object]) -> tuple[str, str]:
        engine = Engine([rule], Stated(values))
        engine.feed(_event("broker", 100.0, "tls.error", 5, tls_reason="cert_expired", tls_alert=True))
        engine.feed(_event("client:edge-98-pub", 100.2, "tls.error", 3, tls_reason="cert_expired", tls_alert=False))
        (finding,) = engine.findings()
        return finding.confidence, finding.confidence_reason

    assert judged({}) == ("medium", "both sides of the connection agree")
    assert judged({JUDGED_AT_ESTIMATE: "judged at an estimated time"}) == (
        "low", "both sides of the connection agree; judged at an estimated time")
