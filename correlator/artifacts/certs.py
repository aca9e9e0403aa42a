"""Certificates and private keys from files and folders, as frozen facts.

The format is sniffed from the bytes, never from the file name: bundles carry `server.crt` in DER,
`ca.pem` holding three certificates and a key, OPC UA `.der` files named by thumbprint, and
PKCS#12 files called `.cert`. One bad file never stops the others: every failure becomes one
`ArtifactError` naming the file, collected in `LoadResult.errors`.

Private keys are loaded only to learn their public half (which is all "does the key match the
certificate" needs) and whether they are encrypted. The private key object is dropped at once, so
no fact, dict or report can ever carry key material.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InternalError, InvalidKey, InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtensionOID, NameOID

from correlator.errors import ArtifactError

#: What `cryptography` raises for bytes it cannot make sense of: malformed DER or extensions
#: (parsed lazily, so reading a field can raise), an algorithm it does not support, a password
#: given to a key that has none or missing for one that has. Certificates and keys are untrusted
#: input: these are the file's fault and become an ArtifactError naming it. Anything else raised
#: while reading one is a bug in this module and propagates.
BAD_CRYPTO_DATA: tuple[type[Exception], ...] = (
    ValueError, TypeError, UnsupportedAlgorithm, InvalidKey, InternalError, x509.InvalidVersion,
    x509.DuplicateExtension, x509.UnsupportedGeneralNameType)
#: What a signature check raises when the parent did not sign the child, or cannot be asked.
_NOT_SIGNED: tuple[type[Exception], ...] = (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm)

#: Files larger than this are not certificates or keys (a 1 GB log in a bundle must not be slurped).
MAX_FILE_BYTES = 4 * 1024 * 1024

SourceFormat = Literal["pem", "der", "pkcs12"]
KeyState = Literal["loaded", "encrypted_no_password", "wrong_password"]

_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PEM_END = re.compile(rb"-----END ([A-Z0-9 ]+)-----")
#: OpenSSL's 'TRUSTED CERTIFICATE' and the old 'X509 CERTIFICATE' labels, read as plain certificates
#: (the trust settings OpenSSL appends are ignored).
_CERT_LABEL = re.compile(rb"(-----(?:BEGIN|END) )(?:TRUSTED |X509 )?CERTIFICATE-----")
_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"}
_KEY_LABELS = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"DSA PRIVATE KEY",
               b"ENCRYPTED PRIVATE KEY", b"OPENSSH PRIVATE KEY"}
#: PEM blocks a certificate bundle legitimately holds besides certificates and keys; known, skipped.
_IGNORED_LABELS = {b"X509 CRL", b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST", b"PUBLIC KEY",
                   b"RSA PUBLIC KEY", b"EC PARAMETERS", b"DH PARAMETERS", b"PKCS7"}


@dataclass(frozen=True)
class CertFacts:
    """What one certificate says, plus where it was found. `cert` is kept for the checks (a
    certificate is public); it is left out of `to_dict()` and of equality."""

    path: str
    index: int
    """Position of the certificate within its file (0 = first: the leaf of a certfile chain)."""
    source_format: SourceFormat
    subject: str
    issuer: str
    common_name: str | None
    serial: str
    san_dns: tuple[str, ...]
    san_ip: tuple[str, ...]
    san_uri: tuple[str, ...]
    has_san: bool
    not_before: datetime
    not_after: datetime
    key_type: str
    key_size: int | None
    signature_algorithm: str
    signature_hash: str | None
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    is_ca: bool | None
    """None when the certificate has no basicConstraints extension (old v1 certificates)."""
    path_length: int | None
    sha1: str
    """Upper-case hex without separators: the OPC UA thumbprint that names files in PKI folders."""
    sha256: str
    self_signed: bool
    public_key_sha256: str
    """SHA-256 of the DER SubjectPublicKeyInfo: how keys are matched to certificates."""
    cert: x509.Certificate = field(repr=False, compare=False, hash=False)

    @property
    def where(self) -> str:
        """'file' or 'file#index', the way errors and reports name a certificate."""
        return self.path if self.index == 0 else f"{self.path}#{self.index}"

    @property
    def label(self) -> str:
        return self.common_name or self.subject or "(empty subject)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "index": self.index,
            "format": self.source_format,
            "subject": self.subject,
            "issuer": self.issuer,
            "common_name": self.common_name,
            "serial": self.serial,
            "san": {"dns": list(self.san_dns), "ip": list(self.san_ip), "uri": list(self.san_uri)},
            "has_san": self.has_san,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "key_type": self.key_type,
            "key_size": self.key_size,
            "signature_algorithm": self.signature_algorithm,
            "signature_hash": self.signature_hash,
            "key_usage": list(self.key_usage),
            "extended_key_usage": list(self.extended_key_usage),
            "is_ca": self.is_ca,
            "path_length": self.path_length,
            "sha1": self.sha1,
            "sha256": self.sha256,
            "self_signed": self.self_signed,
            "public_key_sha256": self.public_key_sha256,
        }


@dataclass(frozen=True)
class KeyFacts:
    """A private key, described by its public half only. `public_key` is None when the key could
    not be opened (encrypted without the right password): then `state` says why."""

    path: str
    index: int
    source_format: SourceFormat
    state: KeyState
    encrypted: bool
    key_type: str | None = None
    key_size: int | None = None
    public_key_sha256: str | None = None
    public_key: PublicKeyTypes | None = field(default=None, repr=False, compare=False, hash=False)

    @property
    def where(self) -> str:
        return self.path if self.index == 0 else f"{self.path}#{self.index}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "index": self.index,
            "format": self.source_format,
            "state": self.state,
            "encrypted": self.encrypted,
            "key_type": self.key_type,
            "key_size": self.key_size,
            "public_key_sha256": self.public_key_sha256,
        }


@dataclass
class LoadResult:
    """Everything found in some inputs. Loading never raises for bad content: `errors` holds one
    ArtifactError per file (or PEM block) that could not be read."""

    certs: list[CertFacts] = field(default_factory=list)
    keys: list[KeyFacts] = field(default_factory=list)
    errors: list[ArtifactError] = field(default_factory=list)

    def extend(self, other: LoadResult) -> None:
        self.certs.extend(other.certs)
        self.keys.extend(other.keys)
        self.errors.extend(other.errors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "certificates": [c.to_dict() for c in self.certs],
            "keys": [k.to_dict() for k in self.keys],
            "errors": [str(e) for e in self.errors],
        }


# ---------------------------------------------------------------------------------------------
# facts


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _hex(data: bytes) -> str:
    return data.hex().upper()


def _name_text(value: x509.Name) -> str:
    try:
        return value.rfc4514_string()
    except ValueError:  # a name cryptography cannot render (bad attribute value types)
        return repr(value)


def _common_name(value: x509.Name) -> str | None:
    try:
        attrs = value.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    if not attrs:
        return None
    cn = attrs[0].value
    return cn if isinstance(cn, str) else cn.decode("utf-8", "replace")


def describe_public_key(key: PublicKeyTypes) -> tuple[str, int | None]:
    """Key type and size in the words people use in tickets ('RSA', 2048; 'EC secp256r1', 256)."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}", key.curve.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return type(key).__name__, None


