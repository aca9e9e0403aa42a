"""Whole-line blocks of a log for the bulk reader (correlator/formats/scan.py).

The line splitter (`lines.py`) hands out one bytes object per line, which is what the parser
needs and what a busy log cannot afford for its routine lines. Here a file (plain or compressed)
is read in large blocks cut after their last newline, so the scanner sees only whole lines and
memory stays at a few blocks whatever the file's size (plus the longest line, which a line splitter
would cut at `MAX_LINE`). The file's last line gets a newline of its
own when it has none, as the line splitter flushes it.
"""

from __future__ import annotations

import io
import lzma
import os
import zlib
from collections.abc import Iterator

from correlator.errors import InputError
from correlator.sources.lines import CHUNK_SIZE, open_log

#: Bytes per block: big enough that per-block costs vanish, small enough to stay flat in memory.
BLOCK_SIZE = 8 << 20


def iter_blocks(path: str | os.PathLike[str], *, block_size: int = BLOCK_SIZE) -> Iterator[tuple[int, bytes]]:
    """(offset of the block's first byte, the block), each block whole lines ending in a newline.

    A compressed file is read a chunk at a time, so damage half-way loses at most one chunk: what
    was whole before it comes out, then an InputError says after which byte."""
    offset = 0
    carry = b""
    with open_log(path) as stream:
        step = block_size if isinstance(stream, io.RawIOBase) else min(CHUNK_SIZE, block_size)
        while True:
            pieces, size, done = [carry], len(carry), False
            error: Exception | None = None
            while not done and (size < block_size or len(pieces) == 1):  # at least one read
                try:
                    piece = stream.read(step)
                except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
                    error, done = exc, True
                    break
                done = not piece
                pieces.append(piece)
                size += len(piece)
            data = b"".join(pieces) if len(pieces) > 2 or carry else pieces[-1]
            if done:
                if data:
                    yield offset, data if data.endswith(b"\n") else data + b"\n"
                if error is not None:
                    raise InputError(f"unreadable data after byte {offset + len(data)}: {error}",
                                     file=os.fspath(path)) from error
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # no newline yet: one very long line, keep reading
                carry = data
                continue
            carry = data[cut:]
            yield offset, data[:cut] if carry else data
            offset += cut
