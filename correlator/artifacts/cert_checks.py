"""Checks over certificate and key facts, at a given time, the way TLS peers would judge them.

Every check is a pure function of its inputs and of `at` (never the wall clock), so a finding
about an incident last Tuesday is computed against last Tuesday, and tests never rot. Every check
returns the one `CheckResult` (correlator.check_result), whose status keeps apart three things a
report must not blur: it ran and found nothing, it ran and found a problem (with the root-cause
id from ROOT_CAUSES.md where one applies), it could not run (and `message` says why). The rules'
artifact checks (engine/facts.py) ask these functions rather than comparing dates themselves, and
`EXPIRY_WINDOW` is the one warning window.

No check reads, returns or prints private key material: keys arrive as `KeyFacts`, which hold
only the public half.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from cryptography import x509
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from correlator.artifacts.certs import CertFacts, KeyFacts, issued_by
from correlator.check_result import EXPIRY_WINDOW as EXPIRY_WINDOW  # defined where no cryptography is needed
from correlator.check_result import CheckResult, Severity

Role = Literal["server", "client"]
#: Below this RSA modulus OpenSSL 3 at Debian's default security level 2 refuses the key.
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
WEAK_HASHES = frozenset({"sha1", "md5", "md2", "md4"})

_EKU_FOR_ROLE = {"server": "serverAuth", "client": "clientAuth"}


def _ok(check: str, cert: CertFacts | KeyFacts, message: str, **details: Any) -> CheckResult:
    return CheckResult.passed(check, message, subject=cert.where, details=details)


def _problem(check: str, cert: CertFacts | KeyFacts, message: str, cause: str | None,
             severity: Severity = "error", **details: Any) -> CheckResult:
    return CheckResult.problem(check, message, subject=cert.where, cause=cause, severity=severity, details=details)


def _not_run(check: str, subject: str, why: str) -> CheckResult:
    return CheckResult.not_run(check, why, subject=subject)


def _iso(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError("`at` must be timezone-aware (UTC): certificate times are UTC")


def _days(delta: timedelta) -> float:
    return round(delta.total_seconds() / 86400, 1)


# ---------------------------------------------------------------------------------------------
# time


def check_expired(cert: CertFacts, at: datetime, role: Role = "server") -> CheckResult:
    """Past notAfter at `at`: every TLS stack refuses it ('certificate has expired')."""
    _require_aware(at)
    if at > cert.not_after:
        days = _days(at - cert.not_after)
        return _problem("expired", cert, f"'{cert.label}' expired on {_iso(cert.not_after)}, "
                        f"{days:g} days before {_iso(at)}", f"tls.{role}_cert_expired",
                        days_expired=days, not_after=_iso(cert.not_after))
    days_left = _days(cert.not_after - at)
    return _ok("expired", cert, f"valid until {_iso(cert.not_after)} ({days_left:g} days left)",
               days_left=days_left, not_after=_iso(cert.not_after))


def check_not_yet_valid(cert: CertFacts, at: datetime, role: Role = "server") -> CheckResult:
    """Before notBefore at `at`: a fresh certificate, or a client whose clock is behind."""
    _require_aware(at)
    if at < cert.not_before:
        days = _days(cert.not_before - at)
        cause = "tls.server_cert_not_yet_valid" if role == "server" else None
        return _problem("not_yet_valid", cert, f"'{cert.label}' is not valid before {_iso(cert.not_before)}, "
                        f"{days:g} days after {_iso(at)} (a fresh certificate, or the checking host's "
                        f"clock is behind)", cause, days_until_valid=days, not_before=_iso(cert.not_before))
    return _ok("not_yet_valid", cert, f"valid since {_iso(cert.not_before)}", not_before=_iso(cert.not_before))


def check_expiring_soon(cert: CertFacts, at: datetime, window: timedelta = EXPIRY_WINDOW) -> CheckResult:
    """Valid now but not for long: the proactive warning, before anything fails."""
    _require_aware(at)
    if at > cert.not_after:
        return _not_run("expiring_soon", cert.where, "already expired (see the expiry check)")
    left = cert.not_after - at
    days = _days(left)
    if left <= window:
        return _problem("expiring_soon", cert, f"'{cert.label}' expires in {days:g} days "
                        f"({_iso(cert.not_after)})", "cert.expiring_soon", "warning",
                        days_left=days, window_days=_days(window))
    return _ok("expiring_soon", cert, f"{days:g} days left", days_left=days, window_days=_days(window))


# ---------------------------------------------------------------------------------------------
# host name


def _dns_match(pattern: str, host: str) -> bool:
    """RFC 6125 matching as OpenSSL clients do it: case-insensitive, a wildcard only as the whole
    left-most label, matching exactly one label, never an IP address."""
    pattern = pattern.rstrip(".").lower()
    host = host.rstrip(".").lower()
    if not pattern or not host:
        return False
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    suffix = pattern[1:]
    if suffix.count(".") < 2:  # '*.com' style: too broad, refused
        return False
    head, dot, rest = host.partition(".")
    return bool(head) and bool(dot) and "." + rest == suffix


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def hostname_verdicts(cert: CertFacts, host: str) -> tuple[bool, bool]:
    """(libmosquitto, strict) verdicts for `host`.

    libmosquitto (lib/tls_mosq.c, mosquitto__verify_certificate_hostname) checks SAN DNS and IP
    entries, and only when the SAN holds no DNS entry falls back to comparing the CN with the host
    text, case-insensitively: so an IP written in the CN works for it. Python's ssl and other
    OpenSSL-strict clients check only the SAN (DNS entries for names, IP entries for addresses).
    """
    address = _ip(host)
    san_ip_hit = address is not None and any(_ip(entry) == address for entry in cert.san_ip)
    san_dns_hit = address is None and any(_dns_match(entry, host) for entry in cert.san_dns)
    strict = san_ip_hit or san_dns_hit
    if strict:
        return True, True
    if cert.san_dns:
        return False, False
    cn = cert.common_name or ""
    return cn.lower() == host.strip("[]").lower() and bool(cn), False


def check_hostname(cert: CertFacts, host: str) -> CheckResult:
    """Is `host` (the name or IP the client dials) in the certificate, for both kinds of client."""
    mosq, strict = hostname_verdicts(cert, host)
    names = [*cert.san_dns, *cert.san_ip]
    shown = ", ".join(names) if names else "no subjectAltName"
    details: dict[str, Any] = {"host": host, "libmosquitto": mosq, "strict": strict, "san_dns": list(cert.san_dns),
               "san_ip": list(cert.san_ip), "common_name": cert.common_name}
    if strict:
        return _ok("hostname", cert, f"'{host}' is in the subjectAltName", **details)
    if mosq:
        return _problem("hostname", cert, f"'{host}' matches only the CN ({cert.common_name}); the certificate "
                        f"has {shown}. libmosquitto clients (mosquitto_pub/sub, eACM) accept it; "
                        f"Python/OpenSSL-strict clients (paho, asyncua, Java, .NET, Go) reject it: add "
                        f"the {'IP' if _ip(host) else 'DNS'} name to the subjectAltName",
                        "tls.server_hostname_mismatch", "warning", **details)
    return _problem("hostname", cert, f"'{host}' is not in the certificate (CN={cert.common_name}, {shown}): "
                    f"every client rejects it", "tls.server_hostname_mismatch", **details)


# ---------------------------------------------------------------------------------------------
# chain


_CA_POLICY = ExtensionPolicy.permit_all().require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)


def _verifier_error(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                    trust: list[x509.Certificate], at: datetime) -> str | None:
    """cryptography's path builder (RFC 5280 with its extension checks relaxed, since OpenSSL
    peers do not enforce the Web PKI profile): None when a path exists, else its reason."""
    try:
        verifier = (PolicyBuilder().store(Store(trust)).time(at)
                    .extension_policies(ca_policy=_CA_POLICY, ee_policy=ExtensionPolicy.permit_all())
                    .build_client_verifier())
        verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        return str(exc)
    except ValueError as exc:  # e.g. an empty store
        return str(exc)
    return None


def find_issuer(cert: CertFacts, candidates: Sequence[CertFacts]) -> CertFacts | None:
    """The first of `candidates` (other than `cert` itself) whose key signed `cert`."""
    for candidate in candidates:
        if candidate.sha256 != cert.sha256 and issued_by(cert.cert, candidate.cert):
            return candidate
    return None


@dataclass(frozen=True)
class SameNameIssuers:
    """The CAs that carry the name of a certificate's issuer, told apart by their key: `signers`
    made its signature, `others` did not. Verifiers look an issuer up by name (and by key
    identifier only when the certificate has one), so a CA made again under the same name is
    found and then fails the signature check: "certificate signature failure", alert "decrypt
    error", RSA "padding check failed"."""

    signers: tuple[CertFacts, ...]
    others: tuple[CertFacts, ...]


