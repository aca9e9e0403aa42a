"""Turns the timestamp text a line carries into UTC epoch seconds.

A format names how its timestamps are written (`time = "epoch"`, `"iso"`, `"syslog"`, `"time_of_day"`,
a strptime pattern, or `"auto"`). Naive times (no zone in the text) take the source's zone, which the
timeline can correct later because the original text is kept. Parsing is cached per second of
text because a log writes thousands of lines per second with the same prefix and strptime costs
microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

# A time-of-day split off a text, so '14:20:00.123' parses once per second, not once per line.
# Paho C's trace writes the time of day without colons ("20261123 141130.773").
_FRACTION = re.compile(
    r"^(?P<head>.*?(?:\d{2}:\d{2}:\d{2}|\b\d{6}(?=[.,]\d|$)))(?:[.,](?P<frac>\d{1,9}))?(?P<tail>.*)$")

_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}

#: Forms `auto` tries after ISO 8601, most common in the field first.
AUTO_FORMATS: tuple[str, ...] = (
    "%d.%m.%Y %H:%M:%S",     # German/European day-first with dots
    "%d/%m/%Y %H:%M:%S",     # day-first with slashes (ambiguous: see `day_first`)
    "%m/%d/%Y %H:%M:%S",     # US month-first
    "%m/%d/%Y %I:%M:%S %p",  # US with AM/PM (Windows event style)
    "%Y/%m/%d %H:%M:%S",
    "%d-%b-%Y %H:%M:%S",
    "%a %b %d %H:%M:%S %Y",  # ctime
    "%Y%m%d %H:%M:%S",
    "%b %d, %Y %I:%M:%S %p",   # java.util.logging's SimpleFormatter (JDK 8)
    "%b %d, %Y, %I:%M:%S %p",  # the same with CLDR locale data (JDK 9 and later)
)


class TimeParseError(ValueError):
    """The text is not a timestamp of the declared form."""


def _epoch(text: str, tz: tzinfo, year: int) -> float:
    return float(text)


def _epoch_ms(text: str, tz: tzinfo, year: int) -> float:
    return float(text) / 1e3


def _epoch_us(text: str, tz: tzinfo, year: int) -> float:
    return float(text) / 1e6


_EPOCHS: dict[str, Callable[[str, tzinfo, int], float]] = {
    "epoch": _epoch, "epoch_ms": _epoch_ms, "epoch_us": _epoch_us}


class TimeParser:
    """Parses one format pattern's timestamps. `spec` is one of:
    epoch, epoch_ms, epoch_us, iso, syslog, time_of_day, auto, or a strptime pattern."""

    def __init__(self, spec: str) -> None:
        # Fractions of a second are split off before parsing (that is what makes the cache work),
        # so a pattern's own %f is dropped with the separator before it.
        spec = re.sub(r"[.,]%f", "", spec)
        self.spec = spec
        self._cache: dict[tuple[str, str, int], tuple[float, bool]] = {}
        self._ref: float | None = None
        self._last: tuple[str, tzinfo | None, int | None, float | None, float] = ("", None, None, None, 0.0)
        self._parse: Callable[[str, tzinfo, int], float]
        if spec in _EPOCHS:
            self._parse = _EPOCHS[spec]
        elif spec == "time_of_day":
            self._parse = self._parse_time_of_day
        else:
            self._parse = self._parse_calendar

    def __reduce__(self) -> tuple[type[TimeParser], tuple[str]]:
        """Pickled as its spec (correlator/startup_cache.py): its parse function and caches are
        made again, so the cache names no function."""
        return TimeParser, (self.spec,)

    @property
    def is_epoch(self) -> bool:
        return self.spec.startswith("epoch")

    def parse(self, text: str, tz: tzinfo = UTC, year: int | None = None, ref: float | None = None) -> float:
        """UTC epoch seconds for `text`; naive times are in `tz`; years missing from the text
        (syslog) are `year` (default: this year). `ref` (epoch seconds, usually the file's
        modification time) supplies the date for `time_of_day` stamps."""
        last = self._last
        if last[0] == text and last[1] is tz and last[2] == year and last[3] == ref:
            return last[4]  # a busy log repeats its stamp for every line of the same second
        self._ref = ref
        try:
            value = self._parse(text, tz, year or datetime.now(UTC).year)
        except (ValueError, OverflowError, OSError) as exc:
            raise TimeParseError(f"{text!r} is not a {self.spec} timestamp") from exc
        # One tuple, assigned at once, so parsers on other threads never see half of it.
        self._last = (text, tz, year, ref, value)
        return value

    def _parse_time_of_day(self, text: str, tz: tzinfo, year: int) -> float:
        # Layouts like logback's default %d{HH:mm:ss.SSS} carry no date. The file was last written
        # on the day of its last line, so the date of `ref` is right for the end of the file; a
        # time later than `ref` (plus an hour for clocks and buffering) was written before midnight.
        # No cache: the result depends on `ref`, and such layouts are rare enough not to need one.
        match = _FRACTION.match(text.strip())
        if match is None:
            raise ValueError(text)
        clock = datetime.strptime(match.group("head").strip()[-8:], "%H:%M:%S").time()
        ref = self._ref if self._ref is not None else datetime.now(UTC).timestamp()
        day = datetime.fromtimestamp(ref, tz).date()
        value = datetime.combine(day, clock, tzinfo=tz)
        if value.timestamp() > ref + 3600:
            value -= timedelta(days=1)
        frac = match.group("frac")
        return value.timestamp() + (float("0." + frac) if frac else 0.0)

    def has_zone(self, text: str) -> bool:
        """Whether the text itself says its zone (so the source's zone must not be applied)."""
        if self.is_epoch:
            return True
        match = _FRACTION.match(text.strip())
        tail = match.group("tail") if match else text
        return bool(re.search(r"(Z|UTC|GMT|[+-]\d{2}:?\d{2})\s*$", tail.strip()))

    def _parse_calendar(self, text: str, tz: tzinfo, year: int) -> float:
        text = text.strip()
        match = _FRACTION.match(text)
        if match is None:
            return self._whole(text, tz, year)
        head, frac, tail = match.group("head"), match.group("frac"), match.group("tail")
        key = (head + tail, tz.tzname(None) or repr(tz), year)  # a syslog stamp means another day in another year
        cached = self._cache.get(key)
        if cached is None:
            base = self._whole(head + tail, tz, year)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = (base, True)
        else:
            base = cached[0]
        return base + (float("0." + frac) if frac else 0.0)

    def _whole(self, text: str, tz: tzinfo, year: int) -> float:
        if self.spec == "iso":
            return _aware(_iso(text), tz).timestamp()
        if self.spec == "syslog":
            return _syslog(text, tz, year)
        if self.spec == "auto":
            return _auto(text, tz, year)
        return _aware(datetime.strptime(text, self.spec), tz).timestamp()


def _aware(value: datetime, tz: tzinfo) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def _iso(text: str) -> datetime:
    text = text.replace(" UTC", "Z").replace(" GMT", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # fromisoformat wants ±HH:MM; logback and syslog write ±HHMM
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    return datetime.fromisoformat(text)


def _syslog(text: str, tz: tzinfo, year: int) -> float:
    parts = text.split()
    if len(parts) < 3:
        raise ValueError(text)
    if parts[0].isdigit():  # day first, as Node-RED writes it: "23 Nov 14:20:00"
        parts[0], parts[1] = parts[1], parts[0]
    month = _MONTHS[parts[0][:3].lower()]
    hour, minute, second = (int(p) for p in parts[2].split(":"))
    value = datetime(year, month, int(parts[1]), hour, minute, second, tzinfo=tz)
    # A December line read in January belongs to last year.
    if value - datetime.now(tz) > timedelta(days=31):
        value = value.replace(year=year - 1)
    return value.timestamp()


def _auto(text: str, tz: tzinfo, year: int) -> float:
    try:
        return _aware(_iso(text), tz).timestamp()
    except ValueError:
        pass
    for form in AUTO_FORMATS:
        try:
            return _aware(datetime.strptime(text, form), tz).timestamp()
        except ValueError:
            continue
    try:
        return _syslog(text, tz, year)
    except (ValueError, KeyError):
        pass
    raise ValueError(text)
