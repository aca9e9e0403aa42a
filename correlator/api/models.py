"""Request and response models. Findings, their evidence, sources and an analysis's summary are
the report model's own schema (correlator.report_model, "correlator.analysis/2"), extended where
the API adds to it (a finding's `key`), so the API and the CLI's JSON report cannot drift apart.
The certificate models mirror the `to_dict()` of the artifact objects field for field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, with_config

from correlator.artifacts.certs import KeyState, SourceFormat
from correlator.artifacts.probe import StepStatus
from correlator.model import Level, Severity
from correlator.report_model import About, FindingDict, HostDict, IsoTime, SourceDict, SummaryDict

Status = Literal["queued", "running", "done", "failed"]
FieldValue = str | int | float | bool
#: A time as the API writes it: ISO 8601 in UTC, as the report does.
Timestamp = IsoTime
AnalysisId = Annotated[str, Field(description="The analysis's id (16 hex digits)", examples=["d7cb9213372d47d2"])]


class ApiModel(BaseModel):
    """The API's models: a field's docstring is its description in the schema."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class ErrorDetail(ApiModel):
    loc: list[str | int] = Field(examples=[["query", "level"]])
    """Where: `query`, `path` or the body, then the parameter's name."""
    message: str = Field(examples=["Input should be 'debug', 'info', 'notice', 'warning', 'error' or 'critical'"])
    """What is wrong with it."""


class ErrorOut(ApiModel):
    """Every error answer: the status again, a short code and a sentence for a person."""

    status: int = Field(examples=[404])
    """The HTTP status again."""
    error: str = Field(examples=["not_found"])
    """The status as a short code."""
    message: str = Field(examples=["no analysis 'd7cb9213372d47d2'"])
    """What went wrong, for a person."""
    details: list[ErrorDetail] = Field(default_factory=list)
    """One entry per invalid parameter of a 422."""


# -- service -----------------------------------------------------------------------------------


class HealthOut(ApiModel):
    status: Literal["ok"] = "ok"
    """Always `ok`: the process answers (readiness is `/ready`)."""


class ReadyOut(ApiModel):
    status: Literal["ready", "not ready"]
    """Whether the server takes work now."""
    problems: list[str]
    """Why not (the database, the scheduler, disk space), empty when ready."""


class VersionOut(ApiModel):
    name: str = Field(examples=["correlator"])
    """The program's name."""
    version: str = Field(examples=["0.9.0"])
    """Its version."""
    api: str = Field(examples=["v1"])
    """The API's version: the prefix of every route (`/api/v1`)."""
    report_schema: str = Field(examples=["correlator.analysis/2"])
    """The version of the report's JSON (`GET /analyses/{id}/report?format=json`, `analyze --json`)."""


class FormatOut(ApiModel):
    name: str = Field(examples=["mosquitto"])
    """The format's name (`--source-format`, a source's `format`)."""
    title: str = Field(examples=["Eclipse Mosquitto broker log"])
    """What it reads, for a person."""
    role: str = Field(examples=["broker", "client", "gateway"])
    """Who writes such logs: a log read with it is named after this (`broker`, `client:<name>` ...)."""
    file: str = Field(examples=["parsers/mosquitto.toml"])
    """The definition file it was loaded from."""
    multiline: bool
    """Whether a record may span lines (a stack trace under its head line)."""
    messages: int = Field(ge=0, examples=[84])
    """How many kinds of message it tells apart."""
    fallback: bool
    """Whether it is the generic format that reads lines no other format explains."""


class RuleOut(ApiModel):
    id: str = Field(examples=["tls.server_cert_expired"])
    """The root cause's id: a finding's `id`."""
    title: str = Field(examples=["The broker's certificate has expired"])
    """What the cause is, in a line."""
    severity: Severity
    """The severity of its findings."""
    file: str = Field(examples=["rules/tls/server_cert_expired.toml"])
    """The definition file it was loaded from."""
    look_alike: list[str] = Field(examples=[["tls.untrusted_ca"]])
    """Causes whose symptoms look the same: the finding says how this one was told apart."""
    explains: list[str] = Field(examples=[["tls.handshake_failed"]])
    """Causes that are consequences of this one: their findings are folded into this one's."""


