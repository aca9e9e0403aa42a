"""Request and response models. Findings, their evidence, sources and an analysis's summary are
the report model's own schema (correlator.report_model, "correlator.analysis/2"), extended where
the API adds to it (a finding's `key`), so the API and the CLI's JSON report cannot drift apart.
The certificate models mirror the `to_dict()` of the artifact objects field for field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, with_config

from correlator.model import Severity
from correlator.report_model import FindingDict, HostDict, SourceDict, SummaryDict

Status = Literal["queued", "running", "done", "failed"]
FieldValue = str | int | float | bool


class ErrorDetail(BaseModel):
    loc: list[str | int]
    message: str


class ErrorOut(BaseModel):
    """Every error answer: the status again, a short code and a sentence for a person."""

    status: int
    error: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


# -- service -----------------------------------------------------------------------------------


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class VersionOut(BaseModel):
    name: str
    version: str
    api: str
    report_schema: str


class FormatOut(BaseModel):
    name: str
    title: str
    role: str
    file: str
    multiline: bool
    messages: int
    fallback: bool


class RuleOut(BaseModel):
    id: str
    title: str
    severity: Severity
    file: str
    look_alike: list[str]
    explains: list[str]


# -- findings ----------------------------------------------------------------------------------


@with_config(ConfigDict(extra="forbid"))
class FindingOut(FindingDict):
    """A finding of the report with `key`: its address (`/findings/{key}` of its analysis; for
    live findings the stable `id` or `id:group` a dashboard updates in place)."""

    key: str


class FindingList(BaseModel):
    analysis_id: str
    total: int
    """Findings of the analysis before filtering."""
    items: list[FindingOut]


# -- analyses ----------------------------------------------------------------------------------


class AnalysisOut(BaseModel):
    id: str
    name: str
    status: Status
    phase: str
    """What the analysis is doing or did: queued, extracting, analysing, storing, done, failed."""
    progress: float = Field(ge=0, le=1)
    events: int
    """Timeline events stored so far."""
    size: int
    """Bytes uploaded."""
    created: str
    updated: str
    message: str | None
    """Why a failed analysis failed."""
    summary: SummaryDict | None
    artifacts: dict[str, int]
    errors: list[str]
    skipped: list[str]
    notes: list[str]
    hosts: list[HostDict] = []
    """The machines of the bundle, each with the ids of its findings."""


class AnalysisBrief(BaseModel):
    id: str
    name: str
    status: Status
    progress: float
    created: str
    findings: int | None
    worst_severity: Severity | None


class AnalysisList(BaseModel):
    total: int
    items: list[AnalysisBrief]


class SourceList(BaseModel):
    analysis_id: str
    items: list[SourceDict]


class EventOut(BaseModel):
    seq: int
    """Position in the analysis's timeline: the page cursor."""
    time: str
    time_text: str
    estimated: bool
    source: str
    host: str
    file: str
    line: int
    level: str
    kind: str
    fields: dict[str, FieldValue]
    raw: str
    format: str
    skew: float
    connection: str | None
    client: str | None
    """The client the event belongs to: its client id, its client log, or its stitched connection."""


class TimelinePage(BaseModel):
    analysis_id: str
    items: list[EventOut]
    next_cursor: int | None
    """Pass as `after` for the next page; null on the last page."""


# -- artifacts ---------------------------------------------------------------------------------


class SanOut(BaseModel):
    dns: list[str]
    ip: list[str]
    uri: list[str]


class CertificateOut(BaseModel):
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


class KeyOut(BaseModel):
    """A private key described by its public half: no key material ever leaves the server."""

    path: str
    index: int
    format: str
    state: str
    encrypted: bool
    key_type: str | None
    key_size: int | None
    public_key_sha256: str | None


class CheckOut(BaseModel):
    check: str
    status: str
    severity: str
    cause: str | None
    subject: str
    message: str
    details: dict[str, JsonValue]


class CertReportOut(BaseModel):
    certificate: CertificateOut
    leaf: bool
    checks: list[CheckOut]


class InspectOut(BaseModel):
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


class ProbeRequest(BaseModel):
    """A broker to probe as a client would. Certificates and keys travel as PEM text (never file
    paths on the server); they are written to a private temporary folder for the probe only."""

    model_config = ConfigDict(extra="forbid")

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


class MqttOut(BaseModel):
    status: str
    return_code: int | None
    meaning: str
    session_present: bool


class ProblemOut(BaseModel):
    cause: str | None
    message: str


class ProbeOut(BaseModel):
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


class LiveSourceOut(BaseModel):
    path: str
    source: str
    format: str
    zone: str
    lines: int
    unparsed: int


class LiveStatus(BaseModel):
    paths: list[str]
    sources: list[LiveSourceOut]
    events: int
    findings: int
    lines_per_second: float
    errors: list[str]


class LiveFindingList(BaseModel):
    items: list[FindingOut]


class LiveEventPage(BaseModel):
    items: list[EventOut]
    next_cursor: int
    """Pass as `after` to get only newer events (older ones beyond the kept window are gone)."""