def public_key_fingerprint(key: PublicKeyTypes) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest().upper()


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> Any:
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None


_KEY_USAGE_FIELDS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                     "key_agreement", "key_cert_sign", "crl_sign")


def _key_usage(value: x509.KeyUsage | None) -> tuple[str, ...]:
    if value is None:
        return ()
    names = [n for n in _KEY_USAGE_FIELDS if getattr(value, n)]
    if value.key_agreement:
        names += [n for n in ("encipher_only", "decipher_only") if getattr(value, n)]
    return tuple(names)


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Did `parent`'s key sign `child`? Names must match too. Falls back to a direct signature check
    for algorithms cryptography's helper refuses (SHA-1, MD5), because old certificates with them
    still chain in the field and the weak-signature check reports them separately."""
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
        return True
    except ValueError as exc:
        if "Unsupported signature algorithm" not in str(exc):
            return False
    except (InvalidSignature, TypeError, UnsupportedAlgorithm):
        return False
    try:
        key = parent.public_key()
        digest = child.signature_hash_algorithm
        if digest is None:
            return False
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(child.signature, child.tbs_certificate_bytes, padding.PKCS1v15(), digest)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(child.signature, child.tbs_certificate_bytes, ec.ECDSA(digest))
            return True
    except _NOT_SIGNED:
        return False
    return False


def _is_self_signed(cert: x509.Certificate) -> bool:
    return issued_by(cert, cert)


def cert_facts(cert: x509.Certificate, *, path: str = "", index: int = 0,
               source_format: SourceFormat = "pem") -> CertFacts:
    """Facts of one parsed certificate. Raises ValueError on a certificate whose extensions are
    malformed (cryptography parses them lazily); the loaders turn that into an ArtifactError."""
    san = _extension(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    bc = _extension(cert, ExtensionOID.BASIC_CONSTRAINTS)
    eku = _extension(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    try:
        public_key = cert.public_key()
        key_type, key_size = describe_public_key(public_key)
        key_print = public_key_fingerprint(public_key)
    except (ValueError, UnsupportedAlgorithm):
        key_type, key_size, key_print = "unsupported", None, ""
    hash_alg = cert.signature_hash_algorithm if _hash_known(cert) else None
    sig_oid = cert.signature_algorithm_oid
    return CertFacts(
        path=path,
        index=index,
        source_format=source_format,
        subject=_name_text(cert.subject),
        issuer=_name_text(cert.issuer),
        common_name=_common_name(cert.subject),
        serial=format(cert.serial_number, "X"),
        san_dns=tuple(san.get_values_for_type(x509.DNSName)) if san is not None else (),
        san_ip=tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)) if san is not None else (),
        san_uri=tuple(san.get_values_for_type(x509.UniformResourceIdentifier)) if san is not None else (),
        has_san=san is not None,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type,
        key_size=key_size,
        signature_algorithm=getattr(sig_oid, "_name", None) or sig_oid.dotted_string,
        signature_hash=hash_alg.name if hash_alg is not None else None,
        key_usage=_key_usage(_extension(cert, ExtensionOID.KEY_USAGE)),
        extended_key_usage=tuple(getattr(o, "_name", None) or o.dotted_string for o in eku) if eku else (),
        is_ca=bool(bc.ca) if bc is not None else None,
        path_length=bc.path_length if bc is not None else None,
        sha1=_hex(cert.fingerprint(hashes.SHA1())),
        sha256=_hex(cert.fingerprint(hashes.SHA256())),
        self_signed=_is_self_signed(cert),
        public_key_sha256=key_print,
        cert=cert,
    )


def _hash_known(cert: x509.Certificate) -> bool:
    try:
        return cert.signature_hash_algorithm is not None
    except UnsupportedAlgorithm:
        return False


def _key_facts(key: PrivateKeyTypes, *, path: str, index: int, source_format: SourceFormat,
               encrypted: bool) -> KeyFacts:
    public = key.public_key()
    key_type, key_size = describe_public_key(public)
    return KeyFacts(path=path, index=index, source_format=source_format, state="loaded", encrypted=encrypted,
                    key_type=key_type, key_size=key_size, public_key_sha256=public_key_fingerprint(public),
                    public_key=public)


# ---------------------------------------------------------------------------------------------
# parsing bytes


def _password_bytes(password: bytes | str | None) -> bytes | None:
    if password is None:
        return None
    return password.encode() if isinstance(password, str) else password


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _load_private_key(loader: Any, blob: bytes, password: bytes | None) -> PrivateKeyTypes:
    """`loader(blob, password)`, with an RSA key's consistency checked here instead of by
    OpenSSL. OpenSSL's check (`RSA_check_key`) proves p and q prime, about 40 ms a 2048-bit key:
    most of a small bundle's artifact time. A key damaged anywhere in its numbers breaks one of
    the identities checked in `_rsa_consistent`, which raises the same ValueError OpenSSL's check
    does, so a corrupt key reads the same either way."""
    if loader is serialization.load_pem_private_key or loader is serialization.load_der_private_key:
        key = loader(blob, password=password, unsafe_skip_rsa_key_validation=True)
        if isinstance(key, rsa.RSAPrivateKey):
            _rsa_consistent(key)
        return key
    return loader(blob, password=password)  # type: ignore[no-any-return]


def _rsa_consistent(key: rsa.RSAPrivateKey) -> None:
    """Raise ValueError('Invalid private key'), as cryptography does, unless the key's numbers
    agree: n = p·q, e·d = 1 modulo lcm(p-1, q-1), and the CRT values follow from d, p and q."""
    numbers = key.private_numbers()
    p, q, d = numbers.p, numbers.q, numbers.d
    e, n = numbers.public_numbers.e, numbers.public_numbers.n
    if p < 3 or q < 3 or p * q != n or not 1 < e < n or not 0 < d < n:
        raise ValueError("Invalid private key")
    lcm = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    if ((e * d) % lcm != 1 or numbers.dmp1 != d % (p - 1) or numbers.dmq1 != d % (q - 1)
            or (numbers.iqmp * q) % p != 1):
        raise ValueError("Invalid private key")


def _private_key(loader: Any, blob: bytes, password: bytes | None, *, path: str, index: int,
                 source_format: SourceFormat) -> KeyFacts:
    """Open a private key only to describe it. The state separates 'needs a password' from 'wrong
    password' because the fixes differ (pass --password vs. find the right one)."""
    try:
        key = _load_private_key(loader, blob, None)
        return _key_facts(key, path=path, index=index, source_format=source_format, encrypted=False)
    except TypeError:
        pass  # encrypted: cryptography wants a password
    if password is None:
        return KeyFacts(path=path, index=index, source_format=source_format, state="encrypted_no_password",
                        encrypted=True)
    try:
        key = _load_private_key(loader, blob, password)
    except ValueError:
        return KeyFacts(path=path, index=index, source_format=source_format, state="wrong_password",
                        encrypted=True)
    return _key_facts(key, path=path, index=index, source_format=source_format, encrypted=True)


