"""End-to-end `analyze` of a busy plant's logs against lnav indexing the same broker log, in the
same run.

The input is made with real software (benchmarks/busy_plant.py): a real mosquitto with
`log_type all` and about fifty live paho clients, run until its log holds `--lines` lines, with
failures buried in the flood. It is cached outside the repository (~/.cache/correlator-bench),
because making two million lines takes minutes.

Each figure is the median of `--repeat` runs, wall time and the process's peak RSS (after one
untimed run of `analyze` that writes the start-up cache for this checkout's code):
- lnav: `lnav -n -c ';SELECT count(*) FROM mosquitto_log' broker.log` with a mosquitto format
  installed, which makes lnav index every line (`lnav -n` alone does not);
- `correlator analyze broker.log` (the bulk reader's engine as installed: Hyperscan with the
  `fast` extra, else Python's re);
- `correlator analyze` on the whole folder: broker log, mosquitto.conf, ACL, password file,
  certificates and client logs;
- with `--engines`, the broker log again with each engine forced (`CORRELATOR_SCAN=python`, and
  `off`: every line parsed, the reader before the bulk reader).

    .venv/bin/python benchmarks/analyze.py [--lines 2000000] [--repeat 3] [--engines]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from busy_plant import ensure  # noqa: E402

LNAV_FORMAT = {
    "$schema": "https://lnav.org/schemas/format-v1.schema.json",
    "mosquitto_log": {
        "title": "mosquitto", "description": "mosquitto broker log with epoch prefixes",
        "regex": {"std": {"pattern": r"^(?<timestamp>\d{9,11}): (?<body>.*)$"}},
        "timestamp-format": ["%s"],
        "sample": [{"line": "1795444342: mosquitto version 2.0.11 starting"}],
    },
}

# Runs one command and prints its own peak RSS and CPU seconds: RUSAGE_CHILDREN of this process
# would be the maximum over every command measured so far, not the one at hand.
_WRAPPER = ("import resource, subprocess, sys; "
            "done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL); "
            "sys.stderr.write(done.stdout.decode(errors='replace')[-400:]); "
            "use = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(use.ru_maxrss, use.ru_utime + use.ru_stime)")


def timed_cpu(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, str]:
    """Wall seconds, the command's peak RSS in MB, its CPU seconds (user and system: on a shared
    machine the wall time also counts the other programs' turns), and the end of its output."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *command], check=False, capture_output=True, text=True,
                          env=env)
    elapsed = time.perf_counter() - start
    rss, cpu = [*done.stdout.split(), "0", "0"][:2]
    return elapsed, int(rss) / 1024, float(cpu), done.stderr


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, the command's peak RSS in MB, and the end of its output."""
    elapsed, rss, _, out = timed_cpu(command, env)
    return elapsed, rss, out


def median_of(repeat: int, command: list[str], env: dict[str, str] | None = None,
              ) -> tuple[float, float, float, str]:
    """Medians of wall and CPU seconds, the highest peak RSS, and the last run's output."""
    runs = [timed_cpu(command, env) for _ in range(repeat)]
    return (statistics.median(r[0] for r in runs), max(r[1] for r in runs), statistics.median(r[2] for r in runs),
            runs[-1][3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", action="store_true", help="also time each engine forced (slow: 'off')")
    args = parser.parse_args()
    plant = ensure(args.lines)
    load_start = os.getloadavg()[0]  # the machine is shared: ratios mean little above a load of ~1
    broker = plant / "broker" / "mosquitto.log"
    with broker.open("rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b""))
    mb = broker.stat().st_size / 1e6
    clients = len(list((plant / "clients").glob("*.log")))
    print(f"busy plant: {lines:,} broker lines ({mb:.0f} MB), {clients} client logs, ACL, certificates "
          f"({plant})")
    # bytecode as an install leaves it (pip compiles what it installs): a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile every module from source on every start
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "correlator")], check=True)
    # and the start-up cache as a first run leaves it (formats, rules, the scanner's database:
    # correlator/startup_cache.py): it is keyed by the code, and checkouts sharing the cache folder
    # (a few at most are kept per kind) would otherwise make the first timed run a cold start
    subprocess.run([sys.executable, "-m", "correlator", "analyze", "--format", "json", "-o", os.devnull, str(plant)],
                   check=False, capture_output=True)
    work = Path(tempfile.mkdtemp(prefix="correlator-bench-"))
    try:
        analyze = [sys.executable, "-m", "correlator", "analyze", "--format", "json", "-o", os.devnull]
        rows: list[tuple[str, float, float, float]] = []
        lnav = shutil.which("lnav")
        if lnav:
            home = work / "home"
            formats = home / ".lnav" / "formats" / "installed"
            formats.mkdir(parents=True)
            (formats / "mosquitto_log.json").write_text(json.dumps(LNAV_FORMAT))
            env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
            seconds, rss, cpu, out = median_of(args.repeat, [lnav, "-n", "-c", ";SELECT count(*) FROM mosquitto_log",
                                                             str(broker)], env)
            counted = "".join(ch for ch in out.splitlines()[-1] if ch.isdigit()) if out.strip() else "?"
            rows.append((f"lnav index + count ({counted} lines)", seconds, rss, cpu))
        seconds, rss, cpu, _ = median_of(args.repeat, [*analyze, str(broker)])
        rows.append(("correlator analyze broker.log", seconds, rss, cpu))
        seconds, rss, cpu, _ = median_of(args.repeat, [*analyze, str(plant)])
        rows.append(("correlator analyze folder", seconds, rss, cpu))
        if args.engines:
            for engine in ("python", "off"):
                env = dict(os.environ, CORRELATOR_SCAN=engine)
                seconds, rss, cpu, _ = median_of(1 if engine == "off" else args.repeat, [*analyze, str(broker)], env)
                rows.append((f"  broker.log, CORRELATOR_SCAN={engine}", seconds, rss, cpu))
        base = rows[0][1] if lnav else None
        load = os.getloadavg()[0]
        print(f"medians of {args.repeat} runs (load average {load_start:.1f} at the start, {load:.1f} at the end, on "
              f"{os.cpu_count()} cores; CPU: user + system seconds, which the other programs' turns do not count):")
        for name, seconds, rss, cpu in rows:
            ratio = f"{seconds / base:5.2f}x lnav" if base else ""
            cpu_ratio = f" (CPU {cpu / rows[0][3]:4.2f}x)" if base and rows[0][3] else ""
            print(f"  {name:44} {seconds:7.2f} s  CPU {cpu:6.2f} s  {lines / seconds:12,.0f} lines/s  "
                  f"peak RSS {rss:5.0f} MB  {ratio}{cpu_ratio}")
        if base:
            print("aim: analyze at most 0.5x lnav's time, peak RSS under 200 MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
