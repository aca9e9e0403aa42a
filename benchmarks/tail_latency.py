"""Latency of live tailing: time from a line's write() to the callback that delivers it.

A writer process appends timestamped, numbered lines at a steady rate (20,000 lines/s by default)
for a few seconds, one write() per line as a logger does. The same run measures:

- tailer (inotify): correlator.sources.tail.Tailer with watchdog's inotify observer;
- tailer (polling): the same with the polling observer, the fallback where inotify is missing;
- baseline: a plain loop that preads the file every 1 ms and splits lines, the cheapest thing a
  tailer could be, against which the figures are given as ratios.

The writer is a separate process so that its pacing does not compete for our GIL; both sides stamp
with CLOCK_MONOTONIC (time.monotonic_ns), which is system-wide on Linux. Lines lost or duplicated
must be 0; the script exits non-zero otherwise.

    python benchmarks/tail_latency.py [--rate 20000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from correlator.sources.lines import LineSplitter
from correlator.sources.tail import LineBatch, Tailer


def write_lines(path: str, rate: int, seconds: float) -> None:
    """The writer process: line i is due at start + i / rate; each is stamped when written."""
    total = int(rate * seconds)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    start = time.monotonic_ns()
    step = 1_000_000_000 / rate
    i = 0
    while i < total:
        now = time.monotonic_ns()
        due = min(total, int((now - start) / step) + 1)
        while i < due:
            os.write(fd, b"%d %d some log text to make the line look like a broker's line\n"
                     % (i, time.monotonic_ns()))
            i += 1
        next_due = start + i * step
        pause = (next_due - time.monotonic_ns()) / 1e9
        if pause > 0:
            time.sleep(pause)
    os.close(fd)
    elapsed = (time.monotonic_ns() - start) / 1e9
    print(f"{total / elapsed:.0f}", flush=True)


class Latencies:
    """Receives lines, records write-to-delivery latency and counts each sequence number."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.seen = bytearray(total)
        self.duplicates = 0
        self.latency_us: list[float] = []
        self.done = threading.Event()
        self.count = 0

    def lines(self, lines: list[tuple[int, bytes]]) -> None:
        now = time.monotonic_ns()
        for _, line in lines:
            seq_text, stamp, _ = line.split(b" ", 2)
            seq = int(seq_text)
            if self.seen[seq]:
                self.duplicates += 1
                continue
            self.seen[seq] = 1
            self.latency_us.append((now - int(stamp)) / 1000)
            self.count += 1
        if self.count >= self.total:
            self.done.set()

    def batch(self, batch: LineBatch) -> None:
        self.lines(batch.lines)


def run_writer(path: Path, rate: int, seconds: float) -> float:
    out = subprocess.run([sys.executable, __file__, "--write", str(path), "--rate", str(rate),
                          "--seconds", str(seconds)], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def measure(name: str, path: Path, rate: int, seconds: float,
            follow: Callable[[Latencies], Callable[[], None]]) -> dict[str, float]:
    """Start a follower on an empty file, run the writer, wait for every line, stop."""
    path.write_bytes(b"")
    total = int(rate * seconds)
    sink = Latencies(total)
    stop = follow(sink)
    achieved = run_writer(path, rate, seconds)
    sink.done.wait(timeout=30)
    stop()
    lat = sorted(sink.latency_us)
    quantiles = statistics.quantiles(lat, n=100) if len(lat) > 1 else [float("nan")] * 99
    result = {"rate": achieved, "p50": quantiles[49], "p99": quantiles[98], "max": lat[-1] if lat else 0.0,
              "lost": float(total - sink.count), "dup": float(sink.duplicates)}
    print(f"{name:<18} write rate {achieved:8.0f}/s   p50 {result['p50'] / 1000:8.3f} ms   "
          f"p99 {result['p99'] / 1000:8.3f} ms   max {result['max'] / 1000:8.3f} ms   "
          f"lost {total - sink.count}   duplicated {sink.duplicates}", flush=True)
    return result


def tailer_follower(polling: bool, path: Path) -> Callable[[Latencies], Callable[[], None]]:
    def follow(sink: Latencies) -> Callable[[], None]:
        tailer = Tailer(sink.batch, polling=polling, poll_interval=0.25)
        tailer.add_file(path)
        tailer.start()
        return tailer.stop
    return follow


def baseline_follower(path: Path) -> Callable[[Latencies], Callable[[], None]]:
    """The plainest possible tail: pread every millisecond, split with the same splitter."""
    def follow(sink: Latencies) -> Callable[[], None]:
        stopping = threading.Event()
        fd = os.open(path, os.O_RDONLY)

        def loop() -> None:
            splitter = LineSplitter()
            while not stopping.is_set():
                while data := os.pread(fd, 1 << 20, splitter.offset):
                    sink.lines(splitter.feed(data))
                time.sleep(0.001)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()

        def stop() -> None:
            stopping.set()
            thread.join()
            os.close(fd)
        return stop
    return follow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=20_000, help="lines per second (default 20000)")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long the writer runs (default 3)")
    parser.add_argument("--write", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_lines(args.write, args.rate, args.seconds)
        return 0
    print(f"{args.rate} lines/s for {args.seconds} s, one write() per line, writer in its own process")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.log"
        base = measure("baseline (1 ms poll)", path, args.rate, args.seconds, baseline_follower(path))
        results = {
            "tailer (inotify)": measure("tailer (inotify)", path, args.rate, args.seconds,
                                        tailer_follower(False, path)),
            "tailer (polling)": measure("tailer (polling)", path, args.rate, args.seconds,
                                        tailer_follower(True, path)),
        }
    print()
    print("ratio to the baseline (lower is better, 1.0 = as fast as a 1 ms pread loop):")
    failed = base["lost"] or base["dup"]
    for name, result in results.items():
        print(f"  {name:<18} p50 x{result['p50'] / base['p50']:6.2f}   p99 x{result['p99'] / base['p99']:6.2f}")
        failed = failed or result["lost"] or result["dup"]
    if failed:
        print("LINES LOST OR DUPLICATED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
