"""The regexes of a format, and the time bound on those of a user's format.

A user's format file holds regexes someone wrote for their gateway's log, and a regex can
backtrack for hours on one long line (`(a+)+$` against `aaaa...ab`). Python's `re` cannot be
stopped once it runs; the `regex` module can (`timeout=`). So a format read from outside the
built-in folder has its patterns compiled by `regex` (version 0, which is Python's `re` dialect)
and every call bounded by PATTERN_TIMEOUT. A call that runs out raises PatternTimeout, naming the
pattern's file and line; the reader then reads that line with the generic format and, after
SET_ASIDE_AFTER such lines, reads the rest of the file without the pattern (formats/parse.py).

The built-in formats stay on `re`, unbounded: the same files loaded as a user's parse 1.7 to 1.9
times slower, a bounded call costing about five plain `re` calls; benchmarks/hostile.py --patterns
measures both and shows every built-in format linear on long pathological lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import regex

from correlator.definitions import KeyPath, line_in
from correlator.errors import DefinitionError

#: Seconds one pattern of a user's format may spend on one line. A sane pattern takes
#: microseconds on a line of a megabyte; one that needs more is backtracking.
PATTERN_TIMEOUT = 0.05
#: Lines on which a pattern may run out of time in one file before the rest of the file is read
#: without it (each costs the bound, so a file pays at most this many times the bound per pattern).
SET_ASIDE_AFTER = 3

AnyMatch = re.Match[str] | regex.Match[str]


class FormatPattern(Protocol):
    """What the readers use of a compiled format pattern: `re`'s (built-in formats) or a
    BoundedPattern (a user's)."""

    @property
    def pattern(self) -> str: ...

    @property
    def groupindex(self) -> Mapping[str, int]: ...

    def match(self, string: str, pos: int = 0) -> AnyMatch | None: ...

    def search(self, string: str, pos: int = 0) -> AnyMatch | None: ...


class BoundedPattern:
    """A user's pattern: `match` and `search` as the compiled pattern's, each call bounded by
    PATTERN_TIMEOUT. `what` and `at` say where it was written (for PatternTimeout)."""

    __slots__ = ("_line", "at", "compiled", "file", "groupindex", "pattern", "what")

    def __init__(self, source: str, flags: int, *, file: str | Path, what: str, at: KeyPath) -> None:
        self.compiled: regex.Pattern[str] = regex.compile(source, flags | regex.V0)
        self.pattern = source
        self.groupindex: Mapping[str, int] = self.compiled.groupindex
        self.file = str(file)
        self.what = what
        self.at = at
        self._line: int | None = -1

    @property
    def line(self) -> int | None:
        """The line of the pattern in its file (read again only when a pattern times out)."""
        if self._line == -1:
            self._line = line_in(self.file, self.at)
        return self._line

    @property
    def place(self) -> str:
        """`file:line` of the pattern."""
        return self.file if self.line is None else f"{self.file}:{self.line}"

    def match(self, string: str, pos: int = 0) -> regex.Match[str] | None:
        try:
            return self.compiled.match(string, pos, timeout=PATTERN_TIMEOUT)
        except TimeoutError:
            raise PatternTimeout(self) from None

    def search(self, string: str, pos: int = 0) -> regex.Match[str] | None:
        try:
            return self.compiled.search(string, pos, timeout=PATTERN_TIMEOUT)
        except TimeoutError:
            raise PatternTimeout(self) from None


class PatternTimeout(DefinitionError):
    """A user's pattern ran out of time on one line. A DefinitionError, so wherever it is not
    caught (a sample, `formats test`) it is one line naming the pattern, never a traceback."""

    def __init__(self, pattern: BoundedPattern) -> None:
        self.pattern = pattern
        self.timeout = PATTERN_TIMEOUT
        super().__init__(f"the regex took over {PATTERN_TIMEOUT:g} s on one line (it backtracks: nested or "
                         "overlapping repeats such as (a+)+ or (a|aa)*)", file=pattern.file, line=pattern.line,
                         context=pattern.what)


def compile_pattern(source: str, flags: int = 0, *, bounded: bool, file: str | Path, what: str,
                    at: KeyPath) -> FormatPattern:
    """A format's pattern: bounded (a user's format) or plain `re` (a built-in one). Raises
    `re.error` or `regex.error` when it does not compile."""
    if bounded:
        return BoundedPattern(source, flags, file=file, what=what, at=at)
    return re.compile(source, flags)


PATTERN_ERRORS = (re.error, regex.error, OverflowError)
"""What compiling a pattern raises when the pattern is wrong (OverflowError: too many groups)."""
