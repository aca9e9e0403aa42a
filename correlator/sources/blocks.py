"""Whole-line blocks of a log for the bulk reader (correlator/formats/scan.py).

The line splitter (`lines.py`) hands out one bytes object per line, which is what the parser
needs and what a busy log cannot afford for its routine lines. Here a file (plain or compressed)
is read in large blocks cut after their last newline, so the scanner sees only whole lines and
memory stays at one block whatever the file's size (plus the longest line, which a line splitter
would cut at `MAX_LINE`). The file's last line gets a newline of its
own when it has none, as the line splitter flushes it.
"""

from __future__ import annotations

import lzma
import os
import zlib
from collections.abc import Iterator

from correlator.errors import InputError
from correlator.sources.lines import open_log

#: Bytes per block: big enough that per-block costs vanish, small enough to stay flat in memory.
BLOCK_SIZE = 16 << 20


def iter_blocks(path: str | os.PathLike[str], *, block_size: int = BLOCK_SIZE) -> Iterator[tuple[int, bytes]]:
    """(offset of the block's first byte, the block), each block whole lines ending in a newline."""
    offset = 0
    carry = b""
    with open_log(path) as stream:
        while True:
            try:
                data = stream.read(block_size)
            except (EOFError, OSError, zlib.error, lzma.LZMAError) as error:
                # what was whole before the damage is read, then the damage is said
                if carry:
                    yield offset, carry + b"\n"
                raise InputError(f"unreadable data after byte {offset + len(carry)}: {error}",
                                 file=os.fspath(path)) from error
            if not data:
                break
            if carry:
                data = carry + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # no newline yet: one very long line, keep reading
                carry = data
                continue
            carry = data[cut:]
            yield offset, data[:cut] if carry else data
            offset += cut
    if carry:
        yield offset, carry + b"\n"