def same_name_issuers(cert: CertFacts, cas: Sequence[CertFacts]) -> SameNameIssuers:
    named = [c for c in cas if c.sha256 != cert.sha256 and c.cert.subject == cert.cert.issuer]
    signers = tuple(c for c in named if issued_by(cert.cert, c.cert))
    signing_keys = {c.public_key_sha256 for c in signers}
    return SameNameIssuers(signers, tuple(c for c in named if c.public_key_sha256 not in signing_keys))


def check_chain(leaf: CertFacts, trust: Sequence[CertFacts], at: datetime, *,
                intermediates: Sequence[CertFacts] = (), pool: Sequence[CertFacts] = (),
                role: Role = "server") -> CheckResult:
    """Can `leaf` plus the `intermediates` it is presented with be chained to one of `trust` at
    `at`? When not, say exactly what is missing: the issuer's name when no certificate for it is
    at hand, the untrusted root by name, or the intermediate that exists among the other inputs
    (`pool`) but is not presented (tls.server_chain_incomplete)."""
    _require_aware(at)
    if not trust:
        return _not_run("chain", leaf.where, "no CA certificates to check against (give a CA file or folder)")
    untrusted = f"tls.{role}_cert_untrusted"
    trusted_prints = {t.sha256 for t in trust}
    chain: list[CertFacts] = [leaf]
    not_presented: list[CertFacts] = []
    current = leaf
    anchor: CertFacts | None = leaf if leaf.sha256 in trusted_prints else None
    while anchor is None and len(chain) < 10:
        issuer = find_issuer(current, trust)
        if issuer is not None:
            anchor = issuer
            chain.append(issuer)
            break
        issuer = find_issuer(current, intermediates)
        if issuer is None:
            issuer = find_issuer(current, pool)
            if issuer is not None:
                not_presented.append(issuer)
        if issuer is None or issuer in chain:
            break
        chain.append(issuer)
        current = issuer
    names = [c.subject for c in chain]
    details: dict[str, Any] = {"chain": names}
    if anchor is None:
        top = chain[-1]
        same_name = [t for t in trust if t.cert.subject == top.cert.issuer]
        if top.self_signed:
            details["untrusted_root"] = top.subject
            return _problem("chain", leaf, f"the chain ends at root '{top.subject}', which the CA file does not "
                            f"hold", untrusted, **details)
        details["missing_issuer"] = top.issuer
        if same_name:
            return _problem("chain", leaf, f"the CA file holds a '{top.issuer}' but not the one that signed "
                            f"'{top.label}' (same name, different key: was the CA regenerated?)", untrusted,
                            **details)
        if role == "server" and top is not leaf:
            hint = "the client's CA file lacks the root that issued it"
        elif role == "server":
            hint = ("if it is an intermediate CA, the broker's certfile must carry it after the server "
                    "certificate; otherwise the client's CA file is the wrong one")
        else:
            hint = "the broker's cafile/capath does not hold the CA that issued the client certificate"
        return _problem("chain", leaf, f"issuer '{top.issuer}' of '{top.label}' is in neither the presented "
                        f"chain nor the CA file: {hint}", untrusted, **details)
    if not_presented:
        details["not_presented"] = [c.where for c in not_presented]
        missing = ", ".join(f"'{c.subject}' (found in {c.where})" for c in not_presented)
        cause = "tls.server_chain_incomplete" if role == "server" else untrusted
        return _problem("chain", leaf, f"the chain needs intermediate {missing}, which is not sent with "
                        f"the certificate: add it to the certfile after '{leaf.label}'", cause, **details)
    for member in chain[1:]:
        if member.is_ca is not True and member is not leaf:
            return _problem("chain", leaf, f"'{member.label}' signs '{chain[chain.index(member) - 1].label}' "
                            f"but is not a CA certificate (basicConstraints CA:FALSE or absent): a leaf "
                            f"used as a CA", untrusted, **details)
    for member in chain[1:]:  # the leaf's own dates are the expiry checks' business
        if at > member.not_after or at < member.not_before:
            word = "expired on" if at > member.not_after else "is not valid before"
            when = member.not_after if at > member.not_after else member.not_before
            member_cause = f"tls.{role}_cert_expired" if at > member.not_after else (
                "tls.server_cert_not_yet_valid" if role == "server" else None)
            return _problem("chain", leaf, f"chain member '{member.label}' {word} {_iso(when)}", member_cause,
                            **details)
    error = _verifier_error(leaf.cert, [c.cert for c in chain[1:] if c.sha256 not in trusted_prints],
                            [t.cert for t in trust], at)
    if error is not None:
        details["verifier"] = error
        if "Forbidden signature algorithm" in error:
            return _problem("chain", leaf, "the chain reaches a trusted CA only through a SHA-1/MD5 signature, "
                            "which OpenSSL 3 at its default security level refuses", untrusted, **details)
    return _ok("chain", leaf, f"chains to trusted '{chain[-1].subject}'", **details)


