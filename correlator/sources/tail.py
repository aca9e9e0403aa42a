"""Follow live log files and folders, delivering complete lines in batches through a callback.

Why it is built this way:

- A log is followed as an open file descriptor identified by (device, inode), not as a name. Log
  rotation changes which file a name points at; the descriptor keeps the old file readable (even
  after it is deleted), so the lines written to it after the rename are read to the end before the
  new file is started, and nothing is read twice.
- watchdog only wakes us up. Its events say "something changed near this path"; what to read is
  decided by looking at the files themselves (stat the name, fstat the descriptor), so coalesced,
  reordered or missed events cannot lose lines. A periodic pass over every file is the safety net,
  and the only mechanism where inotify is unavailable (polling observer).
- One worker thread does all reading and calls the callback, so batches for one path arrive in file
  order and the consumer needs no locking of its own. Nothing here imports a UI: the TUI, the API
  and batch analysis all consume `LineBatch` objects.
- Lines are split by `correlator.sources.lines.LineSplitter`, the same code batch reading uses, so a
  line has the same offset whether it was tailed or read later from the file.

Order between files is not defined here; the timeline orders events by time.

A file that exists at start() can be handed whole to a bulk reader first (`bulk`): `analyze`'s
two-tier reader classifies a two-million-line log's routine traffic at C speed, where one Line per
line here would take many seconds before the first finding. The file is positioned where its last
complete line ends, the bulk reader reads the bytes before that from the very file descriptor
(whatever happens to the name meanwhile), and tailing goes on from that byte: a rotation or
truncation during the bulk read is then caught as any other.

Copytruncate (copy the log, then truncate it in place) is lossy by design: a line written between
the copy and the truncation exists nowhere. What can be saved is saved: when a followed file
shrinks, the rotated copy beside it (same name prefix, same bytes just before our read position) is
read from our position to its end before the truncated file is restarted at offset 0. Its batches
carry its identity (one of no lines when we had read all it holds): the lines read before the cut
are in the copy now, and a consumer that reads lines back at their offsets reads them there.

A rotated file whose new name matches a folder's pattern (`mosquitto-1.log` under `*.log`) is not a
new log: it is recognised by inode (a renamed file we hold or finished) and by content (a copy
whose first bytes are those of a file we read), and left alone.
"""

from __future__ import annotations

import contextlib
import enum
import fnmatch
import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from correlator.errors import InputError
from correlator.sources.lines import CHUNK_SIZE, MAX_LINE, Line, LineSplitter, compression_of

log = logging.getLogger(__name__)

FileId = tuple[int, int]
"""(st_dev, st_ino): what a followed file is, whatever its name is now."""

#: Bytes remembered just before the read position; they must still be there on the next read, or
#: the file was truncated and refilled faster than we looked (copytruncate under a busy writer),
#: and they find the rotated copy whose tail we have not read yet.
_SAMPLE = 64
#: Bytes of a file's beginning remembered to recognise a copy of it (copytruncate's rotated copy).
_HEAD = 4096
#: Bytes a new file must match at least before it is taken for a copy (or all of a shorter head).
_HEAD_MATCH = 256
#: Event types that can mean "a followed file has new bytes or a new identity". Opened and
#: closed-without-write are left out: our own reads cause them and would wake us in a loop.
_EVENTS: list[type[FileSystemEvent]] = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent,
                                        FileDeletedEvent, FileClosedEvent]


def _pread_portable(fd: int, size: int, offset: int) -> bytes:
    # Only the worker thread reads, so moving the shared file position is safe.
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


#: Positional reads leave no file position to keep in step; Windows lacks os.pread.
_pread: Callable[[int, int, int], bytes] = getattr(os, "pread", _pread_portable)


class TailEvent(enum.Enum):
    """What happened to a followed path just before the lines of the batch that carries it. A
    consumer resets whatever per-file state it keeps (multi-line records, line numbers)."""

    OPENED = "opened"
    """The first batch of a file we started following (at its end or its beginning)."""
    ROTATED = "rotated"
    """The name now holds another file (rename-and-create, delete-and-recreate); its lines start
    at offset 0. Every line of the previous file was delivered before this batch."""
    TRUNCATED = "truncated"
    """The same file shrank (copytruncate); reading restarted at offset 0."""


