"""What a report holds: findings with their evidence, the sources read, the analysis as a whole,
and the one declaration of its JSON schema ("correlator.analysis/2").

This is the ground layer: the engine builds Findings, the pipeline (correlator.analysis) builds the
Analysis, and every surface renders it (reports/, the TUI, the API) without importing the
pipeline. The schema is declared once, as the TypedDicts the `to_dict()` methods return (mypy holds
each method to its schema); the API's response models extend these same TypedDicts instead of
declaring the fields again. They come from typing_extensions because pydantic reads only that
TypedDict on Python 3.11.

Nothing here holds a secret: log lines are redacted where they are read (correlator.redaction),
and an evidence's text passes the same filter when it is made, for the words artifacts give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

from correlator import __version__
from correlator.model import Severity, severity_rank
from correlator.redaction import redact

#: The name and version of the JSON report's schema.
REPORT_SCHEMA = "correlator.analysis/2"


def iso(ts: float) -> str:
    """A time as the report writes it: ISO 8601 in UTC with a 'Z'."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


# -- the schema --------------------------------------------------------------------------------


#: How sure a finding is: high when both sides of the connection and the artifacts agree, medium
#: when the artifacts or both sides show it, low when one side alone does.
Confidence = Literal["high", "medium", "low"]


class EvidenceDict(TypedDict):
    side: str
    """broker, client or artifact: whose view it is."""
    file: str
    line: int | None
    time: str | None
    source: str
    kind: str
    text: str
    estimated: bool


class FixStepDict(TypedDict):
    text: str
    command: str
    """A shell command, or a line for a configuration file (`kind`); '' when the step has none."""
    kind: str
    warning: str
    """Why the step's command is not shown: a value from the bundle in it is unsafe to run."""


class FindingDict(TypedDict):
    id: str
    severity: Severity
    title: str
    explanation: str
    group: str
    host: NotRequired[str]
    """The host of the bundle it was found on (see HostDict); '' when nothing names one. Reports
    made before hosts were told apart lack it."""
    clients: list[str]
    users: list[str]
    hosts: list[str]
    first_seen: str
    last_seen: str
    count: int
    confidence: Confidence
    confidence_reason: str
    confirm_with: str
    alternatives: list[str]
    tell_apart: str
    evidence: list[EvidenceDict]
    facts: list[EvidenceDict]
    remediation: list[FixStepDict]
    omitted: dict[str, int]
    """Clients, users and hosts beyond the hundred of each listed, counted."""
    revision: int


class SourceInfoDict(TypedDict):
    path: str
    source: str
    format: str
    detected: float
    zone: str
    lines_read: int
    unparsed: int
    estimated: int
    kinds: dict[str, int]


class SourceDict(SourceInfoDict):
    zone_how: str
    offset: float
    offset_how: str


class SummaryDict(TypedDict):
    findings: int
    worst_severity: Severity | None
    events: int
    first_event: str | None
    last_event: str | None
    connections: int
    unparsed: int


class ToolDict(TypedDict):
    name: str
    version: str


class HostDict(TypedDict):
    name: str
    how: str
    """Why its files are one host: folder, archive, syslog host name, the whole bundle."""
    root: str
    logs: list[str]
    sources: list[str]
    ports: list[int]
    syslog_names: list[str]
    configs: list[str]
    acl_files: list[str]
    password_files: list[str]
    certificates: list[str]
    findings: list[str]
    """The ids found on it."""


class AnalysisDict(TypedDict):
    schema: str
    tool: ToolDict
    made_at: str
    summary: SummaryDict
    findings: list[FindingDict]
    sources: list[SourceDict]
    hosts: list[HostDict]
    artifacts: dict[str, int]
    errors: list[str]
    skipped: list[str]
    notes: list[str]


# -- the objects -------------------------------------------------------------------------------


