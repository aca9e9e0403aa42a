"""Secrets leave at ingestion: a key dumped over many lines, hashes of every kind, passwords in
key-value pairs and URLs, password files whatever their line endings. The planted bundle
(tests/planted_secrets.py) is analysed by the CLI in its four formats and no report holds any of
them; the API, its SQLite file, its live stream and the TUI are proven in their own folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from planted_secrets import ARGON2, BCRYPT, SHA512_CRYPT, leaks, plant

from correlator.redaction import HASH_REMOVED, KEY_REMOVED, PASSWORD_REMOVED, LineRedactor, redact
from correlator.sources.bundle import classify, open_bundle

MOSQUITTO_HASH = "$7$101$YJoOGAu2HG5GXnQF$wTMWtzgikiPnh3aYneX3aDx4C+V4p7SoTOdz9vvN35ThK3VUY+Jef3znIYuI/Vjqel7cOTbz=="


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    return plant(tmp_path_factory.mktemp("secrets"))


@pytest.mark.parametrize("hashed", [MOSQUITTO_HASH, ARGON2, BCRYPT, SHA512_CRYPT])
def test_every_hash_form_is_removed(hashed: str) -> None:
    line = "1795444820: bad line hmi:{} in passwd"
    assert redact(line.format(hashed)) == line.format(HASH_REMOVED)


@pytest.mark.parametrize(("line", "kept"), [
    ("connect password=hunter2 user=hmi", "connect password=[password removed] user=hmi"),
    ("pw: hunter2", "pw: [password removed]"),
    ('{"pass": "hunter 2", "user": "hmi"}', '{"pass": [password removed], "user": "hmi"}'),
    ("MQTT_PASSWORD='hunter2'", "MQTT_PASSWORD=[password removed]"),
    ("dial mqtts://hmi:hunter2@broker:8883", "dial mqtts://hmi:[password removed]@broker:8883"),
    ("remote_password hunter2", "remote_password [password removed]"),
])
def test_password_pairs_lose_their_value_only(line: str, kept: str) -> None:
    assert redact(line) == kept
    assert redact(kept) == kept


@pytest.mark.parametrize("line", [
    "Connection Refused: bad user name or password", "password_file /etc/mosquitto/passwd",
    "Sending CONNECT (u1, p1, wr0, wq0, wf0, c1, k30) client_id=b'edge-10'", "bypass=3", "cost $5",
    "paho: tls_set(..., keyfile_password=...)", "password=<password>",
])
def test_words_about_passwords_stay(line: str) -> None:
    assert redact(line) == line


def test_a_key_is_a_block_every_line_of_it_goes() -> None:
    key = ["-----BEGIN ENCRYPTED PRIVATE KEY-----", "MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI",
           "Proc-Type: 4,ENCRYPTED", "", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", "-----END ENCRYPTED PRIVATE KEY-----"]
    redactor = LineRedactor()
    out = [redactor.line(line) for line in ["before", *key, "after password=x"]]
    assert out == ["before", KEY_REMOVED, "", "", "", "", "", f"after password={PASSWORD_REMOVED}"]
    # a logger that prefixes each line of the dump (the last one short); a dump cut short, after which
    # the log goes on; an END line on its own
    redactor = LineRedactor()
    out = [redactor.line("t0 DEBUG " + line) for line in [*key[:2], "QQ=="]] + [redactor.line("t1 INFO next")]
    assert out == [f"t0 DEBUG {KEY_REMOVED}"] * 3 + ["t1 INFO next"]
    assert redactor.line(key[-1]) == KEY_REMOVED


def test_password_files_are_known_by_content_never_as_logs(tmp_path: Path) -> None:
    crlf = tmp_path / "users.bak"
    crlf.write_bytes(f"hmi:{MOSQUITTO_HASH}\r\nviewer:{ARGON2}\r\n".encode())
    plain = tmp_path / "creds.txt"
    plain.write_bytes(b"hmi:hunter2\r\nviewer:s3cret\n")
    log = tmp_path / "debug.log"
    log.write_text("-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n"
                   + "".join(f"1795444820: line {n} of the log\n" for n in range(12)))
    assert [classify(p) for p in (crlf, plain, log)] == ["passwd", "passwd", "log"]
    with open_bundle([tmp_path]) as bundle:
        assert sorted(p.name for p in bundle.passwds) == ["creds.txt", "users.bak"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "correlator", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("fmt", ["text", "json", "md", "html"])
def test_no_report_format_holds_a_planted_secret(planted: tuple[Path, list[str]], fmt: str) -> None:
    bundle, secrets = planted
    result = run("analyze", str(bundle), "--format", fmt)
    assert result.returncode in (3, 4, 5), result.stderr
    assert not leaks(result.stdout + result.stderr, secrets)
    assert PASSWORD_REMOVED in result.stdout and HASH_REMOVED in result.stdout  # the planted evidence is shown
    if fmt == "json":
        report = json.loads(result.stdout)
        assert report["artifacts"]["password_files"] == 2
        assert "clients/edge-10-debug.log" in {s["path"] for s in report["sources"]}