def check_ca_file(trust: Sequence[CertFacts]) -> list[CheckResult]:
    """A CA file holding end-entity certificates: OpenSSL accepts such a certificate only as an
    exact pinned match for itself, never as an issuer of anything else."""
    results = []
    for cert in trust:
        if cert.is_ca is not True and not cert.self_signed:
            results.append(_problem("ca_file", cert, f"'{cert.label}' in the CA file is not a CA certificate "
                                    f"(a leaf used as a CA): it cannot issue anything", None, "warning"))
    return results


# ---------------------------------------------------------------------------------------------
# keys


def check_key_loaded(key: KeyFacts, role: Role = "client") -> CheckResult:
    """An encrypted key without its password fails at start-up (broker) or at connect (client)."""
    cause = "tls.client_key_problem" if role == "client" else "broker.tls_config_error"
    if key.state == "encrypted_no_password":
        return _problem("key_loaded", key, "the private key is encrypted and no password was given: a "
                        "client or broker started without the passphrase cannot use it", cause)
    if key.state == "wrong_password":
        return _problem("key_loaded", key, "the private key is encrypted and the password given does not "
                        "open it ('bad decrypt')", cause)
    return _ok("key_loaded", key, f"{key.key_type} key, {'encrypted' if key.encrypted else 'not encrypted'}")


