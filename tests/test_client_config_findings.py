"""Failures with no reason in either log, worked out from the client's configuration: the real
Node-RED sample (sample_logs/node_red_untrusted_ca), whose flows.json names the wrong CA file,
changed the way a support engineer would check the diagnosis."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from correlator.analysis import analyze
from lab import copy_sample

CAUSE = "tls.server_cert_untrusted"


def copy(tmp_path: Path) -> Path:
    return copy_sample("node_red_untrusted_ca", tmp_path)


def set_ca(folder: Path, ca: str) -> None:
    flows_file = folder / "nodered" / "flows.json"
    flows = json.loads(flows_file.read_text())
    for node in flows:
        if node["type"] == "tls-config":
            node["ca"] = ca
    flows_file.write_text(json.dumps(flows, indent=4))


def test_the_configured_ca_file_names_the_cause(tmp_path: Path) -> None:
    analysis = analyze([copy(tmp_path)])
    [finding] = [f for f in analysis.findings if f.id == CAUSE]
    assert finding.clients == {"nodered-gw"}
    assert {e.file for e in finding.evidence} == {"broker/mosquitto.log", "clients/nodered.log"}
    [fact] = finding.facts
    assert fact.file == "nodered/flows.json" and fact.line is not None
    assert "trusts certs/site-ca.pem (other site CA)" in fact.text
    assert analysis.artifacts["client_configs"] == 1


def test_a_field_path_is_found_in_the_bundle(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    set_ca(folder, "/data/node-red/certs/site-ca.pem")
    [finding] = [f for f in analyze([folder]).findings if f.id == CAUSE]
    assert "trusts certs/site-ca.pem" in finding.facts[0].text


def test_the_right_ca_file_clears_it(tmp_path: Path) -> None:
    folder = copy(tmp_path)
    set_ca(folder, "certs/ca.pem")
    assert CAUSE not in [f.id for f in analyze([folder]).findings]


def test_without_the_configuration_the_likeliest_cause_is_a_low_confidence_guess(tmp_path: Path) -> None:
    """Without flows.json nothing says which CA file Node-RED trusts: the two logs on one
    connection (the broker's 'unexpected eof', Node-RED's reasonless failure) still say the client
    broke off the handshake, so the commonest cause is named with low confidence, its look-alikes
    beside it and the configuration asked for; no artifact is quoted as if it decided."""
    folder = copy(tmp_path)
    shutil.rmtree(folder / "nodered")
    [finding] = [f for f in analyze([folder]).findings if f.id == CAUSE]
    assert finding.confidence == "low"
    assert finding.facts == []
    assert "tls.server_hostname_mismatch" in finding.alternatives
    assert "flows.json" in finding.confirm_with
