"""Opens what a support engineer collects: files, folders and archives (.zip, .tar, .tar.gz,
.tgz, .tar.bz2, .tar.xz), and sorts their files by content, not by name: logs, certificates and
keys, mosquitto.conf, ACL and password files, and OPC UA PKI folders. Customers name files as
they please ("broker-config.txt", "certs.bak"), so the names are only a tie-breaker.

Archives are extracted by `correlator.sources.archives`, with limits shared by the whole input
(total size, file count, compression ratio, at every nesting level) and refusing any member that
would land outside the target (absolute paths, '..', links): each refusal is an InputError naming
the archive and the member, and the rest of the bundle is still read. Folders are walked without
recursion, so no depth of folders can overflow the stack.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from correlator.artifacts.client_config import looks_like_config, read_client_configs
from correlator.errors import ArtifactError, InputError
from correlator.sources.archives import MAX_NESTING, Budget, extract, make_temp, shown_name
from correlator.sources.lines import compression_of, text_encoding
from correlator.sources.overlap import find_overlaps

SNIFF_BYTES = 64 * 1024

_CONF_LINE = re.compile(
    r"^\s*(listener|port|bind_address|cafile|capath|certfile|keyfile|allow_anonymous|password_file|acl_file|"
    r"require_certificate|per_listener_settings|log_dest|log_type|persistence|persistence_location|include_dir|"
    r"tls_version|use_identity_as_username|max_connections|connection|address|topic|bridge_cafile)\b(?!\s*[=:])"
    r"(?:[ \t]+\S+){0,5}[ \t\r]*$",
    re.M)
"""An option and its value: a few words at most (`topic spBv1.0/# both 1 "" ""` is the longest). A
message that starts with one of the words ("connection to 10.0.0.5:8883 failed: ...", a client
log written without times) is a sentence, not an option."""
_ACL_LINE = re.compile(r"^\s*(user|topic|pattern)\s+\S", re.M)
#: A password file's line: `user:secret`, no blank in it (mosquitto's own hashes, argon2 or bcrypt
#: from other tools, or the plain text mosquitto_passwd -U turns into hashes).
_PASSWD_LINE = re.compile(r"[^:\s#]+:\S+")
_HASHED = re.compile(r"[^:\s#]+:\$[0-9a-z]+\$\S+")
_PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----")
_PEM_BLOCK = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.S)
#: Lines of text beside its PEM blocks above which a file is a log that quotes a key or a
#: certificate, not a certificate file (openssl's "Bag Attributes" and "subject=" lines are few).
PEM_PROSE_LINES = 10
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
    client_confs: list[Path] = field(default_factory=list)
    """Files that configure clients (Node-RED flows.json, paho or gateway config files)."""
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    read_to: dict[Path, int] = field(default_factory=dict)
    """Logs read only up to a byte offset: from there on their lines are the head of another log
    of their rotation set (correlator.sources.overlap), read there."""
    errors: list[InputError] = field(default_factory=list)
    display: dict[Path, str] = field(default_factory=dict)
    """How to name each file in reports: its path inside the bundle as the user gave it."""
    roots: list[Path] = field(default_factory=list)
    _temp: list[Path] = field(default_factory=list)
    places: dict[str, str] = field(default_factory=dict)
    """Where files really are (an extraction folder, an input named otherwise) -> how reports name
    that place (`bundle.zip!`, the upload's name): see `public`."""

    def name(self, path: Path) -> str:
        return self.display.get(path, str(path))

    def public(self, text: str) -> str:
        """`text` (an error, a note) with every extraction folder and renamed input replaced by
        the name reports give it: a message names bundle members, never where they were unpacked
        (nor, on a server, where the upload is kept)."""
        for place in sorted(self.places, key=len, reverse=True):
            if place in text:
                text = text.replace(place, self.places[place])
        return text

    def scratch(self) -> Path:
        """A new temporary folder removed with the bundle (for files made from its files)."""
        folder = Path(tempfile.mkdtemp(prefix="correlator-"))
        self._temp.append(folder)
        return folder

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


#: Bytes no text log holds: C0 controls but tab, newline, vertical tab, form feed, carriage
#: return and escape (colour codes), and DEL.
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27)) + b"\x7f"


def _binary(block: bytes) -> bool:
    """Whether the first block of a file is binary: any NUL, or more than a tenth of it control
    bytes or bytes that are not UTF-8 (a Latin-1 log has a few, random data about half). Looks at
    one block, so a folder of garbage is sorted out in milliseconds."""
    if not block:
        return False
    if b"\x00" in block:
        return True
    bad = len(block) - len(block.translate(None, _CONTROL))
    bad += block.decode("utf-8", "replace").count("\ufffd")
    return bad > len(block) // 10


