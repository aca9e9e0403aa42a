"""Runs formats over lines: one line into its parts, and one source's lines into Events.

`match_line` is the pure step (used by sample validation and `correlator formats test`).
`SourceParser` adds what needs state across lines: multi-line records (a stack trace belongs to
the line it follows), times for lines that have none (taken from the neighbours, or the file's
modification time, and marked estimated), and the generic fallback for lines the source's own
format does not know, or that one of a user's patterns ran out of time on (formats/patterns.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from correlator.errors import InputError
from correlator.formats.definition import Format, LinePattern, MessagePattern
from correlator.formats.evidence import Evidence
from correlator.formats.patterns import PATTERN_TIMEOUT, SET_ASIDE_AFTER, BoundedPattern, PatternTimeout
from correlator.formats.timeparse import TimeParseError
from correlator.model import OTHER, UNPARSED, Event, FieldValue
from correlator.redaction import LineRedactor

#: Times before 1980-01-01 are placeholders written before a clock was read, not real times.
PLACEHOLDER_BEFORE = 315532800.0


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


def _split_line(fmt: Format, lp: LinePattern, text: str) -> tuple[str, str, str | None, str,
                                                                   dict[str, FieldValue], bool] | None:
    """A line's time text, body, level word, host and other fields, and whether the time is the
    stripped prefix's (`lp.strip_time`), or None when `lp` does not match it."""
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
        time_text, body = parts.pop("ts", ""), parts.pop("body", "").rstrip("\r\n")
        level, host = parts.pop("level", None), parts.pop("host", "")
        fields = {k: fmt.convert(k, v) for k, v in parts.items() if not k.startswith("_")}
    else:
        groups = match.groups()
        ts_at, body_at, level_at, host_at = lp.groups
        time_text = (groups[ts_at - 1] or "") if ts_at else ""
        body = (groups[body_at - 1] or "") if body_at else ""
        level = groups[level_at - 1] if level_at else None
        host = (groups[host_at - 1] or "") if host_at else ""
        fields = {name: fmt.convert(name, value) for number, name in lp.extras
                  if (value := groups[number - 1]) is not None} if lp.extras else {}
    inner = False
    if lp.strip is not None:
        stripped = lp.strip.match(body)
        if stripped is not None:
            body = body[stripped.end():]
            if lp.strip_time is not None and (own := stripped.group("ts")):
                time_text, inner = own, True
    return time_text, body, level, host, fields, inner


def split_body(fmt: Format, lp: LinePattern, text: str) -> str | None:
    """The body `lp` reads from a line (what the catalogue's messages match), None when it does
    not match the line."""
    found = _split_line(fmt, lp, text)
    return None if found is None else found[1]


def line_host(fmt: Format, text: str) -> str | None:
    """The host name a line carries in its format's `host` field (a syslog line's sender): '' when
    its pattern has none, None when no line pattern of the format reads it (a continuation)."""
    for lp in fmt.lines:
        found = _split_line(fmt, lp, text)
        if found is not None:
            return found[3]
    return None


_Read = tuple[MessagePattern | None, str, str, str, str, float | None, str, dict[str, FieldValue]]
"""What `_read` made of a line: message, kind, level, body, time text, time, host, fields."""


def _read(fmt: Format, lp: LinePattern, text: str, evidence: Evidence, tz: tzinfo, year: int | None,
          ref: float | None) -> _Read | None:
    """One line through one line pattern: the split, the time, the catalogue, the evidence. Plain
    tuples and no helper objects, because this runs for every line of every file."""
    split = _split_line(fmt, lp, text)
    if split is None:
        return None
    time_text, body, level_word, host, fields, inner = split
    ts: float | None = None
    parser = lp.strip_time if inner else lp.time
    if time_text and parser is not None:
        try:
            ts = parser.parse(time_text, tz, year, ref)
        except TimeParseError:
            return None
        if ts < PLACEHOLDER_BEFORE:
            ts = None  # a placeholder date (Paho C's 19700101): dated from the neighbours instead
    level = (fmt.level_of(level_word) if level_word else None) or lp.level
    message = None
    kind = OTHER
    extract = True
    found = fmt.find_message(body)
    if found is not None:
        message, typed_fields = found
        kind = message.kind
        level = level or message.level
        extract = message.extract
        if fields:
            fields.update(typed_fields)
        else:
            fields = typed_fields  # a fresh dict of its own
        if message.const:
            fields.update(message.const)
    elif lp.require_message:
        return None
    if extract:
        extra, suggested = evidence.extract(body)
        if extra:
            fields.update(extra)
        if message is None and suggested is not None:
            kind = suggested
    return message, kind, level or "info", body, time_text, ts, host, fields


