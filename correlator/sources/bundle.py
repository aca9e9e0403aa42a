"""Opens what a support engineer collects: files, folders and archives (.zip, .tar, .tar.gz,
.tgz, .tar.bz2, .tar.xz), and sorts their files by content, not by name: logs, certificates and
keys, mosquitto.conf, ACL and password files, and OPC UA PKI folders. Customers name files as
they please ("broker-config.txt", "certs.bak"), so the names are only a tie-breaker.

Archives are extracted with limits (total size, file count, compression ratio) and refuse any
member that would land outside the target (absolute paths, '..', links): each refusal is an
InputError naming the archive and the member, and the rest of the bundle is still read.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from correlator.errors import InputError
from correlator.sources.lines import compression_of

#: Extraction limits: a bundle is a few hundred MB of logs at most; beyond is a mistake or a bomb.
MAX_TOTAL_BYTES = 4 * 1024**3
MAX_FILES = 20_000
MAX_RATIO = 250
SNIFF_BYTES = 64 * 1024

_CONF_LINE = re.compile(
    r"^\s*(listener|port|bind_address|cafile|capath|certfile|keyfile|allow_anonymous|password_file|acl_file|"
    r"require_certificate|per_listener_settings|log_dest|log_type|persistence|persistence_location|include_dir|"
    r"tls_version|use_identity_as_username|max_connections|connection|address|topic|bridge_cafile)\b", re.M)
_ACL_LINE = re.compile(r"^\s*(user|topic|pattern)\s+\S", re.M)
_PASSWD_LINE = re.compile(r"^[^:\s#]+:\$\d+\$\S+$", re.M)
_PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----")
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass
class Bundle:
    """The files of one analysis, sorted by what they hold. `root` is a temporary folder to remove
    with `close()` when archives were extracted."""

    logs: list[Path] = field(default_factory=list)
    certs: list[Path] = field(default_factory=list)
    confs: list[Path] = field(default_factory=list)
    acls: list[Path] = field(default_factory=list)
    passwds: list[Path] = field(default_factory=list)
    pki_roots: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    display: dict[Path, str] = field(default_factory=dict)
    """How to name each file in reports: its path inside the bundle as the user gave it."""
    roots: list[Path] = field(default_factory=list)
    _temp: list[Path] = field(default_factory=list)

    def name(self, path: Path) -> str:
        return self.display.get(path, str(path))

    def close(self) -> None:
        for temp in self._temp:
            shutil.rmtree(temp, ignore_errors=True)
        self._temp.clear()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(_ARCHIVE_SUFFIXES)


def _safe_member(name: str, archive: Path) -> PurePosixPath:
    member = PurePosixPath(name.replace("\\", "/"))
    if member.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in member.parts:
        raise InputError(f"refused archive member {name!r}: its path leaves the extraction folder", file=archive)
    return member


def _check_limits(archive: Path, name: str, size: int, packed: int, total: int, count: int) -> None:
    if count > MAX_FILES:
        raise InputError(f"refused: more than {MAX_FILES} files (at member {name!r})", file=archive)
    if total + size > MAX_TOTAL_BYTES:
        raise InputError(f"refused: more than {MAX_TOTAL_BYTES // 1024**2} MB when extracted (at member {name!r})",
                         file=archive)
    if packed > 0 and size / packed > MAX_RATIO and size > 1024 * 1024:
        raise InputError(f"refused archive member {name!r}: compression ratio {size // packed}:1 looks like a "
                         "decompression bomb", file=archive)


def extract(archive: Path, target: Path, errors: list[InputError]) -> None:
    """Extract `archive` into `target`, member by member, refusing unsafe members."""
    total = 0
    count = 0
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    try:
                        member = _safe_member(info.filename, archive)
                        mode = info.external_attr >> 16
                        if stat.S_ISLNK(mode):
                            raise InputError(f"refused archive member {info.filename!r}: symbolic link", file=archive)
                        count += 1
                        _check_limits(archive, info.filename, info.file_size, info.compress_size, total, count)
                    except InputError as exc:
                        errors.append(exc)
                        if "refused:" in exc.message:
                            return
                        continue
                    total += info.file_size
                    out = target.joinpath(*member.parts)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1024 * 1024)
                    # a log without timestamps is dated by its file's time: keep the member's
                    # (zip stores local wall-clock time without a zone)
                    _set_mtime(out, time.mktime((*info.date_time, 0, 0, -1)))
            return
        with tarfile.open(archive) as tf:
            for tinfo in tf:
                if tinfo.isdir():
                    continue
                try:
                    member = _safe_member(tinfo.name, archive)
                    if not tinfo.isfile():
                        what = "link" if tinfo.issym() or tinfo.islnk() else "special file"
                        raise InputError(f"refused archive member {tinfo.name!r}: {what}", file=archive)
                    count += 1
                    _check_limits(archive, tinfo.name, tinfo.size, 0, total, count)
                except InputError as exc:
                    errors.append(exc)
                    if "refused:" in exc.message:
                        return
                    continue
                total += tinfo.size
                source = tf.extractfile(tinfo)
                if source is None:
                    continue
                out = target.joinpath(*member.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with source, open(out, "wb") as dst:
                    shutil.copyfileobj(source, dst, 1024 * 1024)
                _set_mtime(out, float(tinfo.mtime))
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        errors.append(InputError(f"cannot read archive: {exc}", file=archive))


def _set_mtime(path: Path, mtime: float) -> None:
    with contextlib.suppress(OSError, OverflowError, ValueError):
        os.utime(path, (mtime, mtime))


def classify(path: Path) -> str:
    """'log', 'cert', 'conf', 'acl', 'passwd' or 'binary' from the first bytes of a file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return "unreadable"
    if compression_of(head) is not None:
        return "log"  # rotated logs: mosquitto.log.2.gz
    if _PEM.search(head):
        return "cert"
    if b"\x00" in head[:4096] or (head[:1] == b"\x30" and len(head) > 1 and head[1] in (0x82, 0x81, 0x80)):
        return "cert" if head[:1] == b"\x30" else "binary"
    text = head.decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return "conf" if "mosquitto" in path.name.lower() and path.suffix == ".conf" else "log"
    if len(_PASSWD_LINE.findall(text)) >= max(1, len(lines) // 2):
        return "passwd"
    acl = len(_ACL_LINE.findall(text))
    conf = len(_CONF_LINE.findall(text))
    if conf and conf >= acl and conf >= len(lines) // 4:
        return "conf"
    if acl >= max(1, len(lines) // 2) and re.search(r"^\s*(topic|pattern)\s", text, re.M):
        return "acl"
    return "log"


def _walk(root: Path, errors: list[InputError]) -> Iterator[Path]:
    def on_error(exc: OSError) -> None:
        errors.append(InputError(f"cannot read folder: {exc.strerror or exc}", file=exc.filename))

    for folder, dirs, files in os.walk(root, onerror=on_error, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_symlink():
                continue
            yield path


def open_bundle(inputs: Iterable[str | Path]) -> Bundle:
    """Expand files, folders and archives into a sorted Bundle. Unreadable or unsafe parts become
    errors in `bundle.errors`; everything else is kept."""
    from correlator.artifacts.opcua_pki import detect_layout

    bundle = Bundle()
    inputs = list(inputs)
    for given in inputs:
        path = Path(given)
        if not path.exists():
            bundle.errors.append(InputError("no such file or folder", file=path))
            continue
        if path.is_file() and is_archive(path):
            temp = Path(tempfile.mkdtemp(prefix="correlator-bundle-"))
            bundle._temp.append(temp)
            extract(path, temp, bundle.errors)
            roots = [(temp, f"{path.name}!")]
        elif path.is_dir():
            # one folder: name files as they sit in it (broker/mosquitto.log); several: keep the folder
            roots = [(path, "" if len(inputs) == 1 else f"{path.name}/")]
        else:
            roots = [(path, "")]
        for root, prefix in roots:
            bundle.roots.append(root)
            files = [root] if root.is_file() else list(_walk(root, bundle.errors))
            if root.is_dir():
                for folder, dirs, _ in os.walk(root):
                    if detect_layout(Path(folder)) is not None:
                        bundle.pki_roots.append(Path(folder))
                        dirs[:] = []
            in_pki = tuple(str(p) + os.sep for p in bundle.pki_roots)
            for file in files:
                display = str(file) if root.is_file() else prefix + str(file.relative_to(root))
                bundle.display[file] = display
                if str(file).startswith(in_pki):
                    continue
                if file.is_file() and is_archive(file) and root.is_dir():
                    inner = open_bundle([file])
                    bundle._temp.extend(inner._temp)
                    for name in ("logs", "certs", "confs", "acls", "passwds", "pki_roots", "skipped", "errors"):
                        getattr(bundle, name).extend(getattr(inner, name))
                    for inner_path, inner_name in inner.display.items():
                        bundle.display[inner_path] = f"{display}!{inner_name.split('!', 1)[-1]}"
                    continue
                kind = classify(file)
                target = {"log": bundle.logs, "cert": bundle.certs, "conf": bundle.confs, "acl": bundle.acls,
                          "passwd": bundle.passwds}.get(kind)
                if target is None:
                    bundle.skipped.append((file, kind))
                else:
                    target.append(file)
    # expected.json, README and the like are not logs
    bundle.logs = [p for p in bundle.logs if p.suffix.lower() not in (".json", ".md", ".py", ".html", ".csv")]
    return bundle
