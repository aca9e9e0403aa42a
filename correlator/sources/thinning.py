"""Routine lines a rule needs only as the first of their key: the bulk reader parses those few
and keeps counting the rest.

acl.publish_denied reads a broker's `Received PUBLISH` lines when an ACL file is there, but only
the first one of a client after its CONNECT can complete its sequence (`Engine.first_lines`): on
a busy broker that is a few lines among hundreds of thousands. So the message stays routine (the
scanner counts it at C speed and marks where its lines start), and here, in file order, the first
marked line of each key since the last line of a resetting kind is taken out of the counts and
parsed. The key (the client id) is read at a fixed place of the routine shape, which the format's
own samples confirm when the reader is set up.

It errs one way only: a line that may hold a secret (the parser would redact it) is parsed, and a
parsed line the format cannot read as the parser will makes every key start over.
"""

from __future__ import annotations

import copy
from bisect import bisect_left
from collections.abc import Mapping
from heapq import heapify, heappop, heappush

from correlator.formats.definition import Format, Sample
from correlator.formats.evidence import Evidence
from correlator.formats.parse import match_line
from correlator.formats.scan import (
    Automaton,
    Block,
    BlockScan,
    FirstLines,
    RoutineCounts,
    RoutineSpec,
    key_place,
)
from correlator.redaction import may_hold_secret

__all__ = ["Thinner", "key_place"]

_ANONYMOUS = frozenset({b"<unknown>", b"(null)", b"", b"unknown"})
"""Client ids that name no one (as the engine's): such a line completes no sequence."""


