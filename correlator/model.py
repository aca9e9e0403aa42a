"""The core types every stage shares: Event (one parsed log record) and the level vocabulary.

Time is kept as a float of UTC epoch seconds because the parser creates millions of events and a
float is an order of magnitude cheaper than a datetime; `Event.time` gives the datetime when a
surface needs it. The original timestamp text stays beside it so nobody has to trust our zone
arithmetic blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FieldValue = str | int | float | bool

#: Levels in increasing order of severity; formats map their own words onto these.
LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical")

#: The kind of a line that no format recognised at all. Such lines are kept and counted.
UNPARSED = "unparsed"
#: The kind of a line whose format was recognised (timestamp, level, ...) but whose message is
#: not in that format's catalogue and carries no evidence the generic extractors know.
OTHER = "other"


@dataclass(slots=True)
class Event:
    """One log record. Multi-line records (a stack trace) are one event whose raw text holds
    every line and whose `line_count` says how many."""

    ts: float
    """UTC epoch seconds after zone correction (skew correction is applied by the timeline)."""
    time_text: str
    """The timestamp exactly as the line wrote it ('' when the line had none)."""
    source: str
    """Source name, e.g. 'broker' or 'client:edge-07'."""
    file: str
    line: int
    """1-based line number of the record's first line in `file`."""
    kind: str
    raw: str
    level: str = "info"
    host: str = ""
    fields: dict[str, FieldValue] = field(default_factory=dict)
    format: str = ""
    """Name of the format (and pattern, as 'format/pattern') that produced the event."""
    estimated: bool = False
    """True when the line carried no timestamp and `ts` was taken from neighbours or the file."""
    line_count: int = 1
    offset: int = -1
    """Byte offset of the record in its (decompressed) file, -1 when unknown."""
    skew: float = 0.0
    """Seconds added to `ts` by clock-skew correction (already included in `ts`)."""
    connection: str | None = None
    """Id of the stitched connection this event belongs to, once the timeline knows it."""

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.ts, tz=UTC)

    def get(self, name: str, default: Any = None) -> Any:
        """A field or one of the event's own attributes, the way rules and filters look them up."""
        if name in self.fields:
            return self.fields[name]
        if name in _EVENT_ATTRS:
            return getattr(self, name)
        return default

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "time_text": self.time_text,
            "estimated": self.estimated,
            "source": self.source,
            "host": self.host,
            "file": self.file,
            "line": self.line,
            "level": self.level,
            "kind": self.kind,
            "fields": dict(self.fields),
            "raw": self.raw,
            "format": self.format,
            "skew": self.skew,
            "connection": self.connection,
        }


_EVENT_ATTRS = frozenset(
    {"ts", "time_text", "source", "file", "line", "kind", "raw", "level", "host", "format", "estimated"}
)


def level_rank(level: str) -> int:
    """Position of a level in LEVELS; unknown words rank as info so they are neither hidden nor
    promoted."""
    try:
        return LEVELS.index(level)
    except ValueError:
        return 1


#: Severities in increasing order; the CLI's exit code and report order follow it.
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")


def severity_rank(severity: str) -> int:
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return 0


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "file": self.file,
            "line": self.line,
            "time": None if self.time is None else datetime.fromtimestamp(self.time, tz=UTC).isoformat()
            .replace("+00:00", "Z"),
            "source": self.source,
            "kind": self.kind,
            "text": self.text,
            "estimated": self.estimated,
        }


@dataclass
class Finding:
    """One root cause for one affected group, aggregated over every occurrence. Findings are
    updated in place as evidence arrives; `revision` grows with every update so live surfaces can
    tell a changed finding from an unchanged one."""

    id: str
    severity: str
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
    confidence: str = "low"
    confidence_reason: str = ""
    confirm_with: str = ""
    alternatives: list[str] = field(default_factory=list)
    """Other root-cause ids the same evidence fits, when artifacts could not decide."""
    tell_apart: str = ""
    remediation: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    connections: set[str] = field(default_factory=set)
    """Ids of the stitched connections the evidence came from (capped), so a broker-side line with
    no client id can still be attributed to the client whose log shows the same connection."""
    revision: int = 0
    omitted: dict[str, int] = field(default_factory=dict)
    """Clients, users and hosts beyond the ones listed (a finding lists at most 100 of each),
    counted, so millions of client ids cost no memory and the report still says how many."""

    def to_dict(self) -> dict[str, Any]:
        def iso(ts: float) -> str:
            return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")

        return {
            "id": self.id,
            "severity": self.severity,
            "title": self.title,
            "explanation": self.explanation,
            "group": self.group,
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
            "remediation": list(self.remediation),
            "omitted": dict(self.omitted),
            "revision": self.revision,
        }
