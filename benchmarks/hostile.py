"""Hostile inputs at two sizes: time and peak RSS of `correlator analyze` on each, to show every
case linear (time at 4N about four times time at N) and flat in memory (issue 16: under 200 MB).

The cases are tests/hostile/storms.py's logs (a reconnect storm in one second, one failure
repeated, hundreds of thousands of distinct client ids) and the mixed sample beside a busy broker
log built as benchmarks/parse.py builds it (real mosquitto lines replayed with moving times). The
peer of each case is the same tool on a plain busy broker log of the same size, in the same run:
the `x busy` column is the case's time over the peer's.

    .venv/bin/python benchmarks/hostile.py [--lines 100000] [--case reconnect_storm ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests" / "hostile"))

from analyze import timed  # noqa: E402
from parse import build  # noqa: E402
from storms import STORMS, write  # noqa: E402

CASES = [*STORMS, "mixed_plus_busy"]


def make(case: str, lines: int, work: Path) -> Path:
    """The input of one case at one size."""
    if case == "busy":
        path = work / f"busy-{lines}" / "mosquitto.log"
        path.parent.mkdir(parents=True)
        build(path, lines)
        return path
    if case == "mixed_plus_busy":
        bundle = work / f"mixed-{lines}"
        shutil.copytree(ROOT / "sample_logs" / "mixed", bundle)
        (bundle / "busy").mkdir()
        build(bundle / "busy" / "mosquitto.log", lines)
        return bundle
    return write(work / f"{case}-{lines}.log", STORMS[case](lines))


def run(path: Path) -> tuple[float, float]:
    return timed([sys.executable, "-m", "correlator", "analyze", str(path), "--format", "json"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000, help="N: each case runs at N and 4N lines")
    parser.add_argument("--case", action="append", choices=CASES, help="only these cases (repeatable)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="correlator-hostile-"))
    try:
        sizes = (args.lines, 4 * args.lines)
        peer = {size: run(make("busy", size, work))[0] for size in sizes}
        print(f"{'case':<18} {'lines':>9} {'seconds':>8} {'x busy':>7} {'peak MB':>8}   4N/N time")
        for case in args.case or CASES:
            times = []
            for size in sizes:
                seconds, rss = run(make(case, size, work))
                times.append(seconds)
                ratio = f"   {times[1] / times[0]:.1f} (linear: 4.0)" if len(times) == 2 else ""
                print(f"{case:<18} {size:>9,} {seconds:>8.2f} {seconds / peer[size]:>7.2f} {rss:>8.0f}{ratio}",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