def check_key_match(cert: CertFacts, key: KeyFacts, role: Role = "client") -> CheckResult:
    """Does the private key belong to the certificate? Compared by public key, which is what
    OpenSSL's X509_check_private_key compares too ('key values mismatch')."""
    if key.public_key_sha256 is None:
        return _not_run("key_match", key.where, f"the key could not be opened ({key.state.replace('_', ' ')})")
    cause = "tls.client_key_problem" if role == "client" else "broker.tls_config_error"
    if key.public_key_sha256 != cert.public_key_sha256:
        return _problem("key_match", cert, f"private key {key.where} does not belong to '{cert.label}' "
                        f"(key values mismatch)", cause, key=key.where)
    return _ok("key_match", cert, f"private key {key.where} matches", key=key.where)


def check_key_strength(cert: CertFacts) -> CheckResult:
    """Keys OpenSSL 3 refuses at Debian's default security level 2 (RSA/DSA below 2048 bits)."""
    size = cert.key_size
    if size is None:
        return _not_run("key_strength", cert.where, f"unknown key type {cert.key_type}")
    weak = ((cert.key_type in {"RSA", "DSA"} and size < MIN_RSA_BITS)
            or (cert.key_type.startswith("EC") and size < MIN_EC_BITS))
    if weak:
        return _problem("key_strength", cert, f"{cert.key_type} key of {size} bits is too small: OpenSSL 3 "
                        f"refuses it ('ee key too small' / 'key too weak'); use RSA 2048+ or EC P-256",
                        None, key_type=cert.key_type, key_size=size)
    return _ok("key_strength", cert, f"{cert.key_type} {size} bits", key_type=cert.key_type, key_size=size)


