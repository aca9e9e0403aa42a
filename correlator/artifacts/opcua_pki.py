"""OPC UA PKI folders: what a server (or client) trusts, what it keeps only to build chains, and what
it rejected, so BadCertificateUntrusted / BadSecurityChecksFailed / BadCertificateRevocationUnknown
can be pinned on a file.

Layouts recognised:

- UA-.NETStandard: `pki/{own,issuer,trusted,rejected}/certs`, CRLs in `issuer/crl` and
  `trusted/crl`; rejected files are named like `CN [THUMBPRINT].der`.
- open62541 (plugins/crypto/ua_certificategroup_filestore.c): `<root>/ApplCerts/` (also
  `HttpCerts/`, `UserTokenCerts/`) with `trusted/{certs,crl}`, `issuer/{certs,crl}`,
  `rejected/certs`, `own/{certs,private}`; files are written as `<CN>[<sha1 hex>]` with no
  extension, the CN being the subject text after 'CN='.
- plain: a folder with `trusted/` and `rejected/` holding certificate files directly.

Trust follows the OPC UA rules both stacks implement: a peer certificate is trusted when it, or a
CA its chain ends in, is in the trusted list; certificates in the issuer list only help build the
chain. Each CA in the chain needs its CRL in the trust list, otherwise the stack answers
BadCertificateRevocationUnknown (or BadCertificateIssuerRevocationUnknown).

asyncua has no fixed layout and writes no rejected folder; its TrustStore trusts a certificate
only if it, or its direct issuer, is in the trusted folders (it passes no intermediates) and it
loads only file names with an extension (`*.*`), so an open62541-style `CN[thumbprint]` file is
invisible to it.

Certificates are read with `cryptography` directly; private key folders (`own/private`) are never
opened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from correlator.artifacts.certs import issued_by
from correlator.artifacts.pki_layout import OPEN62541_GROUPS as OPEN62541_GROUPS
from correlator.artifacts.pki_layout import ROLES as ROLES
from correlator.artifacts.pki_layout import Layout as Layout
from correlator.artifacts.pki_layout import Role as Role
from correlator.artifacts.pki_layout import detect_layout as detect_layout
from correlator.errors import ArtifactError

State = Literal["trusted", "rejected", "unknown"]

#: `CN[THUMB]` (open62541) and `CN [THUMB].der` (UA-.NETStandard).
_NAMED_THUMBPRINT = re.compile(r"^(?P<name>.*?)\s?\[(?P<thumb>[0-9A-Fa-f]{40})\](?:\.[A-Za-z0-9]+)?$")
_MAX_FILE = 1 << 20


@dataclass(frozen=True, slots=True)
class PkiCert:
    """One certificate file in a PKI folder."""

    path: Path
    role: Role
    subject: str
    common_name: str | None
    issuer: str
    thumbprint: str
    """SHA-1 of the DER encoding, upper-case hex: how OPC UA tools name a certificate."""
    serial: int
    not_before: datetime
    not_after: datetime
    is_ca: bool
    self_signed: bool
    application_uri: str | None
    der: bytes = field(repr=False)
    name_thumbprint: str | None = None
    """The thumbprint written in the file name (`CN[...]`), when there is one."""

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


@dataclass(frozen=True, slots=True)
class PkiCrl:
    path: Path
    role: Role
    issuer: str
    last_update: datetime
    next_update: datetime | None
    revoked_serials: frozenset[int]
    der: bytes = field(repr=False)

    @property
    def crl(self) -> x509.CertificateRevocationList:
        return x509.load_der_x509_crl(self.der)


@dataclass(frozen=True, slots=True)
class CertStatus:
    """The answer to "is this certificate trusted here?"."""

    thumbprint: str
    state: State
    """'trusted' (itself, or through a trusted CA), 'rejected' (in the rejected folder and not
    trusted), 'unknown' (in none of the lists)."""
    found: tuple[PkiCert, ...]
    """Every file in the store holding this certificate."""
    trusted_via: PkiCert | None
    """The trusted-list entry that makes it trusted (itself or a CA of its chain)."""
    chain: tuple[PkiCert, ...]
    """Issuers found for it in the trusted and issuer lists, nearest first."""
    missing_crls: tuple[str, ...]
    """Subjects of CAs in the chain with no CRL in the trusted or issuer lists."""
    revoked_by: PkiCrl | None
    reason: str

    @property
    def issuer_crl_present(self) -> bool | None:
        """Whether the direct issuer's CRL is there; None when the issuer is not in the store
        (or the certificate is self-signed, which needs none)."""
        if not self.chain:
            return None
        return self.chain[0].subject not in self.missing_crls


@dataclass
class PkiStore:
    root: Path
    layout: Layout
    certs: list[PkiCert] = field(default_factory=list)
    crls: list[PkiCrl] = field(default_factory=list)
    problems: list[ArtifactError] = field(default_factory=list)

    def by_role(self, role: Role) -> list[PkiCert]:
        return [c for c in self.certs if c.role == role]

    @property
    def trusted(self) -> list[PkiCert]:
        return self.by_role("trusted")

    @property
    def issuers(self) -> list[PkiCert]:
        return self.by_role("issuer")

    @property
    def rejected(self) -> list[PkiCert]:
        return self.by_role("rejected")

    @property
    def own(self) -> list[PkiCert]:
        return self.by_role("own")

    def find(self, thumbprint: str) -> list[PkiCert]:
        wanted = normalise_thumbprint(thumbprint)
        return [c for c in self.certs if c.thumbprint == wanted]

    def status(self, target: str | x509.Certificate | bytes) -> CertStatus:
        """Trusted, rejected or unknown, by thumbprint (hex, any case, colons allowed), by
        certificate, or by DER bytes; plus the chain found and the CRLs missing for it."""
        cert: x509.Certificate | None
        if isinstance(target, str):
            thumbprint = normalise_thumbprint(target)
            found = tuple(c for c in self.certs if c.thumbprint == thumbprint)
            cert = found[0].certificate if found else None
        else:
            cert = target if isinstance(target, x509.Certificate) else x509.load_der_x509_certificate(target)
            thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()
            found = tuple(c for c in self.certs if c.thumbprint == thumbprint)
        chain = tuple(self._chain(cert)) if cert is not None else ()
        trusted_self = next((c for c in found if c.role == "trusted"), None)
        trusted_ca = next((c for c in chain if c.role == "trusted"), None)
        trusted_via = trusted_self or trusted_ca
        missing = tuple(ca.subject for ca in chain if self._crl_for(ca) is None)
        revoked_by = None
        if cert is not None and chain:
            crl = self._crl_for(chain[0])
            if crl is not None and cert.serial_number in crl.revoked_serials:
                revoked_by = crl
        label = found[0].common_name or found[0].subject if found else thumbprint
        if trusted_via is not None:
            state: State = "trusted"
            how = "is in the trusted list" if trusted_self else f"chains to trusted CA {trusted_via.subject!r}"
            reason = f"{label} {how} ({trusted_via.path})"
            if missing:
                reason += f"; no CRL for {', '.join(repr(m) for m in missing)} (BadCertificateRevocationUnknown)"
            if revoked_by is not None:
                reason += f"; but it is revoked by {revoked_by.path}"
        elif any(c.role == "rejected" for c in found):
            state = "rejected"
            where = next(c for c in found if c.role == "rejected").path
            reason = (f"{label} is in the rejected folder ({where}) and not trusted: copy it to the trusted "
                      "list (or trust its CA) to accept it")
        else:
            state = "unknown"
            reason = f"{label} is in none of the trust lists of {self.root}"
        if trusted_via is None and chain:
            reason += (f"; its CA {chain[-1].subject!r} is only in the issuer list, which builds chains but "
                       "trusts nothing")
        return CertStatus(thumbprint, state, found, trusted_via, chain, missing, revoked_by, reason)

    def _chain(self, cert: x509.Certificate) -> Iterator[PkiCert]:
        candidates = [c for c in self.certs if c.role in ("trusted", "issuer") and c.is_ca]
        current = cert
        seen: set[str] = set()
        while current.issuer != current.subject:
            parent = next((c for c in candidates if c.thumbprint not in seen and _issued_by(current, c)), None)
            if parent is None:
                return
            seen.add(parent.thumbprint)
            yield parent
            current = parent.certificate

    def _crl_for(self, ca: PkiCert) -> PkiCrl | None:
        ca_cert = ca.certificate
        for crl in self.crls:
            if crl.role not in ("trusted", "issuer") or crl.issuer != ca.subject:
                continue
            try:
                if crl.crl.is_signature_valid(ca_cert.public_key()):  # type: ignore[arg-type]
                    return crl
            except (TypeError, ValueError):
                continue
        return None


@dataclass(frozen=True, slots=True)
class StaleCopy:
    """A peer's trust list holds an older certificate of an application than the one that
    application now presents (its `own`): same subject and ApplicationUri, another thumbprint.
    The peer encrypts for, or checks signatures with, the old key, so the application cannot
    decrypt what it receives (asyncua: "Decryption failed"), while the peer waits and times out."""

    own: PkiCert
    own_store: PkiStore
    copy: PkiCert
    copy_store: PkiStore


def stale_copies(stores: list[PkiStore]) -> list[StaleCopy]:
    """Every `own` certificate of one PKI folder that another folder trusts only in an older
    edition: a trusted entry with the same subject and ApplicationUri but another thumbprint,
    with the current one absent from that trust list. This is how a renewed server certificate
    looks from the folders: the server's own/ holds the new one, the client's trusted/ the old."""
    found: list[StaleCopy] = []
    for own_store in stores:
        for own in own_store.own:
            if own.is_ca:
                continue
            for other in stores:
                if other is own_store or any(t.thumbprint == own.thumbprint for t in other.trusted):
                    continue
                found.extend(StaleCopy(own, own_store, t, other) for t in other.trusted
                             if not t.is_ca and t.subject == own.subject
                             and t.application_uri == own.application_uri and t.thumbprint != own.thumbprint)
    return found


# -- loading ---------------------------------------------------------------------------------

def load_pki(path: str | os.PathLike[str]) -> PkiStore:
    """Load one PKI folder (for open62541, the folder holding `ApplCerts` works too). Never raises
    for bad input: unreadable folders and files that are not certificates become problems."""
    root = Path(path)
    layout = detect_layout(root)
    if layout is None:
        group = next((root / g for g in OPEN62541_GROUPS if (root / g).is_dir()), None)
        if group is not None and detect_layout(group) == "open62541":
            root, layout = group, "open62541"
    store = PkiStore(root, layout or "plain")
    if not root.is_dir():
        store.problems.append(ArtifactError("cannot read PKI folder: not a folder", file=str(root)))
        return store
    if layout is None:
        store.problems.append(ArtifactError("not a PKI folder (no trusted/issuer/rejected/own subfolders)",
                                            file=str(root)))
        return store
    for role in ROLES:
        role_dir = root / role
        if not role_dir.is_dir():
            continue
        cert_dir = role_dir / "certs" if (role_dir / "certs").is_dir() else role_dir
        for file in _files(cert_dir, store):
            _load_certs(file, role, store)
        for crl_dir_name in ("crl", "crls"):
            for file in _files(role_dir / crl_dir_name, store):
                _load_crl(file, role, store)
    return store


def find_pki_stores(root: str | os.PathLike[str], *, max_depth: int = 6) -> list[PkiStore]:
    """Every PKI folder under a bundle folder."""
    stores: list[PkiStore] = []
    base = Path(root)

    def walk(folder: Path, depth: int) -> None:
        if depth > max_depth:
            return
        if detect_layout(folder) is not None:
            stores.append(load_pki(folder))
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            return
        for child in children:
            walk(child, depth + 1)

    walk(base, 0)
    return stores


def normalise_thumbprint(text: str) -> str:
    return re.sub(r"[^0-9A-Fa-f]", "", text).upper()


def _files(folder: Path, store: PkiStore) -> list[Path]:
    if not folder.is_dir():
        return []
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        store.problems.append(ArtifactError(f"cannot list folder: {exc.strerror or exc}", file=str(folder)))
        return []
    return [p for p in entries if p.is_file() and p.name != "private" and not p.name.startswith(".")]


def _read(file: Path, store: PkiStore) -> bytes | None:
    try:
        if file.stat().st_size > _MAX_FILE:
            store.problems.append(ArtifactError("file too large for a certificate", file=str(file)))
            return None
        return file.read_bytes()
    except OSError as exc:
        store.problems.append(ArtifactError(f"cannot read: {exc.strerror or exc}", file=str(file)))
        return None


def _load_certs(file: Path, role: Role, store: PkiStore) -> None:
    data = _read(file, store)
    if data is None:
        return
    if b"PRIVATE KEY" in data or file.suffix.lower() in (".pfx", ".p12", ".key"):
        return  # key material is not ours to read
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        store.problems.append(ArtifactError("not a certificate (neither DER nor PEM)", file=str(file)))
        return
    named = _NAMED_THUMBPRINT.match(file.name)
    for cert in certs:
        entry = _entry(cert, file, role, named.group("thumb").upper() if named else None)
        if entry.name_thumbprint is not None and entry.name_thumbprint != entry.thumbprint:
            store.problems.append(ArtifactError(
                f"file name says thumbprint {entry.name_thumbprint} but the certificate's is {entry.thumbprint}",
                file=str(file)))
        store.certs.append(entry)


def _load_crl(file: Path, role: Role, store: PkiStore) -> None:
    data = _read(file, store)
    if data is None:
        return
    try:
        crl = (x509.load_pem_x509_crl(data) if b"-----BEGIN X509 CRL-----" in data
               else x509.load_der_x509_crl(data))
    except ValueError:
        store.problems.append(ArtifactError("not a CRL (neither DER nor PEM)", file=str(file)))
        return
    revoked = frozenset(r.serial_number for r in crl)
    store.crls.append(PkiCrl(file, role, crl.issuer.rfc4514_string(), crl.last_update_utc, crl.next_update_utc,
                             revoked, crl.public_bytes(Encoding.DER)))


def _entry(cert: x509.Certificate, file: Path, role: Role, name_thumbprint: str | None) -> PkiCert:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(cns[0].value) if cns else None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError):
        is_ca = False
    uri: str | None = None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        uri = uris[0] if uris else None
    except (x509.ExtensionNotFound, ValueError):
        uri = None
    return PkiCert(
        path=file, role=role, subject=cert.subject.rfc4514_string(), common_name=common_name,
        issuer=cert.issuer.rfc4514_string(), thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),
        serial=cert.serial_number, not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        is_ca=is_ca, self_signed=cert.issuer == cert.subject, application_uri=uri,
        der=cert.public_bytes(Encoding.DER), name_thumbprint=name_thumbprint)


def _issued_by(cert: x509.Certificate, ca: PkiCert) -> bool:
    """The one signature test of correlator.artifacts.certs (it knows SHA-1 signed chains too)."""
    return issued_by(cert, ca.certificate)
