"""Safe extraction of the archives in a bundle (.zip, .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz),
with limits nothing can multiply.

- **One budget per input.** Size, file count and compression ratio are counted over the whole
  input, across every nesting level and for tar as for zip (`Budget`): an archive inside an
  archive draws on what its parent left, and the ratio is extracted bytes over the bytes the user
  handed in. Members are copied in blocks and every block is checked before it is written, so a
  bomb is refused after a few MB on disk, not after it filled it. Past a limit of the whole
  input, extraction stops (`Refused`); a member's own problem (its ratio, a size header that
  lies, a broken stream) refuses that member only.
- **Members, not archives, fail.** Traversal ('..', absolute paths), links and special files,
  names no file system takes (too long, not UTF-8, a file where a folder must be), paths nested
  deeper than MAX_DEPTH and damaged data each become one InputError naming the archive and the
  member; the other members are extracted.
- **Safe short names.** A member lands under its own path when that is safe; a path part that is
  too long, not valid UTF-8 or holds control characters is replaced by a short one (with a hash of
  the original), and a member whose path clashes with another's lands under a fresh name. The
  original name is kept for display (`extract` returns it), as printable text.
- **Salvage.** A zip with no central directory (a cut-off download) is read by its local headers:
  every member before the cut comes out. A tar that ends early keeps the members before the damage.

Extraction folders are named `correlator-bundle-<pid>-...` in the system's temp folder, so
`remove_stale_temp()` can delete those whose process is gone (a server start calls it after a
crash or `kill -9`); the process's own are removed on every exit path (`Bundle.close`, and the CLI
turns SIGTERM into a normal exit).
"""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

from correlator.errors import InputError
from correlator.printable import printable
from correlator.sources.lines import compression_of

#: Limits of one input (every archive in it, at every nesting level): a bundle is a few hundred MB
#: of logs at most; beyond is a mistake or a bomb.
MAX_TOTAL_BYTES = 4 * 1024**3
MAX_FILES = 20_000
#: Extracted bytes over packed bytes, for each member (zip and compressed tar alike) and for the
#: whole input (extracted over the bytes handed in, so nesting cannot multiply it).
MAX_RATIO = 250
#: Bytes a member, and the whole input, may extract before the ratio is judged (a small archive
#: of one repetitive log may compress very well and harm nobody).
MEMBER_RATIO_FLOOR = 256 * 1024
RATIO_FLOOR = 16 * 1024 * 1024
#: Folders in one member's path at most (1,200 nested folders once overflowed Python's stack).
MAX_DEPTH = 64
#: Archives inside archives at most.
MAX_NESTING = 8
#: Bytes of one path part kept as it is; a longer part gets a short name.
MAX_PART = 100
BLOCK = 1024 * 1024
TEMP_PREFIX = "correlator-bundle-"

_UNSAFE_PART = re.compile(r"[\x00-\x1f\x7f]|[\ud800-\udfff]")


#: What damaged archive data makes zipfile, tarfile and the decompressors raise (an unsupported
#: method or version, an encrypted member, a bad header field, a cut stream).
_DAMAGE = (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError,
           NotImplementedError, RuntimeError, struct.error, UnicodeError)


class Refused(InputError):
    """A limit of the whole input was reached: nothing more of it is extracted."""


@dataclass
class Budget:
    """What one input may still extract: shared by its archives at every nesting level."""

    given: int = 0
    """Bytes of the archives as handed in (nested ones are not added: their bytes were extracted)."""
    total: int = 0
    files: int = 0

    def add_file(self, archive: Path, name: str) -> None:
        self.files += 1
        if self.files > MAX_FILES:
            raise Refused(f"refused: more than {MAX_FILES:,} files in the input (at member {name!r})", file=archive)

    def add_bytes(self, archive: Path, name: str, n: int) -> None:
        self.total += n
        if self.total > MAX_TOTAL_BYTES:
            raise Refused(f"refused: more than {MAX_TOTAL_BYTES // 1024**2:,} MB when extracted (at member "
                          f"{name!r})", file=archive)
        if self.total > RATIO_FLOOR and self.given and self.total / self.given > MAX_RATIO:
            raise Refused(f"refused at member {name!r}: {self.total // self.given:,}:1 expansion of the input "
                          "looks like a decompression bomb", file=archive)