@dataclass(frozen=True, slots=True)
class LineBatch:
    """Complete lines read from one followed path in one go, in file order."""

    path: Path
    """The followed path (the name given or found in a folder), also for lines that came from its
    rotated-away predecessor: consumers see one continuing log per path."""
    lines: list[Line]
    """(byte offset in the file identified by `file_id`, line without newline)."""
    event: TailEvent | None = None
    file_id: FileId = (0, 0)
    """The file the bytes were read from; a rotation or a recovered copy shows as a change."""
    reader: str = ""
    """A name that opens the file `file_id` while the callback runs, whatever its name is now (its
    descriptor's /proc name on Linux; elsewhere the name it was found at): a consumer that reads
    lines back later at their offsets opens it then and keeps it (the renamed old log, the copy
    copytruncate made). A batch of no lines and no event from a copy says that the bytes read so
    far from the truncated file are the copy's: read them back from there."""


class _Handle:
    """One open file and how far it has been read."""

    __slots__ = ("bulk", "event", "fd", "head", "ident", "last_data", "sample", "sniffed", "splitter")

    def __init__(self, fd: int, ident: FileId, splitter: LineSplitter, sample: bytes,
                 event: TailEvent | None, head: bytes = b"") -> None:
        self.fd = fd
        #: The file's first bytes as we first saw them (up to _HEAD): a copy starts with them.
        self.head = head
        self.ident = ident
        self.splitter = splitter
        self.sample = sample
        self.event = event
        self.last_data = time.monotonic()
        #: Whether the first bytes were checked for a compression header (files found in folders).
        self.sniffed = splitter.offset > 0
        #: Whether the bytes before the read position are still to be offered to the bulk reader.
        self.bulk = False


class _Followed:
    """A followed path: the file that holds the name now, plus rotated-away ones still draining."""

    __slots__ = ("discovered", "handles", "opened", "path", "path_obj")

    def __init__(self, path: str, *, discovered: bool) -> None:
        self.path = path
        self.path_obj = Path(path)
        self.discovered = discovered
        #: handles[0] is read; the later ones took the name after it and wait their turn.
        self.handles: list[_Handle] = []
        #: Whether a file was ever opened at this name: a later one there is a rotation.
        self.opened = False


class _Wakeup(FileSystemEventHandler):
    """Runs on watchdog's thread: only hands paths to the worker, never touches files.

    A path already waiting for the worker is not queued again, so a writer doing 20,000 writes a
    second, or a stalled consumer, costs one queue entry per file rather than one per write.
    """

    def __init__(self, put: Callable[[object], None]) -> None:
        self._put = put
        self._lock = threading.Lock()
        self._waiting: set[str] = set()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if event.dest_path:
            # A rename says where a file that held a followed name went: that is how a file that
            # held the name only briefly (two rotations before we looked) is still found.
            self._put(("moved", os.fsdecode(event.src_path), os.fsdecode(event.dest_path)))
            return
        path = os.fsdecode(event.src_path)
        with self._lock:
            if path in self._waiting:
                return
            self._waiting.add(path)
        self._put(path)

    def taken(self, paths: set[str]) -> None:
        """The worker is about to look at these paths: a change from now on must wake it again."""
        with self._lock:
            self._waiting -= paths


_STOP = object()
#: Where Linux names a process's open files: opening one reopens that very file, even deleted.
_FD_NAMES = "/proc/self/fd"


def _folders_under(root: str, depth: int) -> list[str]:
    """`root` and its sub-folders down to `depth` levels (none that cannot be listed)."""
    out = [root]
    level = [root]
    for _ in range(depth):
        below = []
        for folder in level:
            try:
                below += sorted(e.path for e in os.scandir(folder) if e.is_dir(follow_symlinks=False))
            except OSError:
                continue
        out += below
        level = below
    return out


