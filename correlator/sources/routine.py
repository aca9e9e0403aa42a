"""Routine lines of a followed log kept as numbers: the live form of the bulk reader's split.

The batch reader (files.py) classifies whole blocks of a file with the routine declaration of its
format (correlator/formats/scan.py) and parses only the rest. The live tailer hands over the lines
appended since its last read, one bytes object each, a few at a time; they are classified here
with the same declaration by the pure-Python classifier's own `routine_lines` (the batch joined
into one block, one `re` scan at C speed), so a line is routine live exactly when the batch reader
counts it. The live analysis (correlator/live_analysis.py) parses
the others and counts these; the edge agent (correlator/fleet/agent.py) sends them up as counts.

Routine lines some rule reads only as the first of their key after a reset (a client's first
`Received PUBLISH` after its CONNECT, when an ACL file is there) are thinned as the batch reader
thins them (sources/thinning.py, the same Thinner fed the same block scan): that first one is
parsed, the rest counted.

Each routine line is kept as its offset, message kind, client and second (the epoch seconds it
starts with: the batch reader's time bucket), so the counts can be summed per kind, client and
second, and a reader that has already sent some of them (a restarted agent) can leave those out.
The client is the message's own `client_id` field, read with the message's regex.

A reader that needs no client per line (the TUI, `watch`, `serve PATH`) asks for `places` instead:
the batch joined into one block is classified by the very classifier the batch reader uses
(`scan.classifier`: Hyperscan and numpy when installed), and the routine lines come back as that
reader's `RoutineLines` arrays (file offsets, line indexes in the batch, seconds, messages), never
one Python object a line: what the TUI turns into timeline rows, as it does the batch reader's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from correlator.formats.definition import Format
from correlator.formats.evidence import Evidence
from correlator.formats.scan import FirstLines, RoutineCounts, RoutineLines, RoutineSpec, classifier, scan_engine
from correlator.sources.lines import MAX_LINE, Line
from correlator.sources.thinning import Thinner

Needed = tuple[frozenset[str], frozenset[str]]
"""The kinds and fields some rule reads line by line (`Engine.needs`)."""


def routine_spec(fmt: Format, needed: Needed | None) -> RoutineSpec | None:
    """The routine declaration of `fmt` without the messages some rule reads line by line
    (`needed`; None: a rule reads every line), or None when nothing is left to count or the
    bulk reader is off (`CORRELATOR_SCAN=off`)."""
    spec = fmt.routine
    if spec is None or needed is None or scan_engine() == "off":
        return None
    return spec.restricted(*needed)


def routine_reading(fmt: Format, evidence: Evidence, needed: Needed | None,
                    first: Mapping[str, FirstLines] | None) -> tuple[RoutineSpec | None, Thinner | None]:
    """How a reader that need not see every line reads a log of `fmt`: the routine declaration
    it counts (`routine_spec`), and the thinning of the kinds in `first` (lines rules read only as
    the first of their key after a reset: `Engine.first_lines`), whose kind is then counted but
    for those first lines. Both readers, batch (files.py) and live (AppendedLines), take it here."""
    spec = fmt.routine
    if spec is None or needed is None or scan_engine() == "off":
        return None, None
    kinds, fields = needed
    thinner = None
    if first and not fmt.multiline:
        found = Thinner(fmt, spec, evidence, first)
        if found.active:
            thinner = found
            kinds = kinds - {found.kind}  # counted, its first lines of a key parsed all the same
    restricted = spec.restricted(kinds, fields)
    if restricted is None or (thinner is not None and thinner.kind not in restricted.kinds):
        thinner = None
    return restricted, thinner


@dataclass(frozen=True, slots=True)
class RoutineLine:
    """One routine line, as numbers."""

    offset: int
    kind: str
    client: str
    """The message's client_id ('' when it names none)."""
    second: int