# -- findings ----------------------------------------------------------------------------------


@with_config(ConfigDict(extra="forbid"))
class FindingOut(FindingDict):
    """A finding of the report with `key`: its address (`/findings/{key}` of its analysis), the
    same for batch and live findings: the rule id, and for a grouped finding `~` and a hash of its
    group (`auth.bad_credentials~3f9a2c1b`); stable across analyses of the same logs, so a
    dashboard updates a live finding in place (api/finding_keys.py)."""

    key: Annotated[str, About("Its address: `/findings/{key}` of its analysis, the same for a live finding",
                              ("auth.bad_credentials~3f9a2c1b", "tls.server_cert_expired"))]


class FindingList(ApiModel):
    analysis_id: AnalysisId
    total: int
    """Findings that pass the filters (all of them: a finding list is never paged)."""
    items: list[FindingOut]
    """The findings, worst first."""


# -- analyses ----------------------------------------------------------------------------------


class AnalysisOut(ApiModel):
    id: AnalysisId
    name: str = Field(examples=["bundle.zip"])
    """The upload's name (as sent, else sniffed: upload.zip, paste.log)."""
    status: Status
    """queued and running analyses are polled until done or failed."""
    phase: str
    """What the analysis is doing or did: queued, extracting, analysing, storing, done, failed."""
    queue_position: int | None = Field(default=None, ge=1)
    """While queued: 1 for the next to start among analyses of its size (small bundles have
    slots of their own)."""
    progress: float = Field(ge=0, le=1)
    """How far it is, from 0 to 1 (1 once done)."""
    events: int
    """Timeline events stored so far."""
    size: int
    """Bytes uploaded."""
    created: Timestamp
    """When it was uploaded, in UTC."""
    updated: Timestamp
    """When its status or progress last changed, in UTC."""
    message: str | None
    """Why a failed analysis failed."""
    summary: SummaryDict | None
    """Findings, worst severity, events, time range, connections (once done)."""
    artifacts: dict[str, int] = Field(examples=[{"certificates": 2, "keys": 1, "configs": 1}])
    """Certificates, keys, configs, ACL and password files and PKI folders read."""
    errors: list[str]
    """Files that could not be read, named by their place in the bundle (`bundle.zip!a/b.pem:1: ...`)."""
    skipped: list[str]
    """Files that are neither logs nor artifacts, with what they were taken for."""
    notes: list[str]
    """What the reader had to cut short (kept events, --since/--until)."""
    hosts: list[HostDict] = []
    """The machines of the bundle, each with the ids of its findings."""


class AnalysisBrief(ApiModel):
    id: AnalysisId
    name: str
    """The upload's name."""
    status: Status
    """queued and running analyses are polled until done or failed."""
    progress: float = Field(ge=0, le=1)
    """How far it is, from 0 to 1."""
    created: Timestamp
    """When it was uploaded, in UTC."""
    findings: int | None
    """How many findings (null until done)."""
    worst_severity: Severity | None
    """The worst finding's severity (null until done, or without findings)."""


class AnalysisList(ApiModel):
    total: int
    """Analyses that pass the `status` filter, over all pages."""
    items: list[AnalysisBrief]
    """This page's analyses, newest first."""


class SourceList(ApiModel):
    analysis_id: AnalysisId
    items: list[SourceDict]
    """The logs read, and how each was placed in time."""


class EventOut(ApiModel):
    seq: int
    """Position in the analysis's timeline: the page cursor."""
    time: Timestamp
    """When it happened, in UTC, after the source's zone and clock offset."""
    time_text: str
    """The time as the line wrote it."""
    estimated: bool
    """The line had no time of its own: it takes its neighbours' (or its file's)."""
    source: str = Field(examples=["broker", "client:edge-02"])
    """The source that wrote it: `broker`, `client:<name>` ..."""
    host: str
    """The host of the bundle it comes from ('' when nothing names one)."""
    file: str
    """The file, by its place in the bundle."""
    line: int
    """Its line in the file (1 is the first)."""
    level: Level
    """How bad the line itself says it is."""
    kind: str = Field(examples=["tls.handshake_failed"])
    """What the line says, in the one vocabulary of event kinds."""
    fields: dict[str, FieldValue]
    """What the format read from the line (client id, address, reason ...)."""
    raw: str
    """The line itself (secrets redacted)."""
    format: str
    """The log format it was read with."""
    skew: float
    """Seconds the source's clock was found off by (already corrected in `time`)."""
    connection: str | None
    """The stitched connection the event belongs to."""
    client: str | None
    """The client the event belongs to: its client id, its client log, or its stitched connection."""


