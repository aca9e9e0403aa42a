"""Bundles as support engineers collect them: files found by content in any folder or archive,
and archives that try to escape, link out or explode refused member by member."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from correlator.analysis import analyze
from correlator.sources.bundle import classify, open_bundle

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


def test_files_are_sorted_by_content_not_name(tmp_path: Path) -> None:
    src = SAMPLES / "mixed"
    shutil.copy(src / "broker" / "mosquitto.conf", tmp_path / "settings.txt")
    shutil.copy(src / "broker" / "acl", tmp_path / "perms.bak")
    shutil.copy(src / "broker" / "passwd", tmp_path / "users")
    shutil.copy(src / "certs" / "ca.pem", tmp_path / "trust.crt.old")
    shutil.copy(src / "broker" / "mosquitto.log", tmp_path / "messages")
    with open_bundle([tmp_path]) as bundle:
        assert [p.name for p in bundle.confs] == ["settings.txt"]
        assert [p.name for p in bundle.acls] == ["perms.bak"]
        assert [p.name for p in bundle.passwds] == ["users"]
        assert [p.name for p in bundle.certs] == ["trust.crt.old"]
        assert [p.name for p in bundle.logs] == ["messages"]
    assert classify(src / "keys" / "server.key") == "cert"


def test_a_file_of_numbers_alone_is_not_a_log(tmp_path: Path) -> None:
    """A pid file or a marker (the busy-plant benchmark's READY holds its log's line count) is
    listed as skipped, not read as a client's log of one unparsed line (the TUI showed it as one)."""
    shutil.copytree(SAMPLES / "mixed", tmp_path / "mixed")
    log = tmp_path / "mixed" / "broker" / "mosquitto.log"
    lines = log.read_bytes().count(b"\n")
    (tmp_path / "mixed" / "READY").write_text(f"{lines}\n")
    (tmp_path / "mixed" / "broker" / "mosquitto.pid").write_text(f"{os.getpid()}\n")
    with open_bundle([tmp_path / "mixed"]) as bundle:
        assert {p.name for p in bundle.logs} == {p.name for p in (SAMPLES / "mixed").rglob("*.log")}
        assert {(p.name, why) for p, why in bundle.skipped} >= {("READY", "number"), ("mosquitto.pid", "number")}


def _zip_with(tmp_path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def test_zip_members_escaping_or_linking_are_refused_and_the_rest_analysed(tmp_path: Path) -> None:
    log = (SAMPLES / "server_cert_expired" / "broker" / "mosquitto.log").read_bytes()
    path = _zip_with(tmp_path, {"../evil.log": b"x\n", "/abs/evil.log": b"x\n", "broker/mosquitto.log": log},
                     links=("broker/link.log",))
    analysis = analyze([path])
    errors = "\n".join(analysis.errors)
    assert "'../evil.log'" in errors and "'/abs/evil.log'" in errors and "'broker/link.log'" in errors
    assert str(path) in errors  # each refusal names the archive and the member
    assert not (tmp_path.parent / "evil.log").exists()
    assert "tls.server_cert_expired" in {f.id for f in analysis.findings}


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    path = _zip_with(tmp_path, {"huge.log": b"\0" * (64 * 1024 * 1024)})
    with open_bundle([path]) as bundle:
        assert any("decompression bomb" in str(e) for e in bundle.errors)
        assert bundle.logs == []


def test_tar_links_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bundle.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        link = tarfile.TarInfo("logs/escape.log")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        tf.addfile(link)
        data = b"1795444795: mosquitto version 2.0.11 running\n"
        info = tarfile.TarInfo("logs/mosquitto.log")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with open_bundle([path]) as bundle:
        assert any("'logs/escape.log'" in str(e) and "link" in str(e) for e in bundle.errors)
        assert [p.name for p in bundle.logs] == ["mosquitto.log"]


def test_one_broken_file_does_not_hide_the_others(tmp_path: Path) -> None:
    shutil.copytree(SAMPLES / "server_cert_expired", tmp_path / "b")
    (tmp_path / "b" / "broken.log.gz").write_bytes(b"\x1f\x8b\x08\x00garbage-not-gzip")
    (tmp_path / "b" / "certs" / "truncated.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n")
    analysis = analyze([tmp_path / "b"])
    assert any("broken.log.gz" in e for e in analysis.errors)
    assert any("truncated.pem" in e for e in analysis.errors)
    assert "tls.server_cert_expired" in {f.id for f in analysis.findings}


def test_archive_members_keep_their_file_times(tmp_path: Path) -> None:
    """Lines without timestamps (mosquitto_pub output) are dated by their file: extraction must not
    re-date them to the moment of analysis."""
    source = SAMPLES / "mixed" / "clients" / "hmi-32-pub.log"
    path = tmp_path / "bundle.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        tf.add(source, arcname="clients/hmi-32-pub.log")
    zipped = tmp_path / "bundle.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(source, "clients/hmi-32-pub.log")
    for archive in (path, zipped):
        with open_bundle([archive]) as bundle:
            (log,) = bundle.logs
            assert abs(log.stat().st_mtime - source.stat().st_mtime) <= 2  # zip keeps 2-second steps


def test_a_client_log_without_times_that_starts_with_an_option_word_is_a_log(tmp_path: Path) -> None:
    """The lab's paho client logging messages alone (as an app's console or a pasted excerpt has
    them) against a port nothing listens on: its first line starts "connection to ...", the word
    of mosquitto.conf's bridge option. A sentence is not an option and its value: the file is a
    log, and the refused connection is named."""
    from lab import child_env
    from lab.ports import free_port

    log = tmp_path / "edge-05.log"
    subprocess.run([sys.executable, "-m", "lab.paho_client", "--host", "127.0.0.1", "--port", str(free_port()),
                    "--client-id", "edge-05", "--log-file", str(log), "--log-level", "ERROR",
                    "--log-format", "%(message)s", "--attempts", "1", "--duration", "2"],
                   timeout=60, capture_output=True, env=child_env())
    assert log.read_text().startswith("connection to 127.0.0.1:")
    assert classify(log) == "log"
    [finding] = analyze([log]).findings
    assert (finding.id, finding.clients) == ("net.connection_refused", {"edge-05"})
    assert "Connection refused" in finding.evidence[0].text
