"""The complement scan of a big log started before the analysis is ready to read it.

Before `analyze` reads its first block it imports its modules, loads the rules and the artifacts
and builds the engine: about 0.3 s of Python that holds the GIL on one core while the other has
nothing to do. Hyperscan's scan of the blocks (correlator/formats/scan.py) needs none of it: only
the log's format, known from its first lines. So `correlator analyze` starts it at once for each
big plain log it is given (`EarlyReads`), in a forked process of its own (so it never waits for
the GIL the start holds); the bulk reader takes the ends of the blocks scanned so far
(`EarlyPass.ends`) and counts their lines without scanning them again, and scans the rest itself.

What the early pass keeps is where the matches ended, a few numbers per block, never the blocks:
the bulk reader reads each block again (a copy from the page cache, a tenth of the scan's time).
At most `MAX_AHEAD` blocks' ends wait to be taken (a log whose every line is an error has a
number per line), so memory stays flat. The ends are the ones the reader's own scan of the same
bytes would give (the same database, a deterministic engine); a block that differs in length or
end from the one scanned (the file grew or was rewritten) stops the pass and is scanned again.

Only where the fast path runs (Hyperscan installed, `CORRELATOR_SCAN` auto or hyperscan), with two
cores or more and `os.fork`, for logs of `EARLY_BYTES` or more read with the built-in formats (no forced format,
no formats folder: the log's format is the one the analysis will detect). The scan the reader
takes is the one of the format's full routine declaration; when a rule needs some of its messages
line by line (another database), the pass is left and stopped.
"""

from __future__ import annotations

import contextlib
import importlib.util
import mmap
import os
import select
import signal
import struct
import sys
import threading
import time
import weakref
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from correlator.errors import CorrelatorError
from correlator.formats.scan import (
    NEWLINE,
    WORKERS,
    Block,
    RoutineSpec,
    complement_database,
    complement_ends,
    scan_engine,
)
from correlator.sources.blocks import BLOCK_SIZE
from correlator.sources.lines import compression_of

#: Logs smaller than this are not scanned ahead: their whole scan takes less than the start.
EARLY_BYTES = 16 << 20
#: Blocks whose ends may wait to be taken (a log of errors only: 2 MB of ends per block at most).
MAX_AHEAD = 64
#: Bytes at the end of a block compared with the block the reader reads at the same place.
TAIL = 64
#: Seconds a thread that wants the GIL waits before the one holding it is made to let go, while
#: passes run and their reader reads (Python's default is 0.005).
SWITCH_INTERVAL = 0.0005
#: Files of a folder looked at for logs to scan ahead (a folder of thousands of small files is
#: not walked further: its big logs are scanned when the analysis reaches them).
MAX_FILES = 2000


