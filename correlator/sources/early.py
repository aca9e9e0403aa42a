"""The complement scan of a big log started before the analysis is ready to read it.

Before `analyze` reads its first block it imports its modules, loads the rules and the artifacts
and builds the engine: about 0.3 s of Python that holds the GIL on one core while the other has
nothing to do. Hyperscan's scan of the blocks (correlator/formats/scan.py) needs none of it: only
the log's format, known from its first lines. So `correlator analyze` starts it at once for each
big plain log it is given (`EarlyReads`), on a thread that lets go of the GIL while it reads and
scans; the bulk reader takes the ends of the blocks scanned so far (`EarlyPass.ends`) and counts
their lines without scanning them again, and scans the rest itself.

What the early pass keeps is where the matches ended, a few numbers per block, never the blocks:
the bulk reader reads each block again (a copy from the page cache, a tenth of the scan's time).
At most `MAX_AHEAD` blocks' ends wait to be taken (a log whose every line is an error has a
number per line), so memory stays flat. The ends are the ones the reader's own scan of the same
bytes would give (the same database, a deterministic engine); a block that differs in length or
end from the one scanned (the file grew or was rewritten) stops the pass and is scanned again.

Only where the fast path runs (Hyperscan installed, `CORRELATOR_SCAN` auto or hyperscan), with two
cores or more, for logs of `EARLY_BYTES` or more read with the built-in formats (no forced format,
no formats folder: the log's format is the one the analysis will detect). The scan the reader
takes is the one of the format's full routine declaration; when a rule needs some of its messages
line by line (another database), the pass is left and stopped.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from correlator.errors import CorrelatorError
from correlator.formats.scan import (
    WORKERS,
    Block,
    RoutineSpec,
    complement_database,
    complement_ends,
    scan_engine,
)
from correlator.sources.blocks import BLOCK_SIZE, iter_blocks
from correlator.sources.lines import compression_of

#: Logs smaller than this are not scanned ahead: their whole scan takes less than the start.
EARLY_BYTES = 16 << 20
#: Blocks whose ends may wait to be taken (a log of errors only: 2 MB of ends per block at most).
MAX_AHEAD = 64
#: Bytes at the end of a block compared with the block the reader reads at the same place.
TAIL = 64
#: Seconds a thread that wants the GIL waits before the one holding it is made to let go, while
#: passes run (Python's default is 0.005).
SWITCH_INTERVAL = 0.0005
#: Files of a folder looked at for logs to scan ahead (a folder of thousands of small files is
#: not walked further: its big logs are scanned when the analysis reaches them).
MAX_FILES = 2000


class EarlyPass:
    """The complement scan of one log's blocks, on a thread of its own, ahead of its reader."""

    def __init__(self, path: Path, spec: RoutineSpec, block_size: int = BLOCK_SIZE) -> None:
        self.path = path
        self.spec = spec
        self.block_size = block_size
        self.served = 0
        """Blocks whose ends the reader took."""
        self._db = complement_database(spec)
        self._cond = threading.Condition()
        self._done: dict[int, tuple[int, bytes, array[int]]] = {}
        self._current: int | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="early-scan", daemon=True)

    def start(self) -> EarlyPass:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop scanning (at the end of the block being scanned) and let go of what waits."""
        with self._cond:
            self._stopped = True
            self._done.clear()
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        import hyperscan

        scratch = hyperscan.Scratch(self._db)
        try:
            for base, block in iter_blocks(self.path, block_size=self.block_size):
                with self._cond:
                    while not self._stopped and len(self._done) >= MAX_AHEAD:
                        self._cond.wait()
                    if self._stopped:
                        return
                    self._current = base
                ends = array("q", complement_ends(self._db, block, scratch))
                with self._cond:
                    self._current = None
                    if self._stopped:
                        return
                    self._done[base] = (len(block), bytes(block[-TAIL:]), ends)
                    self._cond.notify_all()
        except (OSError, CorrelatorError, hyperscan.error):
            pass  # the reader meets the same fault and reports it; it scans from here on
        finally:
            with self._cond:
                self._current = None
                self._stopped = True
                self._cond.notify_all()

    def ends(self, base: int, block: Block) -> Sequence[int] | None:
        """The ends of the block at `base` when this pass scanned that very block (waiting for it
        when it is being scanned), else None; a block not reached yet, or read otherwise, stops
        the pass: the reader scans from there on with both cores."""
        with self._cond:
            while True:
                found = self._done.pop(base, None)
                if found is not None:
                    self._cond.notify_all()
                    length, tail, ends = found
                    if length == len(block) and tail == block[-TAIL:]:
                        self.served += 1
                        return ends
                    break
                if self._current != base:
                    break
                self._cond.wait()
        self.stop()
        return None


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
            # a pass needs the GIL a few times a block (its read, its scan's start and end); while
            # the start runs Python, each time waited up to the 5 ms switch interval. Measured at
            # load 8: 61-81 of 90 blocks scanned ahead at 5 ms, 88-89 at 0.5 ms.
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
    return importlib.util.find_spec("numpy") is not None


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