def _load_pem(data: bytes, path: str, password: bytes | None) -> LoadResult:
    result = LoadResult()
    cert_index = key_index = 0
    begins = list(_PEM_BEGIN.finditer(data))
    for number, begin in enumerate(begins):
        label = begin.group(1)
        line = _line_of(data, begin.start())
        end = _PEM_END.search(data, begin.end())
        next_begin = begins[number + 1].start() if number + 1 < len(begins) else len(data)
        if end is None or end.start() > next_begin:
            # A copy-paste that lost its tail: report it and still read the blocks after it.
            result.errors.append(ArtifactError(f"truncated PEM: BEGIN {label.decode()} has no END",
                                               file=path, line=line))
            continue
        if end.group(1) != label:
            result.errors.append(ArtifactError(
                f"bad PEM: BEGIN {label.decode()} ends with END {end.group(1).decode()}",
                file=path, line=line))
            continue
        blob = data[begin.start():end.end()]
        if label in _CERT_LABELS:
            try:
                cert = x509.load_pem_x509_certificate(_CERT_LABEL.sub(rb"\1CERTIFICATE-----", blob))
                result.certs.append(cert_facts(cert, path=path, index=cert_index, source_format="pem"))
                cert_index += 1
            except BAD_CRYPTO_DATA as exc:
                result.errors.append(ArtifactError(
                    f"not a valid certificate ({_reason(exc)})", file=path, line=line))
        elif label in _KEY_LABELS:
            loader: Any = (serialization.load_ssh_private_key if label == b"OPENSSH PRIVATE KEY"
                           else serialization.load_pem_private_key)
            try:
                result.keys.append(_private_key(loader, blob, password, path=path, index=key_index,
                                                source_format="pem"))
                key_index += 1
            except BAD_CRYPTO_DATA as exc:
                result.errors.append(ArtifactError(
                    f"not a valid private key ({_reason(exc)})", file=path, line=line))
        elif label not in _IGNORED_LABELS:
            result.errors.append(ArtifactError(f"unknown PEM block {label.decode()!r}", file=path, line=line))
    if not result.certs and not result.keys and not result.errors:
        result.errors.append(ArtifactError("holds no certificate or private key", file=path))
    return result


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _der_head(data: bytes) -> tuple[int, int] | None:
    """(first inner tag, first inner value byte) of a DER SEQUENCE, or None when the bytes are not
    one. Enough to tell a certificate (SEQUENCE in SEQUENCE) from PKCS#12 (INTEGER 3) from a key
    (INTEGER 0/1) without trying every parser on every binary file."""
    if len(data) < 4 or data[0] != 0x30:
        return None
    length_byte = data[1]
    pos = 2 if length_byte < 0x80 else 2 + (length_byte & 0x7F)
    if length_byte == 0x80 or pos + 2 >= len(data):
        return None
    return data[pos], data[pos + 2]