@dataclass(slots=True)
class EvidenceRef:
    """One piece of evidence a finding rests on: a log record (file and line) or an artifact fact
    (file, and what it says). `side` says whose view it is: broker, client or artifact."""

    side: str
    file: str
    line: int | None
    text: str
    time: float | None = None
    source: str = ""
    kind: str = ""
    estimated: bool = False
    """The line carried no time of its own (mosquitto_pub -d): `time` is its neighbours' or its
    file's, so a reader must not line it up to the second with the other side."""

    def __post_init__(self) -> None:
        # log lines come redacted from the parser; an artifact's words (a config line) are not
        self.text = redact(self.text)

    def to_dict(self) -> EvidenceDict:
        return {
            "side": self.side,
            "file": self.file,
            "line": self.line,
            "time": None if self.time is None else iso(self.time),
            "source": self.source,
            "kind": self.kind,
            "text": self.text,
            "estimated": self.estimated,
        }


@dataclass(frozen=True, slots=True)
class FixStep:
    """One step of a fix as the rule declares it (`remediation` in rules/*.toml), filled in: what
    to do in words, and the command or configuration line that does it. A value from the bundle
    is shell-quoted in a command; one that holds shell or control characters withholds the
    command, and `warning` says why (a bundle is customer data and may be hostile)."""

    text: str
    command: str = ""
    kind: str = "shell"
    """'shell': a command to run; 'config': a line to write in a configuration file."""
    warning: str = ""

    def to_dict(self) -> FixStepDict:
        return {"text": self.text, "command": self.command, "kind": self.kind, "warning": self.warning}


@dataclass
class Finding:
    """One root cause for one affected group, aggregated over every occurrence. Findings are
    updated in place as evidence arrives; `revision` grows with every update so live surfaces can
    tell a changed finding from an unchanged one."""

    id: str
    severity: Severity
    title: str
    explanation: str
    group: str
    """What the finding is about beyond its id (a listener, a client, a user): its aggregation key."""
    first_seen: float
    last_seen: float
    count: int = 0
    clients: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    evidence: list[EvidenceRef] = field(default_factory=list)
    facts: list[EvidenceRef] = field(default_factory=list)
    sides: set[str] = field(default_factory=set)
    confidence: Confidence = "low"
    confidence_reason: str = ""
    confirm_with: str = ""
    alternatives: list[str] = field(default_factory=list)
    """Other root-cause ids the same evidence fits, when artifacts could not decide."""
    tell_apart: str = ""
    remediation: list[FixStep] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    connections: set[str] = field(default_factory=set)
    """Ids of the stitched connections the evidence came from (capped), so a broker-side line with
    no client id can still be attributed to the client whose log shows the same connection."""
    revision: int = 0
    omitted: dict[str, int] = field(default_factory=dict)
    """Clients, users and hosts beyond the ones listed (a finding lists at most 100 of each),
    counted, so millions of client ids cost no memory and the report still says how many."""
    host: str = ""
    """The host of the bundle whose broker (its config, ACL, password file, certificates) judged
    it, or whose clock it is about (correlator.hosts); '' when nothing names one."""

    def to_dict(self) -> FindingDict:
        return {
            "id": self.id,
            "severity": self.severity,
            "title": self.title,
            "explanation": self.explanation,
            "group": self.group,
            "host": self.host,
            "clients": sorted(self.clients),
            "users": sorted(self.users),
            "hosts": sorted(self.hosts),
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "count": self.count,
            "confidence": self.confidence,
            "confidence_reason": self.confidence_reason,
            "confirm_with": self.confirm_with,
            "alternatives": list(self.alternatives),
            "tell_apart": self.tell_apart,
            "evidence": [e.to_dict() for e in self.evidence],
            "facts": [f.to_dict() for f in self.facts],
            "remediation": [step.to_dict() for step in self.remediation],
            "omitted": dict(self.omitted),
            "revision": self.revision,
        }


