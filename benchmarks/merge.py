"""Merge throughput against single-file parse throughput, measured in the same run.

The logs are built from real captured lines: every line of sample_logs/healthy_noisy's and
sample_logs/mixed's broker logs (written by a real mosquitto 2.0.11) is replayed in order again and
again with its epoch prefix advanced by the span of the capture, so time keeps moving and the
message mix is a real broker's. Each of the N files gets the same replay shifted by a different
whole number of seconds (file k by k seconds), so the merge really interleaves them second by second
instead of concatenating them.

Measured:
  parse      each file alone through LogFile.chunks(), one after the other (the single-file rate
             everything is compared with; the same lines as the merge, so machine load evens out)
  merge      N files through merge_chunks() over their LogFile.chunks(): parsing included
  merge-only merge_chunks() over N already-parsed sources held in memory: the merge's own cost
  timeline   N files through timeline.pipeline.BatchTimeline (zones, skew look-ahead, merge, stitching)
  no-lookahd the same without the skew look-ahead's second read of each file's beginning

    .venv/bin/python benchmarks/merge.py [--files 4] [--lines 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from correlator.formats.registry import Registry, load_registry  # noqa: E402
from correlator.model import Event  # noqa: E402
from correlator.sources.files import LogFile  # noqa: E402
from correlator.timeline.merge import merge_chunks  # noqa: E402
from correlator.timeline.pipeline import LOOKAHEAD, BatchTimeline  # noqa: E402

SOURCES = [ROOT / "sample_logs" / "healthy_noisy" / "broker" / "mosquitto.log",
           ROOT / "sample_logs" / "mixed" / "broker" / "mosquitto.log"]
_EPOCH = re.compile(r"^(\d{9,11}): ")


def shapes() -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for source in SOURCES:
        if not source.exists():
            sys.exit(f"{source} is missing: the benchmark replays captured broker logs")
        for line in source.read_text().splitlines():
            match = _EPOCH.match(line)
            if match:
                out.append((int(match.group(1)), line[match.end():]))
    return out


def build(path: Path, lines: int, shift: int, replay: list[tuple[int, str]]) -> int:
    base = replay[0][0]
    span = max(t for t, _ in replay) - base + 1
    written = 0
    with path.open("w") as out:
        round_ = 0
        while written < lines:
            offset = round_ * span + shift
            chunk = []
            for stamp, text in replay:
                if written >= lines:
                    break
                chunk.append(f"{stamp + offset}: {text}\n")
                written += 1
            out.write("".join(chunk))
            round_ += 1
    return written


def timed(label: str, lines: int, run: Callable[[], int]) -> float:
    start = time.perf_counter()
    produced = run()
    elapsed = time.perf_counter() - start
    rate = lines / elapsed
    print(f"{label:<11} {lines:>10,} lines  {elapsed:7.2f} s  {rate:>10,.0f} lines/s  ({produced:,} events)")
    return rate


def count_parse(path: Path, registry: Registry) -> int:
    return sum(len(chunk) for chunk in LogFile(path, registry).chunks())


def count_merge(paths: list[Path], registry: Registry) -> int:
    return sum(len(run) for run in merge_chunks(LogFile(p, registry).chunks() for p in paths))


def count_timeline(paths: list[Path], registry: Registry, lookahead: float = LOOKAHEAD) -> int:
    logs = [LogFile(p, registry) for p in paths]
    return sum(len(chunk) for chunk in BatchTimeline(logs, lookahead=lookahead).chunks())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--lines", type=int, default=100_000, help="lines per file")
    parser.add_argument("--keep", help="build the logs in this folder and leave them there")
    args = parser.parse_args()
    registry = load_registry(collect=True)
    replay = shapes()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"broker-{k}.log" for k in range(args.files)]
        total = sum(build(p, args.lines, k, replay) for k, p in enumerate(paths))
        size = sum(p.stat().st_size for p in paths) / 1e6
        print(f"{args.files} files, {total:,} lines, {size:.1f} MB (real mosquitto lines replayed, shifted)")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        # every file parsed alone, one after the other: the same work as the merge minus merging
        parse = timed("parse", total, lambda: sum(count_parse(p, registry) for p in paths))
        merged = timed("merge", total, lambda: count_merge(paths, registry))
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        line = timed("timeline", total, lambda: count_timeline(paths, registry))
        rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        stitched = timed("no-lookahd", total, lambda: count_timeline(paths, registry, lookahead=0.0))

        # The merge alone: sources parsed beforehand, held in memory (a quarter of the lines, so
        # holding them stays cheap), then merged.
        held: list[list[list[Event]]] = []
        quarter = max(1, args.lines // 4)
        for p in paths:
            chunks: list[list[Event]] = []
            seen = 0
            for chunk in LogFile(p, registry).chunks():
                chunks.append(chunk)
                seen += len(chunk)
                if seen >= quarter:
                    break
            held.append(chunks)
        held_lines = sum(len(c) for chunks in held for c in chunks)
        only = timed("merge-only", held_lines, lambda: sum(len(r) for r in merge_chunks(held)))

    print()
    print(f"merge / parse (files parsed while merging): {merged / parse:.2f}  "
          f"(1.00 = merging costs nothing beyond parsing)")
    print(f"timeline / parse (zones, skew look-ahead, merge, stitching): {line / parse:.2f}")
    print(f"timeline without skew look-ahead / parse: {stitched / parse:.2f}  (merge and stitching: what a "
          f"long log costs once the look-ahead's bounded second read is amortised)")
    print(f"merge-only / parse: {only / parse:.1f}x  (the heap merge itself, per event)")
    print(f"peak RSS growth: merge {(rss1 - rss0) / 1024:.0f} MB, timeline {(rss2 - rss0) / 1024:.0f} MB "
          f"(must not grow with --lines)")


if __name__ == "__main__":
    main()