class Tailer:
    """Follows files and folders and calls `callback(LineBatch)` from one worker thread.

    `from_beginning` decides where files that exist at `start()` are read from: their first byte,
    or the start of their last unfinished line (so a line being written is not cut). Files that
    appear later (in a followed folder, or at a followed name after rotation) are always read from
    offset 0: all of their content is new.

    `bulk(path, reader, end)`, with from_beginning, is offered each file that exists at `start()`
    before any of its lines are delivered, on the worker thread: `reader` is a name that opens the
    very file followed (its descriptor's, on Linux), `end` the byte after its last complete line.
    When it returns True it has read the bytes before `end` itself, and lines are delivered from
    `end` on; False, and they are delivered as without it.

    `on_error` receives unreadable files (permission denied and the like) as InputError; without it
    they are logged. An exception raised by `callback` stops the worker and is re-raised by
    `stop()`, so a consumer bug never vanishes silently.
    """

    def __init__(self, callback: Callable[[LineBatch], None], *, from_beginning: bool = False,
                 poll_interval: float | None = 0.5, polling: bool = False,
                 on_error: Callable[[InputError], None] | None = None, chunk_size: int = CHUNK_SIZE,
                 max_line: int = MAX_LINE, idle_close: float = 5.0,
                 bulk: Callable[[Path, str, int], bool] | None = None) -> None:
        self._callback = callback
        self._from_beginning = from_beginning
        # a descriptor is reopened by its /proc name; elsewhere the bulk reader is not offered
        self._proc = os.path.isdir(_FD_NAMES)
        self._bulk = bulk if from_beginning and self._proc else None
        self._positioning = False
        self._poll = poll_interval
        self._polling = polling
        self._on_error = on_error
        self._chunk = chunk_size
        self._max_line = max_line
        self._idle_close = idle_close
        self._files: dict[str, _Followed] = {}
        self._folders: dict[str, list[str]] = {}
        self._trees: dict[str, list[tuple[str, int]]] = {}
        """Folders followed with their sub-folders: (pattern, depth) each."""
        # Names in folders that hold a file we already read under another name (a rotated copy).
        self._ignored: dict[str, FileId] = {}
        # Files we finished and closed that still exist somewhere, with (size, mtime) at close.
        self._retired: dict[FileId, tuple[int, int]] = {}
        # The first bytes of files we read that were truncated or let go: their copies start so.
        self._heads: list[bytes] = []
        self._reported: dict[str, str] = {}
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._handler = _Wakeup(self._queue.put)
        self._observer: BaseObserver | None = None
        self._fallback: BaseObserver | None = None
        self._watched: set[str] = set()
        self._worker: threading.Thread | None = None
        #: Set once the first pass has delivered what the files held at start() (with
        #: from_beginning, their whole content): a consumer can tell catching up from following.
        self.caught_up = threading.Event()
        self._state_lock = threading.Lock()
        self._state = "new"
        self._error: BaseException | None = None

    # ----------------------------------------------------------------------------- public API

    def add_file(self, path: str | os.PathLike[str]) -> None:
        """Follow one file. It need not exist yet: it is read from offset 0 once it appears."""
        self._command(("file", os.path.abspath(path), ""))

    def add_folder(self, path: str | os.PathLike[str], pattern: str = "*.log", *, depth: int = 0) -> None:
        """Follow every file in a folder whose name matches `pattern`, including files created
        later; with `depth`, in its sub-folders too, that many levels down, including sub-folders
        created later (a bundle's host folders: `site-b/` appears while the watch runs)."""
        if depth:
            self._command(("tree", os.path.abspath(path), f"{depth}:{pattern}"))
        else:
            self._command(("folder", os.path.abspath(path), pattern))

    @property
    def observer_kind(self) -> str:
        """Which mechanism wakes the worker, for diagnostics: 'inotify', 'polling' (or another
        platform's observer), joined with '+' when some folders fell back to polling."""
        kinds = {type(o).__name__.removesuffix("Observer").lower()
                 for o in (self._observer, self._fallback) if o is not None}
        return "+".join(sorted(kinds)) or "none"

    def start(self) -> Tailer:
        """Position every file, then start watching. Lines written after start() returns are
        delivered; with from_beginning, so is everything before."""
        with self._state_lock:
            if self._state == "running":
                return self
            if self._state == "stopped":
                raise RuntimeError("a Tailer cannot be restarted; make a new one")
            self._observer = PollingObserver(timeout=self._poll or 1.0) if self._polling else Observer()
            for directory in self._directories():
                self._watch(directory)
            try:
                self._observer.start()
            except OSError as error:
                log.warning("inotify unavailable (%s); polling instead", error)
                self._observer = PollingObserver(timeout=self._poll or 1.0)
                watched, self._watched = self._watched, set()
                for directory in watched:
                    self._watch(directory)
                self._observer.start()
            # Watches are in place before files are positioned, so no change can fall between.
            # Only positions are taken here; all reading (and every callback) is the worker's.
            # Files to offer the bulk reader are positioned at their end, their start left to it.
            at_end = not self._from_beginning or self._bulk is not None
            self._positioning = True
            for followed in list(self._files.values()):
                self._check(followed, at_end=at_end, read=False)
            for folder in list(self._folders):
                self._scan_folder(folder, at_end=at_end, read=False)
            self._positioning = False
            self._worker = threading.Thread(target=self._run, name="correlator-tail", daemon=True)
            self._worker.start()
            self._state = "running"
            return self

    def stop(self) -> None:
        """Stop watching, deliver every complete line written so far, close the files.
        Unfinished last lines are not delivered: they are not lines yet."""
        with self._state_lock:
            if self._state != "running":
                self._state = "stopped"
                self._close_all()
                return
            self._state = "stopped"
            for observer in (self._observer, self._fallback):
                if observer is not None:
                    observer.stop()
            for observer in (self._observer, self._fallback):
                if observer is not None and observer.is_alive():
                    observer.join()
            self._queue.put(_STOP)
            assert self._worker is not None
            self._worker.join()
            self._close_all()
            if self._error is not None:
                raise self._error

    def __enter__(self) -> Tailer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---------------------------------------------------------------------------- registration

    def _command(self, command: tuple[str, str, str]) -> None:
        # Never wait for the state lock while running: a callback may add files, and stop()
        # holds that lock while it waits for the worker that runs the callback.
        if self._state == "new":
            with self._state_lock:
                if self._state == "new":
                    self._apply(command)
                    return
        if self._state == "running":
            # The worker owns the tables once it runs; it applies the command in order.
            self._queue.put(command)
            return
        raise RuntimeError("the Tailer is stopped")

    def _apply(self, command: tuple[str, str, str]) -> None:
        kind, path, pattern = command
        if kind == "tree":
            depth, _, pattern = pattern.partition(":")
            entry = (pattern, int(depth))
            if entry not in self._trees.setdefault(path, []):
                self._trees[path].append(entry)
            self._grow_trees()
            return
        if kind == "file":
            # Named explicitly, it is kept even while absent, also if a folder found it first.
            self._files.setdefault(path, _Followed(path, discovered=False)).discovered = False
            self._ignored.pop(path, None)
            directory = os.path.dirname(path)
        else:
            patterns = self._folders.setdefault(path, [])
            if pattern not in patterns:
                patterns.append(pattern)
            directory = path
        if self._observer is not None:
            self._watch(directory)

    def _grow_trees(self) -> None:
        """Follow the sub-folders of followed trees that are not followed yet (new ones included:
        a later pass reads their files from the start, as any file that appears later)."""
        for root, entries in list(self._trees.items()):
            for pattern, depth in entries:
                for folder in _folders_under(root, depth):
                    if pattern not in self._folders.get(folder, []):
                        self._apply(("folder", folder, pattern))

    def _directories(self) -> set[str]:
        return {os.path.dirname(p) for p in self._files} | set(self._folders)

    def _watch(self, directory: str) -> None:
        """Ask watchdog about one directory; a directory that does not exist yet is left to the
        periodic pass, which retries, and an inotify failure (watch limit) falls back to polling
        for that directory only."""
        if directory in self._watched or not os.path.isdir(directory):
            return
        assert self._observer is not None
        try:
            self._observer.schedule(self._handler, directory, event_filter=_EVENTS)
        except OSError as error:
            if self._fallback is None:
                log.warning("cannot watch %s with inotify (%s); polling it", directory, error)
                self._fallback = PollingObserver(timeout=self._poll or 1.0)
                self._fallback.start()
            self._fallback.schedule(self._handler, directory, event_filter=_EVENTS)
        self._watched.add(directory)

    # ---------------------------------------------------------------------------------- worker

    def _run(self) -> None:
        last_pass = float("-inf")  # the first pass reads what start() positioned
        try:
            while True:
                if last_pass == float("-inf"):
                    timeout: float | None = 0.0
                elif self._poll is None:
                    timeout = None
                else:
                    timeout = max(0.0, last_pass + self._poll - time.monotonic())
                items: list[object] = []
                with contextlib.suppress(queue.Empty):
                    items.append(self._queue.get(timeout=timeout))
                while True:  # coalesce a burst of events into one look per file
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stopping = False
                paths: set[str] = set()
                for item in items:
                    if item is _STOP:
                        stopping = True
                    elif isinstance(item, tuple) and item[0] == "moved":
                        self._moved(item[1], item[2])
                        paths.update(item[1:])
                    elif isinstance(item, tuple):
                        self._apply(item)
                        self._pass_over(item[1], item[0])
                    else:
                        assert isinstance(item, str)
                        paths.add(item)
                self._handler.taken(paths)
                now = time.monotonic()
                if stopping or last_pass == float("-inf") or (
                        self._poll is not None and now - last_pass >= self._poll):
                    self._full_pass()
                    last_pass = now
                    self.caught_up.set()
                elif paths:
                    self._check_paths(paths)
                if stopping:
                    return
        except Exception as error:  # the consumer's callback (or a bug): stop() re-raises it
            self._error = error
            log.exception("tailer stopped")

    def _moved(self, source: str, dest: str) -> None:
        """A followed name was renamed away. If the file now at `dest` is not one we hold, it
        held the name between two of our looks: queue it before the file that holds the name now,
        which came after it. When the event arrives after we already started on that newer file,
        the in-between file is read next: later than its turn, but whole and once."""
        followed = self._files.get(source)
        if followed is None or not followed.handles:
            return
        try:
            st = os.stat(dest)
        except OSError:
            return
        ident = (st.st_dev, st.st_ino)
        if not stat.S_ISREG(st.st_mode):
            return
        if any(h.ident == ident for f in self._files.values() for h in f.handles) or ident in self._retired:
            return
        handle = self._open(dest, at_end=False, event=TailEvent.ROTATED)
        if handle is None or handle.ident != ident:
            if handle is not None:
                os.close(handle.fd)
            return
        try:
            now = os.stat(source)
            holder: FileId | None = (now.st_dev, now.st_ino)
        except OSError:
            holder = None
        position = len(followed.handles)
        for index, held in enumerate(followed.handles):
            if held.ident == holder:
                position = index
        followed.handles.insert(position, handle)

    def _pass_over(self, path: str, kind: str) -> None:
        if kind == "file":
            self._check(self._files[path], at_end=not self._from_beginning)
        else:
            self._scan_folder(path, at_end=not self._from_beginning)

    def _full_pass(self) -> None:
        self._grow_trees()
        for directory in self._directories() - self._watched:
            self._watch(directory)
        for followed in list(self._files.values()):
            self._check(followed)
        for folder in list(self._folders):
            self._scan_folder(folder)

    def _check_paths(self, paths: set[str]) -> None:
        todo: dict[str, _Followed] = {}
        for path in paths:
            followed = self._files.get(path)
            if followed is not None:
                todo[path] = followed
                continue
            # Not a followed name: perhaps a rotated-away file still being written, or a new file.
            directory, name = os.path.split(path)
            for other in self._files.values():
                if len(other.handles) > 0 and os.path.dirname(other.path) == directory:
                    todo[other.path] = other
            patterns = self._folders.get(directory)
            if patterns and any(fnmatch.fnmatchcase(name, p) for p in patterns):
                self._discover(path, at_end=False)
        for followed in todo.values():
            if followed.path in self._files:
                self._check(followed)

    def _scan_folder(self, folder: str, *, at_end: bool = False, read: bool = True) -> None:
        patterns = self._folders[folder]
        try:
            names = [e.name for e in os.scandir(folder) if any(fnmatch.fnmatchcase(e.name, p) for p in patterns)]
        except OSError as error:
            if not isinstance(error, FileNotFoundError):
                self._report(folder, error)
            return
        for name in sorted(names):
            path = os.path.join(folder, name)
            if path not in self._files:
                self._discover(path, at_end=at_end, read=read)

    def _discover(self, path: str, *, at_end: bool, read: bool = True) -> None:
        """A new name in a followed folder: follow it unless it is a file we already read under
        another name (a rotated-away log renamed into the pattern)."""
        if path in self._files:
            return
        try:
            st = os.stat(path)
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode):
            return
        ident = (st.st_dev, st.st_ino)
        if self._ignored.get(path) == ident:
            return
        held = any(h.ident == ident for f in self._files.values() for h in f.handles)
        copy = self._copy_of_read_file(path)
        if copy is None:
            return  # too short yet to tell a new log from a copy being written: look again later
        if held or ident in self._retired or copy:
            self._ignored[path] = ident  # a rotated file under a matching name, not a new log
            return
        followed = self._files[path] = _Followed(path, discovered=True)
        self._check(followed, at_end=at_end, read=read)

    def _copy_of_read_file(self, path: str) -> bool | None:
        """Whether a file starts with the first bytes of a file we read (the copy copytruncate
        makes), False when it does not, None while it is too short to say."""
        heads = [h.head for f in self._files.values() for h in f.handles if h.head] + self._heads
        if not heads:
            return False
        try:
            with open(path, "rb") as handle:
                start = handle.read(_HEAD)
        except OSError:
            return False
        short = False
        for head in heads:
            need = min(len(head), _HEAD_MATCH)
            n = min(len(head), len(start))
            if n >= need and start[:n] == head[:n]:
                return True
            short = short or (len(start) < need and head.startswith(start))
        return None if short else False

    def _remember_head(self, handle: _Handle) -> None:
        if handle.head:
            self._heads.append(handle.head)
            del self._heads[:-64]

    # ---------------------------------------------------------------------------- one followed

    def _check(self, followed: _Followed, *, at_end: bool = False, read: bool = True) -> None:
        """Bring one followed path up to date: notice a new file at the name, read the current
        file to its end, hand over to the next file once it has data."""
        try:
            st: os.stat_result | None = os.stat(followed.path)
        except FileNotFoundError:
            st = None
        except OSError as error:
            self._report(followed.path, error)
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            ident = (st.st_dev, st.st_ino)
            if all(h.ident != ident for h in followed.handles):
                first = not followed.opened
                event = TailEvent.OPENED if first else TailEvent.ROTATED
                handle = self._open(followed.path, at_end=at_end and first, event=event)
                followed.opened = followed.opened or handle is not None
                if handle is not None and all(h.ident != handle.ident for h in followed.handles):
                    followed.handles.append(handle)
                elif handle is not None:
                    os.close(handle.fd)
        if read and followed.discovered and followed.handles and not followed.handles[0].sniffed:
            archive = self._sniff(followed.handles[0])
            if archive is None:
                return  # too few bytes to tell a plain log from an archive being written
            if archive:
                # An archived rotation (app.log.2.gz) caught by a broad pattern, perhaps while
                # gzip was still writing it: batch reading's job, not a live log.
                for handle in followed.handles:
                    os.close(handle.fd)
                self._ignored[followed.path] = followed.handles[0].ident
                del self._files[followed.path]
                return
        while read and followed.handles:
            head = followed.handles[0]
            # Look at the successor BEFORE the last read of the head: a writer fills the new file
            # only after it stopped writing the old one, so once the successor has data, whatever
            # the head holds now is final, and reading it now loses nothing and keeps file order.
            successor_ready = len(followed.handles) > 1 and self._size(followed.handles[1]) > 0
            self._read(followed, head)
            if successor_ready:
                self._retire(followed, head)
                followed.handles.pop(0)
                continue
            if st is None and self._abandoned(followed, head):
                self._retire(followed, head)
                followed.handles.pop(0)
                continue
            break
        if not followed.handles and followed.discovered and st is None:
            del self._files[followed.path]

    def _abandoned(self, followed: _Followed, head: _Handle) -> bool:
        """Whether a file no longer at its name can be let go: it was deleted (or, for a file
        found in a folder, moved away) and nobody wrote to it for `idle_close` seconds."""
        if time.monotonic() - head.last_data < self._idle_close:
            return False
        try:
            links = os.fstat(head.fd).st_nlink
        except OSError:
            return True
        return links == 0 or followed.discovered

    @staticmethod
    def _sniff(handle: _Handle) -> bool | None:
        """True for a compressed file, False for a plain one, None while it is too short to say."""
        try:
            head = _pread(handle.fd, 6, 0)
        except OSError:
            return False
        if len(head) < 6 and any(magic.startswith(head) for magic in (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
            return None  # includes the empty file
        handle.sniffed = True
        return compression_of(head) is not None

    def _size(self, handle: _Handle) -> int:
        try:
            return os.fstat(handle.fd).st_size
        except OSError:
            return 0

    def _open(self, path: str, *, at_end: bool, event: TailEvent) -> _Handle | None:
        try:
            # O_NONBLOCK: should a FIFO take the name between stat and open, do not hang on it.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as error:
            self._report(path, error)
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return None
            offset = self._resume_point(fd, st.st_size) if at_end else 0
            sample = _pread(fd, min(_SAMPLE, offset), offset - min(_SAMPLE, offset))
            head = _pread(fd, _HEAD, 0)
        except OSError as error:
            os.close(fd)
            self._report(path, error)
            return None
        self._reported.pop(path, None)
        splitter = LineSplitter(offset, max_line=self._max_line)
        handle = _Handle(fd, (st.st_dev, st.st_ino), splitter, sample, event, head)
        handle.bulk = at_end and self._positioning and self._bulk is not None
        return handle

    def _resume_point(self, fd: int, size: int) -> int:
        """Where 'from the end' starts: after the last newline, so a line being written when we
        start is delivered whole rather than as a tail fragment."""
        end = size
        floor = max(0, size - self._max_line)
        while end > floor:
            start = max(floor, end - 65536)
            found = _pread(fd, end - start, start).rfind(b"\n")
            if found >= 0:
                return start + found + 1
            end = start
        return 0 if floor == 0 else size

    def _offer_bulk(self, followed: _Followed, handle: _Handle) -> None:
        """Let the bulk reader read the file up to the position start() took, or else start the
        file over at its first byte."""
        handle.bulk = False
        end = handle.splitter.offset
        assert self._bulk is not None
        # a position that is no line's start (a last line longer than max_line) is not offered
        if end > 0 and _pread(handle.fd, 1, end - 1) == b"\n" and \
                self._bulk(followed.path_obj, os.path.join(_FD_NAMES, str(handle.fd)), end):
            handle.last_data = time.monotonic()
            return
        handle.splitter.reset(0)
        handle.sample = b""

    def _read(self, followed: _Followed, handle: _Handle) -> None:
        fd = handle.fd
        splitter = handle.splitter
        try:
            if handle.bulk:
                self._offer_bulk(followed, handle)
            size = os.fstat(fd).st_size
            offset = splitter.offset
            sample = handle.sample
            if size < offset or (sample and _pread(fd, len(sample), offset - len(sample)) != sample):
                self._truncated(followed, handle)
            while True:
                data = _pread(fd, self._chunk, splitter.offset)
                if not data:
                    break
                handle.last_data = time.monotonic()
                if len(handle.head) < _HEAD and splitter.offset == len(handle.head):
                    handle.head += data[:_HEAD - len(handle.head)]
                handle.sample = data[-_SAMPLE:] if len(data) >= _SAMPLE else (handle.sample + data)[-_SAMPLE:]
                self._emit(followed, handle, splitter.feed(data))
                if len(data) < self._chunk:
                    break
        except OSError as error:
            self._report(followed.path, error)
            return
        self._emit(followed, handle, [])

    def _reader(self, fd: int, path: str) -> str:
        return os.path.join(_FD_NAMES, str(fd)) if self._proc else path

    def _truncated(self, followed: _Followed, handle: _Handle) -> None:
        """The file shrank or its bytes before our position changed: read what we missed from
        the rotated copy when one is found, then start over at 0. The batches from the copy (one
        of no lines when we had read all it holds) carry its identity: the lines read before are
        in it now, no longer in the truncated file."""
        copy = self._find_copy(followed, handle)
        if copy is not None:
            fd, ident, name = copy
            reader = self._reader(fd, name)
            try:
                told = False
                while data := _pread(fd, self._chunk, handle.splitter.offset):
                    lines = handle.splitter.feed(data)
                    if lines:
                        self._callback(LineBatch(followed.path_obj, lines, None, ident, reader))
                        told = True
                tail = handle.splitter.flush()
                if tail or not told:
                    self._callback(LineBatch(followed.path_obj, tail, None, ident, reader))
            finally:
                os.close(fd)
        else:
            tail = handle.splitter.flush()
            if tail:
                self._callback(LineBatch(followed.path_obj, tail, None, handle.ident,
                                         self._reader(handle.fd, followed.path)))
        self._remember_head(handle)
        handle.head = b""
        handle.splitter.reset(0)
        handle.sample = b""
        handle.event = TailEvent.TRUNCATED

    def _find_copy(self, followed: _Followed, handle: _Handle) -> tuple[int, FileId, str] | None:
        """The rotated copy of a truncated log: a regular file beside it whose name shares its
        stem, that reaches our position at least and holds our sample just before it (its
        descriptor, identity and name)."""
        offset = handle.splitter.offset
        sample = handle.sample
        if not sample:
            return None
        directory, name = os.path.split(followed.path)
        stem = name.partition(".")[0] or name
        best: tuple[int, int, FileId, str] | None = None
        held = {h.ident for f in self._files.values() for h in f.handles}
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return None
        for entry in entries:
            if entry.name == name or not entry.name.startswith(stem):
                continue
            try:
                st = entry.stat()
                ident = (st.st_dev, st.st_ino)
                if not stat.S_ISREG(st.st_mode) or st.st_size < offset or ident in held:
                    continue
                fd = os.open(entry.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                continue
            try:
                if (compression_of(_pread(fd, 6, 0)) is None
                        and _pread(fd, len(sample), offset - len(sample)) == sample
                        and (best is None or st.st_mtime_ns > best[1])):
                    if best is not None:
                        os.close(best[0])
                    best = (fd, st.st_mtime_ns, ident, entry.path)
                    continue
            except OSError:
                pass
            os.close(fd)
        return None if best is None else (best[0], best[2], best[3])

    def _retire(self, followed: _Followed, handle: _Handle) -> None:
        """A file that will not be written again under this name: its unfinished last line is
        all there will ever be of that line, so it is delivered, and the file is closed."""
        self._emit(followed, handle, handle.splitter.flush())
        self._remember_head(handle)
        try:
            st = os.fstat(handle.fd)
            if st.st_nlink > 0:
                self._retired[handle.ident] = (st.st_size, st.st_mtime_ns)
                while len(self._retired) > 256:
                    del self._retired[next(iter(self._retired))]
        except OSError:
            pass
        os.close(handle.fd)

    def _emit(self, followed: _Followed, handle: _Handle, lines: list[Line]) -> None:
        event = handle.event
        if not lines and event is None:
            return
        handle.event = None
        self._callback(LineBatch(followed.path_obj, lines, event, handle.ident,
                                 self._reader(handle.fd, followed.path)))

    def _report(self, path: str, error: OSError) -> None:
        """Tell about an unreadable file once per distinct problem, not on every pass."""
        text = error.strerror or str(error)
        if self._reported.get(path) == text:
            return
        self._reported[path] = text
        problem = InputError(f"cannot follow: {text}", file=path)
        if self._on_error is not None:
            self._on_error(problem)
        else:
            log.warning("%s", problem)

    def _close_all(self) -> None:
        for followed in self._files.values():
            for handle in followed.handles:
                os.close(handle.fd)
            followed.handles.clear()


__all__ = ["FileId", "LineBatch", "TailEvent", "Tailer"]
