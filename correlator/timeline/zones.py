"""Each source's time zone: guessed from its timestamps, overridable per source name or file glob.

Only naive timestamps (no zone in the text) depend on the zone; epoch seconds and texts with `Z` or
an offset are absolute and no zone option changes them. How a zone is chosen for a source, first
match wins:

1. an override (`--tz broker=UTC`, `--tz 'clients/*=Europe/Berlin'`): the last option that matches
   the source's name or its path wins, so a later, more specific option refines an earlier one;
2. the timestamps say their zone (ISO with offset, epoch): that ("from timestamps");
3. the broker's epoch prefix: UTC by definition;
4. the configured default (`--tz Europe/Berlin` without a name), else UTC.

The original timestamp text always stays on the event (`Event.time_text`); choosing another zone
for a naive source after its events were made (`Rezoner`) shifts `Event.ts` by the difference of
the two zones' offsets at that wall-clock time, DST included.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from correlator.errors import CorrelatorError
from correlator.model import Event


class ZoneError(CorrelatorError):
    """A `--tz` option or a configured zone is not understood."""


_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*(?P<sign>[+-])(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?$", re.I)
#: Texts whose zone is in the text itself: epoch numbers, and a trailing Z/UTC/GMT/offset.
_ZONED_TEXT = re.compile(r"(?:^\d{9,19}(?:\.\d+)?$)|(?:(?:Z|UTC|GMT|[+-]\d{2}:?\d{2})\]?\s*$)")
_GLOB_CHARS = frozenset("*?[/")


def parse_zone(text: str, *, option: str | None = None) -> tzinfo:
    """An IANA name (`Europe/Berlin`), `UTC`, or a fixed offset (`+01:00`, `UTC+2`, `-0530`)."""
    value = text.strip()
    if not value:
        raise ZoneError("empty time zone", context=option)
    if value.upper() in ("UTC", "Z", "GMT", "ZULU"):
        return UTC
    match = _OFFSET.match(value)
    if match is not None:
        hours, minutes = int(match.group("h")), int(match.group("m") or 0)
        if hours > 23 or minutes > 59:
            raise ZoneError(f"offset {value!r} is out of range (at most ±23:59)", context=option)
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if match.group("sign") == "-" else delta)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ZoneError(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin, UTC, "
                        "or an offset such as +01:00", context=option) from None


def zone_name(zone: tzinfo) -> str:
    """The name a report shows: the IANA key, 'UTC', or the offset."""
    key = getattr(zone, "key", None)
    if isinstance(key, str):
        return key
    if zone is UTC:
        return "UTC"
    return str(zone)


def pattern_matches(pattern: str, source: str, path: str) -> bool:
    """Whether a per-source option's pattern names this source: a plain word is a source name
    ('broker', 'client:edge-07') or a file name; anything with / * ? [ is a glob on the path (any
    trailing part of it, so 'clients/*' matches '/abs/incident/clients/a.log') or the source."""
    if not _GLOB_CHARS & set(pattern):
        return pattern in (source, path) or path.replace("\\", "/").rsplit("/", 1)[-1] == pattern
    path = path.replace("\\", "/")
    if fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(source, pattern):
        return True
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[i:]), pattern) for i in range(1, len(parts)))


@dataclass(frozen=True)
class ZoneRule:
    """One `--tz PATTERN=ZONE` option."""

    pattern: str
    zone: tzinfo
    text: str
    """The option as given, for reports and errors."""

    @property
    def is_glob(self) -> bool:
        return bool(_GLOB_CHARS & set(self.pattern))

    def matches(self, source: str, path: str) -> bool:
        return pattern_matches(self.pattern, source, path)


@dataclass(frozen=True)
class ZoneChoice:
    """The zone a source was given and why, for the source summary."""

    zone: tzinfo
    how: str
    """'configured (--tz ...)', 'from timestamps', 'broker epoch', 'default', or 'UTC (no zone known)'."""

    @property
    def name(self) -> str:
        return zone_name(self.zone)


@dataclass
class ZoneConfig:
    """All zone options: per-source rules and a default for naive sources nobody named."""

    rules: list[ZoneRule] = field(default_factory=list)
    default: tzinfo | None = None

    def override(self, source: str, path: str) -> ZoneRule | None:
        found = None
        for rule in self.rules:
            if rule.matches(source, path):
                found = rule
        return found

    def choose(self, source: str, path: str, *, zoned_text: bool = False, broker_epoch: bool = False) -> ZoneChoice:
        """The zone for naive timestamps of a source. `zoned_text`: its timestamps carry their
        zone; `broker_epoch`: it is a broker log with epoch prefixes."""
        rule = self.override(source, path)
        if rule is not None:
            return ZoneChoice(rule.zone, f"configured (--tz {rule.text})")
        if broker_epoch:
            return ZoneChoice(UTC, "broker epoch")
        if zoned_text:
            return ZoneChoice(self.default or UTC, "from timestamps")
        if self.default is not None:
            return ZoneChoice(self.default, "default")
        return ZoneChoice(UTC, "UTC (no zone known)")


def parse_zone_options(options: Iterable[str]) -> ZoneConfig:
    """`--tz` option strings: `NAME=ZONE` or `GLOB=ZONE` per source, or a bare `ZONE` as the
    default for every naive source no rule names."""
    config = ZoneConfig()
    for option in options:
        text = option.strip()
        if "=" in text:
            pattern, _, zone_text = text.rpartition("=")
            pattern = pattern.strip()
            if not pattern:
                raise ZoneError("missing source name or file glob before '='", context=f"--tz {option}")
            config.rules.append(ZoneRule(pattern, parse_zone(zone_text, option=f"--tz {option}"), text))
        else:
            config.default = parse_zone(text, option=f"--tz {option}")
    return config


def has_zone(time_text: str) -> bool:
    """Whether a timestamp text says its own zone (then no source zone applies to it)."""
    return bool(time_text) and _ZONED_TEXT.search(time_text.strip()) is not None


def guess_zoned(events: Sequence[Event]) -> bool:
    """True when most timed events of a sample carry their zone in the text."""
    timed = [e for e in events if e.time_text and not e.estimated]
    if not timed:
        return False
    return sum(1 for e in timed if has_zone(e.time_text)) * 2 > len(timed)


class Rezoner:
    """Shifts naive events of a source from the zone they were parsed in to another one.

    The offset is looked up once per quarter hour of wall-clock time (every real zone changes its
    offset on a quarter-hour boundary), so re-zoning a million events costs a dict lookup each.
    """

    __slots__ = ("_cache", "new", "old")

    def __init__(self, old: tzinfo, new: tzinfo) -> None:
        self.old = old
        self.new = new
        self._cache: dict[int, float] = {}

    def shift_for(self, ts: float) -> float:
        """Seconds to add to `ts` (parsed as wall-clock time in `old`) to express the same
        wall-clock time in `new`."""
        bucket = int(ts // 900)
        cached = self._cache.get(bucket)
        if cached is None:
            wall = datetime.fromtimestamp(bucket * 900, UTC).astimezone(self.old).replace(tzinfo=None)
            old_off = self.old.utcoffset(wall) or timedelta(0)
            new_off = self.new.utcoffset(wall) or timedelta(0)
            cached = (old_off - new_off).total_seconds()
            if len(self._cache) > 65536:
                self._cache.clear()
            self._cache[bucket] = cached
        return cached

    def apply(self, events: Iterable[Event]) -> int:
        """Shift the naive events among `events` in place; returns how many moved."""
        moved = 0
        naive = True  # an untimed event borrowed its time from the timed one before it
        for event in events:
            if event.time_text:
                naive = not has_zone(event.time_text)
            if not naive:
                continue
            shift = self.shift_for(event.ts)
            if shift:
                event.ts += shift
                moved += 1
        return moved
