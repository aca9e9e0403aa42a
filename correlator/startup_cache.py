"""What every start computes the same way, kept between runs in the user's cache folder.

Loading the built-in formats (reading their TOML, compiling some three hundred regexes, building
the routine scanner's automaton) took about 0.15 s of CPU at every start, as long as scanning a
hundred megabytes of log. The loaded formats are the same as long as the files they come from
and the code that reads them are, so they are kept as a pickle (`cache_folder()`/formats-*.pickle)
and loaded in about a tenth of that time:

- The file's name is a hash of everything the result depends on: the contents of the format and
  vocabulary files (by path, in search order), the correlator version and a fingerprint of its
  modules (name, size and change time: a checkout changes code without changing the version),
  and the Python and `regex` versions. Anything else is a new file, so a cache is never trusted
  across versions; old files are removed when a new one is written.
- A compiled `re` pattern is kept as the program its compiler made (`_sre` code, checked by
  Python's own validator when it is loaded), not as its source: pickle would compile it again.
  A `regex` pattern pickles as its program already.
- The file holds a SHA-256 digest of its payload, checked before anything is unpickled; the
  unpickler resolves only the classes and functions listed in `_ALLOWED` (no `getattr`; the only
  functions are the pattern builders and the field conversions), and only files owned by the user
  and not writable by others are read. A cache that is unreadable, truncated, corrupt, stale or
  refused is ignored and written again: it can make a start slower, never the findings other.
"""

from __future__ import annotations

import contextlib
import copyreg
import functools
import hashlib
import importlib
import io
import os
import pickle
import re
import stat
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from correlator._version import __version__

_sre: Any = importlib.import_module("_sre")
_re_parser: Any = importlib.import_module("re._parser")
_re_compiler: Any = importlib.import_module("re._compiler")

_MAGIC = b"correlator-startup-1\n"
_DIGEST = hashlib.sha256().digest_size
_PACKAGE = Path(__file__).resolve().parent

T = TypeVar("T")
#: Files of one kind kept side by side (different format folders give different keys).
KEEP = 8


def cache_folder() -> Path:
    """The user's cache folder for correlator (`$XDG_CACHE_HOME/correlator`, else
    `~/.cache/correlator`): start-up state and the compiled scanner databases."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "correlator"


@functools.cache
def _code_fingerprint() -> bytes:
    """Name, size and change time of every module of the package: a checkout's edits make a new
    cache without a new version number. Once per process (the formats and the rules each ask;
    walking the package takes 2-3 ms), for the code this process runs."""
    parts = []
    for folder, _dirs, files in os.walk(_PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    info = os.stat(path)
                    parts.append(f"{os.path.relpath(path, _PACKAGE)}:{info.st_size}:{info.st_mtime_ns}")
    return "\n".join(sorted(parts)).encode()


def cache_key(kind: str, files: Iterable[Path]) -> str | None:
    """A hash of the versions, the code and `files` (path and contents), or None when a file
    cannot be read (then the caller loads as usual and says what is wrong)."""
    import regex

    digest = hashlib.sha256()
    for part in (kind, __version__, sys.version, str(sys.hexversion), str(_sre.MAGIC), regex.__version__):
        digest.update(part.encode() + b"\0")
    digest.update(_code_fingerprint())
    for file in files:
        try:
            contents = file.read_bytes()
        except OSError:
            return None
        digest.update(os.fsencode(file) + b"\0" + hashlib.sha256(contents).digest())
    return digest.hexdigest()[:40]


# --------------------------------------------------------------------------- patterns


def _rebuild_re(pattern: str, flags: int, code: list[int], groups: int, groupindex: dict[str, int],
                indexgroup: tuple[str | None, ...]) -> re.Pattern[str]:
    """A compiled `re` pattern from its program, as `re._compiler.compile` ends."""
    compiled: re.Pattern[str] = _sre.compile(pattern, flags, code, groups, groupindex, indexgroup)
    return compiled


def _reduce_re(pattern: re.Pattern[str]) -> tuple[Callable[..., re.Pattern[str]], tuple[Any, ...]]:
    """How a `re` pattern is kept: its compiler's output, checked to give the very pattern."""
    parsed = _re_parser.parse(pattern.pattern, pattern.flags)
    code = [int(op) for op in _re_compiler._code(parsed, pattern.flags)]
    groupindex = dict(parsed.state.groupdict)
    indexgroup: list[str | None] = [None] * parsed.state.groups
    for name, number in groupindex.items():
        indexgroup[number] = name
    args = (pattern.pattern, pattern.flags | parsed.state.flags, code, parsed.state.groups - 1, groupindex,
            tuple(indexgroup))
    if _rebuild_re(*args) != pattern:  # equal: same source, flags and program
        raise pickle.PicklingError(f"pattern {pattern.pattern!r} does not rebuild the same")
    return _rebuild_re, args


