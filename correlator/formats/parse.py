"""Runs formats over lines: one line into its parts, and one source's lines into Events.

`match_line` is the pure step (used by sample validation and `correlator formats test`).
`SourceParser` adds what needs state across lines: multi-line records (a stack trace belongs to
the line it follows), times for lines that have none (taken from the neighbours, or the file's
modification time, and marked estimated), and the generic fallback for lines the source's own
format does not know.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from correlator.formats.definition import Format, LinePattern, MessagePattern
from correlator.formats.evidence import Evidence
from correlator.formats.timeparse import TimeParseError
from correlator.model import OTHER, UNPARSED, Event, FieldValue


@dataclass
class LineMatch:
    """What one format made of one line."""

    format: Format
    line_pattern: LinePattern
    message: MessagePattern | None
    kind: str
    level: str
    body: str
    time_text: str
    ts: float | None
    host: str
    fields: dict[str, FieldValue] = field(default_factory=dict)

    @property
    def pattern_name(self) -> str:
        name = f"{self.format.name}/{self.line_pattern.name}"
        return f"{name}/{self.message.name}" if self.message else name


def _split_line(fmt: Format, lp: LinePattern, text: str) -> tuple[dict[str, str], str] | None:
    """The named parts of a line (ts, level, host and fields) and its body, or None."""
    match = lp.regex.match(text)
    if match is None:
        return None
    if lp.decode == "json":
        try:
            record = json.loads(text)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        for key, wanted in lp.json_match.items():
            if str(record.get(key, "")) != wanted:
                return None
        parts = {name: str(record[key]) for name, key in lp.json_keys.items() if key in record}
        body = parts.pop("body", "")
    else:
        parts = {k: v for k, v in match.groupdict().items() if v is not None}
        body = parts.pop("body", "")
    if lp.strip is not None:
        stripped = lp.strip.match(body)
        if stripped is not None:
            body = body[stripped.end():]
    return parts, body


def match_line(fmt: Format, text: str, evidence: Evidence, *, tz: tzinfo = UTC, year: int | None = None,
               start: int = 0, ref: float | None = None) -> LineMatch | None:
    """Parse `text` with `fmt`; None when none of its line patterns matches. `start` is the index
    of the line pattern to try first (the one that matched the previous line of the file); `ref`
    dates time-of-day-only stamps (the file's modification time)."""
    patterns = fmt.lines
    order = patterns if start == 0 else [patterns[start], *patterns[:start], *patterns[start + 1:]]
    for lp in order:
        split = _split_line(fmt, lp, text)
        if split is None:
            continue
        parts, body = split
        time_text = parts.pop("ts", "")
        ts: float | None = None
        if time_text and lp.time is not None:
            try:
                ts = lp.time.parse(time_text, tz, year, ref)
            except TimeParseError:
                continue
        level = fmt.level_of(parts.pop("level", None)) or lp.level
        host = parts.pop("host", "")
        fields: dict[str, FieldValue] = {
            k: fmt.convert(k, v) for k, v in parts.items() if not k.startswith("_")}
        message = None
        kind = OTHER
        extract = True
        found = fmt.find_message(body)
        if found is not None:
            message, typed_fields = found
            kind = message.kind
            level = level or message.level
            extract = message.extract
            fields.update(typed_fields)
            fields.update(message.const)
        if message is None and lp.require_message:
            continue
        if extract:
            extra, suggested = evidence.extract(body)
            fields.update(extra)
            if message is None and suggested is not None:
                kind = suggested
        return LineMatch(fmt, lp, message, kind, level or "info", body, time_text, ts, host, fields)
    return None


class SourceParser:
    """Turns one source's lines into Events, in order, one batch at a time (batch and live
    reading feed it the same way). Call `finish()` at the end of the input to flush what waits
    for a following line."""

    def __init__(self, fmt: Format, evidence: Evidence, *, source: str, file: str, tz: tzinfo = UTC,
                 fallback: Format | None = None, fallback_time: float | None = None,
                 year: int | None = None) -> None:
        self.fmt = fmt
        self.evidence = evidence
        self.source = source
        self.file = file
        self.tz = tz
        self.fallback = fallback if fallback is not fmt else None
        self.fallback_time = fallback_time
        self.year = year or (datetime.fromtimestamp(fallback_time, UTC).year if fallback_time else None)
        self._start = 0
        self._pending: Event | None = None
        self._untimed: list[Event] = []
        self._last_ts: float | None = None
        self._body_next = False
        self.lines_read = 0
        self.unparsed = 0
        self.estimated = 0
        self.kinds: dict[str, int] = {}

    def feed(self, lines: Iterable[tuple[int, int, str]]) -> list[Event]:
        """`lines` holds (line number, byte offset, text) tuples."""
        out: list[Event] = []
        for number, offset, text in lines:
            self.lines_read += 1
            event = self._parse(number, offset, text)
            if event is None:
                continue
            self._emit(self._pending, out)
            self._pending = event
        # A record can only grow by continuation lines, so everything but the last is final.
        return out

    def finish(self) -> list[Event]:
        out: list[Event] = []
        self._emit(self._pending, out)
        self._pending = None
        if self._untimed:
            ts = self._last_ts if self._last_ts is not None else (self.fallback_time or 0.0)
            for event in self._untimed:
                event.ts = ts
                out.append(event)
            self._untimed = []
        return out

    def _parse(self, number: int, offset: int, text: str) -> Event | None:
        if not text.strip():
            return None
        result = match_line(self.fmt, text, self.evidence, tz=self.tz, year=self.year, start=self._start,
                            ref=self.fallback_time)
        if result is not None:
            self._start = self.fmt.lines.index(result.line_pattern)
        elif self.fmt.multiline and self._pending is not None and (
                self.fmt.continuation is None or self.fmt.continuation.match(text)):
            self._pending.raw += "\n" + text
            self._pending.line_count += 1
            if self._body_next:
                self._body_next = False
                self._message_into(self._pending, text.strip())
            elif self.fmt.extract_continuation:
                self._extract_into(self._pending, text)
            return None
        elif self.fallback is not None:
            result = match_line(self.fallback, text, self.evidence, tz=self.tz, year=self.year,
                                ref=self.fallback_time)
            if result is not None and result.ts is None:
                result = None  # the generic format only counts when it found a time
        if result is None:
            self.unparsed += 1
            self.kinds[UNPARSED] = self.kinds.get(UNPARSED, 0) + 1
            fields, _ = self.evidence.extract(text)
            return Event(ts=0.0, time_text="", source=self.source, file=self.file, line=number, kind=UNPARSED,
                         raw=text, level="info", fields=fields, estimated=True, offset=offset)
        self.kinds[result.kind] = self.kinds.get(result.kind, 0) + 1
        # A head line with no message (Microsoft.Extensions.Logging's "info: Category[0]") has its
        # message on the next line: that line is then read as the body.
        self._body_next = self.fmt.multiline and result.format is self.fmt and not result.body.strip()
        return Event(ts=result.ts if result.ts is not None else 0.0, time_text=result.time_text,
                     source=self.source, file=self.file, line=number, kind=result.kind, raw=text,
                     level=result.level, host=result.host, fields=result.fields, format=result.pattern_name,
                     estimated=result.ts is None, offset=offset)

    def _extract_into(self, event: Event, text: str) -> None:
        """Evidence in a continuation line belongs to its record: the reason of a Java or Python
        failure is often only in a `Caused by:` or the last line of the traceback. What the first
        line already said wins; a record that had no kind of its own takes the evidence's."""
        found, suggested = self.evidence.extract(text)
        for key, value in found.items():
            event.fields.setdefault(key, value)
        if suggested is not None and event.kind == OTHER:
            self.kinds[OTHER] -= 1
            self.kinds[suggested] = self.kinds.get(suggested, 0) + 1
            event.kind = suggested

    def _message_into(self, event: Event, body: str) -> None:
        """Reads the continuation line that carries an empty head line's message as its body:
        catalogue first, then evidence, as match_line does for a one-line record."""
        found = self.fmt.find_message(body)
        extract = True
        if found is not None:
            message, typed_fields = found
            event.fields.update(typed_fields)
            event.fields.update(message.const)
            extract = message.extract
            if event.kind == OTHER:
                self.kinds[OTHER] -= 1
                self.kinds[message.kind] = self.kinds.get(message.kind, 0) + 1
                event.kind = message.kind
                event.format += "/" + message.name
        if extract:
            self._extract_into(event, body)

    def _emit(self, event: Event | None, out: list[Event]) -> None:
        if event is None:
            return
        if event.estimated:
            self.estimated += 1
            if self._last_ts is None:
                self._untimed.append(event)
                return
            event.ts = self._last_ts
            out.append(event)
            return
        if self._untimed:
            for waiting in self._untimed:
                waiting.ts = event.ts
                out.append(waiting)
            self._untimed = []
        self._last_ts = event.ts
        out.append(event)
