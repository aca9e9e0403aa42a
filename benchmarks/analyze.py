"""End-to-end `analyze` of a large noisy broker log with client logs, against lnav indexing the
same broker log in the same run (lnav -n with a mosquitto format), or against the parse-only
baseline where lnav is not installed.

The broker log is built as in benchmarks/parse.py (real mosquitto lines replayed with moving
epoch prefixes); the client logs of sample_logs/mixed ride along. Time is measured for the whole
analysis (bundle reading, parsing, timeline, rules, report data) and memory as the child
process's peak RSS, for two sizes, so linearity and flatness can be read off the output.

    .venv/bin/python benchmarks/analyze.py [--lines 500000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from parse import build  # noqa: E402

LNAV_FORMAT = {
    "$schema": "https://lnav.org/schemas/format-v1.schema.json",
    "mosquitto_log": {
        "title": "mosquitto", "description": "mosquitto broker log with epoch prefixes",
        "regex": {"std": {"pattern": r"^(?<timestamp>\d{9,11}): (?<body>.*)$"}},
        "timestamp-format": ["%s"],
        "sample": [{"line": "1795444342: mosquitto version 2.0.11 starting"}],
    },
}


# Runs one command and prints its own peak RSS: RUSAGE_CHILDREN of this process would be the
# maximum over every command measured so far, not the one at hand.
_WRAPPER = ("import resource, subprocess, sys; "
            "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and the command's peak RSS in MB."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *command], check=False, capture_output=True, text=True,
                         env=env).stdout
    elapsed = time.perf_counter() - start
    return elapsed, int(out.strip() or 0) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=500_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="correlator-bench-"))
    try:
        sizes = [args.lines // 2, args.lines]
        lnav = shutil.which("lnav")
        home = work / "home"
        (home / ".lnav" / "formats" / "installed").mkdir(parents=True)
        (home / ".lnav" / "formats" / "installed" / "mosquitto_log.json").write_text(json.dumps(LNAV_FORMAT))
        for size in sizes:
            bundle = work / f"bundle-{size}"
            shutil.copytree(ROOT / "sample_logs" / "mixed" / "clients", bundle / "clients")
            (bundle / "broker").mkdir()
            broker = bundle / "broker" / "mosquitto.log"
            build(broker, size)
            mb = broker.stat().st_size / 1e6
            ours, ours_rss = timed([sys.executable, "-m", "correlator", "analyze", str(bundle), "--format", "json"])
            print(f"{size:,} broker lines ({mb:.0f} MB) + client logs")
            print(f"  correlator analyze: {ours:7.2f} s  {size / ours:10,.0f} lines/s  peak RSS {ours_rss:.0f} MB")
            if lnav:
                env = dict(os.environ, HOME=str(home))
                theirs, lnav_rss = timed([lnav, "-n", str(broker)], env)
                print(f"  lnav -n (index only): {theirs:5.2f} s  {size / theirs:10,.0f} lines/s  peak RSS "
                      f"{lnav_rss:.0f} MB")
                print(f"  ratio correlator/lnav time: {ours / theirs:.2f} (aim: below 0.5)")
            else:
                start = time.perf_counter()
                with broker.open("rb") as handle:
                    for _ in handle:
                        pass
                base = time.perf_counter() - start
                print(f"  baseline (read lines): {base:.2f} s; ratio correlator/baseline: {ours / base:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