class TimelinePage(ApiModel):
    analysis_id: AnalysisId
    items: list[EventOut]
    """The page's events, in time order."""
    next_cursor: int | None
    """Pass as `after` for the next page; null on the last page."""


# -- artifacts ---------------------------------------------------------------------------------


class SanOut(ApiModel):
    """A certificate's subject alternative names, by type."""

    dns: list[str] = Field(examples=[["broker.plant.local"]])
    """DNS names."""
    ip: list[str] = Field(examples=[["10.0.0.5"]])
    """IP addresses."""
    uri: list[str]
    """URIs (OPC UA application URIs among them)."""


class CertificateOut(ApiModel):
    """The facts of one certificate, as `correlator certs` reads them."""

    path: str = Field(examples=["server.crt"])
    """The file it came from, as uploaded."""
    index: int = Field(ge=0)
    """Its place in that file (0 for the first certificate of a PEM bundle)."""
    format: SourceFormat
    """How the file holds it."""
    subject: str = Field(examples=["CN=broker.plant.local,O=Plant"])
    """Its subject (RFC 4514)."""
    issuer: str = Field(examples=["CN=Plant CA,O=Plant"])
    """Its issuer (RFC 4514)."""
    common_name: str | None = Field(examples=["broker.plant.local"])
    """The subject's common name, if it has one."""
    serial: str = Field(examples=["4f:0a:91:2c"])
    """Its serial number in hex."""
    san: SanOut
    """Its subject alternative names."""
    has_san: bool
    """Whether it has the extension at all (clients check host names against it, not the CN)."""
    not_before: Timestamp
    """When it becomes valid."""
    not_after: Timestamp
    """When it expires."""
    key_type: str = Field(examples=["RSA", "EC"])
    """Its public key's algorithm."""
    key_size: int | None = Field(examples=[2048])
    """Its public key's size in bits (null for keys without one)."""
    signature_algorithm: str = Field(examples=["sha256WithRSAEncryption"])
    """How its issuer signed it."""
    signature_hash: str | None = Field(examples=["sha256"])
    """The hash of that signature (null when the algorithm names none)."""
    key_usage: list[str] = Field(examples=[["digital_signature", "key_encipherment"]])
    """Its key usages."""
    extended_key_usage: list[str] = Field(examples=[["serverAuth"]])
    """Its extended key usages (empty: unrestricted)."""
    is_ca: bool | None
    """Its basic constraints' CA flag (null without the extension)."""
    path_length: int | None
    """Its basic constraints' path length (null when unlimited or absent)."""
    sha1: str
    """SHA-1 fingerprint of the certificate (hex, colon-separated)."""
    sha256: str
    """SHA-256 fingerprint of the certificate (hex, colon-separated)."""
    self_signed: bool
    """Whether it signed itself."""
    public_key_sha256: str
    """SHA-256 of its public key: a private key with the same value belongs to it."""


class KeyOut(ApiModel):
    """A private key described by its public half: no key material ever leaves the server."""

    path: str = Field(examples=["server.key"])
    """The file it came from, as uploaded."""
    index: int = Field(ge=0)
    """Its place in that file."""
    format: SourceFormat
    """How the file holds it."""
    state: KeyState
    """Whether it could be read: `encrypted_no_password` and `wrong_password` leave the rest null."""
    encrypted: bool
    """Whether the file protects it with a password."""
    key_type: str | None = Field(examples=["RSA"])
    """Its algorithm."""
    key_size: int | None = Field(examples=[2048])
    """Its size in bits."""
    public_key_sha256: str | None
    """SHA-256 of its public key: the certificate with the same value is its own."""


