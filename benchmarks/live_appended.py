"""CPU of a flood appended to a followed log: what `watch` spends on each line a busy broker writes
while it is watched.

A writer thread appends a real busy plant's broker lines (benchmarks/busy_plant.py: a real
mosquitto with `log_type all` and fifty paho clients; the PUBLISH/PUBACK flood of a plant) to a
file that `watch`'s data source (LiveEventSource: tailer, live analysis, timeline store; no screen)
follows, at a steady rate, until all of them have been read. The same run measures:

- old: every appended line parsed into an event (`routine_rows=False`, how appended lines were
  read before);
- new: each appended batch classified by the batch reader's classifier, its routine lines
  counted and kept as timeline rows, only the rest parsed (the default with the fast reader);
- analyze: `correlator analyze`'s reader over the final file (the same lines), the peer.

With `--before DIR` (a checkout of the code before this reader, e.g. `git archive`d into a
folder), `watch`'s data source of that code is measured too, in a process of its own, as "before".

CPU is the process's (all its threads: tailer, clock, the scanner's), from the first appended
line until the source has read the last one; the writer's few os.write calls are in it too. Each
figure is given per 100,000 appended lines, with the machine's load (`uptime`): figures under load
are noisy. The lines read and the timeline's rows are checked (each line once).

    .venv/bin/python benchmarks/live_appended.py [--lines 200000] [--rate 50000] [--plant 2000000]
        [--before DIR]
    .venv/bin/python benchmarks/live_appended.py --whole   # the plant's whole broker log, and its findings
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: `--tree DIR` (the child measuring the code before): its correlator, not this checkout's
_TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv[:-1] else str(ROOT)
sys.path.insert(0, _TREE)
sys.path.insert(0, str(ROOT / "benchmarks"))

from correlator.analysis import analyze  # noqa: E402
from correlator.formats.scan import keeps_lines  # noqa: E402
from correlator.tui.sources import LiveEventSource  # noqa: E402

# imported after correlator: busy_plant puts this checkout first on the path
cache_dir = importlib.import_module("busy_plant").cache_dir

#: Lines the file holds before it is followed (its start-up: the format is known at once).
HEAD = 200
#: Lines per write: the writer appends at `rate` lines a second in steps this big.
STEP = 500


def load() -> str:
    """The load averages, as `uptime` gives them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def plant_lines(log: Path, skip: int, count: int) -> list[bytes]:
    """`count` lines of the plant's broker log after the first `skip` (inside the flood)."""
    out: list[bytes] = []
    with log.open("rb") as handle:
        for number, line in enumerate(handle):
            if number < skip:
                continue
            out.append(line)
            if len(out) >= count:
                break
    return out


