"""Every incident in sample_logs/ is analysed and its findings compared with its expected.json:
the right root-cause ids, the right clients, and no extra cause. Bundles built from several
incidents find every cause of each.

Where the logs cannot tell two causes apart and the artifacts do not decide either, a finding
names the other as an alternative: an expected cause found as an alternative counts, because
naming both candidates is the honest answer. Proactive findings (config.insecure,
cert.expiring_soon) count as extra only when expected.json does not list them under "warnings".
"""

from __future__ import annotations

import json
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from correlator.analysis import analyze
from correlator.report_model import Analysis, Finding

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
INCIDENTS = sorted(p for p in SAMPLES.iterdir() if (p / "expected.json").is_file())
PROACTIVE = {"config.insecure", "cert.expiring_soon"}

def expected(incident: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((incident / "expected.json").read_text())
    return data


def names_of(spec: dict[str, Any], client: str) -> set[str]:
    """A client is named by its log's name or by its MQTT client id."""
    info = spec.get("clients", {}).get(client, {})
    return {client} | ({info["client_id"]} if info.get("client_id") else set())


def covering(findings: list[Finding], cause: str) -> list[Finding]:
    return [f for f in findings if f.id == cause or cause in f.alternatives]


def problems(analysis: Analysis, spec: dict[str, Any]) -> list[str]:
    found: list[str] = []
    causes: dict[str, list[str]] = {}
    for cause in spec["root_causes"]:  # one id on several hosts: each host's clients
        causes.setdefault(cause["id"], []).extend(cause["clients"])
    allowed = set(causes) | set(spec.get("warnings", []))
    for cause, clients in causes.items():
        matching = covering(analysis.findings, cause)
        if not matching:
            found.append(f"{cause} not found")
            continue
        named = set().union(*(f.clients for f in matching))
        for client in clients:
            if not names_of(spec, client) & named:
                found.append(f"{cause}: client {client} not named (named: {sorted(named)})")
        allowed_names = set().union(set(), *(names_of(spec, client) for client in clients))
        if named - allowed_names:
            found.append(f"{cause}: names clients it should not: {sorted(named - allowed_names)}")
    if "affected_clients" in spec:
        # newer samples: every cause's clients are named by their MQTT client ids, exactly
        named_ids = set().union(set(), *(f.clients for cause in causes for f in covering(analysis.findings, cause)))
        if named_ids != set(spec["affected_clients"]):
            found.append(f"clients named {sorted(named_ids)}, not the affected client ids {spec['affected_clients']}")
    for finding in analysis.findings:
        if finding.id in allowed or any(alt in causes for alt in finding.alternatives):
            continue
        if finding.id in PROACTIVE:
            continue
        found.append(f"extra finding {finding.id} ({sorted(finding.clients)})")
    if "hosts" in spec:
        found += host_problems(analysis, spec)
    for finding in analysis.findings:
        if not finding.evidence and not finding.facts:
            found.append(f"{finding.id} has no evidence")
        if not finding.remediation:
            found.append(f"{finding.id} has no remediation")
    return found


def host_problems(analysis: Analysis, spec: dict[str, Any]) -> list[str]:
    """A bundle of several hosts: the hosts are the expected ones, each with exactly its own ids
    (no finding on a host that does not expect it) and its affected client ids."""
    found: list[str] = []
    hosts: dict[str, Any] = spec["hosts"]
    if {h.name for h in analysis.hosts} != set(hosts):
        found.append(f"hosts {sorted(h.name for h in analysis.hosts)}, not {sorted(hosts)}")
    allowed = set(spec.get("warnings", []))
    for name, host in hosts.items():
        mine = [f for f in analysis.findings if f.host == name]
        wanted = {c["id"] for c in host["root_causes"]}
        ids = {f.id for f in mine if f.id not in allowed and not (f.id in PROACTIVE and f.id not in wanted)}
        if ids != wanted:
            found.append(f"host {name}: ids {sorted(ids)}, not {sorted(wanted)}")
        named = set().union(set(), *(f.clients for cause in wanted for f in covering(mine, cause)))
        if named != set(host["affected_clients"]):
            found.append(f"host {name}: clients {sorted(named)}, not {host['affected_clients']}")
    for finding in analysis.findings:
        if finding.host not in hosts:
            found.append(f"{finding.id} on host {finding.host!r}, which expected.json does not know")
    return found


@pytest.mark.parametrize("incident", INCIDENTS, ids=[p.name for p in INCIDENTS])
def test_incident_is_diagnosed_exactly(incident: Path) -> None:
    spec = expected(incident)
    analysis = analyze([incident])
    assert problems(analysis, spec) == []
    assert analysis.errors == []
    unparsed = {s.info.path: s.info.unparsed for s in analysis.sources if s.info.unparsed}
    assert unparsed == {}, "lines no format knows in a real sample"


def test_healthy_noisy_log_yields_no_failure() -> None:
    analysis = analyze([SAMPLES / "healthy_noisy"])
    assert [f.id for f in analysis.findings if f.id not in PROACTIVE] == []
    assert analysis.events > 5000


def _combine(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "bundle"
    for name in names:
        shutil.copytree(SAMPLES / name, folder / name, ignore=shutil.ignore_patterns("expected.json"))
    return folder


@pytest.mark.parametrize("packing", ["folder", "zip", "tar.gz"])
def test_bundle_of_incidents_finds_every_cause(tmp_path: Path, packing: str) -> None:
    names = ["server_cert_expired", "publish_denied", "client_cert_missing"]
    folder = _combine(tmp_path, names)
    target: Path = folder
    if packing == "zip":
        target = tmp_path / "bundle.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for file in folder.rglob("*"):
                zf.write(file, file.relative_to(folder))
    elif packing == "tar.gz":
        target = tmp_path / "bundle.tar.gz"
        with tarfile.open(target, "w:gz") as tf:
            tf.add(folder, arcname="customer-bundle")
    analysis = analyze([target])
    ids = {f.id for f in analysis.findings}
    for name in names:
        for cause in expected(SAMPLES / name)["root_causes"]:
            assert cause["id"] in ids, (name, cause["id"], ids)


def test_a_client_named_only_by_its_file_time_says_so() -> None:
    """mosquitto_pub's lines carry no time or port: the finding names it through the broker's
    connection it was paired with by the file's time, and its confidence reason says so."""
    analysis = analyze([SAMPLES / "plain_to_tls_port"])
    finding, = [f for f in analysis.findings if f.id == "tls.protocol_mismatch"]
    assert finding.clients == {"edge-05", "edge-06"}  # by client id: edge-05-pub ran mosquitto_pub -i edge-05
    assert finding.confidence_reason.endswith(
        "; edge-05 is named by its log file's time only (its lines carry no time or port)")
    assert analysis.connections == 3  # edge-05-pub's attempt is the broker's first connection


def test_one_finding_per_client_and_topic_not_per_side() -> None:
    """viewer-01-pub's 'Publish 1 failed: Not authorized' names no topic (and its mosquitto_pub
    lines no time): it is the same failure as the broker's denial of viewer-01's publish, so it
    joins that finding instead of standing beside it as a second and third acl.publish_denied."""
    analysis = analyze([SAMPLES / "publish_denied"])
    denied = [f for f in analysis.findings if f.id == "acl.publish_denied"]
    assert sorted(f.group for f in denied) == [
        "client_id=scada-01, topic=spBv1.0/STATE/scada-01",
        "client_id=viewer-01, topic=spBv1.0/Plant1/NCMD/edge-01"]
    viewer = next(f for f in denied if "viewer-01" in f.group)
    assert viewer.clients == {"viewer-01"}  # viewer-01-pub's mosquitto_pub -i viewer-01: one client, by its id
    assert {e.file for e in viewer.evidence} >= {"broker/mosquitto.log", "clients/viewer-01-pub.log"}


@pytest.mark.parametrize(("incident", "cause", "group_part", "count"), [
    # four failed handshakes; the broker and the clients each wrote their lines about them
    ("server_cert_expired", "tls.server_cert_expired", "", 4),
    # two refused logins (CONNACK 5), also in hmi-32-pub's own lines
    ("mixed", "auth.bad_credentials", "", 2),
    # four denied publishes in one session: each is one (count = "event")
    ("publish_denied", "acl.publish_denied", "scada-01", 4),
])
def test_a_finding_counts_occurrences_not_lines(incident: str, cause: str, group_part: str, count: int) -> None:
    analysis = analyze([SAMPLES / incident])
    (finding,) = [f for f in analysis.findings if f.id == cause and group_part in f.group]
    assert finding.count == count


@pytest.mark.parametrize(("incident", "cause", "count"), [
    # OPC UA lines are in no stitched connection: four refused sessions (two clients, two attempts
    # each), logged by the server and by each client in several lines
    ("opcua_user_access_denied", "opcua.user_access_denied", 4),
    ("opcua_cert_untrusted", "opcua.cert_untrusted", 2),
    # three TLS 1.2 attempts of one paho client
    ("tls_version_mismatch", "tls.version_mismatch", 3),
])
def test_lines_outside_connections_count_by_attempt(incident: str, cause: str, count: int) -> None:
    analysis = analyze([SAMPLES / incident])
    (finding,) = [f for f in analysis.findings if f.id == cause]
    assert finding.count == count
