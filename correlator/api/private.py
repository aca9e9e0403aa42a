"""The server's state is private: it holds customer logs, certificates and configs. Folders are
made 700 and files 600 whatever the process umask says, and a state folder an older version made
world-readable is closed on start. `correlator serve` also forces the umask (PRIVATE_UMASK), so
what SQLite, the extraction and any library create is private too."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

#: The umask `correlator serve` runs under: nothing for the group or others.
PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """`path` and its missing parents made (700), `path` itself closed if it was open."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """`path` made empty (600) if missing, closed if it was open: for files a library opens itself."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path


def open_private(path: Path) -> BinaryIO:
    """`path` opened for writing from the start, created 600."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
