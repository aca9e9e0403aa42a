"""Parse throughput of a large broker log, against reading the same file line by line.

The log is built from real captured line shapes: every line of sample_logs/healthy_noisy's and
sample_logs/mixed's broker logs (written by a real mosquitto 2.0.11), replayed in order again and
again with the epoch prefix advanced so time keeps moving, until the wanted size. So the mix of
messages (publishes, pings, connects, TLS errors, denials) is what a busy real broker writes.

Prints lines/s and MB/s for the baseline (splitting the file into lines with no parsing, through
the same chunked reader the tool uses) and for parsing into Events, and their ratio. It also prints
the *floor*: the same lines, each decoded and cut once at its first ": " by one line of Python,
with nothing else done. That is the fastest any parser written in Python that looks at each line
can be on this machine, so it says how much of the gap to lnav's C++ indexer is the language's. Peak memory
is printed as the growth of the process's maximum RSS, which must not grow with the file.

    .venv/bin/python benchmarks/parse.py [--lines 2000000] [--keep]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from correlator.formats.registry import default_registry  # noqa: E402
from correlator.gcpolicy import batch_allocation  # noqa: E402
from correlator.sources.files import LogFile  # noqa: E402
from correlator.sources.lines import iter_chunks  # noqa: E402

# tests/hostile is the package `hostile` (this folder's hostile.py must not take that name)
_tests = types.ModuleType("hostile")
_tests.__path__ = [str(ROOT / "tests" / "hostile")]
sys.modules.setdefault("hostile", _tests)
from hostile.storms import busy_broker, write  # noqa: E402


def build(path: Path, lines: int) -> int:
    """A busy broker log of `lines` lines (tests/hostile/storms.py's busy_broker)."""
    write(path, busy_broker(lines))
    return lines


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated log in benchmarks/data/")
    args = parser.parse_args()
    data = ROOT / "benchmarks" / "data"
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"broker-{args.lines}.log"
    if not path.exists():
        build(path, args.lines)
    size_mb = path.stat().st_size / 1e6
    registry = default_registry()

    start = time.perf_counter()
    baseline_lines = sum(len(chunk) for chunk in iter_chunks(path))
    baseline = time.perf_counter() - start

    start = time.perf_counter()
    floor_lines = 0
    for chunk in iter_chunks(path):
        cut = [raw.decode("utf-8", "replace").partition(": ") for _, raw in chunk]
        floor_lines += len(cut)
    floor = time.perf_counter() - start

    rss_before = max_rss_mb()
    start = time.perf_counter()
    log = LogFile(path, registry)
    events = 0
    with batch_allocation():  # as analyze() reads a bundle
        for chunk in log.chunks():
            events += len(chunk)
    parse = time.perf_counter() - start
    rss_growth = max_rss_mb() - rss_before

    print(f"parse benchmark: {baseline_lines:,} lines, {size_mb:.0f} MB, format {log.format.name}, "
          f"{log.info.unparsed} unparsed")
    print(f"  baseline (split lines, no parsing): {baseline_lines / baseline:12,.0f} lines/s "
          f"{size_mb / baseline:8.1f} MB/s")
    print(f"  floor (one Python step per line):   {floor_lines / floor:12,.0f} lines/s "
          f"{size_mb / floor:8.1f} MB/s  ratio {baseline / floor:.3f}")
    print(f"  parse into events:                  {events / parse:12,.0f} lines/s {size_mb / parse:8.1f} MB/s")
    print(f"  ratio parse/baseline: {baseline / parse:.3f} (parse takes {parse / baseline:.1f}x the baseline time)")
    print(f"  max RSS growth while parsing: {rss_growth:.1f} MB")
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    main()
