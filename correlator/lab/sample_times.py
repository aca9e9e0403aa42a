"""Gives the files of committed sample incidents back a modification time that fits their content.

Lines with no timestamp of their own (mosquitto_pub -d output) are dated by their file's
modification time, and a git checkout sets every file's to the moment of the checkout: a fresh
clone would show those lines hours after the incident. Each file gets the time of its incident's
last broker line instead, which every checkout derives the same way.

    python -m correlator.lab.sample_times sample_logs
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

_EPOCH = re.compile(r"^(\d{9,11}): ", re.M)


def restore_file_times(samples: Path) -> int:
    """Set the time of every file of every incident under `samples`; returns how many were set."""
    count = 0
    for incident in sorted(p for p in samples.iterdir() if p.is_dir()):
        broker = incident / "broker" / "mosquitto.log"
        if not broker.is_file():
            continue
        stamps = _EPOCH.findall(broker.read_text(errors="replace"))
        if not stamps:
            continue
        when = float(stamps[-1])
        for path in incident.rglob("*"):
            if path.is_file():
                os.utime(path, (when, when))
                count += 1
    return count


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "sample_logs")
    restore_file_times(folder)
