"""Request and response models. Findings, their evidence, sources and an analysis's summary are
the report model's own schema (correlator.report_model, "correlator.analysis/2"), extended where
the API adds to it (a finding's `key`), so the API and the CLI's JSON report cannot drift apart.
The certificate models mirror the `to_dict()` of the artifact objects field for field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, with_config

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
    message: str


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


class ReadyOut(ApiModel):
    status: Literal["ready", "not ready"]
    problems: list[str]
    """Why not (the database, the scheduler, disk space), empty when ready."""


class VersionOut(ApiModel):
    name: str
    version: str
    api: str
    report_schema: str


class FormatOut(ApiModel):
    name: str
    title: str
    role: str
    file: str
    multiline: bool
    messages: int
    fallback: bool


class RuleOut(ApiModel):
    id: str
    title: str
    severity: Severity
    file: str
    look_alike: list[str]
    explains: list[str]


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
    dns: list[str]
    ip: list[str]
    uri: list[str]


class CertificateOut(ApiModel):
    path: str
    index: int
    format: str
    subject: str
    issuer: str
    common_name: str | None
    serial: str
    san: SanOut
    has_san: bool
    not_before: str
    not_after: str
    key_type: str
    key_size: int | None
    signature_algorithm: str
    signature_hash: str | None
    key_usage: list[str]
    extended_key_usage: list[str]
    is_ca: bool | None
    path_length: int | None
    sha1: str
    sha256: str
    self_signed: bool
    public_key_sha256: str


class KeyOut(ApiModel):
    """A private key described by its public half: no key material ever leaves the server."""

    path: str
    index: int
    format: str
    state: str
    encrypted: bool
    key_type: str | None
    key_size: int | None
    public_key_sha256: str | None


class CheckOut(ApiModel):
    check: str
    status: str
    severity: str
    cause: str | None
    subject: str
    message: str
    details: dict[str, JsonValue]


class CertReportOut(ApiModel):
    certificate: CertificateOut
    leaf: bool
    checks: list[CheckOut]


class InspectOut(ApiModel):
    at: str
    role: Literal["server", "client"]
    host: str | None
    ok: bool
    causes: list[str]
    problems: int
    certificates: list[CertReportOut]
    keys: list[KeyOut]
    checks: list[CheckOut]
    errors: list[str]


class ProbeRequest(ApiModel):
    """A broker to probe as a client would. Certificates and keys travel as PEM text (never file
    paths on the server); they are written to a private temporary folder for the probe only."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=8883, ge=1, le=65535)
    tls: bool = True
    servername: str | None = Field(default=None, max_length=253)
    mqtt: bool = False
    username: str | None = None
    password: str | None = None
    client_id: str | None = Field(default=None, max_length=256)
    timeout: float = Field(default=5.0, gt=0, le=30)
    ca_pem: str | None = None
    cert_pem: str | None = None
    key_pem: str | None = None
    key_password: str | None = None


class MqttOut(ApiModel):
    status: str
    return_code: int | None
    meaning: str
    session_present: bool


class ProblemOut(ApiModel):
    cause: str | None
    message: str


class ProbeOut(ApiModel):
    host: str
    port: int
    tls: bool
    servername: str | None
    ok: bool
    cause: str | None
    causes: list[str]
    message: str
    tcp: str
    tls_handshake: str
    tls_version: str | None
    cipher: str | None
    tls_error: str | None
    chain: list[CertificateOut]
    checks: list[CheckOut]
    mqtt: MqttOut | None
    problems: list[ProblemOut]
    notes: list[str]
    elapsed_ms: int
    at: str


# -- live --------------------------------------------------------------------------------------


class LiveSourceOut(ApiModel):
    path: str
    source: str
    format: str
    zone: str
    lines: int
    unparsed: int


class LiveStatus(ApiModel):
    paths: list[str]
    sources: list[LiveSourceOut]
    events: int
    findings: int
    lines_per_second: float
    errors: list[str]


class LiveFindingList(ApiModel):
    items: list[FindingOut]


class LiveEventPage(ApiModel):
    items: list[EventOut]
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
    last_event: Timestamp | None
    """The time of the newest event analysed."""
    updated: Timestamp
    """When a live worker last stored its analysis."""
    lag: int | None
    """Messages of the site's shard on the cluster no live worker has analysed yet (the sites of a
    shard share one consumer; null when this server has no `--nats`)."""


class SiteList(ApiModel):
    items: list[SiteOut]


class SiteFindingList(ApiModel):
    site: SiteName
    items: list[FindingOut]
    """Its current findings, worst first."""