class EarlyPass:
    """The complement scan of one log's blocks, in a process of its own, ahead of its reader.

    A process, not a thread: Hyperscan calls back into Python for every line that is not routine
    (the busy plant's first block has 845 of the log's 945) and the reading around each scan
    needs the interpreter too, and each of those waited for the GIL while the start ran Python on
    the other core (at most the switch interval, 0.5 ms, each time). A forked child has an
    interpreter of its own: it scans at Hyperscan's speed beside the start, and the reader takes
    its results from a pipe. The child is a copy of this process made before any analysis thread
    runs (the database is compiled or loaded here first, so the child only scans), writes nothing
    but the pipe, and ends with `os._exit`; stopping the pass kills it, and `join` reaps it, so
    its CPU time counts to this process's own when it is measured as a child's.

    Records on the pipe, each a header (`_HEADER`: kind, offset, length, tail length, ends): `W`
    when the child goes on to the block after the last one it gave, `D` with a block's offset,
    length, last `TAIL` bytes and ends. At most `MAX_AHEAD` blocks' ends wait to be taken: the
    reader hands a token back on a second pipe for each one it takes."""

    def __init__(self, path: Path, spec: RoutineSpec, block_size: int = BLOCK_SIZE) -> None:
        self.path = path
        self.spec = spec
        self.block_size = block_size
        self.served = 0
        """Blocks whose ends the reader took."""
        self._db = complement_database(spec)
        self._lock = threading.RLock()  # one reader of the pipe at a time
        self._done: dict[int, tuple[int, bytes, array[int]]] = {}
        self._next = 0  # the offset of the block after the last one the child gave
        self._working = False  # the child said it went on to the block at `_next`
        self._over = False  # the pipe ended (the child finished, failed or was killed)
        self._stopped = False
        self._buffer = bytearray()
        self._child: _Child | None = None

    def start(self) -> EarlyPass:
        records, record_sink = os.pipe()
        token_source, tokens = os.pipe()
        with contextlib.suppress(ImportError, OSError, AttributeError):  # Linux: room for more records
            import fcntl

            fcntl.fcntl(record_sink, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        try:
            pid = os.fork()
        except OSError:  # no process to spare (a limit, a sandbox): the reader scans it all
            for fd in (records, record_sink, token_source, tokens):
                os.close(fd)
            return self
        if pid == 0:  # the child: scan, write, and leave without running anything of the parent's
            try:
                os.close(records)
                os.close(tokens)
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)
                _scan_ahead(self.path, self.block_size, self._db, record_sink, token_source)
            finally:
                os._exit(0)
        os.close(record_sink)
        os.close(token_source)
        os.set_blocking(records, False)
        self._child = _Child(pid, records, tokens)
        weakref.finalize(self, self._child.end)
        return self

    def stop(self) -> None:
        """Stop scanning (the child is killed) and let go of what waits."""
        child = self._child
        if child is not None:
            child.kill()
        with self._lock:
            self._stopped = True
            self._done.clear()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the child to end (at most `timeout` seconds), and reap it."""
        if self._child is not None:
            self._child.reap(timeout)

    def ends(self, base: int, block: Block) -> Sequence[int] | None:
        """The ends of the block at `base` when this pass scanned that very block (waiting for it
        when it is being scanned), else None; a block not reached yet, or read otherwise, stops
        the pass: the reader scans from there on with both cores."""
        with self._lock:
            if self._child is not None and not self._stopped:
                self._read(wait=False)
                while base not in self._done and self._working and self._next == base and not self._over:
                    self._read(wait=True)
                found = self._done.pop(base, None)
                if found is not None:
                    self._child.token()
                    length, tail, ends = found
                    if length == len(block) and tail == block[-TAIL:]:
                        self.served += 1
                        return ends
            self.stop()
            return None

    def _read(self, wait: bool) -> None:
        """The records the pipe holds (when `wait`, at least one more, or its end)."""
        assert self._child is not None
        fd = self._child.records
        while True:
            try:
                chunk = os.read(fd, PIPE_BYTES)
            except BlockingIOError:
                if not wait:
                    return
                select.select([fd], [], [])
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self._over = True
                return
            self._buffer += chunk
            if self._records() and wait:
                return

    def _records(self) -> int:
        """Take the whole records at the start of the buffer; how many there were."""
        buffer, at, taken = self._buffer, 0, 0
        while len(buffer) - at >= _HEADER.size:
            kind, base, length, tail, count = _HEADER.unpack_from(buffer, at)
            size = _HEADER.size + tail + 8 * count
            if len(buffer) - at < size:
                break
            if kind == _WORKING:
                self._working = True
            else:
                start = at + _HEADER.size
                ends = array("q")
                ends.frombytes(buffer[start + tail:at + size])
                self._done[base] = (length, bytes(buffer[start:start + tail]), ends)
                self._next, self._working = base + length, False
            at += size
            taken += 1
        del buffer[:at]
        return taken


#: A record's header on the pipe: kind, the block's offset, its length, the bytes of its tail
#: that follow, and the number of ends (8 bytes each) after them.
_HEADER = struct.Struct("<Bqqqq")
_WORKING, _DONE = 1, 2
#: Bytes the records' pipe is asked to hold (Linux; elsewhere the system's default).
PIPE_BYTES = 1 << 20


class _Child:
    """The scanning process: its pid and the parent's ends of the two pipes."""

    def __init__(self, pid: int, records: int, tokens: int) -> None:
        self.pid = pid
        self.records = records
        self.tokens = tokens
        self._lock = threading.Lock()
        self._reaped = False

    def token(self) -> None:
        """One more block may be scanned ahead."""
        with contextlib.suppress(OSError):  # the child ended
            os.write(self.tokens, b"\x01")

    def kill(self) -> None:
        with self._lock:
            if not self._reaped:
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGKILL)

    def reap(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._reaped:
                    return
                try:
                    pid, _ = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    pid = self.pid
                if pid:
                    self._reaped = True
                    return
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(0.001)

    def end(self) -> None:
        """Killed, reaped and its pipes closed (when the pass is dropped, or the process exits)."""
        self.kill()
        self.reap(5)
        for fd in (self.records, self.tokens):
            with contextlib.suppress(OSError):
                os.close(fd)


def _scan_ahead(path: Path, block_size: int, db: Any, out: int, tokens: int) -> None:
    """The child's work: each block's ends onto `out`, at most MAX_AHEAD blocks ahead of the
    tokens read from `tokens`; it ends at the file's end, at a fault (the reader meets the same
    and reports it) or when the parent is gone."""
    import hyperscan

    try:
        scratch = hyperscan.Scratch(db)
        ahead = 0
        blocks = _mapped_blocks(path, block_size)
        while True:
            while ahead >= MAX_AHEAD:
                got = os.read(tokens, 4096)
                if not got:
                    return
                ahead -= len(got)
            _write(out, _HEADER.pack(_WORKING, 0, 0, 0, 0))
            item = next(blocks, None)
            if item is None:
                return
            base, block = item
            ends = array("q", complement_ends(db, block, scratch))
            tail = bytes(block[-TAIL:])
            _write(out, _HEADER.pack(_DONE, base, len(block), len(tail), len(ends)) + tail + ends.tobytes())
            del item, block  # the view is let go before the next block is mapped
            ahead += 1
    except (OSError, CorrelatorError, hyperscan.error):
        return


def _mapped_blocks(path: Path, block_size: int) -> Iterator[tuple[int, Block | memoryview]]:
    """The blocks `iter_blocks` reads from a plain file (each read fills `block_size` bytes after
    the carried partial line, and is cut after its last newline; the last block gets a newline
    of its own), as views of the file mapped into memory: scanned where the page cache holds
    them, not copied first (the copies were 0.03-0.04 s of the child's CPU for the busy plant's
    broker log). A block that still differs from the reader's is found out by its length and
    tail (`EarlyPass.ends`)."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return
        with mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as whole:
            with contextlib.suppress(AttributeError, OSError):  # Linux: read ahead of the scan
                mapped.madvise(mmap.MADV_SEQUENTIAL)
            offset = window = released = 0
            while True:
                window += block_size  # where iter_blocks' read of this block stops
                if window > size:  # its read meets the end: what is left, with a newline of its own
                    if offset < size:
                        if mapped[size - 1] == NEWLINE:
                            with whole[offset:size] as block:
                                yield offset, block
                        else:
                            yield offset, bytes(whole[offset:size]) + b"\n"
                    return
                cut = mapped.rfind(b"\n", offset, window) + 1
                if cut == 0:
                    continue  # no newline yet: one very long line, read on
                with whole[offset:cut] as block:
                    yield offset, block
                offset = cut
                # the scanned pages leave this process (not the page cache): its resident memory
                # stays a block or two, as the reader's (mapped pages count to it)
                done = offset - offset % mmap.PAGESIZE
                with contextlib.suppress(AttributeError, OSError, ValueError):
                    mapped.madvise(mmap.MADV_DONTNEED, released, done - released)
                released = max(released, done)


def _write(fd: int, data: bytes) -> None:
    with memoryview(data) as view:
        while view:
            view = view[os.write(fd, view):]


class EarlyReads:
    """The early passes of one analysis: started for the big logs among `paths` (files and
    folders) as soon as their format is known, taken by their readers (`take`), all stopped when
    the analysis ends (use as a context manager)."""

    def __init__(self, paths: Iterable[str | Path], *, forced: Sequence[str] = (), formats_dirs: Sequence[str] = (),
                 min_bytes: int | None = None) -> None:
        self.passes: dict[str, EarlyPass] = {}
        self.taken: list[EarlyPass] = []
        self._interval = sys.getswitchinterval()
        if forced or formats_dirs or WORKERS < 2 or scan_engine() not in ("auto", "hyperscan"):
            return
        big = _big_files(paths, EARLY_BYTES if min_bytes is None else min_bytes)
        if not big or not _fast_path_installed():
            return
        from correlator.formats.registry import default_registry
        from correlator.sources.files import LogFile

        registry = default_registry()  # the analysis loads the same (one per process)
        for path in big:
            try:
                spec = LogFile(path, registry).format.routine
            except (OSError, CorrelatorError):
                continue  # the analysis reports it
            if spec is not None:
                self.passes[os.path.realpath(path)] = EarlyPass(path, spec).start()

    def __enter__(self) -> EarlyReads:
        _ACTIVE.append(self)
        self._interval = sys.getswitchinterval()
        if self.passes:
            # the reader's threads (reading ahead, counting) need the GIL a few times a block while
            # the thread that parses holds it. Measured when the pass was a thread, at load 8:
            # 61-81 of 90 blocks scanned ahead at 5 ms, 88-89 at 0.5 ms (the pass is a process now)
            sys.setswitchinterval(SWITCH_INTERVAL)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        _ACTIVE.remove(self)
        sys.setswitchinterval(self._interval)
        started = [*self.passes.values(), *self.taken]
        for early in started:
            early.stop()
        for early in started:
            early.join(timeout=5)

    def take(self, path: Path, spec: RoutineSpec, block_size: int) -> EarlyPass | None:
        """The pass over `path` for a reader of `spec` in blocks of `block_size`, once."""
        early = self.passes.get(os.path.realpath(path))
        if early is None or early.spec is not spec or early.block_size != block_size:
            return None
        del self.passes[os.path.realpath(path)]
        self.taken.append(early)
        return early


_ACTIVE: list[EarlyReads] = []


def take(path: Path, spec: RoutineSpec, block_size: int) -> EarlyPass | None:
    """The early pass over `path` (see `EarlyReads.take`), if an analysis started one."""
    for reads in _ACTIVE:
        found = reads.take(path, spec, block_size)
        if found is not None:
            return found
    return None


def _fast_path_installed() -> bool:
    """Hyperscan importable, and numpy there (`scan.hyperscan_available` without importing numpy:
    its tenth of a second is the start this pass runs beside)."""
    try:
        import hyperscan  # noqa: F401
    except ImportError:
        return False
    return hasattr(os, "fork") and importlib.util.find_spec("numpy") is not None


def _big_files(paths: Iterable[str | Path], min_bytes: int) -> list[Path]:
    """The plain files of at least `min_bytes` among `paths` and in their folders (archives are
    extracted by the bundle first, compressed logs decompressed by the reader: neither is here)."""
    found: list[Path] = []
    seen = 0
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for folder, _, names in os.walk(path):
                for name in names:
                    seen += 1
                    if seen > MAX_FILES:
                        return found
                    _add_if_big(Path(folder) / name, min_bytes, found)
        else:
            _add_if_big(path, min_bytes, found)
    return found


def _add_if_big(path: Path, min_bytes: int, found: list[Path]) -> None:
    try:
        if path.is_file() and path.stat().st_size >= min_bytes and _plain(path):
            found.append(path)
    except OSError:
        pass


def _plain(path: Path) -> bool:
    """Not compressed (the reader decompresses what is: an early pass would do it twice)."""
    with path.open("rb") as handle:
        return compression_of(handle.read(6)) is None
