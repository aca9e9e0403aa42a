"""Gives the files of committed sample incidents back a modification time that fits their content.

Lines with no timestamp of their own (mosquitto_pub -d output) are dated by their file's
modification time, and a git checkout sets every file's to the moment of the checkout: a fresh
clone would show those lines hours after the incident. Each file gets the time of its incident's
last broker line instead, which every checkout derives the same way.

The broker's log is `broker/mosquitto.log` (mosquitto's `EPOCH: message` lines) or, where the
broker logged through syslog (`syslog_variants`), the `broker/*.log` files rsyslogd wrote, whose
messages carry the same `EPOCH: ` after the syslog header.

    python -m lab.sample_times sample_logs
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

_EPOCH = re.compile(r"^(\d{9,11}): ", re.M)
#: mosquitto's own stamp behind a syslog header (RFC 3164 `... mosquitto[pid]: EPOCH: `, RFC 5424
#: `... mosquitto PID - -  EPOCH: `).
_SYSLOG_EPOCH = re.compile(r"^\S.*? mosquitto(?:\[\d+\]:| \d+ \S+ \S+) +(\d{9,11}): ", re.M)


def last_broker_time(incident: Path) -> float | None:
    """The time of the incident's last broker line (epoch seconds), or None when it has no
    broker log with mosquitto's stamps."""
    broker = incident / "broker" / "mosquitto.log"
    if broker.is_file():
        stamps = _EPOCH.findall(broker.read_text(errors="replace"))
        return float(stamps[-1]) if stamps else None
    found = [float(stamp) for log in sorted((incident / "broker").glob("*.log")) if log.is_file()
             for stamp in _SYSLOG_EPOCH.findall(log.read_text(errors="replace"))]
    return max(found) if found else None


def restore_file_times(samples: Path) -> int:
    """Set the time of every file of every incident under `samples`; returns how many were set."""
    count = 0
    for incident in sorted(p for p in samples.iterdir() if p.is_dir()):
        when = last_broker_time(incident)
        if when is None:
            continue
        for path in incident.rglob("*"):
            if path.is_file():
                os.utime(path, (when, when))
                count += 1
    return count


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "sample_logs")
    restore_file_times(folder)