@dataclass
class _Member:
    name: str
    kind: str
    """'file', 'dir', 'link' or 'special'."""
    size: int | None
    """What the header says the member holds, when it says it."""
    packed: Callable[[], int] | None
    """Compressed bytes the member has taken so far (a zip member's packed size; the compressed
    stream's position in a tar.gz/.xz/.bz2 since the member began)."""
    mtime: float | None
    open: Callable[[], IO[bytes]]


def shown_name(name: str) -> str:
    """A file or member name as text any report can write: bytes that were not UTF-8 as \\x
    escapes (`caf\\xe9.log`), then drawn as all bundle text is (correlator.printable)."""
    return printable(name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def make_temp() -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))


def remove_stale_temp(folder: str | None = None) -> list[Path]:
    """Delete the extraction folders of processes that are gone (a crash, `kill -9`); returns them."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        pid = path.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: leave its folder alone
    return True


def extract(archive: Path, target: Path, errors: list[InputError], budget: Budget) -> dict[Path, str]:
    """Extract `archive` into `target` member by member; returns each extracted file with its
    original member name (printable). Refusals and damage go to `errors`; `Refused` (a limit of
    the whole input) propagates after what came before it was kept."""
    placed: dict[Path, str] = {}
    try:
        for member in _members(archive, errors):
            try:
                out = _extract_member(archive, target, member, budget, placed)
            except Refused:
                raise
            except InputError as exc:
                # without its traceback: the frames would keep each refused member's last block
                errors.append(exc.with_traceback(None))
                continue
            if out is not None:
                placed[out] = shown_name(member.name)
    except Refused as exc:
        errors.append(exc.with_traceback(None))
    except _DAMAGE as exc:
        after = f" after {len(placed)} member{'s' if len(placed) != 1 else ''}" if placed else ""
        why = " ".join(str(exc).split())  # tarfile lists what it tried, one line each
        errors.append(InputError(f"cannot read archive{after}: {why}", file=archive))
    return placed


def _extract_member(archive: Path, target: Path, member: _Member, budget: Budget,
                    placed: dict[Path, str]) -> Path | None:
    name = member.name
    if member.kind == "dir":
        return None
    parts = _safe_parts(name, archive)
    if member.kind != "file":
        what = "symbolic link" if member.kind == "link" else "special file"
        raise InputError(f"refused archive member {shown_name(name)!r}: {what}", file=archive)
    budget.add_file(archive, name)
    out = _place(target, parts, len(placed))
    written = 0
    try:
        with member.open() as src, open(out, "wb") as dst:
            packed = member.packed
            while True:
                block = src.read(BLOCK)
                if not block:
                    break
                written += len(block)
                if member.size is not None and written > member.size:
                    raise InputError(f"refused archive member {shown_name(name)!r}: it holds more than the "
                                     f"{member.size:,} bytes its header says", file=archive)
                if packed is not None and written > MEMBER_RATIO_FLOOR and written > MAX_RATIO * max(1, packed()):
                    raise InputError(f"refused archive member {shown_name(name)!r}: compression ratio "
                                     f"{written // max(1, packed()):,}:1 looks like a decompression bomb",
                                     file=archive)
                budget.add_bytes(archive, name, len(block))
                dst.write(block)
    except InputError:
        out.unlink(missing_ok=True)
        raise
    except _DAMAGE as exc:
        out.unlink(missing_ok=True)
        if isinstance(exc, tarfile.TarError | EOFError):
            raise  # a tar stream cannot go on after damage: the members before it are kept
        raise InputError(f"archive member {shown_name(name)!r} is damaged: {exc}", file=archive) from exc
    if member.mtime is not None:
        # a log without timestamps is dated by its file's time: keep the member's
        with contextlib.suppress(OSError, OverflowError, ValueError):
            os.utime(out, (member.mtime, member.mtime))
    return out


def _safe_parts(name: str, archive: Path) -> list[str]:
    member = PurePosixPath(name.replace("\\", "/"))
    if member.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in member.parts:
        raise InputError(f"refused archive member {shown_name(name)!r}: its path leaves the extraction folder",
                         file=archive)
    parts = [p for p in member.parts if p not in ("", ".")]
    if not parts:
        raise InputError(f"refused archive member {shown_name(name)!r}: it has no name", file=archive)
    if len(parts) > MAX_DEPTH:
        raise InputError(f"refused archive member {shown_name(name)[:80]!r}...: {len(parts):,} folders deep "
                         f"(at most {MAX_DEPTH})", file=archive)
    return [_short(p) for p in parts]


def _short(part: str) -> str:
    """A path part a file system takes: too long, not UTF-8 or with control characters, it is
    replaced by its start, a hash and its suffixes (so `.log` and `.gz` stay recognisable)."""
    raw = part.encode("utf-8", "surrogateescape")
    if len(raw) <= MAX_PART and not _UNSAFE_PART.search(part):
        return part
    digest = hashlib.sha1(raw).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", part)[:24]
    suffix = "".join(PurePosixPath(re.sub(r"[^A-Za-z0-9._-]", "_", part[-40:])).suffixes)[-20:]
    return f"{stem}~{digest}{suffix}"


def _place(target: Path, parts: list[str], index: int) -> Path:
    """Where a member goes: its own path, or a fresh one when that clashes with another member
    (a file where a folder must be, or the same name twice)."""
    out = target.joinpath(*parts)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.exists():
            return out
    except OSError:
        pass
    fresh = target / "~renamed" / f"{index}-{parts[-1]}"
    fresh.parent.mkdir(parents=True, exist_ok=True)
    return fresh


def _members(archive: Path, errors: list[InputError]) -> Iterator[_Member]:
    if archive.name.lower().endswith(".zip"):
        try:
            zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, NotImplementedError, ValueError, struct.error, EOFError):
            yield from _salvage_zip(archive, errors)
            return
        with zf:
            for info in zf.infolist():
                mode = info.external_attr >> 16
                kind = "dir" if info.is_dir() else "link" if stat.S_ISLNK(mode) else "file"
                yield _Member(_zip_name(info), kind, info.file_size, partial(_constant, info.compress_size),
                              # zip stores local wall-clock time without a zone
                              time.mktime((*info.date_time, 0, 0, -1)), partial(zf.open, info))
        return
    with open(archive, "rb") as raw, tarfile.open(fileobj=raw) as tf:
        compressed = compression_of(_head(archive)) is not None
        for tinfo in tf:
            kind = ("dir" if tinfo.isdir() else "file" if tinfo.isfile()
                    else "link" if tinfo.issym() or tinfo.islnk() else "special")
            begin = raw.tell()
            # the compressed stream's position moves as the member is read: its packed bytes so far
            packed = partial(_since, raw, begin) if compressed else None
            yield _Member(tinfo.name, kind, tinfo.size, packed, float(tinfo.mtime), partial(_tar_open, tf, tinfo))


def _constant(value: int) -> int:
    return value


def _since(raw: IO[bytes], begin: int) -> int:
    return raw.tell() - begin


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(6)


def _tar_open(tf: tarfile.TarFile, tinfo: tarfile.TarInfo) -> IO[bytes]:
    source = tf.extractfile(tinfo)
    if source is None:
        raise InputError(f"refused archive member {shown_name(tinfo.name)!r}: not a regular file")
    return source


def _zip_name(info: zipfile.ZipInfo) -> str:
    """A zip member's name; one not flagged UTF-8 was decoded as cp437 by zipfile: when its bytes
    are valid UTF-8 after all (many tools never set the flag), read them as UTF-8."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


