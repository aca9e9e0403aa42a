"""opcua.server_cert_changed on the real sample (sample_logs/opcua_server_cert_changed: an asyncua
server that renewed its certificate, an asyncua client pinning last year's copy), moved around the
way support bundles move files: the server's log is known by its lines, not its name, and the PKI
folders decide. sample_logs/opcua_server_cert_changed_open62541 is the same with an open62541 server
(through o6), which answers BadSecurityPolicyRejected: the status names a policy mismatch, the PKI
folders the renewed certificate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from correlator.analysis import analyze
from lab import copy_sample

CAUSE = "opcua.server_cert_changed"


def copy(tmp_path: Path) -> Path:
    return copy_sample("opcua_server_cert_changed", tmp_path)


@pytest.mark.parametrize(("sample", "server_says"), [
    ("opcua_server_cert_changed", "Exception raised while processing message"),  # asyncua
    ("opcua_server_cert_changed_open62541", "Processing the message failed with error BadSecurityPolicyRejected"),
])
def test_the_server_log_is_the_server_side_whatever_its_name(tmp_path: Path, sample: str, server_says: str) -> None:
    folder = copy_sample(sample, tmp_path)
    (folder / "server" / "opcua-server.log").rename(folder / "clients" / "plc-07.log")
    analysis = analyze([folder])
    [finding] = [f for f in analysis.findings if f.id == CAUSE]
    assert finding.clients == {"opcua-client"}
    server_lines = [e for e in finding.evidence if e.file == "clients/plc-07.log"]
    assert server_lines and all(e.side == "server" for e in server_lines)
    assert all(server_says in e.text for e in server_lines)
    assert {f.file for f in finding.facts} == {"pki/server/own/certs/opcua-server.der",
                                              "pki/client/trusted/certs/opcua-server.der"}
    assert [f.id for f in analysis.findings] == [CAUSE]


def test_a_client_trusting_the_current_certificate_refutes_it(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    shutil.copy(folder / "pki/server/own/certs/opcua-server.der", folder / "pki/client/trusted/certs/opcua-server.der")
    ids = [f.id for f in analyze([folder]).findings]
    assert CAUSE not in ids


def test_without_pki_folders_the_server_log_still_names_it(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    shutil.rmtree(folder / "pki")
    [finding] = [f for f in analyze([folder]).findings if f.id == CAUSE]
    assert finding.confidence != "high"
    assert any(e.side == "server" and e.file == "server/opcua-server.log" for e in finding.evidence)
    assert "artifact" not in finding.sides
    # the sentence of the thumbprints gives way to one that says which folders would show them
    # (no placeholder standing in for each missing value: "thumbprint the thumbprint of ...")
    text = " ".join(finding.explanation.split())
    assert ("the server's own/ PKI folder and the client's trusted/ folder, not in the input, would show the "
            "two thumbprints") in text
    assert "thumbprint the thumbprint" not in text and "(thumbprint" not in text


def test_open62541s_policy_rejection_without_pki_names_both_causes(tmp_path: Path) -> None:
    """Without the PKI folders, open62541's BadSecurityPolicyRejected fits a real policy mismatch
    and a renewed server certificate alike: the policy is named with low confidence, the renewed
    certificate beside it, and what would decide (the PKI folders) said. With a client that trusts
    the server's current certificate, the policy stands alone."""
    folder = copy_sample("opcua_server_cert_changed_open62541", tmp_path)
    shutil.rmtree(folder / "pki")
    [finding] = analyze([folder]).findings
    assert finding.id == "opcua.security_policy_rejected"
    assert finding.confidence == "low"
    assert finding.alternatives == [CAUSE]
    assert "PKI folders" in finding.confirm_with
    assert any(e.side == "server" and "BadSecurityPolicyRejected" in e.text for e in finding.evidence)

    decided = copy_sample("opcua_server_cert_changed_open62541", tmp_path / "decided")
    shutil.copy(decided / "pki/server/own/certs/opcua-server.der",
                decided / "pki/client/trusted/certs/opcua-server.der")
    [finding] = analyze([decided]).findings
    assert finding.id == "opcua.security_policy_rejected"
    assert finding.alternatives == []
    assert "look-alikes" not in finding.confidence_reason


def test_logs_alone_stitch_the_client_to_the_servers_connection(tmp_path: Path) -> None:
    """Without PKI folders: the server's accept and lost connection name the client's port, so the
    client's attempt (asyncua's connect, then its timeout) is stitched to the server's connection
    whose OpenSecureChannel failed to decrypt. One finding: the renewed certificate, naming the
    client (its explanation too), the client's timeout on that connection joined as its view (both
    sides agree: medium), and the timeout named as what it looks like."""
    folder = copy(tmp_path)
    shutil.rmtree(folder / "pki")
    analysis = analyze([folder])
    [finding] = analysis.findings
    assert (finding.id, finding.clients, finding.confidence) == (CAUSE, {"opcua-client"}, "medium")
    assert finding.alternatives == ["net.timeout"]
    assert "clients: opcua-client" in " ".join(finding.explanation.split())
    assert "No log names the clients" not in finding.explanation
    sides = {(e.side, e.file) for e in finding.evidence}
    assert sides == {("server", "server/opcua-server.log"), ("client", "clients/opcua-client.log")}
    assert any("TimeoutError" in e.text for e in finding.evidence if e.side == "client")
    assert analysis.connections == 2  # the client's two attempts, each with its server side