class CheckOut(ApiModel):
    """One check on one certificate, key or connection."""

    check: str = Field(examples=["expiry", "hostname", "chain"])
    """Which check."""
    status: Literal["ok", "problem", "not_run"]
    """What it found; `not_run` when it could not run (the message says why)."""
    severity: Literal["info", "warning", "error"]
    """How bad a problem is."""
    cause: str | None = Field(examples=["tls.server_cert_expired"])
    """The root cause a problem points to, if one does."""
    subject: str = Field(examples=["server.crt", "server.crt#1"])
    """What was checked: a file, or `file#index` for a later certificate in it."""
    message: str = Field(examples=["expired 12 days ago (2026-11-11T00:00:00Z)"])
    """What it found, for a person."""
    details: dict[str, JsonValue] = Field(examples=[{"days_left": -12}])
    """The check's own measurements (days left, the host-name verdicts, the chain built)."""


class CertReportOut(ApiModel):
    """A certificate with the checks that ran on it."""

    certificate: CertificateOut
    """Its facts."""
    leaf: bool
    """Whether it is used as an end entity (a server's or client's own certificate, not a CA)."""
    checks: list[CheckOut]
    """The checks on it."""


class InspectOut(ApiModel):
    """What `correlator certs` says of the uploaded certificates and keys."""

    at: Timestamp
    """The time validity was judged at."""
    role: Literal["server", "client"]
    """The role the leaf certificates were checked for."""
    host: str | None = Field(examples=["broker.plant.local"])
    """The host name checked against the server certificate, if one was given."""
    ok: bool
    """True when no check found a problem."""
    causes: list[str] = Field(examples=[["tls.server_cert_expired"]])
    """The root causes the problems point to."""
    problems: int = Field(ge=0)
    """How many checks found a problem."""
    certificates: list[CertReportOut]
    """Each certificate with its checks."""
    keys: list[KeyOut]
    """Each private key."""
    checks: list[CheckOut]
    """Checks across files (a key that matches no certificate, a chain to the CA)."""
    errors: list[str]
    """Files that could not be read, and why."""


class ProbeRequest(ApiModel):
    """A broker to probe as a client would. Certificates and keys travel as PEM text (never file
    paths on the server); they are written to a private temporary folder for the probe only."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    host: str = Field(min_length=1, max_length=253, examples=["broker.plant.local"])
    """The broker's host name or address."""
    port: int = Field(default=8883, ge=1, le=65535)
    """Its port."""
    tls: bool = True
    """Whether to speak TLS."""
    servername: str | None = Field(default=None, max_length=253)
    """The name to send as SNI and check the certificate against (default: `host`)."""
    mqtt: bool = False
    """Also send an MQTT CONNECT and report the broker's answer."""
    username: str | None = None
    """The CONNECT's user name."""
    password: str | None = None
    """The CONNECT's password (never logged nor echoed)."""
    client_id: str | None = Field(default=None, max_length=256)
    """The CONNECT's client id (default: a generated one)."""
    timeout: float = Field(default=5.0, gt=0, le=30)
    """Seconds each step may take."""
    ca_pem: str | None = None
    """CA certificates to trust, as PEM (default: the system's)."""
    cert_pem: str | None = None
    """A client certificate to present, as PEM."""
    key_pem: str | None = None
    """Its private key, as PEM."""
    key_password: str | None = None
    """The password of that key."""


class MqttOut(ApiModel):
    """What the broker answered to the probe's CONNECT."""

    status: StepStatus
    """Whether the CONNECT was answered with an acceptance."""
    return_code: int | None = Field(examples=[5])
    """The CONNACK's return code (null when none came)."""
    meaning: str = Field(examples=["not authorised"])
    """That code in words."""
    session_present: bool
    """The CONNACK's session-present flag."""


class ProblemOut(ApiModel):
    """One thing the probe found wrong."""

    cause: str | None = Field(examples=["tls.server_cert_expired"])
    """Its root cause, where one applies (an unresolvable host name has none)."""
    message: str
    """What is wrong, for a person."""