def write(path: Path, lines: list[bytes], rate: int, started: threading.Event) -> None:
    step = STEP / rate
    start = time.monotonic()
    started.set()
    with path.open("ab", buffering=0) as out:
        for i in range(0, len(lines), STEP):
            out.write(b"".join(lines[i:i + STEP]))
            pause = start + (i // STEP + 1) * step - time.monotonic()
            if pause > 0:
                time.sleep(pause)


def follow(head: list[bytes], flood: list[bytes], rate: int, routine_rows: bool | None) -> tuple[float, float, int]:
    """CPU and wall seconds for the flood appended to a followed file, and the rows drawn
    (`routine_rows` None: the source as `watch` makes it, the code before included)."""
    with tempfile.TemporaryDirectory(prefix="live-appended-") as tmp:
        log = Path(tmp) / "mosquitto.log"
        log.write_bytes(b"".join(head))
        total = len(head) + len(flood)
        source = (LiveEventSource([log]) if routine_rows is None
                  else LiveEventSource([log], routine_rows=routine_rows))
        source.start(lambda: None)
        try:
            while not source.analysis.caught_up:
                time.sleep(0.01)
            started = threading.Event()
            writer = threading.Thread(target=write, args=(log, flood, rate, started), daemon=True)
            cpu, wall = time.process_time(), time.monotonic()
            writer.start()
            started.wait()
            while sum(s.lines for s in source.source_info()) < total:
                time.sleep(0.01)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            writer.join()
        finally:
            source.stop()
        source.store.renumber()
        rows = sorted(source.store.offset[row] for row in range(len(source.store)))
        assert len(rows) == len(set(rows)) == total, f"{len(rows)} rows ({len(set(rows))} places) for {total} lines"
        return cpu, wall, len(rows)


def batch(head: list[bytes], flood: list[bytes]) -> float:
    with tempfile.TemporaryDirectory(prefix="live-appended-") as tmp:
        log = Path(tmp) / "mosquitto.log"
        log.write_bytes(b"".join(head) + b"".join(flood))
        cpu = time.process_time()
        result = analyze([log])
        cpu = time.process_time() - cpu
        assert sum(s.info.lines_read for s in result.sources) == len(head) + len(flood)
        return cpu


def whole(plant: Path) -> None:
    """The plant's whole broker log appended while its folder (conf, ACL, passwd, certificates; not
    the client logs, written at other times) is watched, in 1 MB writes of whole lines: CPU, and
    the findings, lines and rows against `analyze` of the final folder."""
    with tempfile.TemporaryDirectory(prefix="live-appended-") as tmp:
        folder = Path(tmp) / "plant"
        shutil.copytree(plant, folder, ignore=shutil.ignore_patterns("clients", "expected.json", "READY"))
        log = folder / "broker" / "mosquitto.log"
        data = (plant / "broker" / "mosquitto.log").read_bytes()
        cut = data.index(b"\n", 100_000) + 1
        log.write_bytes(data[:cut])
        total = data.count(b"\n")
        source = LiveEventSource([folder])
        source.start(lambda: None)

        def append() -> None:
            at = cut
            with log.open("ab", buffering=0) as out:
                while at < len(data):
                    end = data.find(b"\n", at + (1 << 20))
                    end = len(data) if end < 0 else end + 1
                    out.write(data[at:end])
                    at = end
                    time.sleep(0.01)

        try:
            while not source.analysis.caught_up:
                time.sleep(0.01)
            writer = threading.Thread(target=append, daemon=True)
            cpu, wall = time.process_time(), time.monotonic()
            writer.start()
            while sum(s.lines for s in source.source_info()) < total:
                time.sleep(0.05)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            writer.join()
            time.sleep(1.0)  # the stitcher's last wait
        finally:
            source.stop()
        source.store.renumber()
        store = source.store
        print(f"the plant's {total - data[:cut].count(10):,} broker lines appended while watched: {cpu:.1f} CPU s "
              f"({cpu * 100_000 / total:.2f} per 100k lines), read in {wall:.1f} s; load {load()}")
        cpu = time.process_time()
        result = analyze([folder])
        print(f"analyze of the final folder: {time.process_time() - cpu:.1f} CPU s; load {load()}")
        live = {f.id: sorted(f.clients) for f in source.analysis.findings()}
        expected = {f.id: sorted(f.clients) for f in result.findings}
        lines = {s.name: s.lines for s in source.source_info()}
        rows = sorted(store.offset[row] for row in range(len(store)) if store.files[store.file[row]] == str(log))
        times = [store.ts[row] for row in range(len(store))]
        print(f"findings the same: {live == expected} ({', '.join(sorted(expected))}); lines the same: "
              f"{lines == {s.info.source: s.info.lines_read for s in result.sources}}; every line a row once: "
              f"{rows == sorted(set(rows)) and len(rows) == total}; in time order: {times == sorted(times)}; "
              f"events {source.analysis.total_events:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000, help="lines appended (default 200,000)")
    parser.add_argument("--rate", type=int, default=50_000, help="lines appended per second (default 50,000)")
    parser.add_argument("--plant", type=int, default=2_000_000, help="the busy plant's size (its cache is used)")
    parser.add_argument("--cache", type=Path, help="where busy_plant.py keeps its plants")
    parser.add_argument("--before", type=Path, help="a checkout of the code before, measured as `before`")
    parser.add_argument("--whole", action="store_true", help="the plant's whole broker log appended while its "
                        "folder is watched, in 1 MB writes: CPU, and findings, lines and rows against analyze")
    parser.add_argument("--tree", help=argparse.SUPPRESS)  # the child measuring `--before`
    args = parser.parse_args()
    if not keeps_lines():
        sys.exit("the fast reader (Hyperscan and numpy, the `fast` extra) is not installed here")
    log = cache_dir(args.plant, args.cache) / "broker" / "mosquitto.log"
    if not (cache_dir(args.plant, args.cache) / "READY").exists():
        sys.exit(f"no busy plant of {args.plant:,} lines: make it with benchmarks/busy_plant.py --lines {args.plant}")
    if args.whole:
        whole(cache_dir(args.plant, args.cache))
        return
    head = plant_lines(log, 0, HEAD)
    flood = plant_lines(log, args.plant // 10, args.lines)
    per = 100_000 / len(flood)
    if args.tree:
        assert Path(sys.modules["correlator"].__file__ or "").is_relative_to(Path(args.tree)), "not the code before"
        cpu, wall, _ = follow(head, flood, args.rate, routine_rows=None)
        print(json.dumps({"cpu": cpu, "wall": wall}))
        return
    print(f"{len(flood):,} broker lines of the {args.plant:,}-line plant appended at {args.rate:,}/s; "
          f"load {load()}")
    new_cpu, new_wall, _ = follow(head, flood, args.rate, routine_rows=True)
    print(f"new (classified, routine rows): {new_cpu * per:6.2f} CPU s per 100k lines ({new_cpu:.2f} s, "
          f"read in {new_wall:.1f} s); load {load()}")
    old_cpu, old_wall, _ = follow(head, flood, args.rate, routine_rows=False)
    print(f"old (every line an event):     {old_cpu * per:6.2f} CPU s per 100k lines ({old_cpu:.2f} s, "
          f"read in {old_wall:.1f} s); load {load()}")
    if args.before is not None:
        child = subprocess.run([sys.executable, __file__, "--lines", str(args.lines), "--rate", str(args.rate),
                                "--plant", str(args.plant), *(["--cache", str(args.cache)] if args.cache else []),
                                "--tree", str(args.before.resolve())],
                               capture_output=True, text=True, check=True, cwd=args.before)
        before = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"before (code in {args.before}): {before['cpu'] * per:6.2f} CPU s per 100k lines "
              f"({before['cpu']:.2f} s, read in {before['wall']:.1f} s); load {load()}")
    batch_cpu = batch(head, flood)
    print(f"analyze of the final file:      {batch_cpu * per:6.2f} CPU s per 100k lines; load {load()}")
    print(f"old / new: {old_cpu / new_cpu:.1f}x; new / analyze: {new_cpu / batch_cpu:.1f}x"
          + (f"; before / new: {before['cpu'] / new_cpu:.1f}x" if args.before is not None else ""))


if __name__ == "__main__":
    main()