def check_signature(cert: CertFacts) -> CheckResult:
    """SHA-1/MD5 signatures: refused by OpenSSL 3 at security level 1+, except on a self-signed
    trust anchor, whose own signature nobody checks."""
    name = (cert.signature_hash or "").lower()
    if name in WEAK_HASHES:
        if cert.self_signed:
            return _ok("signature", cert, f"{cert.signature_algorithm} on a self-signed root: not checked by "
                       f"verifiers", algorithm=cert.signature_algorithm)
        return _problem("signature", cert, f"signed with {cert.signature_algorithm}: OpenSSL 3 refuses "
                        f"{name.upper()} signatures ('ca md too weak'); re-issue it with SHA-256", None,
                        algorithm=cert.signature_algorithm)
    return _ok("signature", cert, cert.signature_algorithm, algorithm=cert.signature_algorithm)


def check_purpose(cert: CertFacts, role: Role = "server") -> CheckResult:
    """Is the certificate fit to be a TLS end entity in this role? A CA certificate as a server
    certificate, or an extendedKeyUsage without serverAuth/clientAuth, fails as 'unsupported
    certificate purpose' in OpenSSL clients and brokers."""
    wanted = _EKU_FOR_ROLE[role]
    if cert.is_ca:
        return _problem("purpose", cert, f"'{cert.label}' is a CA certificate used as a {role} certificate; "
                        f"issue a leaf certificate (CA:FALSE) from it instead", None, "warning")
    ekus = set(cert.extended_key_usage)
    if ekus and wanted not in ekus and "anyExtendedKeyUsage" not in ekus:
        cause = f"tls.{role}_cert_untrusted"
        return _problem("purpose", cert, f"'{cert.label}' has extendedKeyUsage {', '.join(sorted(ekus))} "
                        f"without {wanted}: peers refuse it as a {role} certificate ('unsupported "
                        f"certificate purpose')", cause, eku=sorted(ekus))
    return _ok("purpose", cert, f"usable as a {role} certificate"
               + ("" if ekus else " (no extendedKeyUsage: unrestricted)"), eku=sorted(ekus))


# ---------------------------------------------------------------------------------------------
# everything at once


@dataclass(frozen=True)
class CertReport:
    """The checks that ran on one certificate, kept with its facts for rendering."""

    cert: CertFacts
    results: tuple[CheckResult, ...]
    leaf: bool

    @property
    def problems(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.is_problem)

    def to_dict(self) -> dict[str, Any]:
        return {"certificate": self.cert.to_dict(), "leaf": self.leaf,
                "checks": [r.to_dict() for r in self.results]}


def is_leaf(cert: CertFacts, *, host: str | None = None, keys: Sequence[KeyFacts] = ()) -> bool:
    """Is this certificate used as an end entity? The first certificate of a file that is not a CA,
    or a CA certificate that something uses as one (a host is checked against it, or a key given
    belongs to it)."""
    if cert.index != 0:
        return False
    if not cert.is_ca:
        return True
    return host is not None or any(k.public_key_sha256 == cert.public_key_sha256 for k in keys)