class ProbeOut(ApiModel):
    """Everything one probe learnt, step by step."""

    host: str = Field(examples=["broker.plant.local"])
    """The host probed."""
    port: int = Field(examples=[8883])
    """Its port."""
    tls: bool
    """Whether TLS was spoken."""
    servername: str | None
    """The SNI name sent."""
    ok: bool
    """True when every step succeeded and no check found a problem."""
    cause: str | None = Field(examples=["tls.server_cert_expired"])
    """The root cause a real client would hit first (null when all is well)."""
    causes: list[str]
    """Every root cause found, most blocking first."""
    message: str
    """The outcome in a sentence."""
    tcp: StepStatus
    """The TCP connection."""
    tls_handshake: StepStatus
    """The TLS handshake."""
    tls_version: str | None = Field(examples=["TLSv1.3"])
    """The TLS version agreed."""
    cipher: str | None = Field(examples=["TLS_AES_256_GCM_SHA384"])
    """The cipher agreed."""
    tls_error: str | None
    """Why the handshake failed, as the TLS library says."""
    chain: list[CertificateOut]
    """The certificates the broker presented, its own first."""
    checks: list[CheckOut]
    """The checks on that chain (expiry, host name, trust)."""
    mqtt: MqttOut | None
    """The CONNECT's outcome, when asked for (`mqtt`)."""
    problems: list[ProblemOut]
    """Every problem found."""
    notes: list[str]
    """Remarks that are not problems."""
    elapsed_ms: int = Field(ge=0)
    """How long the probe took."""
    at: Timestamp
    """When it ran."""


# -- live --------------------------------------------------------------------------------------


class LiveSourceOut(ApiModel):
    """A tailed log."""

    path: str = Field(examples=["/var/log/mosquitto/mosquitto.log"])
    """The file."""
    source: str = Field(examples=["broker", "client:edge-02"])
    """Who writes it."""
    format: str = Field(examples=["mosquitto"])
    """The format it is read with."""
    zone: str = Field(examples=["UTC"])
    """The time zone its times are read in."""
    lines: int = Field(ge=0)
    """Lines read so far."""
    unparsed: int = Field(ge=0)
    """Lines no pattern of the format explained."""


class LiveStatus(ApiModel):
    """The live analysis of the logs `serve` tails."""

    paths: list[str]
    """The files and folders it follows."""
    sources: list[LiveSourceOut]
    """The logs found in them."""
    events: int = Field(ge=0)
    """Events analysed so far."""
    findings: int = Field(ge=0)
    """Current findings."""
    lines_per_second: float = Field(ge=0)
    """Lines read per second over the last few seconds."""
    errors: list[str]
    """Problems reading the logs (unreadable files, patterns that ran out of time)."""


class LiveFindingList(ApiModel):
    items: list[FindingOut]
    """The live findings as they stand, worst first."""


class LiveEventPage(ApiModel):
    items: list[EventOut]
    """The newest events, oldest first."""
    next_cursor: int
    """Pass as `after` to get only newer events (older ones beyond the kept window are gone)."""


SiteName = Annotated[str, Field(description="The site's name, as its agents give it (`--site`)",
                                examples=["plant-7"])]


class SiteOut(ApiModel):
    """A site of the fleet's central live analysis (`correlator worker --live`)."""

    site: SiteName
    hosts: list[str] = Field(examples=[["gw-1", "broker-2"]])
    """The machines whose agents sent its events."""
    events: int
    """Events the live workers have analysed."""
    lines: int
    """Lines of its logs the agents read: those sent as events and the routine lines (a busy
    broker's PUBLISH/PUBACK flood) sent as counts."""
    findings: int
    """Its current findings."""
    worst_severity: Severity | None
    """The worst severity among its current findings (null without findings)."""
    last_event: Timestamp | None
    """The time of the newest event analysed."""
    updated: Timestamp
    """When a live worker last stored its analysis."""
    lag: int | None
    """Messages of the site on the cluster no live worker has analysed yet (null when this server
    has no `--nats`)."""


class SiteList(ApiModel):
    items: list[SiteOut]
    """Every site the live workers analysed, by name."""


class SiteFindingList(ApiModel):
    site: SiteName
    items: list[FindingOut]
    """Its current findings, worst first."""
