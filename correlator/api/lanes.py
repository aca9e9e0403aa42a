"""Which lane an upload goes to: small bundles have slots of their own, so they never wait behind
a big one. Small means little to *read*, not few bytes uploaded: a 6 KB .tar.xz can hold
gigabytes, so an archive is measured by its members' sizes."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path
from typing import Literal

from correlator.sources.bundle import is_archive

Lane = Literal["small", "large"]


def content_bytes(path: Path, stop_after: int | None = None) -> int:
    """The bytes an analysis of `path` reads: the members' sizes of an archive (the zip index, or
    the tar headers, walked only until `stop_after` is passed), else the file's size."""
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                return sum(i.file_size for i in archive.infolist() if not i.is_dir())
        if is_archive(path):
            total = 0
            with tarfile.open(path, "r:*") as archive:
                for member in archive:
                    if member.isfile():
                        total += member.size
                        if stop_after is not None and total > stop_after:
                            break
            return total
        return path.stat().st_size
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError):
        try:
            return path.stat().st_size
        except OSError:
            return 0


def lane_of(path: Path, small_bytes: int) -> Lane:
    """`small` when the analysis reads at most `small_bytes`."""
    return "small" if content_bytes(path, stop_after=small_bytes) <= small_bytes else "large"
