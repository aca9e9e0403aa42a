"""Loading certificates and keys: every format sniffed from content, bad input collected as one-line
errors naming the file, and never any key material in the facts."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cryptography
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import correlator
from correlator.artifacts.certs import (
    BAD_CRYPTO_DATA,
    CertFacts,
    LoadResult,
    load_bytes,
    load_certificates,
    load_file,
    load_paths,
)
from correlator.errors import ArtifactError
from lab import pki

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca(not_before=T0 - timedelta(days=100))


@pytest.fixture(scope="module")
def server(ca: pki.Issued) -> pki.Issued:
    return pki.make_leaf("broker.plant.local", ca, sans=["broker.plant.local", "10.0.0.5",
                                                         "URI:urn:plant:broker"],
                         not_before=T0 - timedelta(days=10), not_after=T0 + timedelta(days=365))


def _pem(issued: pki.Issued) -> bytes:
    return issued.cert.public_bytes(serialization.Encoding.PEM)


def _der(issued: pki.Issued) -> bytes:
    return issued.cert.public_bytes(serialization.Encoding.DER)


def test_facts_of_a_server_certificate(server: pki.Issued, ca: pki.Issued, tmp_path: Path) -> None:
    path = tmp_path / "server.pem"
    server.write(path)
    result = load_file(path)
    assert result.errors == [] and len(result.certs) == 1
    facts = result.certs[0]
    assert facts.common_name == "broker.plant.local"
    assert facts.subject == "CN=broker.plant.local,O=correlator lab"
    assert facts.issuer == "CN=correlator lab CA,O=correlator lab"
    assert facts.san_dns == ("broker.plant.local",) and facts.san_ip == ("10.0.0.5",)
    assert facts.san_uri == ("urn:plant:broker",)
    assert facts.not_before == T0 - timedelta(days=10) and facts.not_before.tzinfo is not None
    assert facts.not_after == T0 + timedelta(days=365)
    assert (facts.key_type, facts.key_size) == ("RSA", 2048)
    assert facts.signature_algorithm == "sha256WithRSAEncryption" and facts.signature_hash == "sha256"
    assert facts.extended_key_usage == ("serverAuth",)
    assert facts.is_ca is False and not facts.self_signed
    assert facts.sha1 == server.cert.fingerprint(hashes.SHA1()).hex().upper()
    assert len(facts.sha256) == 64
    assert facts.serial == format(server.cert.serial_number, "X")
    assert (facts.path, facts.index, facts.source_format) == (str(path), 0, "pem")
    ca_facts = load_bytes(_pem(ca)).certs[0]
    assert ca_facts.is_ca is True and ca_facts.self_signed
    assert "key_cert_sign" in ca_facts.key_usage


def test_to_dict_is_json_and_has_no_certificate_object(server: pki.Issued) -> None:
    facts = load_bytes(_pem(server)).certs[0]
    data = facts.to_dict()
    json.dumps(data)
    assert data["not_after"].endswith("Z")
    assert data["san"]["ip"] == ["10.0.0.5"]
    assert "cert" not in data


def test_der_is_sniffed_whatever_the_name(server: pki.Issued, tmp_path: Path) -> None:
    odd = tmp_path / "broker [3A7F].pem"  # DER named .pem, as OPC UA folders and bundles do
    odd.write_bytes(_der(server))
    result = load_file(odd)
    assert result.errors == []
    assert result.certs[0].source_format == "der"
    assert result.certs[0].sha256 == load_bytes(_pem(server)).certs[0].sha256


def test_pem_with_many_certificates_and_a_key(server: pki.Issued, ca: pki.Issued, tmp_path: Path) -> None:
    path = tmp_path / "bundle.txt"
    pki.write_chain(path, server, ca)
    pki.write_key(tmp_path / "k.pem", server.key)
    path.write_bytes(path.read_bytes() + b"junk between blocks\n" + (tmp_path / "k.pem").read_bytes())
    result = load_file(path)
    assert result.errors == []
    assert [c.index for c in result.certs] == [0, 1]
    assert [c.common_name for c in result.certs] == ["broker.plant.local", "correlator lab CA"]
    assert result.certs[1].where == f"{path}#1"
    (key,) = result.keys
    assert key.state == "loaded" and key.public_key_sha256 == result.certs[0].public_key_sha256


@pytest.mark.parametrize("password", [None, b"s3cret"])
def test_pkcs12(server: pki.Issued, ca: pki.Issued, tmp_path: Path, password: bytes | None) -> None:
    path = tmp_path / "client.cert"  # a PKCS#12 with an unhelpful name
    pki.write_pkcs12(path, server, password=password, cas=[ca])
    result = load_file(path, password=password)
    assert result.errors == []
    assert [c.common_name for c in result.certs] == ["broker.plant.local", "correlator lab CA"]
    assert {c.source_format for c in result.certs} == {"pkcs12"}
    assert result.keys[0].state == "loaded" and result.keys[0].key_type == "RSA"


def test_pkcs12_without_password_loads_even_when_one_is_given(server: pki.Issued, tmp_path: Path) -> None:
    path = tmp_path / "open.pfx"
    pki.write_pkcs12(path, server)
    result = load_file(path, password="unneeded")
    assert result.errors == [] and result.keys[0].encrypted is False


def test_pkcs12_wrong_or_missing_password(server: pki.Issued, tmp_path: Path) -> None:
    path = tmp_path / "client.p12"
    pki.write_pkcs12(path, server, password=b"right")
    wrong = load_file(path, password="wrong")
    assert wrong.certs == [] and len(wrong.errors) == 1
    assert str(wrong.errors[0]) == f"{path}: PKCS#12 file: wrong password or corrupt data"
    missing = load_file(path)
    assert "password-protected" in str(missing.errors[0])


def test_keys_encrypted_plain_der_and_never_exposed(server: pki.Issued, tmp_path: Path) -> None:
    pki.write_key(tmp_path / "enc.key", server.key, password=b"pw")
    pki.write_key(tmp_path / "plain.key", server.key)
    (tmp_path / "der.key").write_bytes(server.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    no_pw = load_file(tmp_path / "enc.key").keys[0]
    assert (no_pw.state, no_pw.encrypted, no_pw.public_key_sha256) == ("encrypted_no_password", True, None)
    assert load_file(tmp_path / "enc.key", password="nope").keys[0].state == "wrong_password"
    opened = load_file(tmp_path / "enc.key", password="pw").keys[0]
    assert opened.state == "loaded" and opened.encrypted
    plain = load_file(tmp_path / "plain.key").keys[0]
    der = load_file(tmp_path / "der.key").keys[0]
    assert der.source_format == "der" and der.public_key_sha256 == plain.public_key_sha256
    secret = server.key.private_numbers().d  # type: ignore[union-attr]
    for key in (opened, plain, der):
        text = repr(key) + json.dumps(key.to_dict())
        assert str(secret) not in text and format(secret, "x") not in text.lower()
        assert not hasattr(key, "private_key")


@pytest.mark.parametrize("encoding", ["pem", "pkcs8"])
def test_a_damaged_rsa_key_reads_as_openssls_full_check_says(encoding: str) -> None:
    """Keys load without OpenSSL's slow primality check (`unsafe_skip_rsa_key_validation`) and are
    checked for consistency here instead: every one-bit flip across a real key gives the same
    outcome as cryptography's fully checked load (the key, or 'Invalid private key', or the
    parser's own error). A 1024-bit key and 60 flips each: the full check costs tens of ms a key."""
    from correlator.artifacts import certs

    key = pki.make_key("rsa", 1024)
    fmt = serialization.PrivateFormat.PKCS8 if encoding == "pkcs8" else serialization.PrivateFormat.TraditionalOpenSSL
    der = key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
    damaged = 0
    for position in range(16, len(der), len(der) // 60):
        data = bytearray(der)
        data[position] ^= 1 << (position % 8)
        blob = bytes(data)
        if encoding == "pem":
            label = b"RSA PRIVATE KEY"
            body = base64.encodebytes(blob)
            blob = b"-----BEGIN " + label + b"-----\n" + body + b"-----END " + label + b"-----\n"
            loader = serialization.load_pem_private_key
        else:
            loader = serialization.load_der_private_key
        expected: bytes | str
        try:
            expected = loader(blob, password=None).public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        except BAD_CRYPTO_DATA as exc:
            expected = certs._reason(exc)
        result = load_bytes(blob, path="k.key")
        if result.keys:
            assert result.errors == [] and result.keys[0].public_key is not None
            assert expected == result.keys[0].public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo), position
        else:
            assert isinstance(expected, str), position
            damaged += expected == "Invalid private key"
            assert len(result.errors) == 1 and f"({expected}" in str(result.errors[0]), (position, result.errors)
    assert damaged > 40  # most flips land in the key's numbers


