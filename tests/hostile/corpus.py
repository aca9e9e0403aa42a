"""The hostile corpus of issue 16, made on demand (no binary is committed): one builder per row
of the issue's table that is an input (the others are behaviours: rotation in tests/test_tail.py,
the HTTP rows in tests/api/test_api_hostile.py, SIGTERM and a killed server in test_table.py),
that takes a folder and returns the input to analyse. Each input carries a real incident
(sample_logs/server_cert_expired; the mixed sample for its own row) beside the hostile part, so a
test can assert both the exact error and that the healthy part was still analysed. The storms'
sizes default to the issue's; tests make them smaller, benchmarks/hostile.py times them.

    PYTHONPATH=tests python -m hostile.corpus OUT_DIR      # writes every case into OUT_DIR/<case>
"""

from __future__ import annotations

import io
import lzma
import os
import struct
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from hostile import storms

SAMPLES = storms.SAMPLES
#: The incident packed beside every hostile part, and the cause it must still yield.
HEALTHY = SAMPLES / "server_cert_expired"
HEALTHY_CAUSE = "tls.server_cert_expired"


def healthy_files() -> Iterator[tuple[str, Path]]:
    """(name inside the bundle, file) of the healthy incident."""
    for path in sorted(HEALTHY.rglob("*")):
        if path.is_file() and path.name != "expected.json":
            yield f"healthy/{path.relative_to(HEALTHY)}", path


def _zip_healthy(zf: zipfile.ZipFile) -> None:
    for name, path in healthy_files():
        zf.write(path, name)


def _tar_healthy(tf: tarfile.TarFile) -> None:
    for name, path in healthy_files():
        tf.add(path, arcname=name)


def _copy_healthy(folder: Path) -> None:
    for name, file in healthy_files():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.read_bytes())


def reconnect_storm(out: Path, lines: int = 320_000) -> Path:
    """`New connection from 127.0.0.1:40000 on port 33741.` n times in one second, beside the
    incident: 320 k lines took 173 s and 596 MB before."""
    folder = out / "storm"
    storms.write(folder / "storm" / "mosquitto.log", storms.reconnect_storm(lines))
    _copy_healthy(folder)
    return folder


def storm_tar_xz(out: Path, lines: int = 320_000) -> Path:
    """The same storm as a .tar.xz (6 KB for 320 k lines), the incident beside it: uploaded to the
    API it held the only worker for 16.6 min at 1.26 GB."""
    log = storms.write(out / "storm.log", storms.reconnect_storm(lines))
    path = out / "storm.tar.xz"
    with tarfile.open(path, "w:xz") as tf:
        _tar_healthy(tf)
        tf.add(log, arcname="storm/mosquitto.log")
    log.unlink()
    return path


def mixed_plus_busy(out: Path, lines: int = 900_000) -> Path:
    """The mixed sample (three causes) beside a busy real broker log of n lines: 900 k took 288 s,
    where the busy log alone took 22 s."""
    folder = out / "mixed"
    for file in sorted((SAMPLES / "mixed").rglob("*")):
        if file.is_file() and file.name != "expected.json":
            target = folder / file.relative_to(SAMPLES / "mixed")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.read_bytes())
    storms.write(folder / "busy" / "mosquitto.log", storms.busy_broker(lines))
    return folder


def tar_xz_zeros(out: Path, member_mb: int = 1024) -> Path:
    """4 members of zeros in a .tar.xz (4 x 1 GB is about 1.2 MB): tar used to get no ratio check.

    Written as concatenated xz streams, which xz and Python's lzma read as one file: the healthy
    files and each member's header in streams of their own, and each member's zeros as one
    compressed MiB repeated. So 4 x 4 GB (an extraction of minutes) is written in well under a
    second, where compressing the zeros took minutes."""
    path = out / "zeros.tar.xz"
    head = io.BytesIO()
    with tarfile.open(fileobj=head, mode="w") as tf:
        _tar_healthy(tf)
        members = head.getvalue()  # before close() writes the tar's end
        headers = []
        for i in range(4):
            info = tarfile.TarInfo(f"dump/zeros-{i}.log")
            info.size = member_mb * 1024 * 1024  # whole 512-byte blocks: no padding after the data
            info.mtime = int(time.time())
            headers.append(info.tobuf(tf.format, tf.encoding, tf.errors))
    zeros = lzma.compress(bytes(1024 * 1024), preset=0)
    with open(path, "wb") as xz:
        xz.write(lzma.compress(members, preset=0))
        for header in headers:
            xz.write(lzma.compress(header, preset=0))
            for _ in range(member_mb):
                xz.write(zeros)
        xz.write(lzma.compress(bytes(2 * tarfile.BLOCKSIZE), preset=0))  # the tar's end
    return path