class AppendedLines:
    """Splits batches of appended lines of one format into the lines to parse and the routine ones."""

    def __init__(self, fmt: Format, spec: RoutineSpec, thinner: Thinner | None = None) -> None:
        self.spec = spec
        self.thinner = thinner
        """Set: the lines of its kind are counted but for the first of each key (`routine_reading`)."""
        self._classifier = classifier(spec, MAX_LINE, engine="python")
        marked = frozenset(i for i, kind in enumerate(spec.kinds) if thinner is not None and kind == thinner.kind)
        # the batch reader's own classifier (Hyperscan where installed), for `places`
        self._fast = classifier(spec, MAX_LINE, marked=marked, key=thinner.place if thinner is not None else None)
        self._marked = (classifier(spec, MAX_LINE, marked=marked, key=thinner.place)
                        if marked and thinner is not None else None)
        by_name = {m.name: m for m in fmt.messages}
        self._clients: list[re.Pattern[bytes] | None] = []
        for name in spec.names:
            message = by_name.get(name)
            pattern = None
            if message is not None and "client_id" in message.regex.groupindex:
                try:
                    pattern = re.compile((spec.prefix + message.regex.pattern.removeprefix("^")).encode())
                except re.error:  # the message's regex says what bytes cannot: the client goes unnamed
                    pattern = None
            self._clients.append(pattern)

    def split(self, lines: Sequence[Line]) -> tuple[list[int], list[RoutineLine]]:
        """The indexes in `lines` of the lines to parse, in order, and the routine lines."""
        if not lines:
            return [], []
        block = b"\n".join(raw for _, raw in lines) + b"\n"
        starts: dict[int, int] = {}
        at = 0
        for number, (_, raw) in enumerate(lines):
            starts[at] = number
            at += len(raw) + 1
        routine: dict[int, RoutineLine] = {}
        kinds, digits, clients = self.spec.kinds, self.spec.digits, self._clients
        for start, end, message in self._classifier.routine_lines(block):
            at_line = starts.get(start)
            if at_line is None or block[end:end + 1] != b"\n":
                continue  # not a whole line the bulk reader would count
            pattern = clients[message]
            found = pattern.match(block, start, end) if pattern is not None else None
            client = found.group("client_id").decode("utf-8", "replace") if found is not None else ""
            routine[at_line] = RoutineLine(lines[at_line][0], kinds[message], client, int(block[start:start + digits]))
        if self.thinner is not None and self._marked is not None:
            # the batch reader's thinning on the same scan of the block: the first marked line of
            # each key is parsed (a non-routine line of a resetting kind starts its key over)
            counts = RoutineCounts()
            for _, _, row in self.thinner.select(block, self._marked.scan_block(block, counts), counts):
                routine.pop(row, None)
        return [i for i in range(len(lines)) if i not in routine], list(routine.values())

    @property
    def keeps_places(self) -> bool:
        """Whether `places` can say where the routine lines are (the Hyperscan classifier can)."""
        return self._fast.engine == "hyperscan"

    def places(self, lines: Sequence[Line]) -> tuple[list[int], RoutineLines | None]:
        """The indexes in `lines` of the lines to parse, in order, and where the routine ones are,
        as the batch reader says it (`RoutineLines`, but `starts` are the lines' offsets in the
        file and `numbers` their indexes in `lines`); None when none is routine. The same scan,
        thinning included, as the batch reader's of a block: only where `keeps_places`."""
        import numpy as np

        if not lines:
            return [], None
        block = b"\n".join(raw for _, raw in lines) + b"\n"
        counts = RoutineCounts(keep=True)
        scan = self._fast.scan_block(block, counts)
        where = scan.where
        if self.thinner is not None:
            parse = [row for _, _, row in self.thinner.select(block, scan, counts)]
        else:
            parse = scan.rows
        if where is None or not len(where.numbers):
            return parse, None
        rows = where.numbers
        if len(parse) > len(scan.rows):  # lines the thinning took from the routine ones: parsed
            keep = ~np.isin(rows, np.array(parse, dtype=np.int64))
            rows, seconds, messages = rows[keep], where.seconds[keep], where.messages[keep]
        else:
            seconds, messages = where.seconds, where.messages
        offsets = np.fromiter((offset for offset, _ in lines), dtype=np.int64, count=len(lines))[rows]
        return parse, RoutineLines(offsets, rows, seconds, messages, where.kinds, where.levels)
