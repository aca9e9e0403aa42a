"""Reasoning over what a bundle really says (issue 14): one connection classified from all of its
lines, the same-name CA told by its key, certificates judged at reliable times, a wrong clock told
from a time zone, and counts that match the broker's. Each proved on a real incident in sample_logs/
(its golden test asserts the exact causes and client ids); these tests pin the reasoning itself."""

from __future__ import annotations

from pathlib import Path

from correlator.analysis import analyze
from correlator.model import Event
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


def test_an_anonymous_client_is_not_a_wrong_password() -> None:
    analysis = analyze([SAMPLES / "login_per_connection"])
    by_id = {f.id: f for f in analysis.findings}
    assert by_id["auth.anonymous_denied"].clients == {"edge-70"}
    assert by_id["auth.bad_credentials"].clients == {"edge-71"}
    # viewer-73's PUBACK 135 (Not authorized) after CONNACK 0 is the ACL, not a refused login
    assert by_id["acl.publish_denied"].clients == {"viewer-73"}
    assert "The client's CONNECT carried no user name" in by_id["auth.anonymous_denied"].explanation


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