def check_all(certs: Sequence[CertFacts], at: datetime, *, role: Role = "server", host: str | None = None,
              trust: Sequence[CertFacts] = (), keys: Sequence[KeyFacts] = (),
              window: timedelta = EXPIRY_WINDOW) -> tuple[list[CertReport], list[CheckResult]]:
    """Every check that applies to the given certificates: per certificate reports, plus the
    results that concern no single certificate (keys that open or match nothing, the CA file)."""
    _require_aware(at)
    reports: list[CertReport] = []
    matched_keys: set[str] = set()
    for cert in certs:
        results = [check_expired(cert, at, role), check_not_yet_valid(cert, at, role),
                   check_expiring_soon(cert, at, window), check_key_strength(cert), check_signature(cert)]
        leaf = is_leaf(cert, host=host, keys=keys)
        if leaf:
            results.append(check_purpose(cert, role))
            if host is not None:
                results.append(check_hostname(cert, host))
            if trust:
                same_file = [c for c in certs if c.path == cert.path and c.index > 0]
                others = [c for c in certs if c.path != cert.path]
                results.append(check_chain(cert, trust, at, intermediates=same_file, pool=others, role=role))
            for key in keys:
                if key.public_key_sha256 == cert.public_key_sha256:
                    matched_keys.add(key.where)
                    results.append(check_key_match(cert, key, role))
            if keys and not any(k.public_key_sha256 == cert.public_key_sha256 for k in keys):
                opened = [k for k in keys if k.public_key_sha256 is not None]
                if len(opened) == 1 and len([c for c in certs if is_leaf(c, host=host, keys=keys)]) == 1:
                    matched_keys.add(opened[0].where)
                    results.append(check_key_match(cert, opened[0], role))
        reports.append(CertReport(cert, tuple(results), leaf))
    extra: list[CheckResult] = [check_key_loaded(k, role) for k in keys if k.state != "loaded"]
    for key in keys:
        if key.state == "loaded" and key.where not in matched_keys:
            extra.append(CheckResult.problem("key_match", f"private key {key.where} belongs to none of the "
                                             f"certificates given", subject=key.where, severity="warning"))
    extra.extend(check_ca_file(trust))
    return reports, extra


@dataclass(frozen=True)
class Inspection:
    """What `correlator certs` and `POST /certificates/inspect` report: every check that applies
    to some certificates and keys at one time, and the files that did not load. One object, so
    the CLI's JSON and the API's answer cannot drift apart."""

    at: datetime
    role: Role
    host: str | None
    reports: tuple[CertReport, ...]
    extra: tuple[CheckResult, ...]
    """Results that concern no single certificate (keys, the CA file)."""
    keys: tuple[KeyFacts, ...]
    errors: tuple[str, ...]

    @property
    def problems(self) -> tuple[CheckResult, ...]:
        return (*(r for report in self.reports for r in report.problems), *(r for r in self.extra if r.is_problem))

    @property
    def causes(self) -> list[str]:
        """The root causes found, each once, in the order the checks found them."""
        return list(dict.fromkeys(p.cause for p in self.problems if p.cause))

    @property
    def ok(self) -> bool:
        return not self.problems and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": _iso(self.at),
            "role": self.role,
            "host": self.host,
            "ok": self.ok,
            "causes": self.causes,
            "problems": len(self.problems),
            "certificates": [r.to_dict() for r in self.reports],
            "keys": [k.to_dict() for k in self.keys],
            "checks": [r.to_dict() for r in self.extra],
            "errors": list(self.errors),
        }


def inspect(certs: Sequence[CertFacts], at: datetime, *, role: Role = "server", host: str | None = None,
            trust: Sequence[CertFacts] = (), keys: Sequence[KeyFacts] = (), window: timedelta = EXPIRY_WINDOW,
            errors: Sequence[object] = ()) -> Inspection:
    """`check_all`, kept with what it was asked and what did not load (`errors`, as text)."""
    reports, extra = check_all(certs, at, role=role, host=host, trust=trust, keys=keys, window=window)
    return Inspection(at, role, host, tuple(reports), tuple(extra), tuple(keys), tuple(str(e) for e in errors))
