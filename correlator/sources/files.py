"""Reads one log file into Events: detects its format from its first lines (or takes the one the
user forces), picks its source name and zone, and streams the parsed events chunk by chunk.

A file that cannot be read is an InputError naming it; a line that cannot be parsed is an
`unparsed` event; neither stops the other files of a bundle. A user's format pattern that runs out
of time (formats/patterns.py) is a problem naming the file and line (`problems()`), and the line
is read with the generic format.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterator, Mapping
from datetime import UTC, tzinfo
from itertools import islice
from pathlib import Path

from correlator.errors import InputError
from correlator.formats.definition import Format
from correlator.formats.parse import SourceParser
from correlator.formats.patterns import PatternTimeout
from correlator.formats.registry import DETECT_LINES, Registry
from correlator.formats.scan import WORKERS, FirstLines, RoutineCounts, RoutineLines, RoutineSpec, classifier
from correlator.model import Event
from correlator.report_model import SourceInfo
from correlator.sources import early
from correlator.sources.blocks import BLOCK_SIZE, iter_blocks, read_ahead
from correlator.sources.lines import MAX_LINE, TRUNCATION_MARK, Line, compression_of, iter_chunks
from correlator.sources.routine import routine_reading
from correlator.sources.thinning import Thinner

#: Bytes of a plain log read for its format's detection (its first lines; see
#: `LogFile._detection_head`).
DETECT_BYTES = 64 << 10

#: Lines of a block parsed into events at once at most: a block of short lines that all need parsing
#: (a storm of one failure) would otherwise be held as a block's worth of events (150,000 in 8 MB).
#: Measured on a reconnect storm of 240,000 lines: peak RSS 230 MB with 16,384, 197 MB with 4,096.
MAX_CHUNK_LINES = 4096

_ROTATION = re.compile(r"(\.(?:gz|bz2|xz))$|(\.\d+)$|(-\d{8})$")
_LOG_SUFFIX = re.compile(r"\.(?:log|txt|out)$")


#: Terminal colours (SGR, `ESC [ ... m`) and erase-to-end-of-line (`ESC [ K`, which coloured output
#: writes after a line): a log captured from a terminal (a program's coloured output under
#: `script`, `docker logs` of a container with a tty, a Node `debug` trace) carries them around its
#: words. Nothing else is dropped: any other control sequence is data, shown harmless by the reports
#: (correlator/printable.py).
_COLOURS = re.compile(r"\x1b\[[0-9;:]*[mK]")


def decode(raw: bytes) -> str:
    """Logs are mostly UTF-8 with the odd Latin-1 byte or NUL; a bad byte must never cost a line.
    Terminal colours are dropped: they are how a line looked, not what it says, and would hide
    its words from every pattern."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
    return _COLOURS.sub("", text) if "\x1b" in text else text


def base_name(path: str | Path) -> str:
    """The log's name without rotation and compression suffixes: mosquitto.log.2.gz -> mosquitto."""
    name = Path(path).name
    while True:
        stripped = _ROTATION.sub("", name)
        if stripped == name:
            break
        name = stripped
    return _LOG_SUFFIX.sub("", name) or name


def source_name(fmt: Format, path: str | Path, first_lines: list[str] | None = None) -> str:
    """'broker' for a broker's log, otherwise '<role>:<file base name>'; the role is the format's,
    or the one its first lines show (an asyncua server's log in the Python logging layout)."""
    role = fmt.role_of(first_lines or [])
    if role == "broker":
        return "broker"
    role = "client" if role in ("client", "any") else role.replace("_", "-")
    return f"{role}:{base_name(path)}"


def detection_problems(slow: list[PatternTimeout], chosen: Format, file: str) -> list[InputError]:
    """The user's patterns that ran out of time on a file's first lines while its format was
    chosen, once each; those of the chosen format are said with their lines as it reads them."""
    patterns = {id(exc.pattern): exc for exc in slow if exc.pattern.file != chosen.file}
    return [InputError(f"the regex of {exc.pattern.what} ({exc.pattern.place}) took over {exc.timeout:g} s on one "
                       "of the first lines (it backtracks) while the file's format was chosen", file=file)
            for exc in patterns.values()]