class Thinner:
    """One file's read: which keys have had their first marked line since their reset."""

    def __init__(self, fmt: Format, full: RoutineSpec, evidence: Evidence, needs: Mapping[str, FirstLines]) -> None:
        self.fmt = fmt
        self.evidence = evidence
        self.kind = ""
        self.need: FirstLines | None = None
        self.place: tuple[int, int] = (0, 0)
        self.digits = full.digits
        by_name = {m.name: m for m in fmt.messages}
        for index, name in enumerate(full.names):
            need = needs.get(full.kinds[index])
            message = by_name.get(name)
            if need is None or message is None or len(need.by) != 1 or self.need is not None:
                continue
            field = need.by[0]
            if field not in message.regex.groupindex or fmt.kind_of(field) != "str" or field in message.const:
                continue  # the key is not the line's text as it stands
            place = full.key_places[index]
            if place is None or not self._confirmed(full.automaton, index, place, field, message.samples):
                continue
            self.kind, self.need, self.place = full.kinds[index], need, place
        self._resets = self.need.resets if self.need is not None else frozenset()
        self._seen: set[bytes] = set()
        self.parsed_lines = 0

    @staticmethod
    def _confirmed(automaton: Automaton, index: int, place: tuple[int, int], field: str,
                   samples: list[Sample]) -> bool:
        """The format's samples of message `index` (of `automaton`) say the key is where `place`
        reads it."""
        checked = 0
        for sample in samples:
            raw = sample.line.encode()
            if automaton.run(raw) != index or field not in sample.fields:
                continue
            skip, end = place
            stop = raw.find(bytes([end]), skip)
            if raw[skip:stop].decode() != str(sample.fields[field]):
                return False
            checked += 1
        return checked > 0

    @property
    def active(self) -> bool:
        return self.need is not None

    def fresh(self) -> Thinner:
        """The same thinning for another read of the file from its start (the look-ahead)."""
        other = copy.copy(self)
        other._seen = set()
        other.parsed_lines = 0
        return other

    def select(self, block: Block, scan: BlockScan, counts: RoutineCounts) -> list[tuple[int, int, int]]:
        """The lines of `block` to parse, in order, as (start, end, line index in the block): the
        non-routine ones and the marked routine lines that are the first of their key since its
        reset (taken out of `counts`). Keys only start over at the non-routine lines, so between
        two of them each key not yet seen gives its first mark there (the classifier listed each
        key's marks). Only the keys whose next mark comes before the next non-routine line are
        looked at, nearest first (at a busy broker's start, hundreds of connects among thousands
        of marks of some dozens of clients: looking at every key at every non-routine line took a
        tenth of a second)."""
        found, rows, marks = scan.found, scan.rows, scan.marks
        if not marks:
            for start, end in found:
                self._parsed(bytes(block[start:end]))
            return [(start, end, row) for (start, end), row in zip(found, rows, strict=True)]
        out: list[tuple[int, int, int]] = []
        seen = self._seen
        keys, mark_rows = scan.keys, scan.mark_rows
        index_of = {key: index for index, key in enumerate(keys)}
        skip = self.place[0]
        digits = self.digits
        kind = self.kind
        # the keys of the block not passed over (seen since their reset, or naming no one) that
        # have marks ahead: (their next mark, key index), the nearest first
        ahead = self._ahead(scan, 0)
        waiting = {index for _, index in ahead}
        low = 0  # the first mark after the last non-routine line
        for (start, end), row in zip([*found, (len(block), len(block))], [*rows, -1], strict=True):
            high = bisect_left(marks, start, low)
            taken: list[int] = []
            while ahead and ahead[0][0] < high:
                _, index = heappop(ahead)
                places = scan.key_marks[index]
                at = bisect_left(places, low)
                while at < len(places) and places[at] < high:
                    mark = places[at]
                    at += 1
                    taken.append(mark)
                    line = marks[mark]
                    if not may_hold_secret(bytes(block[line:line + skip + len(keys[index])])):
                        seen.add(keys[index])
                        at = len(places)  # passed over until its key starts again
                        break
                if at < len(places):
                    heappush(ahead, (places[at], index))
                else:
                    waiting.discard(index)
            for mark in sorted(taken):
                line = marks[mark]
                out.append((line, block.find(b"\n", line), mark_rows[mark]))
                counts.remove(kind, int(block[line:line + digits]))
            self.parsed_lines += len(taken)
            low = high
            if start < len(block):
                out.append((start, end, row))
                again = self._parsed(bytes(block[start:end]))
                if again is True:
                    ahead = self._ahead(scan, low)
                    waiting = {index for _, index in ahead}
                elif isinstance(again, bytes):
                    index = index_of.get(again, -1)
                    if index >= 0 and again not in _ANONYMOUS and index not in waiting:
                        places = scan.key_marks[index]
                        at = bisect_left(places, low)
                        if at < len(places):
                            heappush(ahead, (places[at], index))
                            waiting.add(index)
        return out

    def _ahead(self, scan: BlockScan, low: int) -> list[tuple[int, int]]:
        """The keys whose next marks are taken (none seen since their reset, none naming no one)
        and that have marks from `low` on, as a heap of (that first mark, key index). From the
        block's start, each key's first mark is known without grouping the marks by key (which
        a block whose keys were all seen since their reset never needs)."""
        seen = self._seen
        ahead = []
        for index, key in enumerate(scan.keys):
            if key not in seen and key not in _ANONYMOUS:
                if low == 0:
                    ahead.append((scan.key_first[index], index))
                    continue
                places = scan.key_marks[index]
                at = bisect_left(places, low)
                if at < len(places):
                    ahead.append((places[at], index))
        heapify(ahead)
        return ahead

    def _parsed(self, raw: bytes) -> bytes | bool:
        """A non-routine line goes to the parser: when it is of a resetting kind, its key starts
        over (every key when it cannot be read here as the parser will read it). The key that
        started over, True when every key did, False when none did."""
        if not self._seen:
            return False
        text = raw.decode("utf-8", "replace").rstrip("\r")
        found = match_line(self.fmt, text, self.evidence) if not may_hold_secret(raw) else None
        if found is None:  # the parser reads it another way (redacted, or with the fallback format)
            self._seen.clear()
            return True
        if found.kind not in self._resets:
            return False
        assert self.need is not None
        key = found.fields.get(self.need.by[0])
        if isinstance(key, str):
            self._seen.discard(key.encode())
            return key.encode()
        self._seen.clear()  # a reset whose key is not text: every key starts over
        return True
