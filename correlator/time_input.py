"""The one grammar for times a user types: `--since`/`--until`, `certs --at`, and the API's
`since`, `until` and `at` parameters all read their text here, so a time one surface takes every
other surface takes too, and a bad one gets the same message everywhere.

Accepted, case-insensitive:

- ISO 8601 / RFC 3339 as Python reads it: `2026-11-23T14:00:00Z`, `2026-11-23t14:00:00z`,
  `2026-11-23 14:00`, `2026-11-23`, `20261123T140000Z`, `2026-11-23T14:00:00.5+01:00`,
  `+0100`/`+01` offsets; a leap second (`:60`) is read as the second before it;
- epoch seconds, as the broker logs them: `1795444795`, `1795444795.25`, or `@1795444795`
  (a bare number needs 9 or more digits: 8 digits are the basic ISO date `20261123`);
- `now`: the wall clock of the caller, read once when the text is parsed (the time a check is
  asked at is decided here, at the surface, never inside the check).

A time without a zone is UTC, not the local zone of the machine the tool runs on: the broker's
epoch timestamps are UTC, a bundle is often read far from where it was written, and the same text
must mean the same moment on every machine. Give an offset (`+01:00`) for anything else.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from correlator.errors import TimeInputError

_EPOCH = re.compile(r"^(?:@(?P<at>\d+(?:\.\d+)?)|(?P<bare>\d{9,}(?:\.\d+)?))$")
_LEAP_SECOND = re.compile(r"([T ]\d\d:\d\d):60")
#: ISO 8601 text starts with a four-digit year (the calendar date or the basic form).
_ISO_START = re.compile(r"^\d{4}-?\d\d")
EXAMPLES = "2026-11-23T14:00:00Z, 2026-11-23 14:00+01:00, 2026-11-23, 1795444795 or now"


def parse_time(text: str, name: str, *, now: datetime | None = None) -> datetime:
    """`text` as an aware UTC datetime; `name` (the option or parameter) is named in the error.
    `now` is what 'now' means (default: the wall clock at this call). Raises TimeInputError."""
    cleaned = text.strip()
    if cleaned.lower() == "now":
        return (now or datetime.now(UTC)).astimezone(UTC)
    try:
        value = _epoch(cleaned) if _EPOCH.match(cleaned) else _iso(cleaned)
    except (ValueError, OverflowError, OSError):
        raise TimeInputError(f"{name}: {text!r} is not an ISO 8601 time or epoch seconds: write e.g. "
                             f"{EXAMPLES} (a time without a zone is UTC)") from None
    return value


def parse_epoch(text: str | None, name: str) -> float | None:
    """`parse_time` as epoch seconds, None for None: the form event times and queries use."""
    return None if text is None else parse_time(text, name).timestamp()


def _epoch(text: str) -> datetime:
    return datetime.fromtimestamp(float(text.lstrip("@")), UTC)


def _iso(text: str) -> datetime:
    upper = _LEAP_SECOND.sub(r"\1:59", text.upper())
    if not _ISO_START.match(upper):
        raise ValueError(text)
    value = datetime.fromisoformat(upper)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