_LOCAL = struct.Struct("<4sHHHHHIIIHH")


def _salvage_zip(archive: Path, errors: list[InputError]) -> Iterator[_Member]:
    """Members of a zip whose central directory is missing (cut off), read by their local headers
    in file order, streamed: stored and deflated members whose data is whole come out; the cut is
    an error naming the member it fell in."""
    errors.append(InputError("the zip has no central directory (cut off?): its members are read by their "
                             "local headers", file=archive))
    with open(archive, "rb") as handle:
        while True:
            head = handle.read(_LOCAL.size)
            if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
                return
            _, _, flags, method, clock, date, crc, packed, size, name_len, extra_len = _LOCAL.unpack(head)
            raw_name = handle.read(name_len)
            handle.seek(extra_len, os.SEEK_CUR)
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "surrogateescape")
            described = bool(flags & 0x8)  # sizes and CRC follow the data instead
            if method not in (0, 8) or (method == 0 and described):
                errors.append(InputError(f"archive member {shown_name(name)!r}: compression method {method} cannot "
                                         "be salvaged", file=archive))
                if described:
                    return  # its end cannot be found
                handle.seek(packed, os.SEEK_CUR)
                continue
            data_start = handle.tell()
            reader = _LocalReader(handle, shown_name(name), method, None if described else packed,
                                  None if described else crc)
            kind = "dir" if name.endswith("/") else "file"
            yield _Member(name, kind, None if described else size, partial(getattr, reader, "taken"),
                          _dos_time(date, clock), partial(_constant_reader, reader))
            if reader.done:
                continue
            if described:
                while reader.read(BLOCK):  # refused part-way: find its end
                    pass
            else:
                handle.seek(data_start + packed)


