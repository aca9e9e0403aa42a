"""Password files: user names and lines only, never the hashes; unknown user vs wrong password."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.artifacts.passwd import parse_passwd, parse_passwd_text
from lab.broker import Mosquitto


def _make(path: Path, *users: str) -> None:
    for i, user in enumerate(users):
        flags = ["-b", "-c"] if i == 0 else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(path), user, "secret-pw"], check=True,
                       capture_output=True, timeout=10)


def test_real_password_file_users_and_lines(tmp_path: Path, mosquitto_available: str) -> None:
    path = tmp_path / "passwd"
    _make(path, "alice", "bob", "MyEACM")
    result = parse_passwd(path)
    assert result.problems == []
    assert result.usernames == ["alice", "bob", "MyEACM"]
    assert [u.line for u in result.users] == [1, 2, 3]
    assert result.knows("bob") and not result.knows("carol") and not result.knows("Bob")
    entry = result.user("MyEACM")
    assert entry is not None and entry.location == f"{path}:3"


def test_hashes_are_not_kept_anywhere(tmp_path: Path, mosquitto_available: str) -> None:
    path = tmp_path / "passwd"
    _make(path, "alice")
    hash_text = path.read_text().split(":", 1)[1].strip()
    result = parse_passwd(path)
    dumped = repr(result) + "".join(repr(dataclasses.asdict(u)) for u in result.users)
    assert hash_text not in dumped
    assert hash_text.split("$")[3] not in dumped  # not even the salt


def test_comments_blank_and_malformed_lines() -> None:
    salt = "A" * 16  # 12 bytes
    digest = "B" * 86 + "=="  # 64 bytes
    text = (f"# users\n\nalice:$7$101${salt}${digest}\nnocolon\nbob:plaintext\n:$6${salt}${digest}\n"
            f"carol:\nalice:$6${salt}${digest}\n")
    result = parse_passwd_text(text, "pw")
    assert [(u.name, u.line, u.usable) for u in result.users] == [
        ("alice", 3, True), ("bob", 5, False), ("carol", 7, False), ("alice", 8, True)]
    assert [(p.line, "plain text" in p.message) for p in result.problems][:1] == [(5, True)]
    assert {p.line for p in result.problems} == {5, 6, 7, 8}
    assert all(str(p).startswith("pw:") and "\n" not in str(p) for p in result.problems)
    assert result.knows("alice") and not result.knows("bob")


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    missing = parse_passwd(tmp_path / "nope")
    assert missing.users == [] and "cannot read" in str(missing.problems[0])
    binary = tmp_path / "bin"
    binary.write_bytes(b"\x7fELF\x00\x00alice:x\n")
    result = parse_passwd(binary)
    assert result.users == [] and "binary" in str(result.problems[0])


@pytest.mark.broker
def test_plain_text_entry_really_cannot_log_in(tmp_path: Path, mosquitto_available: str) -> None:
    """What we flag as unusable, mosquitto drops: the right password is still refused."""
    path = tmp_path / "passwd"
    _make(path, "alice")
    with path.open("a") as fh:
        fh.write("bob:secret-pw\n")
    result = parse_passwd(path)
    assert result.knows("alice") and not result.knows("bob")
    config = f"listener {{port0}} 127.0.0.1\npassword_file {path}\n"
    with Mosquitto(tmp_path, config) as broker:
        outcomes = {}
        for user in ("alice", "bob"):
            run = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", user,
                                  "-P", "secret-pw", "-t", "t", "-m", "x"], capture_output=True, text=True,
                                 timeout=10)
            outcomes[user] = run.returncode
        log = broker.log_text()
    assert outcomes["alice"] == 0 and outcomes["bob"] != 0
    assert "Invalid password hash type for user bob" in log


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_password_parser_never_crashes(data: bytes | str) -> None:
    result = parse_passwd_text(data, "fuzz")
    assert all(u.line >= 1 for u in result.users)
    assert all("\n" not in str(p) for p in result.problems)


B64_12, B64_64 = "QUJDREVGR0hJSktM", "QUJD" * 21 + "QQ=="
HASHES = st.sampled_from([f"$7$101${B64_12}${B64_64}", f"$6${B64_12}${B64_64}", "plain", "", "$7$0$x$y",
                          f"$7${'9' * 5000}${B64_12}${B64_64}", f"$7$00000000101${B64_12}${B64_64}",
                          f"$6${B64_12}", "$6$!!!$???", f"$7$99999999999${B64_12}${B64_64}"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["alice", "bob", "", " x ", "Ünï", "a:b", "#c"]), HASHES,
                          st.sampled_from(["", ":extra", "\r"])), max_size=12))
def test_password_parser_reads_any_mix_of_users_and_hashes(entries: list[tuple[str, str, str]]) -> None:
    text = "\n".join(f"{user}:{secret}{tail}" for user, secret, tail in entries)
    result = parse_passwd_text(text, "fuzz")
    assert all(1 <= u.line <= len(entries) for u in result.users)
    assert all(p.line is not None and 1 <= p.line <= len(entries) and "\n" not in str(p) for p in result.problems)
    assert not any(secret in str(p) for _, secret, _ in entries if len(secret) > 8 for p in result.problems)
