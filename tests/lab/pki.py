"""Makes certificate authorities, intermediates and leaf certificates for tests and samples.

Dates are always passed in (never 'now' hidden inside), so a test can make a certificate that
expired yesterday relative to an injected clock, and committed samples never rot silently.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def name(self) -> x509.Name:
        return self.cert.subject

    def write(self, cert_path: Path, key_path: Path | None = None, *, password: bytes | None = None,
              der: bool = False) -> None:
        """Write the certificate (PEM or DER) and, if asked, its key (PEM, encrypted when a password
        is given)."""
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
        cert_path.write_bytes(self.cert.public_bytes(encoding))
        if key_path is not None:
            write_key(key_path, self.key, password=password)


def make_key(kind: str = "rsa", size: int = 2048) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key kind {kind!r}")


def write_key(path: Path, key: PrivateKey, *, password: bytes | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    algorithm: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       algorithm))


def name(cn: str, org: str = "correlator lab") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _window(not_before: datetime | None, not_after: datetime | None, days: int) -> tuple[datetime, datetime]:
    start = not_before or (datetime.now(UTC) - timedelta(days=1))
    end = not_after or (start + timedelta(days=days))
    return start, end


def make_ca(cn: str = "correlator lab CA", *, issuer: Issued | None = None, key: PrivateKey | None = None,
            not_before: datetime | None = None, not_after: datetime | None = None, days: int = 3650,
            path_length: int | None = None, key_kind: str = "rsa", hash_name: str = "sha256") -> Issued:
    """A root CA (self-signed) or, with `issuer`, an intermediate CA. `hash_name` 'sha1'/'md5'
    makes the old roots still found in the field (RSA keys only)."""
    key = key or make_key(key_kind)
    start, end = _window(not_before, not_after, days)
    subject = name(cn)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signer: CertificateIssuerPrivateKeyTypes = issuer.key if issuer else key
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    if hash_name in _WEAK_SIGNATURES:
        return Issued(_resign_weak(builder.sign(signer, hashes.SHA256()), signer, hash_name), key)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def _san_entries(sans: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for item in sans:
        if item.startswith("URI:"):
            entries.append(x509.UniformResourceIdentifier(item[4:]))
            continue
        value = item[3:] if item.startswith(("IP:", "ip:")) else item
        value = value[4:] if value.startswith("DNS:") else value
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            entries.append(x509.DNSName(value))
    return entries


def make_leaf(cn: str, issuer: Issued, *, sans: Sequence[str] = (), usage: Sequence[str] = ("server",),
              not_before: datetime | None = None, not_after: datetime | None = None, days: int = 825,
              key: PrivateKey | None = None, key_kind: str = "rsa", key_size: int = 2048,
              is_ca: bool = False, hash_name: str = "sha256", authority_key_id: bool = True) -> Issued:
    """A leaf certificate signed by `issuer`. `sans` holds host names, IP addresses and 'URI:...'
    entries (no SAN extension at all when empty, like the vendor recipe that puts the IP in the CN);
    `usage` lists extended key usages: 'server', 'client' (none when empty). `authority_key_id=False`
    leaves out the issuer's key identifier, as `openssl x509 -req` does without an extension file:
    a verifier then finds the issuer by name alone, and a CA remade with the same name is tried."""
    key = key or make_key(key_kind, key_size)
    start, end = _window(not_before, not_after, days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if authority_key_id:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                                        critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san_entries(sans)), critical=False)
    ekus = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ekus[u] for u in usage]), critical=False)
    # SHA-1 and MD5 signatures exist in the field (old OPC UA stacks) and the weak-signature check
    # needs them; cryptography no longer signs certificates with them, so they are re-signed by hand.
    if hash_name in _WEAK_SIGNATURES:
        return Issued(_resign_weak(builder.sign(issuer.key, hashes.SHA256()), issuer.key, hash_name), key)
    digest: Any = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}[hash_name]
    return Issued(builder.sign(issuer.key, digest), key)


#: DER of the sha256WithRSAEncryption OID and of the weak ones that replace it (same length).
_SHA256_RSA_OID = bytes.fromhex("06092a864886f70d01010b")
_WEAK_SIGNATURES: dict[str, tuple[bytes, Any]] = {
    "sha1": (bytes.fromhex("06092a864886f70d010105"), hashes.SHA1()),
    "md5": (bytes.fromhex("06092a864886f70d010104"), hashes.MD5()),
}


def _resign_weak(cert: x509.Certificate, issuer_key: CertificateIssuerPrivateKeyTypes,
                 hash_name: str) -> x509.Certificate:
    """Swap a SHA-256/RSA certificate's signature algorithm for a weak one and sign it again. The
    OIDs have the same length, so the DER lengths do not change."""
    from cryptography.hazmat.primitives.asymmetric import padding

    if not isinstance(issuer_key, rsa.RSAPrivateKey):
        raise ValueError("weak signatures are only made with an RSA issuer key")
    oid, digest = _WEAK_SIGNATURES[hash_name]
    der = cert.public_bytes(serialization.Encoding.DER)
    tbs = cert.tbs_certificate_bytes
    new_tbs = tbs.replace(_SHA256_RSA_OID, oid, 1)
    signature = issuer_key.sign(new_tbs, padding.PKCS1v15(), digest)
    rest = der[der.index(tbs) + len(tbs):]
    rest = rest.replace(_SHA256_RSA_OID, oid, 1)
    assert len(signature) == len(cert.signature)
    rest = rest[: len(rest) - len(signature)] + signature
    return x509.load_der_x509_certificate(der[: der.index(tbs)] + new_tbs + rest)


def write_pkcs12(path: Path, issued: Issued, *, password: bytes | None = None,
                 cas: Sequence[Issued] = (), friendly_name: bytes | None = b"correlator lab") -> None:
    """Write a certificate, its key and optional CA certificates as PKCS#12 (.p12/.pfx), the form
    Windows and OPC UA tools export, encrypted when a password is given."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    path.parent.mkdir(parents=True, exist_ok=True)
    algorithm: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        friendly_name, issued.key, issued.cert, [ca.cert for ca in cas] or None, algorithm))


def write_chain(path: Path, *certs: Issued) -> None:
    """Write several certificates into one PEM file in the given order (a certfile with its
    intermediates, or a CA bundle)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(c.cert.public_bytes(serialization.Encoding.PEM) for c in certs))
