"""A bundle of several brokers, each in its own folder or archive, is analysed one host at a time:
each broker's events are judged by its own config, ACL, password file and certificates, clients
are tied only to the broker they dial, and every finding names its host.

The hosts here are real incidents of sample_logs/ put side by side, as a support engineer gets
them from a site with several brokers.
"""

from __future__ import annotations

import gzip
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from correlator.analysis import analyze
from correlator.report_model import AnalysisDict

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
SITE = ["server_cert_expired", "publish_denied", "client_cert_missing", "mixed"]


def _site(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "site"
    for name in names:
        shutil.copytree(SAMPLES / name, folder / name, ignore=shutil.ignore_patterns("expected.json"))
    return folder


def _expected(name: str) -> set[str]:
    spec = json.loads((SAMPLES / name / "expected.json").read_text())
    return {c["id"] for c in spec["root_causes"]} | set(spec.get("warnings", []))


def _ids_per_host(report: AnalysisDict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for finding in report["findings"]:
        if finding["id"] not in ("config.insecure", "cert.expiring_soon"):
            out.setdefault(finding["host"], set()).add(finding["id"])
    return out


@pytest.mark.parametrize("packing", ["folder", "zip of folders", "archives"])
def test_each_broker_is_judged_by_its_own_artifacts(tmp_path: Path, packing: str) -> None:
    folder = _site(tmp_path, SITE)
    target = folder
    if packing == "zip of folders":
        target = tmp_path / "site.zip"
        with zipfile.ZipFile(target, "w") as zf:
            for file in folder.rglob("*"):
                zf.write(file, file.relative_to(folder))
    elif packing == "archives":  # one archive per host, as each machine's support script makes it
        target = tmp_path / "archives"
        target.mkdir()
        for name in SITE:
            shutil.make_archive(str(target / name), "gztar", folder / name)
    report = analyze([target]).to_dict()
    assert _ids_per_host(report) == {name: _expected(name) for name in SITE if _expected(name)}
    hosts = {h["name"]: h for h in report["hosts"]}
    assert set(hosts) == set(SITE)
    # the conf's ../certs/server.pem is this broker's, not the first server.pem of the bundle
    assert hosts["mixed"]["acl_files"] == [f"{_prefix(packing, 'mixed')}broker/acl"]
    assert hosts["server_cert_expired"]["acl_files"] == []  # its mosquitto.conf names none
    assert f"{_prefix(packing, 'server_cert_expired')}certs/server.pem" in hosts["server_cert_expired"]["certificates"]
    assert not any("client_cert_missing" in c for c in hosts["server_cert_expired"]["certificates"])
    # one broker source per host: their connections are never mixed
    assert {s["source"] for s in report["sources"] if s["source"].startswith("broker")} == {
        f"broker:{name}" for name in SITE}


def _prefix(packing: str, name: str) -> str:
    return {"folder": f"{name}/", "zip of folders": f"site.zip!{name}/", "archives": f"{name}.tar.gz!./"}[packing]


def test_a_host_keeps_the_clients_configurations(tmp_path: Path) -> None:
    """node_red_untrusted_ca beside another broker: Node-RED's flows.json (its CA file) still
    decides its failure on its own host."""
    report = analyze([_site(tmp_path, ["node_red_untrusted_ca", "publish_denied"])]).to_dict()
    assert _ids_per_host(report) == {name: _expected(name) for name in ("node_red_untrusted_ca", "publish_denied")}


def test_a_broker_without_acl_file_gets_no_acl_finding(tmp_path: Path) -> None:
    """mixed's viewer-33 publishes node commands its ACL denies; the same client id beside a
    broker whose config names no acl_file is no ACL case, whatever ACL the bundle holds."""
    report = analyze([_site(tmp_path, ["mixed", "server_cert_expired"])]).to_dict()
    acl = [f for f in report["findings"] if f["id"].startswith("acl.")]
    assert [f["host"] for f in acl] == ["mixed"]
    assert acl[0]["clients"] == ["viewer-33"]


def test_one_host_is_the_whole_bundle() -> None:
    analysis = analyze([SAMPLES / "mixed"])
    assert [h.name for h in analysis.hosts] == [""]
    assert {f.host for f in analysis.findings} == {""}
    assert {s.info.source for s in analysis.sources if s.info.source.startswith("broker")} == {"broker"}


def test_reports_group_findings_per_host(tmp_path: Path) -> None:
    from rich.console import Console

    from correlator.reports import html, markdown, text

    analysis = analyze([_site(tmp_path, ["mixed", "server_cert_expired"])])
    console = Console(record=True, width=120)
    text.render(analysis, console)
    out = console.export_text()
    assert "Host mixed: 3 findings" in out and "Host server_cert_expired:" in out
    # the host with the worst finding first, each host's findings under it
    assert out.index("Host server_cert_expired") < out.index("Host mixed") < out.index("auth.bad_credentials")
    assert "# Host mixed: 3 findings" in markdown.render(analysis)
    assert '<h2 class="host">Host server_cert_expired' in html.render(analysis)


def test_a_gateway_host_shares_one_clock() -> None:
    """gateway_clock: every process on gw-01 ran under one faketime offset (about 42 minutes).
    The uplink's connections to the central broker date the gateway's clock; its OPC UA server and
    client logs, which never talk to the broker, are corrected by the same offset."""
    spec = json.loads((SAMPLES / "gateway_clock" / "expected.json").read_text())
    true_offset = spec["host_details"]["gw-01"]["clock_offset_seconds"]
    analysis = analyze([SAMPLES / "gateway_clock"])
    sources = {s.info.source: s for s in analysis.sources}
    uplink = sources["client:gw-01-uplink"]
    assert abs(uplink.offset - true_offset) < 2
    for name in ("opcua-server:opcua-server", "client:hmi-ua"):
        assert sources[name].offset == uplink.offset
        assert sources[name].offset_how.startswith("the clock of host gw-01 (")
    assert sources["broker:central"].offset == 0
    # a shared clock is one cause per log that showed it, not one more per log that inherited it
    skew = [f for f in analysis.findings if f.id == "client.clock_skew"]
    assert {f.host for f in skew} == {"gw-01"}
    assert sorted(c for f in skew for c in f.clients) == ["gw-01-cmd", "gw-01-uplink"]
    # the OPC UA refusal sits at the broker's time, beside the uplink's lines of the same moment
    refused = next(f for f in analysis.findings if f.id == "opcua.user_access_denied")
    assert refused.host == "gw-01"
    assert abs(refused.first_seen - uplink_first(analysis)) < 60


def uplink_first(analysis: object) -> float:
    from correlator.report_model import Analysis

    assert isinstance(analysis, Analysis)
    return min(f.first_seen for f in analysis.findings if f.id == "auth.bad_credentials")


def test_brokers_in_one_folder_are_told_apart_by_their_syslog_host_names(tmp_path: Path) -> None:
    """Two brokers' syslog files side by side, as a central syslog server keeps them (one file per
    sending host): the host name in the lines groups them. The second broker's lines are the real
    RFC 3164 file of syslog_variants with its host field renamed."""
    real = (SAMPLES / "syslog_variants" / "broker" / "syslog-rfc3164.log").read_text()
    assert " vm mosquitto[" in real
    (tmp_path / "plant-a.log").write_text(real.replace(" vm mosquitto[", " mqtt-a mosquitto["))
    (tmp_path / "plant-b.log").write_text(real.replace(" vm mosquitto[", " mqtt-b mosquitto["))
    analysis = analyze([tmp_path])
    hosts = {h.name: h for h in analysis.hosts}
    assert set(hosts) == {"mqtt-a", "mqtt-b"}
    assert hosts["mqtt-a"].how == "syslog host name"
    assert hosts["mqtt-a"].logs == ["plant-a.log"] and hosts["mqtt-b"].logs == ["plant-b.log"]
    # each broker's failures are its own: the same lines give the same causes on each host
    per_host = {h: sorted(f.id for f in analysis.findings if f.host == h) for h in hosts}
    assert per_host["mqtt-a"] == per_host["mqtt-b"] != []


@pytest.mark.parametrize("name", ["messages", "messages.1.gz"])
def test_one_syslog_file_of_two_hosts_is_split_by_host_name(tmp_path: Path, name: str) -> None:
    """A central syslog server's one file with two brokers' lines interleaved (the real RFC 3164
    file of syslog_variants, every other second's lines given another host name): one source per
    host, line numbers those of the file, each broker judged on its own."""
    lines = (SAMPLES / "syslog_variants" / "broker" / "syslog-rfc3164.log").read_text().splitlines()
    mixed = [line.replace(" vm mosquitto[", " mqtt-b mosquitto[") if i % 2 else line.replace(
        " vm mosquitto[", " mqtt-a mosquitto[") for i, line in enumerate(lines)]
    text = ("\n".join(mixed) + "\n").encode()
    (tmp_path / name).write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    analysis = analyze([tmp_path])
    assert {s.info.path for s in analysis.sources} == {f"{name} [mqtt-a]", f"{name} [mqtt-b]"}
    assert {h.name for h in analysis.hosts} == {"mqtt-a", "mqtt-b"}
    assert {s.info.source for s in analysis.sources} == {"broker:mqtt-a", "broker:mqtt-b"}
    for finding in analysis.findings:
        for ref in finding.evidence:
            host = "mqtt-a" if (ref.line or 1) % 2 else "mqtt-b"  # line numbers are the file's
            assert ref.file == f"{name} [{host}]", (finding.id, ref)


def test_a_shared_certificate_is_reported_once(tmp_path: Path) -> None:
    """A CA beside the host folders, expiring in 10 days: one cert.expiring_soon, on no host,
    not one per host that sees it."""
    from datetime import UTC, datetime, timedelta

    from lab import pki

    folder = _site(tmp_path, ["mixed", "publish_denied"])
    last = analyze([folder]).last_event
    assert last is not None
    ends = datetime.fromtimestamp(last, UTC) + timedelta(days=10)
    root = pki.make_ca("site root CA", not_before=ends - timedelta(days=365), days=365)
    root.write(folder / "certs" / "site-root.pem")
    soon = [f for f in analyze([folder]).findings if f.id == "cert.expiring_soon"]
    assert [(f.host, [e.file for e in f.facts]) for f in soon] == [("", ["certs/site-root.pem"])]


def test_clients_in_a_shared_folder_join_the_broker_they_dial() -> None:
    """multi_broker_acl: three brokers on one port, each bound to its own address, the nine
    clients' logs in one clients/ folder: each client belongs to the broker whose address it
    dials (the port alone fits all three), so its lines are stitched and timed against that
    broker only."""
    analysis = analyze([SAMPLES / "multi_broker_acl"])
    for host in analysis.hosts:
        letter = host.name[-1]
        assert host.sources == [f"broker:{host.name}", f"client:edge-{letter}", f"client:historian-{letter}",
                                f"client:viewer-{letter}"]
    for source in analysis.sources:
        if source.info.source.startswith("client:"):
            assert source.offset_how.startswith("estimated from"), source.info.source


def test_clients_of_two_brokers_on_one_port_are_tied_by_their_connections() -> None:
    """shared_port_brokers: site-a and site-b listen on one port with no bind address, and the
    clients' logs (one shared folder) name no port of their own, no user and no broker address.
    Each refused attempt is stitched to the broker whose log shows the connection at that time, and
    the client's lines are judged on that broker's host: its password file, its finding."""
    analysis = analyze([SAMPLES / "shared_port_brokers"])
    assert {(f.host, f.id, tuple(sorted(f.clients))) for f in analysis.findings} == {
        ("site-a", "auth.bad_credentials", ("hmi-a",)), ("site-b", "auth.bad_credentials", ("viewer-b",))}
    by_host = {f.host: f for f in analysis.findings}
    for host, client, user_verdict in (("site-a", "hmi-a", "is in the password file"),
                                       ("site-b", "viewer-b", "is not in the password file (site-b/passwd)")):
        found = by_host[host]
        files = {e.file for e in found.evidence}
        assert files == {f"{host}/mosquitto.log", f"clients/{client}.log"}
        assert found.count == 2 and found.confidence == "high"
        assert user_verdict in found.explanation
        assert any(f.file == f"{host}/passwd" for f in found.facts)