@dataclass
class SourceInfo:
    """What the reader found out about a file; reports show it beside the findings."""

    path: str
    source: str
    format: str
    detected: float
    """Share of the first lines the chosen format explained (1.0 when forced)."""
    zone: str
    lines_read: int = 0
    unparsed: int = 0
    estimated: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> SourceInfoDict:
        return {"path": self.path, "source": self.source, "format": self.format, "detected": self.detected,
                "zone": self.zone, "lines_read": self.lines_read, "unparsed": self.unparsed,
                "estimated": self.estimated, "kinds": dict(sorted(self.kinds.items()))}


@dataclass
class SourceReport:
    """A source as the report shows it: what the reader found, and how the timeline placed it in
    time (its zone and how it was chosen, its clock offset and how it was found)."""

    info: SourceInfo
    zone_how: str
    offset: float = 0.0
    offset_how: str = "none"

    def to_dict(self) -> SourceDict:
        return {**self.info.to_dict(), "zone_how": self.zone_how, "offset": self.offset,
                "offset_how": self.offset_how}


@dataclass
class HostOutline:
    """One machine of the bundle as grouping found it (correlator.hosts): declared once for the
    host being grouped (`hosts.Host`) and the host as the report shows it (HostReport)."""

    name: str
    how: str
    """Why these files are one host: 'folder', 'archive', 'syslog host name', 'the whole bundle'."""
    root: str = ""
    """The display path its files share ('' for the whole bundle)."""
    logs: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


@dataclass
class HostReport(HostOutline):
    """One machine of the bundle as the report shows it (`hosts.Host.report`)."""

    ports: list[int] = field(default_factory=list)
    syslog_names: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    acl_files: list[str] = field(default_factory=list)
    password_files: list[str] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)

    def to_dict(self, findings: list[Finding]) -> HostDict:
        return {"name": self.name, "how": self.how, "root": self.root, "logs": list(self.logs),
                "sources": list(self.sources), "ports": list(self.ports), "syslog_names": list(self.syslog_names),
                "configs": list(self.configs), "acl_files": list(self.acl_files),
                "password_files": list(self.password_files), "certificates": list(self.certificates),
                "findings": sorted({f.id for f in findings if f.host == self.name})}


@dataclass
class Analysis:
    """The result of one analysis, as every surface renders it."""

    findings: list[Finding]
    sources: list[SourceReport]
    errors: list[str]
    artifacts: dict[str, int]
    events: int
    first_event: float | None
    last_event: float | None
    connections: int = 0
    histogram: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    """Per source: events per second of time, as [all, warnings and worse]: the report's picture."""
    hosts: list[HostReport] = field(default_factory=list)
    """The machines of the bundle; each finding names its `host`."""
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    made_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def none_found(self) -> str:
        """What a report says when there is no finding: never a plain "No root cause found" when
        part of the input could not be read."""
        if not self.errors:
            return "No root cause found."
        n = len(self.errors)
        return (f"No root cause found in what could be read: {n} error{'s' if n != 1 else ''} kept part of the "
                "input from being read (see Errors).")

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=severity_rank, default=None)

    def summary(self) -> SummaryDict:
        return {"findings": len(self.findings), "worst_severity": self.worst, "events": self.events,
                "first_event": None if self.first_event is None else iso(self.first_event),
                "last_event": None if self.last_event is None else iso(self.last_event),
                "connections": self.connections, "unparsed": sum(s.info.unparsed for s in self.sources)}

    def to_dict(self) -> AnalysisDict:
        return {
            "schema": REPORT_SCHEMA,
            "tool": {"name": "correlator", "version": __version__},
            "made_at": self.made_at.isoformat().replace("+00:00", "Z"),
            "summary": self.summary(),
            "findings": [f.to_dict() for f in self.findings],
            "sources": [s.to_dict() for s in self.sources],
            "hosts": [h.to_dict(self.findings) for h in self.hosts],
            "artifacts": self.artifacts,
            "errors": list(self.errors),
            "skipped": list(self.skipped),
            "notes": list(self.notes),
        }
