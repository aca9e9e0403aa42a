"""Rotated logs that share a stretch of lines: each line is read once.

A rotation set (`mosquitto.log`, `mosquitto.log.1`, `mosquitto.log.2.gz` in one folder) should
hold each line once, but often does not: logrotate's `copy` leaves the whole rotated copy at the
head of the live file, a `copytruncate` whose truncation came late (or a collector that took the
live file before the rotation and the rotated one after) leaves the end of one file at the head of
the other, or one file wholly inside another. Read as they are, the shared lines would count twice
on the timeline and in every finding and threshold.

For every two files of a set, the end of one is compared with the start of the other: where one
file's lines from some line on are exactly the other's first lines, the first file is read only up
to that line; a file whose every line is inside another is not read at all. Lines are compared as
bytes, whole; a candidate is a line equal to the other file's first line, and each candidate is
checked to the end of the shorter stretch, so two files that merely share a line or two (the same
`PINGRESP` in the same second) are never cut. Memory stays at a line per file; time is a pass over
the files per candidate, and candidates are few (a timestamped first line rarely repeats; past
MAX_CANDIDATES the pair is left as it is).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from correlator.errors import InputError
from correlator.sources.files import base_name
from correlator.sources.lines import Line, iter_lines

#: Places one file's first line occurs in another that are checked, at most.
MAX_CANDIDATES = 32


@dataclass
class Overlaps:
    """What to read of each log so that shared lines count once."""

    read_to: dict[Path, tuple[int, int, Path]] = field(default_factory=dict)
    """A log -> (byte offset, line number) its shared stretch starts at, and the log that holds that
    stretch too: it is read only up to there."""
    inside: dict[Path, Path] = field(default_factory=dict)
    """A log whose every line is in another (that one): not read."""


def _lines(path: Path) -> Iterator[Line]:
    return iter_lines(path)


def _candidates(older: Path, first: bytes) -> list[tuple[int, int]]:
    """(byte offset, line number) of the lines of `older` equal to `first`."""
    found = []
    for number, (offset, raw) in enumerate(_lines(older), 1):
        if raw == first:
            found.append((offset, number))
            if len(found) > MAX_CANDIDATES:
                return []
    return found


def _compare(a: Path, start: int, b: Path) -> str | None:
    """From byte `start` of `a` on, against `b` from its first line: 'a ends' when every line of
    `a` from there is `b`'s (the tail of `a` is the head of `b`), 'b ends' when every line of `b`
    is there in `a`, None at the first line that differs."""
    tail = itertools.dropwhile(lambda line: line[0] < start, _lines(a))
    for left, right in itertools.zip_longest(tail, _lines(b)):
        if left is None:
            return "a ends"
        if right is None:
            return "b ends"
        if left[1] != right[1]:
            return None
    return "a ends"


def _first_line(path: Path) -> bytes | None:
    for _, raw in _lines(path):
        return raw if raw.strip() else None
    return None


def find_overlaps(logs: Sequence[Path], *, group: Callable[[Path], object] | None = None) -> Overlaps:
    """The shared stretches of the logs that belong together (by default: one folder and one base
    name, `mosquitto.log*`). A file that cannot be read is left to the reader to report."""
    key = group or (lambda path: (os.path.dirname(path), base_name(path)))
    sets: dict[object, list[Path]] = {}
    for path in logs:
        sets.setdefault(key(path), []).append(path)
    out = Overlaps()
    for members in sets.values():
        if len(members) < 2:
            continue
        try:
            _one_set(members, out)
        except (InputError, OSError):
            continue
    return out


def _one_set(members: list[Path], out: Overlaps) -> None:
    firsts = {path: _first_line(path) for path in members}
    for a, b in itertools.permutations(members, 2):
        first = firsts[b]
        if a in out.inside or b in out.inside or a in out.read_to or first is None:
            continue
        for offset, number in _candidates(a, first):
            verdict = _compare(a, offset, b)
            if verdict == "b ends":
                out.inside[b] = a  # all of b is a stretch of a
                break
            if verdict == "a ends":
                if offset == 0:
                    out.inside[a] = b  # all of a is the head of b
                else:
                    out.read_to[a] = (offset, number, b)
                break