def _constant_reader(reader: _LocalReader) -> IO[bytes]:
    return reader  # type: ignore[return-value]


class _LocalReader:
    """One member's data read from its local header on: inflated when deflated, its CRC checked
    at the end; EOFError when the file ends inside it."""

    def __init__(self, handle: IO[bytes], name: str, method: int, packed: int | None, crc: int | None) -> None:
        self.handle = handle
        self.name = name
        self.left = packed
        self.expect = crc
        self.inflater = zlib.decompressobj(-15) if method == 8 else None
        self.pending = b""
        self.crc = 0
        self.done = False
        self.taken = 0
        """Compressed bytes read so far."""

    def __enter__(self) -> _LocalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _raw(self, n: int) -> bytes:
        if self.left is not None:
            n = min(n, self.left)
            if n == 0:
                return b""
        block = self.handle.read(n)
        self.taken += len(block)
        if self.left is not None:
            self.left -= len(block)
        if not block or (self.left is not None and len(block) < n):
            raise EOFError(f"the zip ends inside member {self.name!r}")
        return block

    def read(self, n: int = BLOCK) -> bytes:
        if self.done:
            return b""
        if self.inflater is None:
            block = self._raw(n) if self.left else b""
            if not block:
                self._finish()
            self.crc = zlib.crc32(block, self.crc)
            return block
        while not self.inflater.eof:
            data = self.pending or self._raw(64 * 1024)
            if not data:
                raise EOFError(f"member {self.name!r} ends before its compressed data does")
            out = self.inflater.decompress(data, n)
            self.pending = self.inflater.unconsumed_tail
            if out:
                self.crc = zlib.crc32(out, self.crc)
                return out
        self._finish()
        return b""

    def _finish(self) -> None:
        self.done = True
        if self.inflater is not None and self.inflater.unused_data:
            self.handle.seek(-len(self.inflater.unused_data), os.SEEK_CUR)  # the next header's bytes
        if self.left is None:  # a data descriptor follows: optional signature, CRC, two sizes
            sig = self.handle.read(4)
            described = self.handle.read(12 if sig == b"PK\x07\x08" else 8)
            self.expect = struct.unpack("<I", (sig if sig != b"PK\x07\x08" else described)[:4])[0]
        if self.expect is not None and self.crc != self.expect:
            raise ValueError(f"member {self.name!r} fails its CRC check")


def _dos_time(date: int, clock: int) -> float | None:
    try:
        return time.mktime(((date >> 9) + 1980, (date >> 5) & 0xF, date & 0x1F, clock >> 11, (clock >> 5) & 0x3F,
                            (clock & 0x1F) * 2, 0, 0, -1))
    except (OverflowError, ValueError):
        return None
