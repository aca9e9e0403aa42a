"""Memory stays flat however big the log: `correlator analyze` on one broker log of up to `--gb`
gigabytes, at a quarter, half and all of that size, printing time, lines per second and the peak
RSS of each run (a figure, not a timed test).

The log is the busy plant's real broker log (benchmarks/busy_plant.py: a real mosquitto with
`log_type all` and about fifty live paho clients) written again and again, each copy's epoch
stamps moved on by the span of the log, so time runs forward as on a broker that ran for hours.
It is written under the benchmark cache and removed at the end.

    .venv/bin/python benchmarks/flat_memory.py [--gb 10] [--lines 2000000] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from analyze import timed  # noqa: E402
from busy_plant import ensure  # noqa: E402

DIGITS = 10


def epoch_lines(data: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """The starts of the lines that begin with epoch seconds, their seconds, and the log's span."""
    array = np.frombuffer(data, dtype=np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(array == 10)[:-1] + 1))
    starts = starts[starts + DIGITS < len(array)]
    head = array[starts[:, None] + np.arange(DIGITS + 1)]
    epoch = (head[:, :DIGITS] >= 48).all(axis=1) & (head[:, :DIGITS] <= 57).all(axis=1) & (head[:, DIGITS] == 58)
    starts = starts[epoch]
    seconds = (head[epoch, :DIGITS].astype(np.int64) - 48) @ (10 ** np.arange(DIGITS - 1, -1, -1, dtype=np.int64))
    return starts, seconds, int(seconds.max() - seconds.min()) + 1


def shifted(data: bytes, starts: np.ndarray, seconds: np.ndarray, by: int) -> bytes:
    """The log with every epoch stamp `by` seconds later."""
    out = np.frombuffer(data, dtype=np.uint8).copy()
    moved = seconds + by
    out[starts[:, None] + np.arange(DIGITS)] = (moved[:, None] // 10 ** np.arange(DIGITS - 1, -1, -1) % 10
                                                + 48).astype(np.uint8)
    return out.tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=10.0, help="size of the biggest log")
    parser.add_argument("--lines", type=int, default=2_000_000, help="lines of the real log repeated")
    parser.add_argument("--keep", action="store_true", help="keep the big log (under the benchmark cache)")
    args = parser.parse_args()
    plant = ensure(args.lines)
    source = (plant / "broker" / "mosquitto.log").read_bytes()
    starts, seconds, span = epoch_lines(source)
    lines_per_copy = source.count(b"\n")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "correlator")], check=True)
    work = plant.parent / "flat-memory"
    work.mkdir(exist_ok=True)
    log = work / "mosquitto.log"
    target = int(args.gb * 1e9)
    copies_at = [max(1, round(target * share / len(source))) for share in (0.25, 0.5, 1.0)]
    print(f"a real broker log of {len(source) / 1e6:.0f} MB ({lines_per_copy:,} lines, {span} s) written "
          f"{copies_at[-1]} times, times moved on each time; analysed at {', '.join(map(str, copies_at))} copies")
    analyze = [sys.executable, "-m", "correlator", "analyze", "--format", "json", "-o", os.devnull]
    rows = []
    try:
        written = 0
        with log.open("wb") as out:
            for copies in copies_at:
                while written < copies:
                    out.write(shifted(source, starts, seconds, written * span))
                    written += 1
                out.flush()
                seconds_taken, rss, _ = timed([*analyze, str(log)])
                size = log.stat().st_size
                lines = written * lines_per_copy
                rows.append((size, lines, seconds_taken, rss))
                print(f"  {size / 1e9:6.2f} GB  {lines:>12,} lines  {seconds_taken:7.1f} s  "
                      f"{lines / seconds_taken:11,.0f} lines/s  peak RSS {rss:5.0f} MB", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    growth = rows[-1][3] - rows[0][3]
    print(f"peak RSS from {rows[0][0] / 1e9:.1f} GB to {rows[-1][0] / 1e9:.1f} GB: {growth:+.0f} MB "
          f"({'flat' if abs(growth) < 0.1 * rows[0][3] else 'NOT flat'}: within 10 %)")


if __name__ == "__main__":
    main()
