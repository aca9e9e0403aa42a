"""Two clients refused in the same second get each their own evidence: the broker logs both as
`Client <unknown>` after accepting both, and each refusal belongs to the connection (the port)
mosquitto answered, which is the one accepted first. Proved on two_clients_same_second (real
mosquitto, two paho clients started together), whose client logs say to the millisecond when
each answer came."""

from __future__ import annotations

from pathlib import Path

from correlator.analysis import analyze

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs" / "two_clients_same_second"


def _refusal_owners() -> dict[int, str]:
    """The broker log's refusal lines to the client each was sent to: mosquitto answers CONNECTs
    one after the other, and each client logs when its answer came (to the millisecond), so the
    k-th refusal the broker logged is the k-th CONNACK the clients received."""
    received = sorted((line[:23], client) for client in ("edge-a", "edge-b")
                      for line in (SAMPLE / "clients" / f"{client}.log").read_text().splitlines()
                      if "Received CONNACK (0, 5)" in line)
    lines = [number for number, line in enumerate((SAMPLE / "broker" / "mosquitto.log").read_text().splitlines(), 1)
             if "not authorised" in line]
    assert len(lines) == len(received) == 6
    return {number: client for number, (_, client) in zip(lines, received, strict=True)}


def test_each_client_gets_its_own_refusals() -> None:
    refusals = _refusal_owners()
    assert sorted(refusals.values()) == ["edge-a"] * 3 + ["edge-b"] * 3
    analysis = analyze([SAMPLE])
    assert {(f.id, tuple(sorted(f.clients))) for f in analysis.findings} == {
        ("auth.bad_credentials", ("edge-a",)), ("auth.anonymous_denied", ("edge-b",))}
    for finding in analysis.findings:
        lines = {e.line for e in finding.evidence if e.file == "broker/mosquitto.log" and e.line in refusals}
        assert {refusals[line] for line in lines} == finding.clients
        assert len(lines) == finding.count == 3
