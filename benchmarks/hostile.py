"""Hostile inputs at growing sizes: time and peak RSS of `correlator analyze` (a child process,
its peak from getrusage) on each, to show every case linear (the microseconds per line stay the
same as the input doubles) and flat in memory (issue 16: under 200 MB).

The cases are tests/hostile/storms.py's logs (a reconnect storm in one second, one failure
repeated, hundreds of thousands of distinct client ids), the mixed sample beside a busy real broker
log (storms.busy_broker: real mosquitto lines replayed with moving times), and a folder of random
bytes named *.log beside a real incident (tests/hostile/corpus.py; one 4 MB file per 20,000
lines of N). The peer of each case is the same tool on a plain busy broker log of the same size, in
the same run: the `x busy` column is the case's CPU time over the peer's. Wall and CPU seconds
are both printed (on a shared machine the wall time counts the other programs' turns), with the
load average at the start and the end.

    .venv/bin/python benchmarks/hostile.py [--lines 80000] [--case reconnect_storm ...]

With --patterns it measures the format patterns instead (correlator/formats/patterns.py): what the
time bound on a user's format costs (the built-in formats on `re` against the same files loaded as a
user's, on `regex` with `timeout=`, over every sample log's lines, and one call of each), and every
built-in format on tests/hostile/storms.py's long hostile lines at L and 4L characters (linear: the
time grows 4 times; a backtracking pattern's grows 16 times or more).

    .venv/bin/python benchmarks/hostile.py --patterns [--length 2000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
import timeit
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
# tests/hostile is the package `hostile` (this folder's hostile.py must not take that name)
_tests = types.ModuleType("hostile")
_tests.__path__ = [str(ROOT / "tests" / "hostile")]
sys.modules.setdefault("hostile", _tests)

from analyze import timed_cpu  # noqa: E402
from hostile import corpus  # noqa: E402
from hostile.storms import STORMS, hostile_lines, write  # noqa: E402
from parse import build  # noqa: E402

from correlator.formats.parse import SourceParser, match_line  # noqa: E402
from correlator.formats.patterns import PATTERN_TIMEOUT, BoundedPattern  # noqa: E402
from correlator.formats.registry import Registry, default_registry, load_registry  # noqa: E402
from correlator.resources import builtin_dir  # noqa: E402

CASES = [*STORMS, "mixed_plus_busy", "binary_garbage"]


def make(case: str, lines: int, work: Path) -> Path:
    """The input of one case at one size."""
    if case == "busy":
        path = work / f"busy-{lines}" / "mosquitto.log"
        path.parent.mkdir(parents=True)
        build(path, lines)
        return path
    if case == "mixed_plus_busy":
        return corpus.mixed_plus_busy(work / f"mixed-{lines}", lines)
    if case == "binary_garbage":
        return corpus.binary_garbage(work / f"garbage-{lines}", files=max(1, lines // 20_000))
    return write(work / f"{case}-{lines}.log", STORMS[case](lines))


def run(path: Path) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds of `correlator analyze` on `path`, in a child
    process (on a shared machine the wall time counts the other programs' turns; the CPU time
    does not)."""
    seconds, rss, cpu, _ = timed_cpu([sys.executable, "-m", "correlator", "analyze", str(path), "--format", "json"])
    return seconds, rss, cpu


def _parse_all(registry: Registry, work: list[tuple[str, list[tuple[int, int, str]]]]) -> float:
    start = time.process_time()
    for name, lines in work:
        parser = SourceParser(registry.get(name), registry.evidence, source="x", file="x",
                              fallback=registry.fallback, fallback_time=1795444951.0)
        parser.feed(lines)
        parser.finish()
    return time.process_time() - start


def engines(rounds: int = 5) -> None:
    """The built-in formats (re) against the same files as a user's (regex with timeout=)."""
    builtin = default_registry()
    with tempfile.TemporaryDirectory() as folder:
        for file in builtin_dir("parsers").glob("*.toml"):
            shutil.copy(file, folder)
        user = load_registry([folder])
    work = []
    for path in sorted((ROOT / "sample_logs").rglob("*.log")):
        lines = path.read_text(errors="replace").splitlines()
        work.append((builtin.detect(lines)[0].name, [(i + 1, 0, line) for i, line in enumerate(lines)] * 10))
    count = sum(len(lines) for _, lines in work)
    best = {"re": float("inf"), "regex": float("inf")}
    for _ in range(rounds):  # interleaved, best of each: the machine's noise hits both alike
        best["re"] = min(best["re"], _parse_all(builtin, work))
        best["regex"] = min(best["regex"], _parse_all(user, work))
    print(f"parse of {count:,} sample lines (CPU seconds, best of {rounds}):")
    print(f"  built-in formats, re:                {best['re']:6.2f} s  {count / best['re']:>9,.0f} lines/s")
    print(f"  same files as a user's, regex+bound: {best['regex']:6.2f} s  {count / best['regex']:>9,.0f} lines/s"
          f"   x{best['regex'] / best['re']:.2f}")
    line = "1795444951: New connection from 127.0.0.1:40000 on port 33741."
    pattern = builtin.get("mosquitto").lines[0].regex.pattern
    plain = re.compile(pattern)
    bounded = BoundedPattern(pattern, 0, file="x", what="x", at=())
    calls = {"re": lambda: plain.match(line), "regex": lambda: bounded.compiled.match(line),
             f"regex, timeout={PATTERN_TIMEOUT:g}": lambda: bounded.match(line)}
    print("one call of mosquitto's line pattern (best of 5 x 100,000):")
    for name, call in calls.items():
        print(f"  {name:<22} {min(timeit.repeat(call, number=100_000, repeat=5)) * 10:6.2f} us")