# --------------------------------------------------------------------------- the file

#: What a cache file may name: the classes of a loaded registry and the two pattern builders.
#: A class added to the registry's objects goes here too (the tests fail on a cache miss).
_ALLOWED: dict[str, frozenset[str]] = {
    "correlator.startup_cache": frozenset({"_rebuild_re"}),
    "regex._regex": frozenset({"compile"}),
    "correlator.formats.registry": frozenset({"Registry"}),
    "correlator.formats.definition": frozenset({"Format", "LinePattern", "MessagePattern", "Sample", "_Combined",
                                                 "_Fields", "_to_int", "_to_float", "_lower"}),
    "correlator.formats.evidence": frozenset({"Evidence", "Vocabulary", "Reason"}),
    "correlator.formats.layout": frozenset({"LayoutVocabulary", "TimeShape"}),
    "correlator.formats.timeparse": frozenset({"TimeParser"}),
    "correlator.formats.scan": frozenset({"RoutineSpec", "Automaton"}),
    "correlator.formats.patterns": frozenset({"BoundedPattern"}),
    "correlator.kinds": frozenset({"Kind", "KindVocabulary"}),
    "pathlib": frozenset({"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath", "Path"}),
    "builtins": frozenset({"set", "frozenset", "int"}),
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name not in _ALLOWED.get(module, ()):
            raise pickle.UnpicklingError(f"a start-up cache may not name {module}.{name}")
        return super().find_class(module, name)


def _readable(path: Path) -> bytes | None:
    """The file's bytes when it is a regular file of this user that nobody else may write."""
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return None
            if hasattr(os, "getuid") and info.st_uid != os.getuid():
                return None
            return handle.read()
    except OSError:
        return None


def load(kind: str, key: str) -> Any | None:
    """The object kept under `kind` and `key`, or None (missing, unreadable, corrupt, refused)."""
    data = _readable(cache_folder() / f"{kind}-{key}.pickle")
    if data is None or not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + _DIGEST:
        return None
    digest, payload = data[len(_MAGIC):len(_MAGIC) + _DIGEST], data[len(_MAGIC) + _DIGEST:]
    if hashlib.sha256(payload).digest() != digest:
        return None
    try:
        return _Unpickler(io.BytesIO(payload)).load()
    except Exception:  # whatever a damaged file raises, the caller loads afresh
        return None


def store(kind: str, key: str, value: object) -> None:
    """Keep `value` under `kind` and `key` (atomically, private to the user), removing the files
    of older keys of the same kind. Does nothing when it cannot (a read-only home, say)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, re.Pattern: _reduce_re}
    try:
        pickler.dump(value)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return
    payload = buffer.getvalue()
    folder = cache_folder()
    target = folder / f"{kind}-{key}.pickle"
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # one partial file per writer: two processes, or two threads of a server, may write at once
        partial = folder / f".{kind}-{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
        partial.replace(target)
        # a few keys side by side (a user's formats folder, a test's), the oldest beyond them removed
        kept = sorted(folder.glob(f"{kind}-*.pickle"), key=_changed, reverse=True)
        for old in kept[KEEP:]:
            with contextlib.suppress(OSError):
                old.unlink()


def _changed(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def cached(kind: str, files: Iterable[Path], build: Callable[[], T], expect: type[T]) -> T:
    """`build()`'s result, from the cache when one of type `expect` was kept for the same
    `files`, versions and code; else built and kept. An error of `build` is raised as it is (and
    nothing kept)."""
    key = cache_key(kind, files)
    if key is not None:
        found = load(kind, key)
        if isinstance(found, expect):
            return found
    value = build()
    if key is not None:
        store(kind, key, value)
    return value
