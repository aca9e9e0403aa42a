"""A syslog header's date has no year and is in the receiving host's zone; mosquitto's own epoch
behind it (log_timestamp true) has neither problem and dates the line (`strip_time`). A journal
pasted into a ticket years later, or read with the wrong zone, is still dated right, so the
certificates are judged at the real time of the failure. Proved on the real rsyslog file of
syslog_variants."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from correlator.analysis import Options, analyze

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
RFC3164 = SAMPLES / "syslog_variants" / "broker" / "syslog-rfc3164.log"
EPOCH = re.compile(r"^\S+ +\d+ \S+ \S+ mosquitto\[\d+\]: (\d{9,11}): ", re.M)


def test_the_epoch_behind_a_syslog_header_dates_the_line(tmp_path: Path) -> None:
    """The real file copied four years after it was written, read as if its host were in
    UTC+5:30: its first and last lines are still mosquitto's own seconds."""
    copy = tmp_path / "syslog.log"
    shutil.copy(RFC3164, copy)
    later = RFC3164.stat().st_mtime + 4 * 365 * 86400
    os.utime(copy, (later, later))
    epochs = [float(e) for e in EPOCH.findall(RFC3164.read_text())]
    assert len(epochs) > 20
    analysis = analyze([copy], Options(zones=["Asia/Kolkata"]))
    assert (analysis.first_event, analysis.last_event) == (min(epochs), max(epochs))
    assert not analysis.errors