def _load_pkcs12(data: bytes, path: str, password: bytes | None) -> LoadResult:
    result = LoadResult()
    bundle = None
    used: bytes | None = None
    # Windows and OPC UA tools export with no password or with an empty one; a password given for
    # a file that has none must not make a good file look broken.
    tried = [password, None, b""] if password is not None else [None, b""]
    for candidate in tried:
        try:
            bundle = pkcs12.load_pkcs12(data, candidate)
            used = candidate
            break
        except BAD_CRYPTO_DATA:
            continue
    if bundle is None:
        if password is None:
            message = "PKCS#12 file is password-protected (give its password) or corrupt"
        else:
            message = "PKCS#12 file: wrong password or corrupt data"
        result.errors.append(ArtifactError(message, file=path))
        return result
    certs = ([bundle.cert.certificate] if bundle.cert is not None else []) + [
        c.certificate for c in bundle.additional_certs]
    for index, cert in enumerate(certs):
        try:
            result.certs.append(cert_facts(cert, path=path, index=index, source_format="pkcs12"))
        except BAD_CRYPTO_DATA as exc:
            result.errors.append(ArtifactError(f"certificate {index} in PKCS#12 is invalid ({_reason(exc)})",
                                               file=path))
    if bundle.key is not None:
        result.keys.append(_key_facts(bundle.key, path=path, index=0, source_format="pkcs12",
                                      encrypted=bool(used)))
    if not result.certs and not result.keys:
        result.errors.append(ArtifactError("PKCS#12 file holds no certificate or key", file=path))
    return result


