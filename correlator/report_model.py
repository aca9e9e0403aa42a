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
from typing import Annotated, Any, Literal, NotRequired

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


@dataclass(frozen=True, slots=True)
class About:
    """A field's words in the JSON schema: its description, examples and string format. Pydantic
    reads it where the API serves the schema, through the hook any annotation may carry
    (`__get_pydantic_json_schema__`), so this ground layer needs no pydantic; and it travels with
    the annotation, so a model that extends one of these TypedDicts (the API's FindingOut) keeps
    its fields' words. Several apply in order, a later one's words over an earlier one's."""

    description: str = ""
    examples: tuple[Any, ...] = ()
    format: str = ""
    """Given to the string the field holds (in an optional field, to its string branch)."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema: dict[str, Any] = dict(handler(core_schema))
        if self.description:
            schema["description"] = self.description
        if self.examples:
            schema["examples"] = list(self.examples)
        if self.format:
            for branch in [schema, *schema.get("anyOf", [])]:
                if branch.get("type") == "string":
                    branch["format"] = self.format
        return schema


#: A time as the report writes it (`iso`).
IsoTime = Annotated[str, About(format="date-time", examples=("2026-11-23T14:39:55Z",))]

#: How sure a finding is: high when both sides of the connection and the artifacts agree, medium
#: when the artifacts or both sides show it, low when one side alone does.
Confidence = Literal["high", "medium", "low"]
#: Whose view a piece of evidence is: a broker's log, an OPC UA server's, a client's, or an
#: artifact (a certificate, mosquitto.conf, an ACL or password file).
Side = Literal["broker", "server", "client", "artifact"]
#: What a fix step's command is: a command to run, or a line for a configuration file.
FixKind = Literal["shell", "config"]


class EvidenceDict(TypedDict):
    side: Annotated[Side, About("Whose view it is: the broker's, an OPC UA server's or a client's log, or an "
                                "artifact of the bundle")]
    file: Annotated[str, About("The file, by its place in the bundle", ("broker/mosquitto.log",))]
    line: Annotated[int | None, About("Its line in the file (1 is the first); null for an artifact's fact")]
    time: Annotated[IsoTime | None, About("When the line says it happened, in UTC after the source's zone and "
                                          "clock offset; null for an artifact")]
    source: Annotated[str, About("The source that wrote it: `broker`, `client:<name>` ... ('' for an artifact)",
                                 ("client:edge-02",))]
    kind: Annotated[str, About("What the line says, in the one vocabulary of event kinds (an artifact's check "
                               "for a fact)", ("tls.handshake_failed",))]
    text: Annotated[str, About("The line itself, or what the artifact says (secrets redacted)")]
    estimated: Annotated[bool, About("The line had no time of its own: `time` is its neighbours' or its file's, "
                                     "so it is not lined up to the second with the other side")]


class FixStepDict(TypedDict):
    text: Annotated[str, About("What to do, in words")]
    command: Annotated[str, About("A shell command, or a line for a configuration file (`kind`); '' when the step "
                                  "has none", ("openssl x509 -in certs/server.pem -noout -subject -enddate",))]
    kind: Annotated[FixKind, About("`shell`: `command` is a command to run; `config`: a line to write in a "
                                   "configuration file")]
    warning: Annotated[str, About("Why the step's command is not shown: a value from the bundle in it is unsafe "
                                  "to run ('' when shown)")]


class FindingDict(TypedDict):
    id: Annotated[str, About("The root cause's id, from the catalogue of root causes", ("tls.server_cert_expired",))]
    severity: Annotated[Severity, About("How bad it is")]
    title: Annotated[str, About("The root cause in one line", ("The broker's TLS certificate has expired",))]
    explanation: Annotated[str, About("What happened and why, in plain words, with this bundle's names and times")]
    group: Annotated[str, About("What the finding is about beyond its id (a listener, a client, a user): its "
                                "aggregation key; '' when the id alone is the finding")]
    host: NotRequired[Annotated[str, About(
        "The host of the bundle it was found on (see the analysis's hosts); '' when nothing names one. Reports "
        "made before hosts were told apart lack it")]]
    clients: Annotated[list[str], About("Client ids affected (at most 100; `omitted` counts the rest)",
                                        (["edge-01-pub", "edge-02"],))]
    users: Annotated[list[str], About("User names involved (at most 100; `omitted` counts the rest)")]
    hosts: Annotated[list[str], About("Peer addresses and host names involved (at most 100; `omitted` counts "
                                      "the rest)")]
    first_seen: Annotated[IsoTime, About("Its first occurrence, in UTC")]
    last_seen: Annotated[IsoTime, About("Its last occurrence, in UTC")]
    count: Annotated[int, About("Occurrences: connections or attempts that failed this way", (4,))]
    confidence: Annotated[Confidence, About("How sure it is: high when both sides of the connection and the "
                                            "artifacts agree, medium when the artifacts or both sides show it, "
                                            "low when one side alone does")]
    confidence_reason: Annotated[str, About("Why that confidence, in words",
                                            ("both sides of the connection and the artifacts agree",))]
    confirm_with: Annotated[str, About("What would settle it when the confidence is not high ('' when it is)")]
    alternatives: Annotated[list[str], About("Other root-cause ids the same evidence fits, when the artifacts "
                                             "could not decide")]
    tell_apart: Annotated[str, About("How to tell it from its alternatives ('' without alternatives)")]
    evidence: Annotated[list[EvidenceDict], About("The log lines it rests on: the first and the last ones")]
    facts: Annotated[list[EvidenceDict], About("What the artifacts (certificates, configs, ACL and password files) "
                                               "say that bears on it")]
    remediation: Annotated[list[FixStepDict], About("The fix, step by step")]
    omitted: Annotated[dict[str, int], About("Clients, users and hosts beyond the hundred of each listed, counted",
                                             ({"clients": 412},))]
    revision: Annotated[int, About("Grows with every update of a live finding, so a dashboard can tell a changed "
                                   "finding from an unchanged one (0 in a batch analysis's)")]


class SourceInfoDict(TypedDict):
    path: Annotated[str, About("The file, by its place in the bundle", ("broker/mosquitto.log",))]
    source: Annotated[str, About("Who wrote it: `broker`, `client:<name>` ...", ("broker", "client:edge-02"))]
    format: Annotated[str, About("The log format it was read with", ("mosquitto",))]
    detected: Annotated[float, About("Share of the first lines the chosen format explained (1.0 when forced)",
                                     (0.98,))]
    zone: Annotated[str, About("The time zone its times were read in", ("UTC", "Europe/Berlin"))]
    lines_read: Annotated[int, About("Lines read")]
    unparsed: Annotated[int, About("Lines no pattern of the format explained (kept on the timeline as they are)")]
    estimated: Annotated[int, About("Lines with no time of their own, dated by their neighbours or their file")]
    kinds: Annotated[dict[str, int], About("Events per kind", ({"mqtt.connect": 12, "tls.handshake_failed": 4},))]


class SourceDict(SourceInfoDict):
    zone_how: Annotated[str, About("How its zone was chosen (given, the host's, guessed from the other sources ...)")]
    offset: Annotated[float, About("Seconds its clock was found off by (already corrected in its events' times)")]
    offset_how: Annotated[str, About("How the offset was found ('none' when there is none)")]


class SummaryDict(TypedDict):
    findings: Annotated[int, About("How many findings")]
    worst_severity: Annotated[Severity | None, About("The worst finding's severity; null without findings")]
    events: Annotated[int, About("Events on the timeline")]
    first_event: Annotated[IsoTime | None, About("The timeline's first event, in UTC; null when empty")]
    last_event: Annotated[IsoTime | None, About("The timeline's last event, in UTC; null when empty")]
    connections: Annotated[int, About("Connections stitched: a broker's accept joined to its client's lines")]
    unparsed: Annotated[int, About("Lines of every source that no pattern of their format explained")]


class ToolDict(TypedDict):
    name: Annotated[str, About("The tool that made the report", ("correlator",))]
    version: Annotated[str, About("Its version")]


class HostDict(TypedDict):
    name: Annotated[str, About("The machine's name", ("broker-1",))]
    how: Annotated[str, About("Why its files are one host: folder, archive, syslog host name, the whole bundle",
                              ("folder",))]
    root: Annotated[str, About("The place in the bundle its files share ('' for the whole bundle)")]
    logs: Annotated[list[str], About("Its log files, by their place in the bundle")]
    sources: Annotated[list[str], About("The sources its logs were read as")]
    ports: Annotated[list[int], About("The ports its brokers listen on", ([1883, 8883],))]
    syslog_names: Annotated[list[str], About("The host names its syslog lines give")]
    configs: Annotated[list[str], About("Its mosquitto.conf files")]
    acl_files: Annotated[list[str], About("Its ACL files")]
    password_files: Annotated[list[str], About("Its password files")]
    certificates: Annotated[list[str], About("Its certificate files")]
    findings: Annotated[list[str], About("The ids of the findings found on it")]


class AnalysisDict(TypedDict):
    schema: Annotated[str, About("The report's schema and version", (REPORT_SCHEMA,))]
    tool: ToolDict
    made_at: Annotated[IsoTime, About("When the report was made, in UTC")]
    summary: SummaryDict
    findings: Annotated[list[FindingDict], About("The root causes found, worst first")]
    sources: Annotated[list[SourceDict], About("The logs read, and how each was placed in time")]
    hosts: Annotated[list[HostDict], About("The machines of the bundle")]
    artifacts: Annotated[dict[str, int], About("Certificates, keys, configs, ACL and password files read, counted",
                                               ({"certificates": 2, "configs": 1},))]
    errors: Annotated[list[str], About("What could not be read, naming the file (and line)")]
    skipped: Annotated[list[str], About("Files that are neither logs nor artifacts, with what they were taken for")]
    notes: Annotated[list[str], About("What the reader had to cut short (kept events, --since/--until)")]


# -- the objects -------------------------------------------------------------------------------


@dataclass(slots=True)
class EvidenceRef:
    """One piece of evidence a finding rests on: a log record (file and line) or an artifact fact
    (file, and what it says). `side` says whose view it is: broker, client or artifact."""

    side: Side
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
    kind: FixKind = "shell"
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