def match_line(fmt: Format, text: str, evidence: Evidence, *, tz: tzinfo = UTC, year: int | None = None,
               start: int = 0, ref: float | None = None) -> LineMatch | None:
    """Parse `text` with `fmt`; None when none of its line patterns matches. `start` is the index
    of the line pattern to try first (the one that matched the previous line of the file); `ref`
    dates time-of-day-only stamps (the file's modification time)."""
    patterns = fmt.lines
    order = patterns if start == 0 else [patterns[start], *patterns[:start], *patterns[start + 1:]]
    for lp in order:
        read = _read(fmt, lp, text, evidence, tz, year, ref)
        if read is not None:
            message, kind, level, body, time_text, ts, host, fields = read
            return LineMatch(fmt, lp, message, kind, level, body, time_text, ts, host, fields)
    return None


def _orders(lines: list[LinePattern]) -> list[list[tuple[int, LinePattern]]]:
    """The line patterns to try, for each "last one that matched" (a file keeps to one); one
    empty order when a user's only line pattern was set aside."""
    return [[(i, lines[i]), *((j, lp) for j, lp in enumerate(lines) if j != i)] for i in range(len(lines))] or [[]]


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
        self._orders = _orders(fmt.lines)
        self._names: dict[tuple[int, int], str] = {}
        self._redactor = LineRedactor()
        self._timeouts: dict[BoundedPattern, int] = {}
        self._problems: list[InputError] = []

    def drain_problems(self) -> list[InputError]:
        """What went wrong since the last call (a user's pattern that ran out of time), each an
        error naming this file and line and the pattern's own file and line."""
        problems, self._problems = self._problems, []
        return problems

    def feed(self, lines: Iterable[tuple[int, int, str]]) -> list[Event]:
        """`lines` holds (line number, byte offset, text) tuples. Secrets leave here, before a
        line is parsed (correlator.redaction): no event, field or finding ever holds one."""
        out: list[Event] = []
        parse = self._parse
        redact_line = self._redactor.line
        for number, offset, text in lines:
            self.lines_read += 1
            event = parse(number, offset, redact_line(text))
            if event is None:
                continue
            pending = self._pending
            if pending is not None:
                if pending.estimated or self._untimed:
                    self._emit(pending, out)
                else:  # the common case, inline: a timed record after timed records
                    self._last_ts = pending.ts
                    out.append(pending)
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
        if not text or text.isspace():
            return None
        fmt = self.fmt
        read: _Read | None = None
        try:
            for index, lp in self._orders[self._start]:
                read = _read(fmt, lp, text, self.evidence, self.tz, self.year, self.fallback_time)
                if read is not None:
                    self._start = index
                    break
            if read is None and fmt.multiline and self._pending is not None and (
                    self._body_next or fmt.continuation is None or fmt.continuation.match(text)):
                self._continue(self._pending, text, number)
                return None
        except PatternTimeout as exc:
            self._timed_out(exc, number)  # the generic format reads this line
            read = None
        used = fmt
        if read is None and self.fallback is not None:
            used = self.fallback
            for lp in used.lines:
                read = _read(used, lp, text, self.evidence, self.tz, self.year, self.fallback_time)
                if read is not None:
                    break
            if read is not None and read[5] is None:
                read = None  # the generic format only counts when it found a time
        if read is None:
            self.unparsed += 1
            self.kinds[UNPARSED] = self.kinds.get(UNPARSED, 0) + 1
            fields, _ = self.evidence.extract(text)
            return Event(0.0, "", self.source, self.file, number, UNPARSED, text, "info", "", fields, "", True, 1,
                         offset)
        message, kind, level, body, time_text, ts, host, fields = read
        kinds = self.kinds
        kinds[kind] = kinds.get(kind, 0) + 1
        # A head line with no message (Microsoft.Extensions.Logging's "info: Category[0]") has its
        # message on the next line: that line is then read as the body.
        self._body_next = fmt.multiline and used is fmt and not body.strip()
        key = (id(lp), id(message))
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"{used.name}/{lp.name}/{message.name}" if message else f"{used.name}/{lp.name}"
        if ts is None:
            return Event(0.0, time_text, self.source, self.file, number, kind, text, level, host, fields, name,
                         True, 1, offset)
        return Event(ts, time_text, self.source, self.file, number, kind, text, level, host, fields, name, False, 1,
                     offset)

    def _timed_out(self, exc: PatternTimeout, number: int) -> None:
        """A user's pattern ran out of time on line `number`: said at its first time, and again when
        it has done so on SET_ASIDE_AFTER lines and the rest of the file is read without it."""
        pattern = exc.pattern
        count = self._timeouts.get(pattern, 0) + 1
        self._timeouts[pattern] = count
        where = f"the regex of {pattern.what} ({pattern.place})"
        if count == 1:
            self._problems.append(InputError(
                f"{where} took over {PATTERN_TIMEOUT:g} s on this line (it backtracks): the line is read with the "
                "generic format", file=self.file, line=number))
        if count >= SET_ASIDE_AFTER:
            self._problems.append(InputError(
                f"{where} ran out of time on {count} lines: the rest of the file is read without it",
                file=self.file, line=number))
            self.fmt = self.fmt.without(pattern)
            self._orders = _orders(self.fmt.lines)
            self._start = 0

    def _continue(self, event: Event, text: str, number: int) -> None:
        """A continuation line joins the record before it (a stack trace, a wrapped message)."""
        event.raw += "\n" + text
        event.line_count += 1
        if self._body_next:
            self._body_next = False
            event.head_lines = 2
            try:
                self._message_into(event, text.strip())
            except PatternTimeout as exc:
                self._timed_out(exc, number)  # the line stays part of its record, unread
        elif self.fmt.extract_continuation:
            self._extract_into(event, text)

    def _extract_into(self, event: Event, text: str) -> None:
        """Evidence in a continuation line belongs to its record: the reason of a Java or Python
        failure is often only in a `Caused by:` or the last line of the traceback. What an earlier
        line said stays, unless this line's reason is sharper in its vocabulary: JSSE heads
        "PKIX path validation failed" (no reason given) and says "CertificateExpiredException"
        three causes down, .NET's "Authentication failed, see inner exception" has the OpenSSL
        reason in the inner one. A record that had no kind of its own takes the evidence's."""
        found, suggested = self.evidence.extract(text)
        fields = event.fields
        sharper = [key for key, value in found.items()
                   if key in fields and self.evidence.sharper(key, value, fields[key])]
        if sharper or (not event.reason_line and any(key not in fields for key in found)):
            event.reason_line = event.line_count - 1  # this line told what the head did not
        for key in sharper:
            fields[key] = found[key]
            if key == "tls_reason":  # whose alert it was goes with the reason
                fields["tls_alert"] = found.get("tls_alert", False)
        for key, value in found.items():
            fields.setdefault(key, value)
        if suggested is not None and event.kind == OTHER:
            self.kinds[OTHER] -= 1
            self.kinds[suggested] = self.kinds.get(suggested, 0) + 1
            event.kind = suggested

    def _message_into(self, event: Event, body: str) -> None:
        """Reads the continuation line that carries an empty head line's message as its body:
        catalogue first, then evidence, as match_line does for a one-line record. A level word
        before a colon starts it in java.util.logging's two-line record ("SEVERE: ...")."""
        word, colon, rest = body.partition(": ")
        level = self.fmt.level_of(word) if colon and word.isalpha() else None
        if level is not None:
            event.level, body = level, rest
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