def _load_der(data: bytes, path: str, password: bytes | None) -> LoadResult:
    result = LoadResult()
    head = _der_head(data)
    if head is None:
        result.errors.append(ArtifactError("not a certificate or key: binary data that is not PEM, DER or "
                                           "PKCS#12", file=path))
        return result
    tag, first = head
    if tag == 0x02 and first == 3:
        return _load_pkcs12(data, path, password)
    if tag == 0x30:
        try:
            cert = x509.load_der_x509_certificate(data)
        except BAD_CRYPTO_DATA as cert_exc:
            try:
                x509.load_der_x509_crl(data)
                return result  # a CRL (OPC UA PKI folders keep them beside certificates): known, no facts
            except BAD_CRYPTO_DATA:
                pass
            try:  # an encrypted PKCS#8 key also starts SEQUENCE { SEQUENCE ...
                result.keys.append(_private_key(serialization.load_der_private_key, data, password, path=path,
                                                index=0, source_format="der"))
                return result
            except BAD_CRYPTO_DATA:
                pass
            result.errors.append(ArtifactError(f"DER data is not a valid certificate ({_reason(cert_exc)})",
                                               file=path))
            return result
        try:
            result.certs.append(cert_facts(cert, path=path, index=0, source_format="der"))
        except BAD_CRYPTO_DATA as exc:
            result.errors.append(ArtifactError(f"not a valid certificate ({_reason(exc)})", file=path))
        return result
    if tag == 0x02:
        try:
            result.keys.append(_private_key(serialization.load_der_private_key, data, password, path=path,
                                            index=0, source_format="der"))
            return result
        except BAD_CRYPTO_DATA as exc:
            result.errors.append(ArtifactError(f"DER data is not a valid private key ({_reason(exc)})",
                                               file=path))
            return result
    result.errors.append(ArtifactError("DER data that is neither a certificate, a key nor PKCS#12",
                                       file=path))
    return result


