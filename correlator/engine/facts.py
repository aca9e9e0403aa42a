"""Artifact checks the rules name (`[[check]] name = ...`): what the certificates, mosquitto.conf,
ACL, password file and OPC UA PKI folders of a bundle say about one match, at the time of the
failure. Each returns true, false or unknown (with why), the facts it rests on as evidence, and
names for the remediation (the certificate's subject and file, the ACL line to add).

The checks are code because they compute (chains, ACL semantics); the rules decide what a check
means for a cause (confirm, refute, keep). Private keys are only used to match certificates:
nothing of them reaches a value or an evidence line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlator.artifacts.client_config import ClientConfig, read_client_configs, resolve
from correlator.check_result import CONNECTION_TIME, EXPIRY_WINDOW, JUDGED_AT_ESTIMATE, CheckResult, CheckStatus
from correlator.errors import CorrelatorError
from correlator.model import ANONYMOUS_IDS, Event, is_broker_source
from correlator.report_model import EvidenceRef
from correlator.sources.bundle import Bundle

if TYPE_CHECKING:
    from correlator.artifacts import acl as acl_reader
    from correlator.artifacts import cert_checks, certs, opcua_pki
    from correlator.artifacts import mosquitto_conf as conf_reader
    from correlator.artifacts import passwd as passwd_reader
    from correlator.artifacts.acl import AclFile
    from correlator.artifacts.certs import CertFacts, KeyFacts
    from correlator.artifacts.mosquitto_conf import Config, Listener
    from correlator.artifacts.opcua_pki import PkiStore
    from correlator.artifacts.passwd import PasswordFile
else:
    from correlator.lazy import lazy_module

    # cryptography is imported when a bundle has certificates, keys or PKI folders, not by every analysis
    cert_checks = lazy_module("correlator.artifacts.cert_checks")
    certs = lazy_module("correlator.artifacts.certs")
    opcua_pki = lazy_module("correlator.artifacts.opcua_pki")
    # and the readers of mosquitto.conf, ACL and password files (16 dataclasses made at import, a
    # tenth of the start's) when it has such files: a broker's log on its own needs none of them
    acl_reader = lazy_module("correlator.artifacts.acl")
    conf_reader = lazy_module("correlator.artifacts.mosquitto_conf")
    passwd_reader = lazy_module("correlator.artifacts.passwd")

Check = Callable[["Artifacts", list[Event], dict[str, Any]], CheckResult]
CHECKS: dict[str, Check] = {}
#: The artifact collections a check cannot be true without (Artifacts attribute names).
NEEDS: dict[str, tuple[str, ...]] = {}
#: The values a check gives a rule's explanation and remediation (`{cert_file}`): declared beside
#: the check, so the rule validator can tell a placeholder nothing fills from one a check fills.
PROVIDES: dict[str, frozenset[str]] = {}
#: The values `Artifacts.cert_values` gives for one certificate.
CERT_VALUES = ("cert_file", "cert_subject", "cert_cn", "cert_issuer", "cert_not_after", "cert_not_before", "cert_san")


def check(name: str, needs: tuple[str, ...] = (), provides: tuple[str, ...] = ()) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        NEEDS[name] = needs
        PROVIDES[name] = frozenset(provides)
        return fn
    return register


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# A check's result carries no name here: `Artifacts.check` stamps the name it was asked by.


def _found(evidence: Sequence[EvidenceRef] = (), values: Mapping[str, Any] | None = None) -> CheckResult:
    """What the check looks for is there (the rule's `on_true`)."""
    return CheckResult.problem("", _said(evidence), evidence=tuple(evidence), values=dict(values or {}))


def _clear(evidence: Sequence[EvidenceRef] = (), values: Mapping[str, Any] | None = None) -> CheckResult:
    """The check ran and what it looks for is not there (the rule's `on_false`)."""
    return CheckResult.passed("", _said(evidence), evidence=tuple(evidence), values=dict(values or {}))


def _verdict(found: bool, evidence: Sequence[EvidenceRef] = (),
             values: Mapping[str, Any] | None = None) -> CheckResult:
    return (_found if found else _clear)(evidence, values)


def _unknown(reason: str, evidence: Sequence[EvidenceRef] = (),
             values: Mapping[str, Any] | None = None) -> CheckResult:
    """The check could not run (the rule's `on_unknown`); what it knew is still passed on."""
    return CheckResult.not_run("", reason, evidence=tuple(evidence), values=dict(values or {}))


def _said(evidence: Sequence[EvidenceRef]) -> str:
    return "; ".join(e.text for e in evidence)


@dataclass
class Artifacts:
    """Everything a bundle holds besides logs, loaded once. `now` is the time checks that rest on
    the artifacts alone judge at, injected by the analysis (the time of the last log line, so an
    old bundle is judged as of its own day and a test is deterministic; the moment of analysis
    when there is no log); while it is None they cannot run. Checks about a failure judge at the
    failure's first line."""

    certs: list[CertFacts] = field(default_factory=list)
    keys: list[KeyFacts] = field(default_factory=list)
    confs: list[Config] = field(default_factory=list)
    acls: list[AclFile] = field(default_factory=list)
    passwds: list[PasswordFile] = field(default_factory=list)
    pki: list[PkiStore] = field(default_factory=list)
    client_configs: list[ClientConfig] = field(default_factory=list)
    """What clients were configured with (Node-RED flows, config files): host, port, CA file."""
    errors: list[CorrelatorError] = field(default_factory=list)
    display: dict[str, str] = field(default_factory=dict)
    now: datetime | None = None
    window: timedelta = EXPIRY_WINDOW
    """cert.expiring_soon warns about certificates that expire within it."""

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> Artifacts:
        arts = cls()
        if bundle.certs:
            loaded = certs.load_paths(bundle.certs)
            arts.certs, arts.keys, arts.errors = list(loaded.certs), list(loaded.keys), list(loaded.errors)
        arts.display = {str(p): bundle.name(p) for p in bundle.display}
        root = bundle.roots[0] if bundle.roots and bundle.roots[0].is_dir() else None
        for path in bundle.confs:
            try:
                arts.confs.append(conf_reader.parse_mosquitto_conf(path, bundle_root=root))
            except CorrelatorError as exc:
                arts.errors.append(exc)
        for path in bundle.acls:
            try:
                arts.acls.append(acl_reader.parse_acl(path, display_name=bundle.name(path)))
            except CorrelatorError as exc:
                arts.errors.append(exc)
        for path in bundle.passwds:
            try:
                arts.passwds.append(passwd_reader.parse_passwd(path, display_name=bundle.name(path)))
            except CorrelatorError as exc:
                arts.errors.append(exc)
        for folder in bundle.pki_roots:
            try:
                arts.pki.append(opcua_pki.load_pki(folder))
            except CorrelatorError as exc:
                arts.errors.append(exc)
        files = [*bundle.certs, *bundle.display]
        for path in bundle.client_confs:
            try:
                found = read_client_configs(path)
            except CorrelatorError as exc:
                arts.errors.append(type(exc)(exc.message, file=bundle.name(path), line=exc.line))
                continue
            arts.client_configs.extend(resolve(c, files, bundle.roots) for c in found)
        return arts

    @property
    def empty(self) -> bool:
        return not (self.certs or self.confs or self.acls or self.passwds or self.pki or self.client_configs)

    def name(self, path: str | Path) -> str:
        return self.display.get(str(path), str(path))

    def can_hold(self, name: str) -> bool:
        """Whether check `name` could ever come out true with these artifacts (an ACL check
        without an ACL file cannot): the engine then skips the matches that require it."""
        return name in CHECKS and all(getattr(self, collection) for collection in NEEDS.get(name, ()))

    def check(self, name: str, events: list[Event], context: dict[str, Any]) -> CheckResult:
        fn = CHECKS.get(name)
        if fn is None:
            return CheckResult.not_run(name, f"no artifact check named {name!r}")
        try:
            result = fn(self, events, context)
        except (CorrelatorError, OSError) as exc:
            # the artifacts are the user's files, some looked at on disk only now (a PKI folder):
            # one that turns out unreadable leaves this check unknown. Any other exception is a
            # bug in the check and fails the analysis.
            return CheckResult.not_run(name, f"{name} could not run: {exc}")
        return result.named(name)

    # -- lookups the checks share ---------------------------------------------------------------

    def listener(self, context: dict[str, Any]) -> Listener | None:
        port = context.get("listener_port")
        for conf in self.confs:
            if isinstance(port, int):
                found = conf.listener_for_port(port)
                if found is not None:
                    return found
            tls = [lst for lst in conf.listeners if lst.tls]
            if len(tls) == 1:
                return tls[0]
            if len(conf.listeners) == 1:
                return conf.listeners[0]
        return None

    def conf_file(self, option: str, context: dict[str, Any]) -> Path | None:
        listener = self.listener(context)
        for conf in self.confs:
            ref = conf.file_for(option, listener)
            if ref is not None and ref.found is not None:
                return ref.found
        return None

    def certs_in(self, path: Path | None) -> list[CertFacts]:
        if path is None:
            return []
        wanted = str(path)
        return sorted((c for c in self.certs if c.path == wanted), key=lambda c: c.index)

    def server_chain(self, context: dict[str, Any]) -> list[CertFacts]:
        """The certificates the broker presents: its certfile from mosquitto.conf, else the leaf
        that names itself a server (serverAuth) or whose file is called server*."""
        chain = self.certs_in(self.conf_file("certfile", context))
        if chain:
            return chain
        leaves = [c for c in self.certs if c.index == 0 and not c.is_ca]
        picks: list[Callable[[CertFacts], bool]] = [
            lambda c: "serverAuth" in c.extended_key_usage and "clientAuth" not in c.extended_key_usage,
            lambda c: Path(c.path).name.lower().startswith(("server", "broker"))]
        for pick in picks:
            chosen = [c for c in leaves if pick(c)]
            if len(chosen) == 1:
                return self.certs_in(Path(chosen[0].path))
        return []

    def server_chains(self, context: dict[str, Any]) -> list[list[CertFacts]]:
        """The chains the broker may have presented: its listener's certfile when the port is
        known; else every TLS listener's (a broker with several certificates); else the one
        `server_chain` picks."""
        if self.listener(context) is None:
            chains: list[list[CertFacts]] = []
            for conf in self.confs:
                for lst in conf.listeners:
                    ref = conf.file_for("certfile", lst) if lst.tls else None
                    chain = self.certs_in(ref.found if ref is not None else None)
                    if chain and all(chain[0].sha256 != c[0].sha256 for c in chains):
                        chains.append(chain)
            if len(chains) > 1:
                return chains
        chain = self.server_chain(context)
        return [chain] if chain else []

    def server_leaf(self, context: dict[str, Any]) -> tuple[list[CertFacts], CertFacts, dict[str, Any]] | None:
        """The broker's chain, its leaf and the leaf's names for remediation; None without one."""
        chain = self.server_chain(context)
        return (chain, chain[0], self.cert_values(chain[0])) if chain else None

    def client_certs(self, context: dict[str, Any]) -> list[CertFacts]:
        """Client certificates, narrowed to the client of the match when its name says which."""
        server = {c.sha256 for c in self.server_chain(context)}
        leaves = [c for c in self.certs if c.index == 0 and not c.is_ca and c.sha256 not in server
                  and ("clientAuth" in c.extended_key_usage or "serverAuth" not in c.extended_key_usage)]
        names = {str(v) for k, v in context.items() if k in ("client_id", "source_client", "username") and v}
        source = context.get("source")
        if isinstance(source, str) and ":" in source:
            names.add(source.split(":", 1)[1])
        named = [c for c in leaves if any(n and (n == c.common_name or n in Path(c.path).stem) for n in names)]
        return named or leaves

    def own_configs(self, context: dict[str, Any]) -> list[ClientConfig]:
        """The client configurations of the match's own client: the ones naming its client id, or
        naming as client id (or called as) the client's log (its own lines, or the client side
        the stitcher tied a broker line's connection to, `client_source`). A configuration of
        some other client never speaks for this one."""
        if not self.client_configs:
            return []
        names = {str(v) for k, v in context.items() if k == "client_id" and v and v not in ANONYMOUS_IDS}
        for key in ("source", "client_source"):
            source = context.get(key)
            if isinstance(source, str) and source.startswith("client:"):
                names.add(source.split(":", 1)[1].split("@", 1)[0])
        return [c for c in self.client_configs if (c.client_id and c.client_id in names) or c.path.stem in names]

    def configs_for(self, context: dict[str, Any]) -> list[ClientConfig]:
        """The client configurations that concern the match: its own client's (`own_configs`),
        else (no configuration names an id the match has) all of them."""
        client = context.get("client_id")
        return self.own_configs(context) or [c for c in self.client_configs if not (client and c.client_id)]

    def configured_user(self, context: dict[str, Any]) -> tuple[str, EvidenceRef] | None:
        """The user name the match's own client was configured with, and the line that says so;
        None when its configuration names none (or the bundle has none)."""
        for config in self.own_configs(context):
            if config.username:
                return config.username, self.config_ref(config, f"user name {config.username!r}")
        return None

    def config_ref(self, config: ClientConfig, text: str) -> EvidenceRef:
        return EvidenceRef("artifact", self.name(config.path), config.line, f"{config.label}: {text}")

    def cas(self) -> list[CertFacts]:
        return [c for c in self.certs if c.is_ca]

    def broker_cas(self, context: dict[str, Any]) -> list[CertFacts]:
        found = self.certs_in(self.conf_file("cafile", context))
        return found or self.cas()

    def cert_values(self, cert: CertFacts, prefix: str = "cert") -> dict[str, Any]:
        return {f"{prefix}_file": self.name(cert.path), f"{prefix}_subject": cert.subject,
                f"{prefix}_cn": cert.common_name or "", f"{prefix}_issuer": cert.issuer,
                f"{prefix}_not_after": _iso(cert.not_after), f"{prefix}_not_before": _iso(cert.not_before),
                f"{prefix}_san": ", ".join([*cert.san_dns, *cert.san_ip, *cert.san_uri]) or "(none)"}

    def fact(self, cert_or_path: CertFacts | str | Path, text: str, line: int | None = None) -> EvidenceRef:
        path = cert_or_path.path if isinstance(cert_or_path, certs.CertFacts) else str(cert_or_path)
        return EvidenceRef("artifact", self.name(path), line, text)


def _same_name_facts(arts: Artifacts, cert: CertFacts, found: cert_checks.SameNameIssuers) -> list[EvidenceRef]:
    """Both CAs of the issuer's name, each with its file and its key's fingerprint."""
    out = []
    signer = found.signers[0] if found.signers else None
    for other in found.others:
        text = (f"{arts.name(other.path)} holds a CA named '{cert.issuer}' whose key (SHA-256 "
                f"{other.public_key_sha256}) did not sign {cert.label} ({arts.name(cert.path)})")
        if signer is not None:
            text += (f"; the CA of the same name in {arts.name(signer.path)} did (key SHA-256 "
                     f"{signer.public_key_sha256}): the CA was made again under the same name with a new key")
        else:
            text += "; no CA of that name in the bundle signed it"
        out.append(arts.fact(other, text))
    return out


def failure_time(arts: Artifacts, events: list[Event], context: Mapping[str, Any] | None = None) -> datetime | None:
    """The time certificates are judged at: a broker-aligned time of the failure, never one
    estimated from a file's modification time or borrowed from a banner or a neighbouring line.
    The broker's own lines first, then any line with a time of its own (its source's clock
    corrected), then the time of the stitched connection those lines belong to; only when none
    exists, the estimate (and `judged_at_estimate` says so). For a check that rests on the
    artifacts alone, the analysis's `now`. Never the wall clock: that is for the caller to inject."""
    if not events:
        return arts.now
    timed = [e for e in events if not e.estimated]
    broker = [e.ts for e in timed if is_broker_source(e.source)]
    if broker or timed:
        return datetime.fromtimestamp(min(broker or [e.ts for e in timed]), UTC)
    known = (context or {}).get(CONNECTION_TIME)
    if isinstance(known, (int, float)):
        return datetime.fromtimestamp(float(known), UTC)
    return datetime.fromtimestamp(min(e.ts for e in events), UTC)


def _time_values(events: list[Event], context: Mapping[str, Any]) -> dict[str, Any]:
    """`judged_at_estimate` when `failure_time` had only an estimate to go by."""
    if events and all(e.estimated for e in events) and CONNECTION_TIME not in context:
        return {JUDGED_AT_ESTIMATE: "the certificates were judged at an estimated time (the failure's lines carry no "
                                    "time of their own and no broker line of their connection was found)"}
    return {}


_NO_TIME = "no time to judge the certificates at (no log line, and the analysis gave no time)"


def _leaf_at_failure(arts: Artifacts, events: list[Event], certs: list[CertFacts], what: str,
                     context: Mapping[str, Any]) -> tuple[CertFacts, datetime, dict[str, Any]] | CheckResult:
    """The leaf, the broker-aligned time to judge it at and its values for the rule; or why it
    cannot be judged (no certificate, no time, or only an estimated time)."""
    if not certs:
        return _unknown(f"no {what} certificate in the bundle")
    at = failure_time(arts, events, context)
    if at is None:
        return _unknown(_NO_TIME)
    leaf = certs[0]
    values = {**arts.cert_values(leaf), **_time_values(events, context)}
    if JUDGED_AT_ESTIMATE in values:
        # a file's time bounds the failure from above: it cannot say the certificate was already
        # past its end, nor that it had begun, when the failure happened
        return _unknown(str(values[JUDGED_AT_ESTIMATE]), values=values)
    return leaf, at, values


def _validity(arts: Artifacts, events: list[Event], certs: list[CertFacts], role: cert_checks.Role,
              expired: bool, context: Mapping[str, Any]) -> CheckResult:
    """The leaf's dates against the failure, as cert_checks judges them: the rule's wording,
    the one system's verdict."""
    found = _leaf_at_failure(arts, events, certs, "broker" if role == "server" else role, context)
    if isinstance(found, CheckResult):
        return found
    leaf, at, values = found
    if expired:
        bad = cert_checks.check_expired(leaf, at, role).is_problem
        text = (f"{leaf.label}: notAfter {_iso(leaf.not_after)} is before the failure at {_iso(at)}" if bad
                else f"{leaf.label}: valid until {_iso(leaf.not_after)}, after the failure at {_iso(at)}")
    else:
        bad = cert_checks.check_not_yet_valid(leaf, at, role).is_problem
        text = (f"{leaf.label}: notBefore {_iso(leaf.not_before)} is after the failure at {_iso(at)}" if bad
                else f"{leaf.label}: valid since {_iso(leaf.not_before)}, before the failure at {_iso(at)}")
    if not bad:
        # a valid certificate's dates must never fill a text that calls it expired (or not yet valid)
        values = {"cert_file": values["cert_file"]}
    return _verdict(bad, [arts.fact(leaf, text)], values)


def _server_validity(arts: Artifacts, events: list[Event], context: dict[str, Any], expired: bool) -> CheckResult:
    """The broker's certificate at the failure. When the listener is not known and the broker has
    several certificates, the one that shows the problem is the candidate; none is named as the
    cause when all are valid."""
    chains = arts.server_chains(context)
    at = failure_time(arts, events, context)
    if len(chains) > 1 and at is not None:
        judge = cert_checks.check_expired if expired else cert_checks.check_not_yet_valid
        bad = [chain for chain in chains if judge(chain[0], at, "server").is_problem]
        chains = bad if len(bad) == 1 else chains
        if len(chains) > 1:
            files = ", ".join(arts.name(c[0].path) for c in chains)
            return _unknown(f"the broker has several certificates ({files}) and the listener of the failure is not "
                            "known")
    return _validity(arts, events, chains[0] if chains else [], "server", expired=expired, context=context)


@check("server_cert_expired", needs=("certs",), provides=CERT_VALUES)
def _server_expired(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    return _server_validity(arts, events, context, expired=True)


@check("server_cert_not_yet_valid", needs=("certs",), provides=CERT_VALUES)
def _server_future(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    return _server_validity(arts, events, context, expired=False)



@check("server_cert_valid_at_failure", needs=("certs",), provides=(*CERT_VALUES, "clock_verdict"))
def _server_valid(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    """The broker's certificate is valid at the broker's time of the failure: a client that calls
    it not yet valid or expired then has its own clock wrong (client.clock_skew), whatever its
    offset looks like (a whole number of hours reads like a time zone)."""
    found = _leaf_at_failure(arts, events, arts.server_chain(context), "broker", context)
    if isinstance(found, CheckResult):
        return found
    leaf, at, values = found
    valid = not (cert_checks.check_expired(leaf, at, "server").is_problem
                 or cert_checks.check_not_yet_valid(leaf, at, "server").is_problem)
    text = (f"{leaf.label}: valid from {_iso(leaf.not_before)} to {_iso(leaf.not_after)}, "
            f"{'so valid' if valid else 'not valid'} at the broker's time of the failure ({_iso(at)})")
    values["clock_verdict"] = (f"The broker's certificate ({arts.name(leaf.path)}) is valid from "
                               f"{_iso(leaf.not_before)} to {_iso(leaf.not_after)}, and the failure was at {_iso(at)} "
                               "by the broker's clock: "
                               "what the client says of its dates comes from its own clock."
                               if valid else "")
    return _verdict(valid, [arts.fact(leaf, text)], values)


@check("client_cert_expired", needs=("certs",), provides=(*CERT_VALUES, "client_cert_files"))
def _client_expired(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    certs = arts.client_certs(context)
    if not certs:
        return _unknown("no client certificate in the bundle")
    at = failure_time(arts, events, context)
    if at is None:
        return _unknown(_NO_TIME)
    expired = [c for c in certs if cert_checks.check_expired(c, at, "client").is_problem]
    chosen = expired[0] if expired else certs[0]
    result = _validity(arts, events, [chosen], "client", expired=True, context=context)
    return replace(result, values={**result.values,
                                   "client_cert_files": ", ".join(arts.name(c.path) for c in certs)})


@check("client_cert_untrusted", needs=("certs",), provides=(*CERT_VALUES, "ca_file"))
def _client_untrusted(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    certs = arts.client_certs(context)
    trust = arts.broker_cas(context)
    if not certs or not trust:
        return _unknown("no client certificate or no CA certificate in the bundle")
    at = failure_time(arts, events, context)
    if at is None:
        return _unknown(_NO_TIME)
    evidence = []
    untrusted = None
    for cert in certs:
        result = cert_checks.check_chain(cert, trust, at, role="client")
        if not result.ran:
            continue
        evidence.append(arts.fact(cert, f"{cert.label}: {result.message}"))
        if result.is_problem and result.cause in ("tls.client_cert_untrusted", "tls.server_chain_incomplete"):
            untrusted = cert
    if not evidence:
        return _unknown("the chain check could not run")
    if untrusted is not None:
        # the broker's cafile may hold a CA of the issuer's name made with another key
        evidence.extend(_same_name_facts(arts, untrusted, cert_checks.same_name_issuers(untrusted, arts.cas())))
    values = {**arts.cert_values(untrusted or certs[0]), **_time_values(events, context)}
    ca_file = arts.conf_file("cafile", context)
    values["ca_file"] = arts.name(ca_file) if ca_file else "the broker's cafile"
    if untrusted is None:
        return _clear(evidence, values)
    return _found([e for e in evidence if untrusted.label in e.text or "did not sign" in e.text], values)


@check("server_cert_untrusted", needs=("certs",), provides=(*CERT_VALUES, "client_ca_file"))
def _server_untrusted(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    found = arts.server_leaf(context)
    if found is None:
        return _unknown("no broker certificate in the bundle")
    _chain, leaf, values = found
    if leaf.self_signed:
        return _found([arts.fact(leaf, f"{leaf.label} is self-signed: clients trust it only if they "
                                                    "hold this very certificate")], values)
    same_name = cert_checks.same_name_issuers(leaf, arts.cas())
    if same_name.others:
        return _found(_same_name_facts(arts, leaf, same_name), values)
    named = _configured_trust(arts, events, context, _chain, leaf)
    if named is not None:
        return replace(named, values={**values, **named.values})
    if cert_checks.find_issuer(leaf, arts.cas()) is None:
        return _found([arts.fact(leaf, f"no CA certificate in the bundle issued {leaf.label} "
                                                    f"(issuer: {leaf.issuer})")], values)
    return _unknown("the bundle holds the broker certificate's issuer; which CA file the clients use is unknown")


def _configured_trust(arts: Artifacts, events: list[Event], context: dict[str, Any], chain: list[CertFacts],
                      leaf: CertFacts) -> CheckResult | None:
    """The broker's chain against the CA files the clients' configurations name (Node-RED's
    tls-config, a paho or gateway config file): found when one of them cannot chain it, clear when
    all can; None when no configuration names a CA file the bundle holds."""
    at = failure_time(arts, events, context)
    judged = [(c, arts.certs_in(c.found["ca_file"])) for c in arts.configs_for(context)
              if c.tls is not False and c.verify is not False and "ca_file" in c.found]
    judged = [(c, trust) for c, trust in judged if trust]
    if at is None or not judged:
        return None
    bad: list[EvidenceRef] = []
    good: list[EvidenceRef] = []
    bad_files: set[str] = set()
    for config, trust in judged:
        ca_name = arts.name(config.found["ca_file"])
        result = cert_checks.check_chain(leaf, trust, at, intermediates=chain[1:], role="server")
        if result.is_problem and result.cause == "tls.server_cert_untrusted":
            held = ", ".join(t.label for t in trust)
            bad.append(arts.config_ref(config, f"trusts {ca_name} ({held}), which cannot verify the broker's "
                                               f"{leaf.label}: {result.message}"))
            bad_files.add(ca_name)
        elif result.ran:
            good.append(arts.config_ref(config, f"trusts {ca_name}, which verifies the broker's {leaf.label}"))
    if bad:
        return _found(bad, {"client_ca_file": ", ".join(sorted(bad_files))})
    return _clear(good) if good else None


@check("server_chain_incomplete", needs=("certs",), provides=(*CERT_VALUES, "intermediate_file"))
def _chain_incomplete(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    found = arts.server_leaf(context)
    if found is None:
        return _unknown("no broker certificate in the bundle")
    chain, leaf, values = found
    if leaf.self_signed:
        return _clear([], values)
    issuer = cert_checks.find_issuer(leaf, arts.certs)
    if issuer is None:
        return _unknown(f"the issuer of {leaf.label} ({leaf.issuer}) is not in the bundle")
    if issuer.self_signed:
        return _clear([arts.fact(leaf, f"{leaf.label} is issued directly by the root {issuer.label}")],
                           values)
    presented = {c.sha256 for c in chain}
    if issuer.sha256 in presented:
        return _clear([arts.fact(leaf, f"the broker's certfile carries the intermediate {issuer.label}")],
                           values)
    values["intermediate_file"] = arts.name(issuer.path)
    return _found([arts.fact(leaf, f"the broker's certfile holds {leaf.label} without its intermediate "
                                                f"{issuer.label} (found in {arts.name(issuer.path)})")], values)


@check("server_hostname_mismatch", needs=("certs",), provides=(*CERT_VALUES, "san_verdict", "wanted_san"))
def _hostname(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    found = arts.server_leaf(context)
    if found is None:
        return _unknown("no broker certificate in the bundle")
    _chain, leaf, values = found
    host = context.get("dial_host") or context.get("remote_host")
    configured = [c for c in arts.configs_for(context) if c.host and c.tls is not False and c.verify is not False]
    if not host and len({c.servername or c.host for c in configured}) == 1:
        host = configured[0].servername or configured[0].host
    names = [*leaf.san_dns, *leaf.san_ip]
    if not isinstance(host, str) or not host:
        values["san_verdict"] = (f"The certificate names {', '.join(names) or 'no subjectAltName at all'}"
                                 f" (CN {leaf.common_name}).")
        values["wanted_san"] = "DNS:<the host name clients dial>"
        return _unknown("the host clients dial is not in their logs", [arts.fact(leaf, values["san_verdict"])],
                        values)
    verdict = cert_checks.check_hostname(leaf, host)
    kind = "IP" if host.replace(".", "").isdigit() or ":" in host else "DNS"
    values["wanted_san"] = f"{kind}:{host}"
    values["san_verdict"] = (f"Clients dial {host}; the certificate names {', '.join(names) or 'no SAN'} "
                             f"(CN {leaf.common_name}).")
    if not verdict.is_problem:
        return _clear([arts.fact(leaf, f"{leaf.label} is valid for {host}")], values)
    lenient = verdict.details.get("libmosquitto") is True
    note = " (libmosquitto accepts it through the CN; Python and other strict clients do not)" if lenient else ""
    return _found([arts.fact(leaf, f"{host} is not in the subjectAltName of {leaf.label}{note}")], values)


@check("client_key_problem", needs=("certs", "keys"), provides=CERT_VALUES)
def _client_key(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    certs = arts.client_certs(context)
    if not certs or not arts.keys:
        return _unknown("no client certificate or key in the bundle")
    evidence = []
    for key in arts.keys:
        if key.public_key_sha256 is None:
            opened = cert_checks.check_key_loaded(key, "client")
            evidence.append(arts.fact(key.path, opened.message if opened.is_problem
                                      else f"the key cannot be opened: {key.state}"))
    for cert in certs:
        if not any(cert_checks.check_key_match(cert, key, "client").status is CheckStatus.PASSED
                   for key in arts.keys):
            evidence.append(arts.fact(cert, f"no key in the bundle belongs to {cert.label}"))
    return _verdict(bool(evidence), evidence, arts.cert_values(certs[0]))


def _listener_tls(arts: Artifacts, context: dict[str, Any], want_tls: bool) -> CheckResult:
    listener = arts.listener(context)
    if listener is None:
        return _unknown("no mosquitto.conf listener for this port")
    text = f"listener {listener.port}: TLS {'on' if listener.tls else 'off'} ({listener.location})"
    ref = EvidenceRef("artifact", arts.name(listener.location.rsplit(":", 1)[0]), _line(listener.location), text)
    return _verdict(listener.tls == want_tls, [ref], {"listener_port": listener.port})


@check("listener_is_tls", needs=("confs",), provides=("listener_port",))
def _is_tls(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    """Plain MQTT sent to this listener is a mismatch only if the listener speaks TLS."""
    return _listener_tls(arts, context, True)


@check("listener_is_plain", needs=("confs",), provides=("listener_port",))
def _is_plain(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    """A TLS client that gets nothing back is at a plain listener only if the listener is plain."""
    return _listener_tls(arts, context, False)


def _line(location: str) -> int | None:
    tail = location.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


@check("listener_requires_certificate", needs=("confs",))
def _requires_cert(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    listener = arts.listener(context)
    if listener is None:
        return _unknown("no mosquitto.conf listener for this port")
    setting = listener.get("require_certificate")
    text = f"listener {listener.port}: require_certificate {'true' if listener.require_certificate else 'false'}"
    ref = EvidenceRef("artifact", arts.name(setting.file) if setting else arts.name(listener.location),
                      setting.line if setting else None, text)
    return _verdict(listener.require_certificate, [ref])


@check("anonymous_allowed", needs=("confs",), provides=("password_file",))
def _anonymous(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    listener = arts.listener(context)
    if listener is None:
        return _unknown("no mosquitto.conf")
    allowed = listener.security.allow_anonymous
    setting = listener.security.get("allow_anonymous")
    text = (f"listener {listener.port}: allow_anonymous {'true' if allowed else 'false'}"
            + ("" if setting else " (mosquitto 2.0's default)"))
    ref = EvidenceRef("artifact", arts.name(setting.file) if setting else arts.name(listener.location),
                      setting.line if setting else None, text)
    values = {"password_file": _password_file_name(arts, listener)}
    return _verdict(allowed, [ref], values)


def _password_file_name(arts: Artifacts, listener: Listener | None) -> str:
    for conf in arts.confs:
        ref = conf.file_for("password_file", listener)
        if ref is not None:
            return arts.name(ref.found) if ref.found else ref.setting.value
    return "/etc/mosquitto/passwd"


#: The group a refused login goes to when nothing tells a missing user name from a wrong one:
#: such refusals make a finding of their own that names both causes.
UNDECIDED_LOGIN = "no user name, or a wrong one"


@check("client_sent_no_username", provides=("refused_login", "login_reading"))
def _no_username(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    """Whether the refused connection's CONNECT carried no user name, from everything its lines
    and the broker's config say: the CONNECT's flag as either side logged it (carried to every line
    of the stitched connection), else the listener's settings (with allow_anonymous true a client
    without a user name is let in, so a refusal is of a user name and password). When neither
    decides, the result is unknown and `refused_login` puts the refusal in a finding of its own."""
    listener = arts.listener(context)
    conf = next((c for c in arts.confs if listener is not None and listener in c.listeners), None)
    verdict = conf.login_verdict(listener, None) if listener is not None and conf is not None else None
    settings = [EvidenceRef("artifact", arts.name(setting.file), setting.line,
                            f"listener {listener.port if listener else ''}: {setting.name} {setting.value}")
                for setting in (verdict.evidence if verdict is not None else ())]
    lets_anonymous_in = settings if verdict is not None and verdict.accepted is True else []
    flag = context.get("has_username")
    if flag is not None and str(flag) in ("0", "1"):
        sent = str(flag) == "1"
        said = next((e for e in events if "has_username" in e.fields and e.kind == "mqtt.connect"), None)
        reading = ("The client's CONNECT carried " + ("a user name" if sent else "no user name")
                   + (f" ({said.file}:{said.line})" if said is not None else " (its log says so)")
                   + (": the password check failed for it." if sent else "."))
        # the settings that refuse a client without a user name, where the bundle has them
        refusing = settings if not sent and verdict is not None and verdict.accepted is False else []
        return _verdict(not sent, refusing, {"login_reading": reading})
    configured = arts.configured_user(context)
    if configured is not None:
        user, ref = configured
        reading = (f"The client's configuration ({ref.file}{f':{ref.line}' if ref.line else ''}) gives it user "
                   f"{user}, so its CONNECT carried a user name: the password check failed for it.")
        return _clear([ref], {"login_reading": reading})
    if lets_anonymous_in:
        reading = (f"Listener {listener.port if listener else ''} lets clients without a user name in "
                   "(allow_anonymous true), so the refused client sent a user name and the password check "
                   "failed for it.")
        return _clear(lets_anonymous_in, {"login_reading": reading})
    reading = ("Nothing in the bundle says whether the refused CONNECT carried a user name: the broker logs a "
               "client without one exactly as a wrong password. The client's own log at debug level (paho: "
               "'Sending CONNECT (u0, ...' or u1), or its configuration, decides.")
    return _unknown("neither the connection's lines nor the broker's config tell a missing user name from a "
                    "wrong one", values={"refused_login": UNDECIDED_LOGIN, "login_reading": reading})


@check("user_in_password_file", needs=("passwds",), provides=("password_file", "username", "user_verdict"))
def _user_known(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    values = {"password_file": _password_file_name(arts, arts.listener(context)), "username": context.get("username")}
    if not arts.passwds:
        values["user_verdict"] = ""
        return _unknown("no password file in the bundle", values=values)
    pw = arts.passwds[0]
    user = context.get("username")
    named: list[EvidenceRef] = []
    if not isinstance(user, str) or not user:
        # the logs name no user (mosquitto names it only on success): the client's own
        # configuration says which user it logs in as
        configured = arts.configured_user(context)
        if configured is None:
            values["user_verdict"] = f"The password file knows: {', '.join(pw.usernames) or 'no users'}."
            return _unknown("the user name is not in the logs", values=values)
        user, ref = configured
        values["username"] = user
        named = [ref]
    by = f" (the client's configuration, {named[0].file}, names it)" if named else ""
    entry = pw.user(user)
    if entry is None:
        values["user_verdict"] = (f"User {user}{by} is not in the password file ({arts.name(pw.path)}): an unknown "
                                  "user, not a wrong password.")
        return _clear([*named, EvidenceRef("artifact", arts.name(pw.path), None, f"no user {user!r}")], values)
    values["user_verdict"] = (f"User {user}{by} is in the password file (line {entry.line}): the password is "
                              "wrong.")
    return _found([*named, EvidenceRef("artifact", arts.name(pw.path), entry.line, f"user {user!r} exists")],
                  values)


def _acl(arts: Artifacts, context: dict[str, Any], action: str) -> CheckResult:
    if not arts.acls:
        unnamed = [conf for conf in arts.confs if not any(ref.option == "acl_file" for ref in conf.referenced_files)]
        if arts.confs and len(unnamed) == len(arts.confs):
            # the broker's own config decides: without acl_file mosquitto lets every topic through
            conf = unnamed[0]
            return _clear([EvidenceRef("artifact", arts.name(conf.path), None,
                                       "mosquitto.conf names no acl_file: the broker allows every topic")],
                          {"acl_file": "(none: mosquitto.conf names no acl_file)"})
        return _unknown("no ACL file in the bundle")
    acl = arts.acls[0]
    topic = context.get("topic")
    client_id = str(context.get("client_id") or "")
    username = context.get("username")
    if not isinstance(topic, str) or not topic:
        return _unknown("no topic in the evidence")
    user = username if isinstance(username, str) and username else None
    values: dict[str, Any] = {"acl_file": arts.name(acl.path)}
    if action == "write":
        decision = acl.check(user, client_id, topic, "write")
        allowed, reason, fix, section, entry = (decision.allowed, decision.reason, decision.fix, decision.fix_section,
                                                decision.entry)
    else:
        sub = acl.check_subscription(user, client_id, topic)
        allowed, reason, fix, section = sub.delivery != "none", sub.reason, sub.fix, sub.fix_section
        entry = sub.denying[0] if sub.denying else None
    values["acl_verdict"] = (reason[:1].upper() + reason[1:]).rstrip(".") + "." if reason else ""
    values["acl_line_to_add"] = f"{fix} (under '{section}')" if fix and section else (fix or "")
    ref = EvidenceRef("artifact", arts.name(acl.path), entry.line if entry else None,
                      (entry.text if entry else reason))
    return _verdict(not allowed, [ref], values)


@check("acl_denies_publish", needs=("acls",), provides=("acl_file", "acl_verdict", "acl_line_to_add"))
def _acl_publish(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    return _acl(arts, context, "write")


@check("acl_denies_subscribe", needs=("acls",), provides=("acl_file", "acl_verdict", "acl_line_to_add"))
def _acl_subscribe(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    return _acl(arts, context, "read")


@check("opcua_cert_rejected", needs=("pki",), provides=("rejected_file", "trusted_folder", "cert_subject", "cert_file"))
def _opcua_rejected(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    if not arts.pki:
        return _unknown("no OPC UA PKI folder in the bundle")
    for store in arts.pki:
        for cert in store.rejected:
            trusted = "trusted/certs" if (store.root / "trusted" / "certs").is_dir() else "trusted"
            # as the bundle names them: the PKI folder's name with the cert's place in it cut off
            shown = arts.name(cert.path)
            inside = str(Path(cert.path).relative_to(store.root)) if Path(cert.path).is_relative_to(store.root) else ""
            root = shown[: -len(inside)] if inside and shown.endswith(inside) else ""
            return _found([EvidenceRef("artifact", arts.name(cert.path), None,
                                                    f"{cert.common_name or cert.subject} [{cert.thumbprint}] is in the "
                                                    "rejected folder")],
                          {"rejected_file": shown, "trusted_folder": f"{root}{trusted}/", "cert_subject": cert.subject,
                           "cert_file": shown})
    return _clear()


@check("opcua_server_cert_changed", needs=("pki",),
       provides=("own_cert_file", "stale_cert_file", "own_thumbprint", "stale_thumbprint", "application_uri",
                 "cert_subject", "stale_cert_folder"))
def _opcua_cert_changed(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    """The server's own certificate against the copy a peer trusts: same subject and
    ApplicationUri, another thumbprint means the server renewed it and the peer never got the
    new one."""
    if not arts.pki:
        return _unknown("no OPC UA PKI folder in the bundle")
    stale = opcua_pki.stale_copies(arts.pki)
    if not stale:
        owns = [c for store in arts.pki for c in store.own]
        if not owns:
            return _unknown("no PKI folder in the bundle has an own/ certificate to compare the trusted copies with")
        return _clear()
    first = stale[0]
    evidence: list[EvidenceRef] = []
    for item in stale:
        own, copy = item.own, item.copy
        evidence.append(EvidenceRef("artifact", arts.name(own.path), None,
                                    f"{own.common_name or own.subject} ({own.application_uri or 'no ApplicationUri'}) "
                                    f"presents thumbprint {own.thumbprint}, valid from {_iso(own.not_before)}"))
        evidence.append(EvidenceRef("artifact", arts.name(copy.path), None,
                                    f"the copy trusted in {Path(arts.name(copy.path)).parent} has the same subject and "
                                    f"ApplicationUri but thumbprint {copy.thumbprint}, valid from "
                                    f"{_iso(copy.not_before)}: an older certificate"))
    stale_file = arts.name(first.copy.path)
    return _found(evidence, {
        "own_cert_file": arts.name(first.own.path), "stale_cert_file": stale_file,
        "own_thumbprint": first.own.thumbprint, "stale_thumbprint": first.copy.thumbprint,
        "application_uri": first.own.application_uri or "(none)", "cert_subject": first.own.subject,
        "stale_cert_folder": f"{Path(stale_file).parent}/"})


@check("broker_tls_files_problem")
def _broker_files(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    if not arts.confs:
        return _unknown("no mosquitto.conf in the bundle")
    evidence = []
    for conf in arts.confs:
        for ref in conf.missing_files:
            evidence.append(EvidenceRef("artifact", arts.name(ref.setting.file), ref.setting.line,
                                        f"{ref.option} {ref.setting.value}: not in the bundle"))
        for listener in conf.listeners:
            certref = conf.file_for("certfile", listener)
            certs = arts.certs_in(certref.found if certref is not None else None)
            keyref = conf.file_for("keyfile", listener)
            if certs and keyref is not None and keyref.found is not None:
                keys = [k for k in arts.keys if k.path == str(keyref.found)]
                if keys and cert_checks.check_key_match(certs[0], keys[0], "server").is_problem:
                    evidence.append(arts.fact(keyref.found, f"keyfile does not belong to certfile {certs[0].label}"))
    return _verdict(bool(evidence), evidence)


@check("cert_expiring_soon", needs=("certs",), provides=("expiring",))
def _expiring(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    now = arts.now
    if now is None:
        return _unknown(_NO_TIME)
    soon = [c for c in arts.certs if cert_checks.check_expiring_soon(c, now, arts.window).is_problem]
    if not soon:
        return _clear()
    lines = [f"{c.label} ({arts.name(c.path)}) expires on {_iso(c.not_after)}, in {(c.not_after - now).days} days."
             for c in soon]
    # the values are the data (which certificate, when); the sentence around them is the rule's
    expiring = "; ".join(f"{c.label} ({arts.name(c.path)}) on {_iso(c.not_after)}, in {(c.not_after - now).days} days"
                         for c in soon)
    return _found([arts.fact(c, line) for c, line in zip(soon, lines, strict=True)], {"expiring": expiring})


@check("config_insecure", provides=("anonymous_tls_ports", "old_tls_ports", "old_tls_versions"))
def _insecure(arts: Artifacts, events: list[Event], context: dict[str, Any]) -> CheckResult:
    """Listeners with TLS that let anonymous clients in, or that allow TLS before 1.2: the ports
    of each and the old versions allowed (the rule's passages and fix steps say what each kind of
    problem found means and what to set)."""
    evidence = []
    anonymous: list[str] = []
    old: list[str] = []
    versions: list[str] = []
    for conf in arts.confs:
        for listener in conf.listeners:
            if listener.tls and listener.security.allow_anonymous and not listener.require_certificate \
                    and listener.origin != "local_only":
                setting = listener.security.get("allow_anonymous")
                evidence.append(EvidenceRef("artifact", arts.name(setting.file if setting else conf.path),
                                            setting.line if setting else None,
                                            f"listener {listener.port} has TLS but lets anonymous clients in"))
                anonymous.append(str(listener.port))
            version = listener.tls_version
            if version in ("tlsv1", "tlsv1.1"):
                evidence.append(EvidenceRef("artifact", arts.name(conf.path), None,
                                            f"listener {listener.port} allows {version}"))
                old.append(str(listener.port))
                versions += [version] if version not in versions else []
    if not evidence:
        return _clear()
    return _found(evidence, {"anonymous_tls_ports": ", ".join(anonymous), "old_tls_ports": ", ".join(old),
                             "old_tls_versions": ", ".join(versions)})
