"""The core types every stage shares: Event (one parsed log record), the level and severity
vocabularies. What a report holds (findings, evidence, the analysis) is in correlator.report_model.

Time is kept as a float of UTC epoch seconds because the parser creates millions of events and a
float is an order of magnitude cheaper than a datetime; `Event.time` gives the datetime when a
surface needs it. The original timestamp text stays beside it so nobody has to trust our zone
arithmetic blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

FieldValue = str | int | float | bool

#: Levels in increasing order of severity; formats map their own words onto these.
Level = Literal["debug", "info", "notice", "warning", "error", "critical"]
LEVELS: tuple[Level, ...] = get_args(Level)

#: The kind of a line that no format recognised at all. Such lines are kept and counted.
UNPARSED = "unparsed"
#: The kind of a line whose format was recognised (timestamp, level, ...) but whose message is
#: not in that format's catalogue and carries no evidence the generic extractors know.
OTHER = "other"


def is_broker_source(source: str) -> bool:
    """Whether a source name is a broker's: 'broker', or 'broker:<host>' when a bundle holds
    several hosts. The one test every stage uses, so a new naming changes in one place."""
    return source == "broker" or source.startswith("broker:")


def is_opcua_server_source(source: str) -> bool:
    """Whether a source name is an OPC UA server's ('opcua-server:<name>')."""
    return source.startswith("opcua-server")


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
    head_lines: int = 1
    """How many of the record's first lines say what it is (what a finding quotes as evidence): 2
    when the first line names no message and the next carries it (java.util.logging's "date Class
    method" then "SEVERE: ..."; Microsoft.Extensions.Logging's "fail: Category[0]")."""

    reason_line: int = 0
    """Index in the record of the later line its evidence came from (a Java "Caused by: ...PKIX
    path building failed", the last line of a Python traceback); 0 when the head said it."""

    @property
    def head(self) -> str:
        """The record's first line, or first lines (`head_lines`), and the later line that says why
        (`reason_line`): its evidence as a finding quotes it; the rest of a stack trace stays in
        `raw`."""
        if self.head_lines == 1 and not self.reason_line:
            return self.raw.split("\n", 1)[0]
        lines = self.raw.split("\n")
        shown = lines[:self.head_lines]
        if self.head_lines <= self.reason_line < len(lines):
            shown.append(lines[self.reason_line].strip())
        return "\n".join(shown)

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


Severity = Literal["info", "low", "medium", "high", "critical"]
#: Severities in increasing order; the CLI's exit code and report order follow it.
SEVERITIES: tuple[Severity, ...] = get_args(Severity)


def severity_rank(severity: str) -> int:
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return 0


#: Client ids that say nothing about who the client is.
ANONYMOUS_IDS = frozenset({"<unknown>", "(null)", "", "unknown"})
"""Client ids that name no one: the broker's placeholder before CONNECT, mosquitto_pub's none."""