def load_bytes(data: bytes, *, path: str = "<bytes>", password: bytes | str | None = None) -> LoadResult:
    """Parse one file's bytes, sniffing PEM, DER or PKCS#12. Never raises for bad content.
    cryptography's deprecation warnings about real-world quirks (a negative serial in a system root)
    are silenced: the certificate is what the field runs, and a warning per file is noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return _load_bytes(data, path, password)


def _load_bytes(data: bytes, path: str, password: bytes | str | None) -> LoadResult:
    secret = _password_bytes(password)
    if not data.strip():
        return LoadResult(errors=[ArtifactError("empty file", file=path)])
    if b"-----BEGIN " in data:
        return _load_pem(data, path, secret)
    if data[:1] == b"\x30":
        return _load_der(data, path, secret)
    if _looks_binary(data):
        return LoadResult(errors=[ArtifactError(
            "not a certificate or key: binary data that is not PEM, DER or PKCS#12", file=path)])
    return LoadResult(errors=[ArtifactError("not a certificate or key: text without a PEM block", file=path)])


def _looks_binary(data: bytes) -> bool:
    sample = data[:4096]
    if b"\x00" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(sample) - 4  # a multi-byte character cut at the sample's end is still text
    return False


def load_file(path: str | Path, *, password: bytes | str | None = None) -> LoadResult:
    """Load one file. Unreadable or oversized files become an error in the result."""
    where = str(path)
    try:
        size = os.stat(where).st_size
        if size > MAX_FILE_BYTES:
            return LoadResult(errors=[ArtifactError(
                f"too large for a certificate or key ({size} bytes)", file=where)])
        with open(where, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return LoadResult(errors=[ArtifactError(f"cannot read: {exc.strerror or exc}", file=where)])
    return load_bytes(data, path=where, password=password)


def iter_files(folder: str | Path, errors: list[ArtifactError]) -> list[Path]:
    """Files under a folder, sorted, following no symlinked folders (loops); folders that cannot
    be listed are reported in `errors` instead of raising."""

    def on_error(exc: OSError) -> None:
        errors.append(ArtifactError(f"cannot read folder: {exc.strerror or exc}",
                                    file=exc.filename or str(folder)))

    found: list[Path] = []
    for root, dirs, files in os.walk(folder, onerror=on_error):
        dirs.sort()
        found.extend(Path(root) / name for name in sorted(files))
    return found


def load_paths(paths: Iterable[str | Path], *, password: bytes | str | None = None) -> LoadResult:
    """Load files and folders (recursively). Paths that do not exist are load errors too, so a
    caller sees every problem at once."""
    result = LoadResult()
    for item in paths:
        path = Path(item)
        if path.is_dir():
            errors: list[ArtifactError] = []
            files = iter_files(path, errors)
            result.errors.extend(errors)
            for file in files:
                result.extend(load_file(file, password=password))
        elif path.exists():
            result.extend(load_file(path, password=password))
        else:
            result.errors.append(ArtifactError("no such file or folder", file=str(path)))
    return result


def load_certificates(paths: Sequence[str | Path], *, password: bytes | str | None = None) -> list[CertFacts]:
    """Certificates only; raises the first ArtifactError when nothing at all could be loaded, the
    way a CA file option must fail loudly rather than trust nothing silently."""
    result = load_paths(paths, password=password)
    if not result.certs and result.errors:
        raise result.errors[0]
    if not result.certs:
        raise ArtifactError("holds no certificate", file=", ".join(str(p) for p in paths))
    return result.certs