def classify(path: Path) -> str:
    """'log', 'cert', 'conf', 'acl', 'passwd', 'binary' or 'number' from the first bytes of a file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return "unreadable"
    if compression_of(head) is not None:
        return "log"  # rotated logs: mosquitto.log.2.gz
    encoding = text_encoding(head)
    if encoding is not None:
        head = head.decode(encoding, "replace").encode("utf-8")  # PowerShell's `>` writes UTF-16
    if _PEM.search(head) and _prose_lines(head) <= PEM_PROSE_LINES:
        return "cert"
    if head[:1] == b"\x30" and len(head) > 1 and head[1] in (0x82, 0x81, 0x80):
        return "cert"
    if _binary(head[:4096]):
        return "binary"
    text = head.decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return "conf" if "mosquitto" in path.name.lower() and path.suffix == ".conf" else "log"
    if all(line.strip().isdigit() for line in lines):
        return "number"  # a pid file (mosquitto.pid), a counter or a marker: no log holds numbers alone
    if _is_passwd(lines):
        return "passwd"
    acl = len(_ACL_LINE.findall(text))
    conf = len(_CONF_LINE.findall(text))
    if conf and conf >= acl and conf >= len(lines) // 4:
        return "conf"
    if acl >= max(1, len(lines) // 2) and re.search(r"^\s*(topic|pattern)\s", text, re.M):
        return "acl"
    return "log"


def _config_or_data(path: Path) -> str:
    """A file named like a configuration (.json, .yaml, .ini, ...) that reads as text: 'client_conf'
    when it configures a client (or is a broken JSON document, so its error is reported with file
    and line), 'log' for JSON lines and any other text that does not parse, 'json' for a JSON
    document that configures nothing (expected.json, package.json): read, and listed as skipped."""
    try:
        if read_client_configs(path):
            return "client_conf"
    except ArtifactError:
        if path.suffix.lower() != ".json" or _json_lines(path):
            return "log"
        return "client_conf"
    if path.suffix.lower() == ".json":
        return "log" if _json_lines(path) else "json"
    return "log"


def _json_lines(path: Path) -> bool:
    """Whether a file is JSON lines (one JSON object a line: docker's json-file, structured logs)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            lines = [line.strip() for _, line in zip(range(20), handle, strict=False) if line.strip()]
    except OSError:
        return False
    return len(lines) > 1 and all(line.startswith("{") and line.endswith("}") for line in lines)


def _prose_lines(head: bytes) -> int:
    return sum(1 for line in _PEM_BLOCK.sub(b"", head).splitlines() if line.strip())


def _is_passwd(lines: list[str]) -> bool:
    """A password file by its content, whatever its line endings: at least half its lines hashed
    `user:$type$...` entries, or every line a `user:secret` pair with a name (plain text, whose
    secret must never become a log line)."""
    entries = [line.strip() for line in lines]
    if sum(1 for line in entries if _HASHED.fullmatch(line)) >= max(1, len(entries) // 2):
        return True
    return all(_PASSWD_LINE.fullmatch(line) for line in entries) and any(
        not line.partition(":")[0].isdigit() for line in entries)


def _walk(root: Path, errors: list[InputError]) -> Iterator[Path]:
    """Files under `root`, sorted folder by folder, links not followed; iterative (os.walk
    recurses once per folder level)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                found = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            errors.append(InputError(f"cannot read folder: {exc.strerror or exc}", file=shown_name(str(folder))))
            continue
        subfolders = []
        for entry in found:
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir():
                    subfolders.append(Path(entry.path))
                elif entry.is_file():
                    yield Path(entry.path)
            except OSError:
                continue
        stack.extend(reversed(subfolders))


def _pki_roots(root: Path) -> Iterator[Path]:
    """OPC UA PKI folders under `root` (not looked into further), iteratively."""
    from correlator.artifacts.pki_layout import detect_layout

    stack = [root]
    while stack:
        folder = stack.pop()
        if detect_layout(folder) is not None:
            yield folder
            continue
        try:
            with os.scandir(folder) as entries:
                stack.extend(sorted((Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)),
                                    reverse=True))
        except OSError:
            continue


def open_bundle(inputs: Iterable[str | Path], names: Mapping[Path, str] | None = None) -> Bundle:
    """Expand files, folders and archives into a sorted Bundle. Unreadable or unsafe parts become
    errors in `bundle.errors`; everything else is kept. Archives in archives are expanded from a
    work list (no recursion), drawing on one `Budget` for the whole input. `names` gives an input
    file the name to report it by instead of its path (the API's upload by its upload name)."""
    bundle = Bundle()
    try:
        _fill(bundle, list(inputs), dict(names or {}))
    except BaseException:
        bundle.close()  # SIGTERM (as SystemExit) or Ctrl-C during extraction: no folder left behind
        raise
    # README, scripts and the like are not logs (JSON was sniffed: see _config_or_data)
    bundle.logs = [p for p in bundle.logs if p.suffix.lower() not in (".md", ".py", ".html", ".csv")]
    bundle.logs = _distinct_logs(bundle)
    _shared_stretches(bundle)
    return bundle


#: Bytes read from each end of a log to tell copies apart before comparing them whole.
_SIGNATURE_BYTES = 1 << 16


def _signature(path: Path) -> tuple[int, bytes, bytes] | None:
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(_SIGNATURE_BYTES)
            f.seek(max(0, size - _SIGNATURE_BYTES))
            tail = f.read(_SIGNATURE_BYTES)
    except OSError:
        return None  # the reader reports it with its file
    return size, head, tail


def _distinct_logs(bundle: Bundle) -> list[Path]:
    """Each log once: the same file given twice, or a copy of it elsewhere in the bundle (a log
    attached again, a folder and its archive), is read once, so no failure is counted twice. A
    copy is noted in `skipped` with the log it repeats."""
    kept: list[Path] = []
    seen: dict[tuple[int, bytes, bytes], list[Path]] = {}
    for path in bundle.logs:
        signature = _signature(path)
        if signature is None or not signature[0]:
            kept.append(path)
            continue
        same = next((other for other in seen.get(signature, [])
                     if signature[0] <= 2 * _SIGNATURE_BYTES or filecmp.cmp(other, path, shallow=False)), None)
        if same is not None:
            bundle.skipped.append((path, f"the same log as {bundle.name(same)}: read once"))
            continue
        seen.setdefault(signature, []).append(path)
        kept.append(path)
    return kept


def _shared_stretches(bundle: Bundle) -> None:
    """Rotated logs that share lines (a late copytruncate, logrotate's copy): each line read
    once. A log wholly inside another is skipped; one whose end is another's start is read up to
    there. Both are said in `skipped`."""
    found = find_overlaps(bundle.logs)
    for path, other in found.inside.items():
        bundle.skipped.append((path, f"every line of it is in {bundle.name(other)}: read there"))
    bundle.logs = [p for p in bundle.logs if p not in found.inside]
    for path, (offset, line, other) in found.read_to.items():
        bundle.read_to[path] = offset
        bundle.skipped.append((path, f"lines {line} to its end are the first lines of {bundle.name(other)}: "
                                     "read there"))


def _fill(bundle: Bundle, inputs: list[str | Path], shown_as: dict[Path, str]) -> None:
    budget = Budget()
    # (root, how to name its files: a prefix (a file root: its name), or the original member
    # names of an archive, nesting)
    work: list[tuple[Path, str, dict[Path, str] | None, int]] = []
    for given in inputs:
        path = Path(given)
        shown = shown_as.get(path)
        if shown is not None:
            bundle.places[str(path)] = shown
        if not path.exists():
            bundle.errors.append(InputError("no such file or folder", file=shown or shown_name(str(path))))
        elif path.is_file() and is_archive(path):
            budget.given += path.stat().st_size
            _expand(bundle, budget, path, shown or path.name, 0, work, named=shown or str(path))
        elif path.is_dir():
            # one folder: name files as they sit in it (broker/mosquitto.log); several: keep the folder
            work.append((path, "" if len(inputs) == 1 else f"{path.name}/", None, 0))
        else:
            work.append((path, shown or "", None, 0))
    while work:
        root, prefix, names, nesting = work.pop(0)
        bundle.roots.append(root)
        files = [root] if root.is_file() else list(_walk(root, bundle.errors))
        if root.is_dir():
            bundle.pki_roots.extend(_pki_roots(root))
        in_pki = tuple(str(p) + os.sep for p in bundle.pki_roots)
        for file in files:
            if names is not None:
                display = prefix + names.get(file, shown_name(str(file.relative_to(root))))
            else:
                display = shown_name((prefix or str(file)) if root.is_file() else prefix + str(file.relative_to(root)))
            bundle.display[file] = display
            if str(file).startswith(in_pki):
                continue
            if is_archive(file) and root.is_dir():
                if nesting == 0 and names is None:
                    budget.given += file.stat().st_size  # an archive in a folder the user gave
                _expand(bundle, budget, file, display, nesting + (names is not None), work,
                        named=None if names is not None else shown_name(str(file)))
                continue
            kind = classify(file)
            if kind == "log" and looks_like_config(file):
                kind = _config_or_data(file)
            target = {"log": bundle.logs, "cert": bundle.certs, "conf": bundle.confs, "acl": bundle.acls,
                      "passwd": bundle.passwds, "client_conf": bundle.client_confs}.get(kind)
            if target is None:
                bundle.skipped.append((file, kind))
            else:
                target.append(file)


def _expand(bundle: Bundle, budget: Budget, archive: Path, display: str, nesting: int,
            work: list[tuple[Path, str, dict[Path, str] | None, int]], *, named: str | None) -> None:
    """Extract one archive into a temp folder of the bundle and queue its files. Errors name it
    `named` (a path the user gave), else by its place in the bundle (`outer.zip!inner.tar`)."""
    if nesting >= MAX_NESTING:
        bundle.errors.append(InputError(f"refused: archives nested more than {MAX_NESTING} deep",
                                        file=named or display))
        return
    temp = make_temp()
    bundle._temp.append(temp)
    errors: list[InputError] = []
    names = extract(archive, temp, errors, budget)
    for error in errors:
        # name the archive as the user knows it, not by its temp path
        bundle.errors.append(type(error)(error.message, file=named or display, line=error.line)
                             if error.file == str(archive) else error)
    bundle.places[str(temp) + os.sep] = f"{display}!"
    work.append((temp, f"{display}!", names, nesting))