class LogFile:
    """One log file opened for parsing. Iterate `chunks()` for lists of events in file order."""

    def __init__(self, path: str | Path, registry: Registry, *, format_name: str | None = None,
                 tz: tzinfo | None = None, source: str | None = None, display_path: str | None = None,
                 end: int | None = None) -> None:
        """`end`: the byte (of the decompressed text) the log is read up to; its lines from there
        on are read in another log (a rotated log's shared stretch: correlator.sources.overlap)."""
        self.path = Path(path)
        self.registry = registry
        self.end = end
        self._chunks: Iterator[list[Line]] | None = None
        self._first: list[Line] = []
        head = self._detection_head()
        if head is None:
            self._start_reading()
        else:
            self._first = head
        # blank lines do not count: a stream split out of a paste keeps its lines' places blank
        texts = list(islice((text for _, raw in self._first if (text := decode(raw)).strip()), DETECT_LINES * 2))
        slow: list[PatternTimeout] = []
        if format_name is not None:
            fmt, share = registry.get(format_name), 1.0
        else:
            fmt, share = registry.detect(texts, slow)
        self._problems = detection_problems(slow, fmt, display_path or str(path))
        self.format = fmt
        zone = tz or UTC
        try:
            stat = os.stat(self.path)
            mtime, size = stat.st_mtime, stat.st_size
        except OSError:
            mtime, size = None, 0
        self.parser = SourceParser(fmt, registry.evidence, source=source or source_name(fmt, self.path, texts),
                                   file=display_path or str(path), tz=zone, fallback=registry.fallback,
                                   fallback_time=mtime)
        self.info = SourceInfo(display_path or str(path), self.parser.source, fmt.name, round(share, 3),
                               str(getattr(zone, "key", None) or zone))
        self.zone_how = "given" if tz is not None else "UTC (no zone known)"
        self.split_from: tuple[Path, str] | None = None
        """For one host's lines of a file several hosts wrote (a syslog server's): that file and
        the host name (correlator.hosts.split_by_syslog_host); None for a log read as it is."""
        self.routine_spec: RoutineSpec | None = None
        """Set by `count_routine`: the lines it declares routine are counted, not parsed."""
        self.thinner: Thinner | None = None
        """Set by `count_routine`: lines rules need only as the first of their key."""
        self.routine = RoutineCounts()
        """The routine lines read so far, as numbers (kinds and seconds)."""
        self.block_size = BLOCK_SIZE
        """Bytes the bulk reader takes at a time (a look-ahead that reads the start wants less)."""
        self.size = size
        """Bytes on disk: with `position`, how far the read is."""
        self.position = 0
        """Bytes read so far (of the decompressed text for a compressed log)."""
        self.lines = 0
        """Lines read so far (when `on_read` is called: those of the chunks or blocks before)."""
        self.on_read: Callable[[], None] | None = None
        """Called after each chunk or block is read, before its events are handed on: where the
        analysis reports progress and looks at its cancel token."""
        self.on_routine: Callable[[int, int, RoutineLines], None] | None = None
        """Set by `keep_routine_lines`."""

    def keep_routine_lines(self, callback: Callable[[int, int, RoutineLines], None]) -> None:
        """Have the bulk reader say where the routine lines it counts are: `callback(offset of the
        block, lines before it, its routine lines)` after each block, on the reading thread (the
        TUI keeps them as timeline rows, read back from the file when drawn). Only where
        `scan.keeps_lines()`; a routine line a rule took after all (sources/thinning.py) may be
        among them as well as among the events."""
        self.on_routine = callback
        self.routine.keep = True

    def _detection_head(self) -> list[Line] | None:
        """The first lines, for detection: those of the first DETECT_BYTES of a plain log when
        they hold DETECT_LINES * 2 non-blank lines (detection reads that many), else None (the
        log is then read from its start as always, `_start_reading`). A busy broker log's
        first CHUNK_SIZE chunk was 13,500 lines, 7 ms to split, for the 60 detection reads."""
        try:
            if os.stat(self.path).st_size <= DETECT_BYTES:
                return None  # read whole either way: by the reader, once
            with self.path.open("rb") as handle:
                plain = compression_of(handle.read(6)) is None
        except OSError:
            plain = False  # the reader says why
        if not plain:
            return None
        head = iter_chunks(self.path, chunk_size=DETECT_BYTES)
        try:
            first = next(head, [])
        except InputError:
            return None  # the reader meets it again, where it always did
        finally:
            if isinstance(head, Generator):
                head.close()
        if self.end is not None:
            first = [line for line in first if line[0] < self.end]
        return first if sum(1 for _, raw in first if raw.strip()) >= DETECT_LINES * 2 else None

    def _start_reading(self) -> None:
        """Open the log's line reader and read its first chunks (until DETECT_LINES non-blank
        lines, or DETECT_LINES * 50 lines), as detection always read them: a log read line by
        line is fed in the same chunks whether or not detection needed them."""
        self._chunks = self._until_end(iter_chunks(self.path))
        self._first = []
        filled = 0
        for chunk in self._chunks:
            self._first.extend(chunk)
            filled += sum(1 for _, raw in chunk if raw.strip())
            if filled >= DETECT_LINES or len(self._first) >= DETECT_LINES * 50:
                break

    def _until_end(self, chunks: Iterator[list[Line]]) -> Iterator[list[Line]]:
        end = self.end
        if end is None:
            yield from chunks
            return
        for lines in chunks:
            kept = [line for line in lines if line[0] < end]
            if kept:
                yield kept
            if len(kept) < len(lines):
                return

    def count_routine(self, needed: tuple[frozenset[str], frozenset[str]] | None,
                      first: Mapping[str, FirstLines] | None = None) -> None:
        """Read with the bulk reader: the format's routine lines, except those of the kinds and
        fields in `needed` (what some rule reads line by line; None: any), are counted into
        `routine` instead of becoming events. Of the kinds in `first` (lines rules read only as
        the first of their key after a reset: `Engine.first_lines`), routine lines are passed on
        only when they are that first one (correlator/sources/thinning.py). Call before iterating
        `chunks()`."""
        self.routine_spec, self.thinner = routine_reading(self.format, self.registry.evidence, needed, first)

    def peek_events(self) -> list[Event]:
        """Events of the first lines, parsed aside (in UTC) without consuming them, so the zone can
        be chosen before the real parse starts."""
        probe = SourceParser(self.format, self.registry.evidence, source=self.parser.source, file=self.parser.file,
                             fallback=self.registry.fallback, fallback_time=self.parser.fallback_time)
        lines = [(i + 1, offset, decode(raw)) for i, (offset, raw) in enumerate(self._first[:DETECT_LINES])]
        return probe.feed(lines) + probe.finish()

    def set_zone(self, zone: tzinfo, how: str) -> None:
        """The zone naive timestamps are read in; call before iterating `chunks()`."""
        self.parser.tz = zone
        self.info.zone = str(getattr(zone, "key", None) or zone)
        self.zone_how = how

    def chunks(self) -> Iterator[list[Event]]:
        if self.routine_spec is not None:
            yield from self._bulk_chunks(self.routine_spec)
            return
        number = 0
        parser = self.parser

        def numbered(lines: list[Line]) -> list[tuple[int, int, str]]:
            nonlocal number
            out = []
            for offset, raw in lines:
                number += 1
                out.append((number, offset, decode(raw)))
            if lines:
                offset, raw = lines[-1]
                self._read_to(offset + len(raw) + 1)
                self.lines = number
            return out

        try:
            if self._chunks is None:  # detection read only the head: from the start, as always
                self._start_reading()
            assert self._chunks is not None
            if self._first:
                events = parser.feed(numbered(self._first))
                self._first = []
                if events:
                    yield events
            for lines in self._chunks:
                events = parser.feed(numbered(lines))
                if events:
                    yield events
        except InputError as exc:
            # the reader knows the byte, this loop the line: name the file as the report shows it
            raise InputError(exc.message, file=self.info.path, line=number + 1) from exc
        finally:
            tail = parser.finish()
            self._update_info()
        if tail:
            yield tail

    def _bulk_chunks(self, spec: RoutineSpec) -> Iterator[list[Event]]:
        """The two-tier read: whole blocks classified at once, only the non-routine lines parsed
        (numbered, cut and decoded as the line splitter does), the routine ones counted."""
        if isinstance(self._chunks, Generator):
            self._chunks.close()  # the detection's reader: the blocks start over from byte 0
        self._first = []
        thinner = self.thinner
        marked = frozenset(i for i, kind in enumerate(spec.kinds) if thinner is not None and kind == thinner.kind)
        scanner = classifier(spec, MAX_LINE, marked=marked, key=thinner.place if thinner is not None else None)
        parser = self.parser
        routine = self.routine
        before = 0  # lines in the blocks before this one
        try:
            blocks = iter_blocks(self.path, block_size=self.block_size)
            ahead = None
            if self.end is not None:
                blocks = _blocks_until(blocks, self.end)
            elif scanner.engine == "hyperscan":
                ahead = early.take(self.path, spec, self.block_size)  # the scan `analyze` started at once
            if scanner.engine == "hyperscan" and WORKERS > 1:
                # the scanner's threads classify while this one parses: the reads go to a third
                blocks = read_ahead(blocks)
            for base, block, scan in scanner.scan_blocks(blocks, routine, ahead):
                if thinner is not None:
                    found = thinner.select(block, scan, routine)
                else:
                    found = [(start, end, row) for (start, end), row in zip(scan.found, scan.rows, strict=True)]
                lines: list[tuple[int, int, str]] = []
                for start, end, row in found:
                    raw = bytes(block[start:end])
                    if raw[-1:] == b"\r":
                        raw = raw[:-1]
                    if len(raw) > MAX_LINE:
                        raw = raw[:MAX_LINE] + TRUNCATION_MARK
                    lines.append((before + row + 1, base + start, decode(raw)))
                    if len(lines) >= MAX_CHUNK_LINES:
                        events = parser.feed(lines)
                        lines = []
                        if events:
                            yield events
                self._read_to(base + len(block))
                if self.on_routine is not None and scan.where is not None:
                    self.on_routine(base, before, scan.where)
                before += scan.lines
                self.lines = before
                events = parser.feed(lines)
                if events:
                    yield events
        except InputError as exc:
            raise InputError(exc.message, file=self.info.path, line=before + 1) from exc
        finally:
            tail = parser.finish()
            self._update_info()
        if tail:
            yield tail

    def _read_to(self, position: int) -> None:
        self.position = max(self.position, position)
        if self.on_read is not None:
            self.on_read()
    def problems(self) -> list[InputError]:
        """What went wrong in this file without stopping it since the last call (detection, then
        lines a user's pattern ran out of time on)."""
        problems, self._problems = self._problems + self.parser.drain_problems(), []
        return problems

    def events(self) -> Iterator[Event]:
        for chunk in self.chunks():
            yield from chunk

    def _update_info(self) -> None:
        routine = self.routine
        self.info.lines_read = self.parser.lines_read + routine.lines
        self.info.unparsed = self.parser.unparsed
        self.info.estimated = self.parser.estimated
        kinds = dict(self.parser.kinds)
        for kind, n in routine.kinds.items():
            kinds[kind] = kinds.get(kind, 0) + n
        self.info.kinds = kinds


def _blocks_until(blocks: Iterator[tuple[int, bytearray]], end: int) -> Iterator[tuple[int, bytearray]]:
    """The bulk reader's blocks cut at byte `end` (a line start: see LogFile's `end`)."""
    for base, block in blocks:
        if base + len(block) <= end:
            yield base, block
            continue
        if end > base:
            yield base, block[: end - base]
        return