def nested_archives(out: Path, inner: int = 3, files: int = 8000) -> Path:
    """Zips inside a zip: limits used to apply per archive, so nesting multiplied them."""
    path = out / "nested.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        _zip_healthy(zf)
        for i in range(inner):
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as iz:
                for j in range(files):
                    iz.writestr(f"part-{i}/notes-{j}.txt", f"note {j}\n")
            zf.writestr(f"inner-{i}.zip", buffer.getvalue())
    return path


def small_members(out: Path, members: int = 300) -> Path:
    """Members of 1 MiB of zeros each: members up to 1 MiB used to skip the ratio check."""
    path = out / "small-members.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        _zip_healthy(zf)
        block = bytes(1024 * 1024)
        for i in range(members):
            zf.writestr(f"dump/zeros-{i}.log", block)
    return path


def deep_folders(out: Path, depth: int = 1200) -> Path:
    """A member 1,200 folders deep: a RecursionError traceback and 988 temp folders left before."""
    path = out / "deep.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("/".join(["d"] * depth) + "/deep.log", "1795444795: deep\n")
        _zip_healthy(zf)
    return path


LONG_NAME = "healthy/broker/" + "m" * 290 + ".log"


def long_first_name(out: Path) -> Path:
    """The broker's log as the first member, under a 300-character name: the archive used to be lost."""
    path = out / "long-name.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(HEALTHY / "broker" / "mosquitto.log", LONG_NAME)
        for name, file in healthy_files():
            if not name.endswith("mosquitto.log"):
                zf.write(file, name)
    return path


def name_clash(out: Path) -> Path:
    """`healthy/clients` as a file and as a folder: the archive used to be lost."""
    path = out / "clash.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("healthy/clients", "1795444795: a file where a folder goes\n")
        _zip_healthy(zf)
    return path


def lying_size(out: Path) -> Path:
    """A member whose size header says less than it holds (the central directory lies)."""
    path = out / "lying.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("liar.log", b"1795444795: " + b"x" * 5000 + b"\n")
        _zip_healthy(zf)
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")  # liar.log's central directory entry comes first
    struct.pack_into("<I", data, central + 24, 100)  # uncompressed size: 100
    path.write_bytes(bytes(data))
    return path


def truncated_zip(out: Path) -> Path:
    """A zip cut in the middle of its last member: nothing used to be salvaged."""
    path = out / "truncated.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        _zip_healthy(zf)
        zf.writestr("tail/big.log", os.urandom(64 * 1024))
    data = path.read_bytes()
    cut = data.find(b"PK\x03\x04", data.find(b"tail/big.log") - 40) + 2000
    path.write_bytes(data[:cut])
    return path


def utf16_logs(out: Path) -> Path:
    """The incident's logs as PowerShell's `>` writes them (UTF-16 LE with a BOM): skipped as binary."""
    folder = out / "utf16"
    for name, file in healthy_files():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if file.suffix == ".log":
            target.write_bytes(file.read_text().replace("\n", "\r\n").encode("utf-16"))
        else:
            target.write_bytes(file.read_bytes())
    return folder


NON_UTF8 = b"healthy/broker/mosquitto-caf\xe9.log"


def non_utf8_name(out: Path) -> Path:
    """The broker's log under a member name that is not UTF-8: -o reports used to end in
    UnicodeEncodeError."""
    path = out / "latin1-name.tar.gz"
    with tarfile.open(path, "w:gz", encoding="utf-8", errors="surrogateescape") as tf:
        for name, file in healthy_files():
            if name.endswith("mosquitto.log"):
                name = NON_UTF8.decode("utf-8", "surrogateescape")
            tf.add(file, arcname=name)
    return path


def binary_garbage(out: Path, files: int = 5, size: int = 4 * 1024 * 1024) -> Path:
    """Random bytes without a NUL, named *.log, beside the incident: 22 s to say nothing before."""
    folder = out / "garbage"
    for i in range(files):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"garbage-{i}.log").write_bytes(os.urandom(size).replace(b"\x00", b"\x01"))
    _copy_healthy(folder)
    return folder


CASES: dict[str, Callable[[Path], Path]] = {
    "reconnect_storm": reconnect_storm,
    "storm_tar_xz": storm_tar_xz,
    "mixed_plus_busy": mixed_plus_busy,
    "tar_xz_zeros": tar_xz_zeros,
    "nested_archives": nested_archives,
    "small_members": small_members,
    "deep_folders": deep_folders,
    "long_first_name": long_first_name,
    "name_clash": name_clash,
    "lying_size": lying_size,
    "truncated_zip": truncated_zip,
    "utf16_logs": utf16_logs,
    "non_utf8_name": non_utf8_name,
    "binary_garbage": binary_garbage,
}


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    for name, build in CASES.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        print(build(folder))


if __name__ == "__main__":
    main()