def vocabularies(rounds: int = 5) -> None:
    """The evidence vocabularies' quick search (regex, plain phrases as a named list) against the
    same phrases and patterns as one case-blind `re` alternation, on every sample log's bodies."""
    bodies = [line.split(": ", 1)[-1] for path in sorted((ROOT / "sample_logs").rglob("*.log"))
              for line in path.read_text(errors="replace").splitlines()]
    print(f"evidence vocabularies, quick search over {len(bodies):,} sample bodies (CPU s, best of {rounds}):")
    for vocab in default_registry().evidence.vocabularies:
        patterns = [p for reason in vocab.reasons for p in reason.patterns]
        plain = re.compile("|".join(f"(?:{p})" for p in patterns), re.I)
        best = {"re": float("inf"), "regex": float("inf")}
        for _ in range(rounds):
            for name, compiled in (("re", plain), ("regex", vocab.quick)):
                start = time.process_time()
                for body in bodies:
                    compiled.search(body)
                best[name] = min(best[name], time.process_time() - start)
        print(f"  {vocab.field:<12} {len(patterns):>4} phrases  re {best['re']:6.3f} s  regex {best['regex']:6.3f} s"
              f"  x{best['re'] / best['regex']:.1f} faster")


def builtin_linearity(length: int, samples: int = 12) -> None:
    """Every built-in format on long hostile lines at `length` and 4 x `length` characters."""
    registry = default_registry()
    print(f"{'format':<18} {'lines':>6} {'L s':>7} {'4L s':>7} {'4L/L':>6} {'worst line at 4L':>17}")
    for name, fmt in sorted(registry.formats.items()):
        totals, worst = [], 0.0
        for size in (length, 4 * length):
            lines = [line for sample in fmt.samples[:samples] for line in hostile_lines(sample.line, size)]
            total = 0.0
            for line in lines:
                start = time.process_time()
                match_line(fmt, line, registry.evidence)
                took = time.process_time() - start
                total += took
                worst = max(worst, took) if size > length else worst
            totals.append(total)
        print(f"{name:<18} {len(lines):>6} {totals[0]:>7.2f} {totals[1]:>7.2f} {totals[1] / totals[0]:>6.1f} "
              f"{worst * 1000:>14.1f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=80_000, help="N: each case runs at N, 2N and 4N lines")
    parser.add_argument("--case", action="append", choices=CASES, help="only these cases (repeatable)")
    parser.add_argument("--patterns", action="store_true", help="measure the format patterns instead (see above)")
    parser.add_argument("--length", type=int, default=2000, help="L: hostile lines of L and 4L characters")
    args = parser.parse_args()
    if args.patterns:
        engines()
        vocabularies()
        builtin_linearity(args.length)
        return
    work = Path(tempfile.mkdtemp(prefix="correlator-hostile-"))
    try:
        sizes = (args.lines, 2 * args.lines, 4 * args.lines)
        start, start_rss, start_cpu = run(corpus.HEALTHY)  # start-up, imports and a small incident: paid once
        peer = {size: run(make("busy", size, work)) for size in sizes}
        print(f"start-up (the incident alone): {start:.2f} s, {start_cpu:.2f} CPU s, {start_rss:.0f} MB; "
              "us/line leaves it out; load average at start "
              + " ".join(f"{n:.2f}" for n in os.getloadavg()))
        print(f"{'case':<18} {'lines':>9} {'seconds':>8} {'CPU s':>7} {'x busy':>7} {'peak MB':>8} {'us/line':>8}"
              f" {'CPU us/line':>11}")
        for case in ["busy", *(args.case or CASES)]:
            for size in sizes:
                seconds, rss, cpu = peer[size] if case == "busy" else run(make(case, size, work))
                print(f"{case:<18} {size:>9,} {seconds:>8.2f} {cpu:>7.2f} {cpu / peer[size][2]:>7.2f} {rss:>8.0f} "
                      f"{max(seconds - start, 0.0) / size * 1e6:>8.1f} "
                      f"{max(cpu - start_cpu, 0.0) / size * 1e6:>11.1f}", flush=True)
        print("load average at the end " + " ".join(f"{n:.2f}" for n in os.getloadavg()))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
