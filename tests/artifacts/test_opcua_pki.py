"""OPC UA PKI folders in the three layouts, built from certificates made by lab.pki."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.artifacts.opcua_pki import (
    detect_layout,
    find_pki_stores,
    load_pki,
    normalise_thumbprint,
    stale_copies,
)
from lab import pki

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def thumb(issued: pki.Issued) -> str:
    return issued.cert.fingerprint(hashes.SHA1()).hex().upper()


def write_der(issued: pki.Issued, path: Path) -> None:
    issued.write(path, der=True)


def make_crl(ca: pki.Issued, path: Path, revoked: tuple[int, ...] = ()) -> None:
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
               .last_update(NOW - timedelta(days=1)).next_update(NOW + timedelta(days=30)))
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - timedelta(hours=1)).build())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(builder.sign(ca.key, hashes.SHA256()).public_bytes(Encoding.DER))


@pytest.fixture(scope="module")
def certs() -> dict[str, pki.Issued]:
    root = pki.make_ca("Plant Root CA", not_before=NOW - timedelta(days=10))
    inter = pki.make_ca("Plant Issuing CA", issuer=root, not_before=NOW - timedelta(days=10))
    return {
        "root": root,
        "inter": inter,
        "scada": pki.make_leaf("SCADA Client", inter, sans=["URI:urn:plant:scada"], usage=("client",),
                               not_before=NOW - timedelta(days=1)),
        "hmi": pki.make_leaf("HMI Panel", inter, sans=["URI:urn:plant:hmi"], usage=("client",),
                             not_before=NOW - timedelta(days=1)),
        "rogue": pki.make_leaf("Rogue", pki.make_ca("Other CA"), usage=("client",)),
        "server": pki.make_leaf("OPC Server", root, sans=["URI:urn:plant:server", "opc.local"]),
    }


def netstandard(tmp: Path, c: dict[str, pki.Issued], *, with_crls: bool = True) -> Path:
    base = tmp / "OPC Foundation" / "pki"
    write_der(c["root"], base / "trusted" / "certs" / "Plant Root CA.der")
    write_der(c["inter"], base / "issuer" / "certs" / "Plant Issuing CA.der")
    write_der(c["rogue"], base / "rejected" / "certs" / f"Rogue [{thumb(c['rogue'])}].der")
    c["server"].write(base / "own" / "certs" / "OPC Server.der", base / "own" / "private" / "OPC Server.pem",
                      der=True)
    if with_crls:
        make_crl(c["root"], base / "trusted" / "crl" / "root.crl")
        make_crl(c["inter"], base / "issuer" / "crl" / "inter.crl", revoked=(c["hmi"].cert.serial_number,))
    return base


def test_ua_netstandard_layout_lists_and_statuses(tmp_path: Path, certs: dict[str, pki.Issued]) -> None:
    base = netstandard(tmp_path, certs)
    store = load_pki(base)
    assert store.layout == "ua-netstandard" and store.problems == []
    assert [c.common_name for c in store.trusted] == ["Plant Root CA"]
    assert [c.common_name for c in store.issuers] == ["Plant Issuing CA"]
    [rejected] = store.rejected
    assert rejected.common_name == "Rogue" and rejected.name_thumbprint == rejected.thumbprint == thumb(certs["rogue"])
    assert [c.application_uri for c in store.own] == ["urn:plant:server"]
    assert len(store.crls) == 2

    # a client cert issued by the intermediate chains to the trusted root: trusted, CRLs present
    scada = store.status(certs["scada"].cert)
    assert scada.state == "trusted" and scada.trusted_via is not None
    assert scada.trusted_via.common_name == "Plant Root CA"
    assert [c.common_name for c in scada.chain] == ["Plant Issuing CA", "Plant Root CA"]
    assert scada.missing_crls == () and scada.issuer_crl_present is True and scada.revoked_by is None

    revoked = store.status(certs["hmi"].cert.public_bytes(Encoding.DER))
    assert revoked.state == "trusted" and revoked.revoked_by is not None and "revoked" in revoked.reason

    rogue = store.status(thumb(certs["rogue"]).lower())
    assert rogue.state == "rejected" and "rejected folder" in rogue.reason
    assert store.status("00" * 20).state == "unknown"
    by_colons = ":".join(thumb(certs["root"])[i:i + 2] for i in range(0, 40, 2))
    assert store.status(by_colons).state == "trusted"


def test_missing_crl_is_reported(tmp_path: Path, certs: dict[str, pki.Issued]) -> None:
    store = load_pki(netstandard(tmp_path, certs, with_crls=False))
    status = store.status(certs["scada"].cert)
    assert status.state == "trusted"
    assert status.issuer_crl_present is False
    assert set(status.missing_crls) == {certs["inter"].cert.subject.rfc4514_string(),
                                        certs["root"].cert.subject.rfc4514_string()}
    assert "BadCertificateRevocationUnknown" in status.reason


def test_private_keys_are_never_read(tmp_path: Path, certs: dict[str, pki.Issued]) -> None:
    base = netstandard(tmp_path, certs)
    key_text = (base / "own" / "private" / "OPC Server.pem").read_bytes()
    (base / "own" / "certs" / "leaked.pem").write_bytes(key_text)  # a key dropped among the certs
    store = load_pki(base)
    assert all(b"PRIVATE" not in c.der for c in store.certs)
    assert [c.path.name for c in store.own] == ["OPC Server.der"]
    assert store.problems == []


def test_open62541_layout_and_rejected_naming(tmp_path: Path, certs: dict[str, pki.Issued]) -> None:
    group = tmp_path / "pki" / "ApplCerts"
    for sub in ("trusted/certs", "trusted/crl", "issuer/certs", "issuer/crl", "rejected/certs", "own/certs"):
        (group / sub).mkdir(parents=True, exist_ok=True)
    write_der(certs["scada"], group / "trusted" / "certs" / f"SCADA Client[{thumb(certs['scada']).lower()}]")
    write_der(certs["rogue"], group / "rejected" / "certs" / f"Rogue[{thumb(certs['rogue'])}]")
    write_der(certs["hmi"], group / "rejected" / "certs" / f"HMI Panel[{'AB' * 20}]")  # renamed by hand
    store = load_pki(tmp_path / "pki")  # the folder holding ApplCerts works too
    assert store.layout == "open62541" and store.root == group
    assert store.status(certs["scada"].cert).state == "trusted"
    assert store.status(certs["scada"].cert).chain == ()  # issuer not in the store
    assert store.status(certs["scada"].cert).issuer_crl_present is None
    assert store.status(certs["rogue"].cert).state == "rejected"
    [mismatch] = store.problems
    assert "file name says thumbprint" in str(mismatch) and "HMI Panel" in str(mismatch)


def test_plain_layout_with_pem(tmp_path: Path, certs: dict[str, pki.Issued]) -> None:
    base = tmp_path / "certs"
    certs["scada"].write(base / "trusted" / "scada.pem")
    certs["rogue"].write(base / "rejected" / "rogue.pem")
    assert detect_layout(base) == "plain"
    store = load_pki(base)
    assert [c.common_name for c in store.trusted] == ["SCADA Client"]
    assert store.status(certs["rogue"].cert).state == "rejected"
    assert store.status(certs["hmi"].cert).state == "unknown"


def test_find_stores_in_a_bundle(tmp_path: Path, certs: dict[str, pki.Issued]) -> None:
    netstandard(tmp_path / "server-a", certs)
    certs["rogue"].write(tmp_path / "server-b" / "PKI" / "ApplCerts" / "rejected" / "certs" / "Rogue[x]")
    (tmp_path / "server-b" / "PKI" / "ApplCerts" / "trusted").mkdir(parents=True)
    (tmp_path / "logs").mkdir()
    stores = find_pki_stores(tmp_path)
    assert sorted(s.layout for s in stores) == ["open62541", "ua-netstandard"]


def test_bad_input_is_collected(tmp_path: Path, certs: dict[str, pki.Issued]) -> None:
    base = netstandard(tmp_path, certs)
    (base / "trusted" / "certs" / "garbage.der").write_bytes(b"\x00\x01not a cert")
    (base / "trusted" / "crl" / "bad.crl").write_text("-----BEGIN X509 CRL-----\nxx\n-----END X509 CRL-----\n")
    store = load_pki(base)
    assert {Path(p.file or "").name for p in store.problems} == {"garbage.der", "bad.crl"}
    assert [c.common_name for c in store.trusted] == ["Plant Root CA"]  # the rest still loads
    assert all("\n" not in str(p) for p in store.problems)

    not_pki = load_pki(tmp_path / "nowhere")
    assert "not a folder" in str(not_pki.problems[0])
    plain_dir = tmp_path / "empty"
    plain_dir.mkdir()
    assert "not a PKI folder" in str(load_pki(plain_dir).problems[0])


def test_unreadable_folder(tmp_path: Path, certs: dict[str, pki.Issued]) -> None:
    import os
    base = netstandard(tmp_path, certs)
    locked = base / "rejected" / "certs"
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as root: permissions are not enforced")
        store = load_pki(base)
        assert any("cannot list" in str(p) for p in store.problems)
        assert store.trusted
    finally:
        locked.chmod(0o755)


def test_a_renewed_own_certificate_against_a_peers_older_copy(tmp_path: Path, certs: dict[str, pki.Issued]) -> None:
    renewed = pki.make_leaf("OPC Server", certs["root"], sans=["URI:urn:plant:server", "opc.local"],
                            not_before=NOW - timedelta(days=1))
    other_uri = pki.make_leaf("OPC Server", certs["root"], sans=["URI:urn:plant:other", "opc.local"])
    write_der(renewed, tmp_path / "server" / "own" / "certs" / "server.der")
    write_der(certs["root"], tmp_path / "server" / "trusted" / "certs" / "root.der")
    write_der(certs["scada"], tmp_path / "client" / "own" / "certs" / "scada.der")
    write_der(certs["server"], tmp_path / "client" / "trusted" / "certs" / "server.der")
    write_der(other_uri, tmp_path / "client" / "trusted" / "certs" / "other.der")
    stores = find_pki_stores(tmp_path)
    [stale] = stale_copies(stores)
    assert (stale.own.thumbprint, stale.copy.thumbprint) == (thumb(renewed), thumb(certs["server"]))
    assert (stale.own_store.root.name, stale.copy_store.root.name) == ("server", "client")
    # once the client trusts the renewed certificate too, nothing is stale
    write_der(renewed, tmp_path / "client" / "trusted" / "certs" / "server-2026.der")
    assert stale_copies(find_pki_stores(tmp_path)) == []


def test_normalise_thumbprint() -> None:
    assert normalise_thumbprint("ab:cd ef") == "ABCDEF"


def test_ca_in_issuer_list_only_does_not_trust(tmp_path: Path, certs: dict[str, pki.Issued]) -> None:
    base = tmp_path / "pki"
    write_der(certs["inter"], base / "issuer" / "certs" / "inter.der")
    write_der(certs["scada"], base / "rejected" / "certs" / f"SCADA Client [{thumb(certs['scada'])}].der")
    (base / "trusted" / "certs").mkdir(parents=True)
    store = load_pki(base)
    status = store.status(thumb(certs["scada"]))
    assert status.state == "rejected" and [c.common_name for c in status.chain] == ["Plant Issuing CA"]
    assert "only in the issuer list" in status.reason and status.issuer_crl_present is False


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["trusted/certs", "issuer/crl", "rejected/certs", "own/certs"]),
                          st.text(alphabet="abcXYZ[]0123456789 .", min_size=1, max_size=20),
                          st.binary(max_size=200)), max_size=6))
def test_pki_loader_never_crashes_on_junk(files: list[tuple[str, str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "pki"
        for folder, name, data in files:
            target = base / folder
            target.mkdir(parents=True, exist_ok=True)
            if name.strip(" .") and not (target / name).is_dir():
                (target / name).write_bytes(data)
        store = load_pki(base)
        assert store.certs == [] or all(c.thumbprint for c in store.certs)
        assert all("\n" not in str(p) for p in store.problems)
        assert store.status("ab" * 20).state == "unknown"


def test_trust_answers_agree_with_asyncua_truststore(tmp_path: Path, certs: dict[str, pki.Issued]) -> None:
    """A real stack's validator as the oracle. asyncua's TrustStore passes no intermediates, so it
    is compared only where the issuer list plays no part (the .NET and open62541 stacks do use
    it: a leaf of an issuer-list CA under a trusted root is trusted there, and by us)."""
    import asyncio
    import logging

    from asyncua.crypto.truststore import TrustStore

    self_signed = pki.make_ca("Self-signed App", not_before=NOW - timedelta(days=2))
    base = tmp_path / "pki"
    write_der(certs["root"], base / "trusted" / "certs" / "root.der")
    write_der(self_signed, base / "trusted" / "certs" / "app.der")
    (base / "rejected" / "certs").mkdir(parents=True)
    trust_store = TrustStore([base / "trusted" / "certs"], [])
    asyncio.run(trust_store.load())
    store = load_pki(base)
    logging.getLogger("asyncuagds.validate").disabled = True
    for name, cert in [("server", certs["server"]), ("rogue", certs["rogue"]), ("self", self_signed)]:
        ours = store.status(cert.cert).state == "trusted"
        assert ours == trust_store.is_trusted(cert.cert), name
