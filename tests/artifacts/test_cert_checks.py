"""Certificate checks against certificates made at chosen times with the lab PKI; the clock is
always injected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.artifacts import cert_checks as cc
from correlator.artifacts.certs import CertFacts, KeyFacts, load_bytes, load_file
from lab import pki

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def facts(issued: pki.Issued, path: str = "cert.pem", index: int = 0) -> CertFacts:
    return load_bytes(issued.cert.public_bytes(serialization.Encoding.PEM), path=path).certs[index]


def key_facts(issued: pki.Issued, tmp_path: Path, password: bytes | None = None,
              given: str | None = None) -> KeyFacts:
    path = tmp_path / "key.pem"
    pki.write_key(path, issued.key, password=password)
    return load_file(path, password=given).keys[0]


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca(not_before=NOW - timedelta(days=400), key_kind="ec")


@pytest.fixture(scope="module")
def good(ca: pki.Issued) -> pki.Issued:
    return pki.make_leaf("broker.plant.local", ca, sans=["broker.plant.local", "*.mqtt.plant.local", "10.0.0.5"],
                         not_before=NOW - timedelta(days=10), not_after=NOW + timedelta(days=200), key_kind="ec")


# --- time ----------------------------------------------------------------------------------


def test_expired_server_and_client(ca: pki.Issued) -> None:
    old = facts(pki.make_leaf("broker", ca, not_before=NOW - timedelta(days=100),
                              not_after=NOW - timedelta(days=3), key_kind="ec"))
    result = cc.check_expired(old, NOW)
    assert (result.status, result.cause, result.details["days_expired"]) == ("problem", "tls.server_cert_expired", 3)
    assert "expired on 2026-11-20T12:00:00Z" in result.message
    assert cc.check_expired(old, NOW, "client").cause == "tls.client_cert_expired"
    assert cc.check_expired(old, NOW - timedelta(days=4)).status == "ok"
    assert cc.check_expiring_soon(old, NOW).status == "not_run"


def test_not_yet_valid(ca: pki.Issued) -> None:
    fresh = facts(pki.make_leaf("broker", ca, not_before=NOW + timedelta(days=2), key_kind="ec"))
    result = cc.check_not_yet_valid(fresh, NOW)
    assert (result.status, result.cause) == ("problem", "tls.server_cert_not_yet_valid")
    assert result.details["days_until_valid"] == 2
    assert cc.check_not_yet_valid(fresh, NOW + timedelta(days=3)).status == "ok"


def test_expiring_soon_window(ca: pki.Issued) -> None:
    soon = facts(pki.make_leaf("broker", ca, not_before=NOW - timedelta(days=300),
                               not_after=NOW + timedelta(days=12), key_kind="ec"))
    result = cc.check_expiring_soon(soon, NOW)
    assert (result.status, result.cause, result.severity) == ("problem", "cert.expiring_soon", "warning")
    assert result.details["days_left"] == 12
    assert cc.check_expiring_soon(soon, NOW, window=timedelta(days=7)).status == "ok"


def test_naive_time_is_refused(good: pki.Issued) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cc.check_expired(facts(good), datetime(2026, 1, 1))


# --- host name -----------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "ok"), [
    ("broker.plant.local", True), ("BROKER.plant.local", True), ("10.0.0.5", True),
    ("a.mqtt.plant.local", True), ("a.b.mqtt.plant.local", False), ("mqtt.plant.local", False),
    ("10.0.0.6", False), ("other.local", False),
])
def test_hostname_against_san(good: pki.Issued, host: str, ok: bool) -> None:
    result = cc.check_hostname(facts(good), host)
    assert (result.status == "ok") is ok
    assert result.details["libmosquitto"] is ok and result.details["strict"] is ok
    if not ok:
        assert result.cause == "tls.server_hostname_mismatch" and result.severity == "error"


def test_ip_in_cn_without_san_works_only_for_libmosquitto(ca: pki.Issued) -> None:
    vendor = facts(pki.make_leaf("192.168.1.20", ca, sans=(), not_before=NOW - timedelta(days=1), key_kind="ec"))
    result = cc.check_hostname(vendor, "192.168.1.20")
    assert result.status == "problem" and result.cause == "tls.server_hostname_mismatch"
    assert (result.details["libmosquitto"], result.details["strict"]) == (True, False)
    assert "libmosquitto clients" in result.message and result.severity == "warning"
    assert cc.hostname_verdicts(vendor, "192.168.1.21") == (False, False)


def test_cn_is_ignored_when_san_has_dns_names(ca: pki.Issued) -> None:
    cert = facts(pki.make_leaf("broker", ca, sans=["mqtt.example"], not_before=NOW, key_kind="ec"))
    assert cc.hostname_verdicts(cert, "broker") == (False, False)


# --- chain ---------------------------------------------------------------------------------


def test_chain_ok_and_wrong_ca(ca: pki.Issued, good: pki.Issued) -> None:
    trust = [facts(ca, "ca.pem")]
    result = cc.check_chain(facts(good), trust, NOW)
    assert result.status == "ok" and result.details["chain"][-1] == "CN=correlator lab CA,O=correlator lab"
    other = pki.make_ca("plant CA", not_before=NOW - timedelta(days=5), key_kind="ec")
    wrong = cc.check_chain(facts(good), [facts(other, "other.pem")], NOW)
    assert (wrong.status, wrong.cause) == ("problem", "tls.server_cert_untrusted")
    assert wrong.details["missing_issuer"] == "CN=correlator lab CA,O=correlator lab"
    client = cc.check_chain(facts(good), [facts(other, "other.pem")], NOW, role="client")
    assert client.cause == "tls.client_cert_untrusted"
    assert cc.check_chain(facts(good), [], NOW).status == "not_run"


def test_regenerated_ca_with_the_same_name(ca: pki.Issued, good: pki.Issued) -> None:
    twin = pki.make_ca(not_before=NOW - timedelta(days=5), key_kind="ec")  # same name, new key
    result = cc.check_chain(facts(good), [facts(twin)], NOW)
    assert result.cause == "tls.server_cert_untrusted" and "different key" in result.message


def test_self_signed_server_is_an_untrusted_root(ca: pki.Issued) -> None:
    selfsigned = pki.make_ca("broker", not_before=NOW - timedelta(days=5), key_kind="ec")
    result = cc.check_chain(facts(selfsigned), [facts(ca)], NOW)
    assert result.cause == "tls.server_cert_untrusted"
    assert result.details["untrusted_root"] == "CN=broker,O=correlator lab"
    assert cc.check_chain(facts(selfsigned), [facts(selfsigned)], NOW).status == "ok"  # pinned


def test_missing_intermediate(ca: pki.Issued, tmp_path: Path) -> None:
    inter = pki.make_ca("plant issuing CA", issuer=ca, not_before=NOW - timedelta(days=50), key_kind="ec")
    leaf = pki.make_leaf("broker", inter, not_before=NOW - timedelta(days=5), key_kind="ec")
    pki.write_chain(tmp_path / "full.pem", leaf, inter)
    inter.write(tmp_path / "inter.pem")
    leaf.write(tmp_path / "server.pem")
    trust = [facts(ca, "ca.pem")]
    full = load_file(tmp_path / "full.pem").certs
    assert cc.check_chain(full[0], trust, NOW, intermediates=full[1:]).status == "ok"
    alone = load_file(tmp_path / "server.pem").certs[0]
    pool = load_file(tmp_path / "inter.pem").certs
    found = cc.check_chain(alone, trust, NOW, pool=pool)
    assert (found.status, found.cause) == ("problem", "tls.server_chain_incomplete")
    assert "CN=plant issuing CA" in found.message and str(tmp_path / "inter.pem") in found.message
    nowhere = cc.check_chain(alone, trust, NOW)
    assert nowhere.details["missing_issuer"] == "CN=plant issuing CA,O=correlator lab"
    assert "certfile must carry it" in nowhere.message


def test_root_missing_above_a_presented_intermediate(ca: pki.Issued) -> None:
    inter = pki.make_ca("issuing", issuer=ca, not_before=NOW - timedelta(days=50), key_kind="ec")
    leaf = pki.make_leaf("broker", inter, not_before=NOW - timedelta(days=5), key_kind="ec")
    other = pki.make_ca("other root", not_before=NOW - timedelta(days=5), key_kind="ec")
    result = cc.check_chain(facts(leaf), [facts(other)], NOW, intermediates=[facts(inter, "s.pem", 0)])
    assert result.cause == "tls.server_cert_untrusted"
    assert result.details["missing_issuer"] == "CN=correlator lab CA,O=correlator lab"


def test_expired_intermediate_and_leaf_used_as_ca(ca: pki.Issued) -> None:
    inter = pki.make_ca("issuing", issuer=ca, not_before=NOW - timedelta(days=50),
                        not_after=NOW - timedelta(days=1), key_kind="ec")
    leaf = pki.make_leaf("broker", inter, not_before=NOW - timedelta(days=5), key_kind="ec")
    result = cc.check_chain(facts(leaf), [facts(ca)], NOW, intermediates=[facts(inter)])
    assert result.cause == "tls.server_cert_expired" and "'issuing' expired" in result.message
    fake_ca = pki.make_leaf("not a CA", ca, not_before=NOW - timedelta(days=5), key_kind="ec")
    signed = pki.make_leaf("broker", fake_ca, not_before=NOW - timedelta(days=5), key_kind="ec")
    misuse = cc.check_chain(facts(signed), [facts(ca)], NOW, intermediates=[facts(fake_ca)])
    assert misuse.status == "problem" and "leaf used as a CA" in misuse.message
    assert "leaf used as a CA" in cc.check_ca_file([facts(fake_ca, "ca.pem")])[0].message


# --- keys, strength, purpose ------------------------------------------------------------------


def test_key_match_mismatch_and_encrypted(good: pki.Issued, tmp_path: Path) -> None:
    cert = facts(good)
    assert cc.check_key_match(cert, key_facts(good, tmp_path)).status == "ok"
    other = pki.make_leaf("x", good, key_kind="ec")
    mismatch = cc.check_key_match(cert, key_facts(other, tmp_path))
    assert (mismatch.status, mismatch.cause) == ("problem", "tls.client_key_problem")
    assert "key values mismatch" in mismatch.message
    assert cc.check_key_match(cert, key_facts(other, tmp_path), "server").cause == "broker.tls_config_error"
    locked = key_facts(good, tmp_path, password=b"pw")
    assert cc.check_key_match(cert, locked).status == "not_run"
    loaded = cc.check_key_loaded(locked)
    assert (loaded.status, loaded.cause) == ("problem", "tls.client_key_problem")
    assert cc.check_key_loaded(key_facts(good, tmp_path, password=b"pw", given="bad")).message.endswith(
        "('bad decrypt')")
    assert cc.check_key_loaded(key_facts(good, tmp_path, password=b"pw", given="pw")).status == "ok"


def test_weak_key_and_signatures(ca: pki.Issued) -> None:
    rsa_ca = pki.make_ca("rsa CA", not_before=NOW - timedelta(days=5))
    small = facts(pki.make_leaf("old", rsa_ca, key_size=1024, not_before=NOW))
    result = cc.check_key_strength(small)
    assert result.status == "problem" and result.details["key_size"] == 1024
    assert cc.check_key_strength(facts(rsa_ca)).status == "ok"
    for weak in ("sha1", "md5"):
        signed = facts(pki.make_leaf("old", rsa_ca, hash_name=weak, not_before=NOW))
        assert signed.signature_hash == weak
        sig = cc.check_signature(signed)
        assert sig.status == "problem" and weak.upper() in sig.message
        chain = cc.check_chain(signed, [facts(rsa_ca)], NOW + timedelta(hours=1))
        assert chain.status == "problem" and "SHA-1/MD5" in chain.message
    assert cc.check_signature(facts(rsa_ca)).status == "ok"
    old_root = facts(pki.make_ca("old root", hash_name="sha1", not_before=NOW - timedelta(days=5)))
    assert old_root.self_signed and old_root.signature_hash == "sha1"
    assert cc.check_signature(old_root).status == "ok"  # nobody checks a trust anchor's own signature


def test_purpose(ca: pki.Issued, good: pki.Issued) -> None:
    assert cc.check_purpose(facts(good), "server").status == "ok"
    client_role = cc.check_purpose(facts(good), "client")
    assert (client_role.status, client_role.cause) == ("problem", "tls.client_cert_untrusted")
    assert "without clientAuth" in client_role.message
    client_only = facts(pki.make_leaf("edge-07", ca, usage=("client",), not_before=NOW, key_kind="ec"))
    assert cc.check_purpose(client_only, "server").cause == "tls.server_cert_untrusted"
    assert cc.check_purpose(facts(pki.make_leaf("any", ca, usage=(), key_kind="ec")), "client").status == "ok"
    ca_as_leaf = cc.check_purpose(facts(ca), "server")
    assert ca_as_leaf.status == "problem" and "CA certificate used as a server" in ca_as_leaf.message


def test_check_all_reports_every_problem_once(ca: pki.Issued, tmp_path: Path) -> None:
    leaf = pki.make_leaf("broker", ca, sans=["broker"], not_before=NOW - timedelta(days=400),
                         not_after=NOW - timedelta(days=1), key_kind="ec")
    pki.write_chain(tmp_path / "server.pem", leaf, ca)
    certs = load_file(tmp_path / "server.pem").certs
    stray = pki.make_leaf("stray", ca, key_kind="ec")
    keys = [key_facts(leaf, tmp_path)]
    pki.write_key(tmp_path / "stray.key", stray.key)
    keys.append(load_file(tmp_path / "stray.key").keys[0])
    reports, extra = cc.check_all(certs, NOW, host="10.9.9.9", trust=[facts(ca, "ca.pem")], keys=keys)
    assert [r.leaf for r in reports] == [True, False]
    causes = [r.cause for r in reports[0].problems]
    assert causes == ["tls.server_cert_expired", "tls.server_hostname_mismatch"]
    assert {r.check for r in reports[0].results} >= {"chain", "key_match", "purpose", "hostname"}
    assert [r.message for r in extra] == [f"private key {tmp_path / 'stray.key'} belongs to none of the "
                                          "certificates given"]
    json.dumps([r.to_dict() for r in reports])


# --- the strict verdict agrees with OpenSSL itself ----------------------------------------------


def _openssl_accepts(leaf: pki.Issued, ca: pki.Issued, host: str, tmp_path: Path) -> bool:
    """A real in-memory TLS handshake through Python's ssl (OpenSSL 3 with Python's strict host
    name flags): does a client dialling `host` accept `leaf`?"""
    import ssl

    leaf.write(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    ca.write(tmp_path / "ca.pem")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=host)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError:
                return False
            except ssl.SSLError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    client.do_handshake()
    return True


_LABELS = st.sampled_from(["a", "b", "mqtt", "plant", "xn--bcher-kva"])
_NAMES = st.lists(_LABELS, min_size=1, max_size=4).map(".".join)
_PATTERNS = st.one_of(_NAMES, _NAMES.map(lambda n: "*." + n), _NAMES.map(lambda n: "m*." + n),
                      st.sampled_from(["10.0.0.5", "::1", "*"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sans=st.lists(_PATTERNS, min_size=1, max_size=3),
       host=st.one_of(_NAMES, st.sampled_from(["10.0.0.5", "10.0.0.6", "::1"])))
def test_strict_verdict_matches_openssl(ca: pki.Issued, sans: list[str], host: str, tmp_path: Path) -> None:
    leaf = pki.make_leaf("cn-is-ignored", ca, sans=sans, not_before=datetime.now(UTC) - timedelta(days=1),
                         key_kind="ec")
    _, strict = cc.hostname_verdicts(facts(leaf), host)
    assert strict == _openssl_accepts(leaf, ca, host, tmp_path), (sans, host)