def test_folder_loads_everything_and_collects_errors(server: pki.Issued, ca: pki.Issued, tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    server.write(folder / "own" / "certs" / "server.der", der=True)
    ca.write(folder / "trusted" / "certs" / "ca.crt")
    (folder / "trusted" / "certs" / "broken.pem").write_bytes(_pem(ca)[:300])
    (folder / "notes.bin").write_bytes(bytes(range(256)) * 4)
    result = load_paths([folder, tmp_path / "absent.pem"])
    assert sorted(c.common_name or "" for c in result.certs) == ["broker.plant.local", "correlator lab CA"]
    messages = sorted(str(e) for e in result.errors)
    assert messages == sorted([
        f"{folder / 'notes.bin'}: not a certificate or key: binary data that is not PEM, DER or PKCS#12",
        f"{folder / 'trusted' / 'certs' / 'broken.pem'}:1: truncated PEM: BEGIN CERTIFICATE has no END",
        f"{tmp_path / 'absent.pem'}: no such file or folder",
    ])
    assert all("\n" not in m for m in messages)


def test_truncated_block_does_not_hide_the_next_one(server: pki.Issued, ca: pki.Issued) -> None:
    data = _pem(server)[:200] + b"\n" + _pem(ca)
    result = load_bytes(data, path="chain.pem")
    assert [c.common_name for c in result.certs] == ["correlator lab CA"]
    assert [str(e) for e in result.errors] == ["chain.pem:1: truncated PEM: BEGIN CERTIFICATE has no END"]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty file"),
    (b"listener 8883\ncafile /etc/ca.pem\n", "not a certificate or key: text without a PEM block"),
    (bytes.fromhex("3003040101"), "DER data that is neither a certificate, a key nor PKCS#12"),
    (bytes.fromhex("300a300802010102010102"), "DER data is not a valid certificate"),
    (b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", "not a valid certificate"),
    (b"-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n", "unknown PEM block 'FOO'"),
])
def test_bad_input_is_one_error_naming_the_file(data: bytes, message: str) -> None:
    result = load_bytes(data, path="in/x.crt")
    assert result.certs == [] and len(result.errors) == 1
    assert str(result.errors[0]).startswith("in/x.crt")
    assert message in str(result.errors[0])


