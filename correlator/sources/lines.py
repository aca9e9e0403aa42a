"""The one line splitter that batch reading and live tailing share.

Both paths must agree byte for byte on what a line is and where it starts, otherwise an event found
while tailing and the same event found by re-reading the file later would carry different offsets.
So the splitting lives in one incremental object, `LineSplitter`, that is fed raw chunks: batch
reading feeds it the whole file and flushes at the end; the tailer feeds it whatever a read returned
and holds the unfinished last line back until its newline arrives.

Lines are bytes, not str: decoding is the parser's business (a log may mix encodings, carry NULs or
invalid UTF-8, and the raw bytes are the evidence). Offsets count bytes of the decompressed stream,
so `Event.offset` means the same thing for a plain and a gzipped copy of one log.

Speed matters more than elegance here: a 1 GB broker log is millions of lines, so input is read in
large chunks and split with `bytes.split`, never with a per-line `readline`.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import os
import zlib
from collections.abc import Iterator
from itertools import accumulate, count
from operator import add
from typing import BinaryIO

from correlator.errors import InputError

#: How much is read per system call. Large enough that the per-chunk Python overhead vanishes,
#: small enough that memory stays bounded however big the file is.
CHUNK_SIZE = 1 << 20
#: Longest line kept whole. A longer one (a binary blob, a runaway stack trace with no newline) is
#: cut so one bad line cannot exhaust memory; the rest of that line is skipped up to its newline.
MAX_LINE = 1 << 20
#: Appended to a cut line so the parser, the report and a human all see that text is missing.
TRUNCATION_MARK = b" [correlator: line truncated]"

Line = tuple[int, bytes]
"""(byte offset of the line's first byte, the line without its newline or trailing CR)."""

_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"


class LineSplitter:
    """Turns a stream of byte chunks into complete lines with their offsets.

    The splitter remembers the unfinished tail of the last chunk so a line split across two reads
    (or two writes of a live log) comes out once and whole. `offset` is the stream position of the
    next byte to feed; `line_start` is where the held-back line begins, which is the position a
    reader can safely resume from.
    """

    __slots__ = ("_pending", "_pending_len", "_pending_start", "_skipping", "max_line", "offset",
                 "truncated")

    def __init__(self, offset: int = 0, *, max_line: int = MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError("max_line must be positive")
        self.offset = offset
        self.max_line = max_line
        #: How many lines were cut at max_line so far, so a report can say that text is missing.
        self.truncated = 0
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._pending_start = offset
        # True while discarding the remainder of a line whose head was already emitted, cut.
        self._skipping = False

    @property
    def line_start(self) -> int:
        """Offset where the next line to be emitted starts: the safe resume point."""
        return self._pending_start

    @property
    def pending(self) -> int:
        """Bytes held back as the unfinished last line."""
        return self._pending_len

    def feed(self, data: bytes) -> list[Line]:
        """Split `data` (the bytes that follow everything fed before) into complete lines."""
        if not data:
            return []
        base = self.offset
        end = self.offset = base + len(data)
        out: list[Line] = []
        first_nl = data.find(b"\n")
        if first_nl < 0:
            self._hold(data, base, out)
            return out
        if self._skipping:
            # The head of this over-long line went out already; drop the rest of it.
            self._skipping = False
            start = first_nl + 1
        elif self._pending:
            self._pending.append(data[:first_nl])
            line = b"".join(self._pending)
            self._pending = []
            self._pending_len = 0
            out.append((self._pending_start, self._cap(_strip_cr(line))))
            start = first_nl + 1
        else:
            start = 0

        body = data[start:] if start else data
        parts = body.split(b"\n")
        tail = parts.pop()
        if parts:
            # offset of part i = first offset + lengths before it + one newline per part before it,
            # computed without a Python-level loop.
            offsets = map(add, accumulate(map(len, parts), initial=base + start), count())
            # Whole-chunk checks first, so the common case (no CR, short lines) costs nothing
            # per line beyond the split itself.
            lines = parts
            if b"\r" in body:
                lines = [p[:-1] if p[-1:] == b"\r" else p for p in lines]
            if len(body) > self.max_line:
                lines = [self._cap(p) for p in lines]
            out.extend(zip(offsets, lines, strict=False))
        self._pending_start = end - len(tail)
        if tail:
            self._hold(tail, self._pending_start, out)
        return out

    def flush(self) -> list[Line]:
        """Emit the unfinished last line: for the end of a file that does not end in a newline
        (batch mode) or of a file that will never be written again (a rotated-away log)."""
        self._skipping = False
        start = self._pending_start
        self._pending_start = self.offset
        if not self._pending:
            return []
        line = b"".join(self._pending)
        self._pending = []
        self._pending_len = 0
        return [(start, self._cap(_strip_cr(line)))]

    def reset(self, offset: int = 0) -> None:
        """Forget everything held back and continue at `offset` (a truncated file starts over)."""
        self._pending = []
        self._pending_len = 0
        self._skipping = False
        self.offset = offset
        self._pending_start = offset

    def _hold(self, piece: bytes, start: int, out: list[Line]) -> None:
        if self._skipping:
            return
        if not self._pending:
            self._pending_start = start
        self._pending.append(piece)
        self._pending_len += len(piece)
        # One byte of slack: a line exactly at the cap may still end in the CR of a CRLF.
        if self._pending_len > self.max_line + 1:
            # Emit the head now rather than buffer an unbounded line; skip up to its newline.
            line = b"".join(self._pending)
            self._pending = []
            self._pending_len = 0
            self._skipping = True
            out.append((self._pending_start, self._cap(line)))

    def _cap(self, line: bytes) -> bytes:
        if len(line) > self.max_line:
            self.truncated += 1
            return line[: self.max_line] + TRUNCATION_MARK
        return line


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line[-1:] == b"\r" else line


def compression_of(head: bytes) -> str | None:
    """'gzip', 'bzip2', 'xz' or None for the first bytes of a file. Magic bytes decide, not the
    name: support bundles rename files freely and logrotate's names say nothing reliable."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_BZIP2_MAGIC) and len(head) >= 4 and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    return None


def text_encoding(head: bytes) -> str | None:
    """'utf-16-le', 'utf-16-be', 'utf-32-le' or 'utf-32-be' when the first bytes of a file are
    text in one of them (a byte-order mark, or ASCII-range text with the zero bytes those
    encodings put beside every character: PowerShell's `>` writes UTF-16), else None."""
    sample = head[:4096]
    marked = None
    if sample.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        marked = "utf-32-le" if sample[0] == 0xFF else "utf-32-be"
    elif sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        marked = "utf-16-le" if sample[0] == 0xFF else "utf-16-be"
    if marked is not None:
        # a mark alone could be two stray bytes: the text after it must read as lines
        width = 4 if "32" in marked else 2
        text = sample[: len(sample) // width * width].decode(marked, "replace")
        if "\ufffd" not in text[:-1] and "\n" in text:
            return marked
    if len(sample) < 16 or sample.count(0) < len(sample) // 3:
        return None
    for name, width, at in (("utf-32-le", 4, 0), ("utf-32-be", 4, 3), ("utf-16-le", 2, 0), ("utf-16-be", 2, 1)):
        units = len(sample) // width
        chars = sample[at::width][:units]
        zeros = [b for i, b in enumerate(sample[: units * width]) if i % width != at]
        if chars.count(0) <= units // 20 and zeros.count(0) >= len(zeros) * 0.9:
            return name
    return None


class _Recoded(io.RawIOBase):
    """A UTF-16/32 stream read as UTF-8 bytes, so the one line splitter and the parsers see what
    they see in any other log. Offsets are then those of the UTF-8 text."""

    def __init__(self, raw: BinaryIO, encoding: str) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding)("replace")
        self._buffer = b""
        self._bom = True

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = CHUNK_SIZE if size is None or size < 0 else size
        while len(self._buffer) < want:
            data = self._raw.read(want)
            text = self._decoder.decode(data or b"", final=not data)
            if self._bom:
                text = text.removeprefix("\ufeff")
                self._bom = not text
            self._buffer += text.encode("utf-8", "surrogatepass")
            if not data:
                break
        out, self._buffer = self._buffer[:want], self._buffer[want:]
        return out

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_log(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a log for binary reading, decompressing gzip, bzip2 and xz transparently.

    A plain file is opened unbuffered: the readers pull large chunks themselves, and a second
    buffer would only copy every byte once more.
    """
    try:
        raw = open(path, "rb", buffering=0)  # noqa: SIM115 - returned to the caller
    except OSError as error:
        raise InputError(f"cannot open: {error.strerror or error}", file=os.fspath(path)) from error
    try:
        head = raw.read(6)
        raw.seek(0)
    except OSError as error:
        raw.close()
        raise InputError(f"cannot read: {error.strerror or error}", file=os.fspath(path)) from error
    kind = compression_of(head)
    stream: BinaryIO = raw
    if kind == "gzip":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    elif kind == "bzip2":
        stream = bz2.BZ2File(raw, mode="rb")  # type: ignore[assignment]
    elif kind == "xz":
        stream = lzma.LZMAFile(raw, mode="rb")  # type: ignore[assignment]  # noqa: SIM115
    try:
        first = stream.peek(4096)[:4096] if hasattr(stream, "peek") else raw.read(4096)
        if stream is raw:
            raw.seek(0)
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        return stream  # the reader reports damaged data with its offset
    encoding = text_encoding(first)
    return _Recoded(stream, encoding) if encoding else stream  # type: ignore[return-value]


def read_chunks(stream: BinaryIO, *, offset: int = 0, flush: bool = True, chunk_size: int = CHUNK_SIZE,
                max_line: int = MAX_LINE, name: str | os.PathLike[str] | None = None) -> Iterator[list[Line]]:
    """Lists of complete lines, one list per chunk read, from `stream` (positioned at `offset`).

    With `flush` the last line is emitted even without a final newline (the file is complete);
    without it that fragment is held back, as a live reader must. Empty lists are never yielded.
    A corrupt or cut-off compressed stream yields every line before the damage, then raises
    InputError naming the file and offset.
    """
    splitter = LineSplitter(offset, max_line=max_line)
    read = stream.read
    while True:
        try:
            data = read(chunk_size)
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as error:
            # Deliver what was whole before the damage, then say where it happened.
            tail = splitter.flush() if flush else []
            if tail:
                yield tail
            raise InputError(f"unreadable data after byte {splitter.offset}: {error}",
                             file=None if name is None else os.fspath(name)) from error
        if not data:
            break
        lines = splitter.feed(data)
        if lines:
            yield lines
    if flush:
        tail = splitter.flush()
        if tail:
            yield tail


def iter_chunks(path: str | os.PathLike[str], *, chunk_size: int = CHUNK_SIZE,
                max_line: int = MAX_LINE, flush: bool = True) -> Iterator[list[Line]]:
    """Lists of lines per chunk from a whole file (plain or compressed): the fast batch API."""
    with open_log(path) as stream:
        yield from read_chunks(stream, chunk_size=chunk_size, max_line=max_line, flush=flush,
                               name=path)


def iter_lines(path: str | os.PathLike[str], *, chunk_size: int = CHUNK_SIZE, max_line: int = MAX_LINE,
               flush: bool = True) -> Iterator[Line]:
    """Every line of a file (plain or compressed) as (offset, bytes)."""
    for chunk in iter_chunks(path, chunk_size=chunk_size, max_line=max_line, flush=flush):
        yield from chunk


__all__ = [
    "CHUNK_SIZE",
    "MAX_LINE",
    "TRUNCATION_MARK",
    "Line",
    "LineSplitter",
    "compression_of",
    "iter_chunks",
    "iter_lines",
    "open_log",
    "read_chunks",
]
