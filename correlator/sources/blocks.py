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
import re
import sys
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from correlator.cancel import Cancelled
from correlator.errors import InputError
from correlator.sources.lines import CHUNK_SIZE, open_log

#: Bytes per block: big enough that per-block costs vanish, small enough to stay flat in memory.
#: The blocks in flight (the one being parsed, those the scanner's workers have ahead, and the
#: join of a block's reads) and their lists of non-routine lines (every line, in a storm of one
#: failure) are what the bulk reader holds: a few blocks' worth. Measured at 900,000 lines of a
#: busy broker: peak RSS 125 MB with 8 MiB blocks, 77 MB with 2 MiB, CPU time within 3 %; a
#: reconnect storm of 320,000 lines (every line parsed): 218 -> 156 MB.
BLOCK_SIZE = 2 << 20


def iter_blocks(path: str | os.PathLike[str], *, block_size: int = BLOCK_SIZE) -> Iterator[tuple[int, bytearray]]:
    """(offset of the block's first byte, the block), each block whole lines ending in a newline.

    A plain file is read straight into the block's buffer (one copy from the kernel, none to
    join pieces); only the cut line at the end is carried over to the next block. A compressed
    file is read a chunk at a time, so damage half-way loses at most one chunk: what was whole
    before it comes out, then an InputError says after which byte."""
    offset = 0
    carry = b""
    spare: list[bytearray] = []
    with open_log(path) as stream:
        plain = isinstance(stream, io.FileIO)
        step = block_size if plain else min(CHUNK_SIZE, block_size)
        while True:
            block = _buffer(spare, len(carry) + block_size)
            block[:len(carry)] = carry
            size, done = len(carry), False
            error: Exception | None = None
            with memoryview(block) as view:
                while size < len(block):
                    # each window released at once: a reader's error keeps its frame (and so the
                    # window) alive, and a buffer still exported cannot be cut to size below
                    with view[size:size + step] as window:
                        try:
                            got = _read_into(stream, window, plain)
                        except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
                            error, done = exc, True
                            break
                    if not got:
                        done = True
                        break
                    size += got
            del block[size:]
            if done:
                if block:
                    if not block.endswith(b"\n"):
                        block += b"\n"
                    yield offset, block
                if error is not None:
                    raise InputError(f"unreadable data after byte {offset + size}: {error}",
                                     file=os.fspath(path)) from error
                return
            cut = block.rfind(b"\n") + 1
            if cut == 0:  # no newline yet: one very long line, keep reading
                carry = bytes(block)
                continue
            carry = bytes(block[cut:])
            del block[cut:]
            yield offset, block
            spare.append(block)
            del spare[:-SPARE]
            offset += cut


#: Blocks handed out that are kept for reuse once their readers let go of them: as many as the bulk
#: reader has in flight (two read ahead, one being read, four with the scanner's threads, one being
#: parsed), else the oldest kept are still in use and every block is a new buffer (with 4: 66 of
#: 171 buffers of a 2M-line log new, with 8: 10).
SPARE = 8


def _buffer(spare: list[bytearray], size: int) -> bytearray:
    """A buffer of `size` bytes: one handed out before that nothing refers to any more (no reader,
    no numpy view, no memoryview: only `spare` and getrefcount's argument), else a new
    one. A new buffer is memory the allocator fetches from the kernel and the kernel zeroes page by
    page: measured on a 187 MB log, 22,000 page faults and 0.075 s of system time; reused, none."""
    for index in range(len(spare)):
        if sys.getrefcount(spare[index]) == 2:  # `spare` and the argument
            old = spare.pop(index)
            if len(old) > size:
                del old[size:]
            else:
                old.extend(bytes(size - len(old)))
            return old
    return bytearray(size)


#: Blocks `read_ahead` holds ready beyond the one being taken.
READ_AHEAD = 2


T = TypeVar("T")


def read_ahead(blocks: Iterable[T], depth: int = READ_AHEAD) -> Iterator[T]:
    """`blocks` (iter_blocks) read on a thread of its own, at most `depth` blocks ahead of the
    caller, in the same order, with the same error at the same place (after the blocks read
    before it). A read is a copy from the page cache that lets go of the GIL: on the caller's
    thread it was a millisecond per block that the caller's own work waited for. Stopping early
    (closing this generator) stops the reader at its next block and closes `blocks` there."""
    cond = threading.Condition()
    ready: deque[T] = deque()
    state: dict[str, Any] = {"done": False, "stopped": False, "error": None}

    def run() -> None:
        try:
            for item in blocks:
                with cond:
                    while len(ready) >= depth and not state["stopped"]:
                        cond.wait()
                    if state["stopped"]:
                        return
                    ready.append(item)
                    cond.notify_all()
        except Exception as exc:  # handed to the caller, where its own read would have raised it
            state["error"] = exc
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()
            with cond:
                state["done"] = True
                cond.notify_all()

    reader = threading.Thread(target=run, name="read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            with cond:
                while not ready and not state["done"]:
                    cond.wait()
                if not ready:
                    if state["error"] is not None:
                        raise state["error"]
                    return
                item = ready.popleft()
                cond.notify_all()
            yield item
            del item  # the block's buffer goes back to iter_blocks' spares once the caller lets go
    finally:
        with cond:
            state["stopped"] = True
            ready.clear()
            cond.notify_all()
        reader.join()


def lines_holding(path: str | os.PathLike[str], text: str,
                  cancelled: Callable[[], bool] = lambda: False) -> list[int]:
    """Where the lines of a file that hold `text` start, case ignored, in file order: the offsets
    the bulk reader gives its lines, for the TUI's search and the API's filter over routine lines
    (which never became events, so only the file holds their text).

    An ASCII text is found in lowered blocks (C speed; a case-blind regex is ten times slower),
    any other by a regex that ignores ASCII case. An empty text is refused: every line holds it,
    which a caller answers without reading the file (and a search for no bytes never advances).
    Raises Cancelled when `cancelled()` turns true between blocks."""
    if not text:
        raise ValueError("lines_holding: an empty text is held by every line")
    starts: list[int] = []
    want = text.lower().encode() if text.isascii() else None
    pattern = None if want is not None else re.compile(re.escape(text.encode()), re.IGNORECASE)
    for base, block in iter_blocks(path):
        if cancelled():
            raise Cancelled
        if want is not None:
            lower = block.lower()
            at = lower.find(want)
            while at >= 0:
                starts.append(base + lower.rfind(b"\n", 0, at) + 1)
                end = lower.find(b"\n", at)
                if end < 0:
                    break
                at = lower.find(want, end)
        else:
            assert pattern is not None
            for match in pattern.finditer(block):
                start = base + block.rfind(b"\n", 0, match.start()) + 1
                if not starts or starts[-1] != start:
                    starts.append(start)
    return starts


def _read_into(stream: Any, view: memoryview, plain: bool) -> int:
    """Bytes read from `stream` into `view` (0 at its end)."""
    if plain:
        return int(stream.readinto(view) or 0)
    piece = stream.read(len(view))
    view[:len(piece)] = piece
    return len(piece)