def test_a_bug_while_reading_a_certificate_is_not_blamed_on_the_file(server: pki.Issued,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what cryptography raises for bad bytes is the file's fault (issue 11 item 7): a bug in
    our own reading must surface, not become 'not a valid certificate'."""
    from correlator.artifacts import certs

    def broken(name: object) -> str:
        raise KeyError("a bug")

    monkeypatch.setattr(certs, "_common_name", broken)
    with pytest.raises(KeyError):
        load_bytes(_pem(server), path="server.pem")
    with pytest.raises(KeyError):
        load_bytes(_der(server), path="server.der")


def test_load_certificates_raises_when_nothing_loads(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("nothing here\n")
    with pytest.raises(ArtifactError, match=r"ca\.pem: not a certificate"):
        load_certificates([tmp_path / "ca.pem"])


def _unprivileged_python() -> str | None:
    """An interpreter the 'nobody' user may run (the venv's may live under /root), same version."""
    name = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (sys.executable, f"/usr/bin/{name}", f"/usr/local/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK) and all(
                os.stat(parent).st_mode & 0o001 for parent in Path(candidate).resolve().parents):
            return str(Path(candidate).resolve())
    return None


def test_unreadable_folder_is_reported() -> None:
    """As root a mode-000 folder is still readable, so then the walk runs in a child as 'nobody'."""
    base = Path(tempfile.mkdtemp(prefix="correlator-locked-"))
    base.chmod(0o755)
    folder = base / "locked"
    folder.mkdir()
    (folder / "ca.pem").write_text("x")
    folder.chmod(0)
    try:
        if os.geteuid() != 0:
            result = load_paths([base])
            assert [str(e) for e in result.errors] == [f"{folder}: cannot read folder: Permission denied"]
            return
        python = _unprivileged_python()
        if python is None:
            pytest.skip("no interpreter the unprivileged user can run")
        code = ("from correlator.artifacts.certs import load_paths;"
                f"print([str(e) for e in load_paths([{str(base)!r}]).errors])")
        paths = [str(Path(correlator.__file__).parents[1]), str(Path(cryptography.__file__).parents[1])]
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, user=65534, group=65534,
                              timeout=30, env={"PYTHONPATH": os.pathsep.join(paths), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == str([f"{folder}: cannot read folder: Permission denied"])
    finally:
        folder.chmod(0o755)
        shutil.rmtree(base)


# ---------------------------------------------------------------------------------------------
# property-based: random and mutated input never raises anything


def _check_result(result: LoadResult) -> None:
    assert isinstance(result, LoadResult)
    for error in result.errors:
        assert isinstance(error, ArtifactError) and "\n" not in str(error)
    for cert in result.certs:
        assert isinstance(cert, CertFacts)
        json.dumps(cert.to_dict())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash(data: bytes) -> None:
    _check_result(load_bytes(data, path="fuzz"))
    _check_result(load_bytes(b"\x30" + data, path="fuzz"))
    _check_result(load_bytes(b"-----BEGIN CERTIFICATE-----\n" + data, path="fuzz"))


_SEEDS: dict[str, bytes] = {}


def _seeds() -> dict[str, bytes]:
    if not _SEEDS:
        ca = pki.make_ca(not_before=T0, key_kind="ec")
        leaf = pki.make_leaf("x", ca, sans=["a.example", "10.1.1.1"], key_kind="ec", not_before=T0)
        _SEEDS["pem"] = _pem(leaf) + _pem(ca)
        _SEEDS["der"] = _der(leaf)
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"correlator-fuzz-{os.getpid()}.p12"
        pki.write_pkcs12(path, leaf, cas=[ca])
        _SEEDS["p12"] = path.read_bytes()
        path.unlink()
    return _SEEDS


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["pem", "der", "p12"]), data=st.data())
def test_mutated_valid_input_never_crashes(kind: str, data: st.DataObject) -> None:
    seed = bytearray(_seeds()[kind])
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), max_size=8))
    for position, value in edits:
        seed[position] = value
    cut = data.draw(st.integers(1, len(seed)))
    for sample in (bytes(seed), bytes(seed[:cut])):
        _check_result(load_bytes(sample, path="mutated", password=data.draw(st.sampled_from([None, "pw"]))))
