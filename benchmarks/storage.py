"""The two stores side by side: PostgreSQL (a throw-away cluster on loopback, started as the tests
start theirs, tests/fleet_servers.py) against the embedded SQLite file, in the same run.

The timeline is real: the events `analyze` reads from sample_logs/mixed (a real mosquitto 2.0.11
and its clients), replayed again and again with their time moved on by the capture's span, so
time keeps moving and the mix of sources, kinds and clients is a real incident's.

Measured, for each store:
  write      events/s through the store's timeline writer (batches of 5,000, as an analysis
             writes them), then the clients of stitched connections named
  page       one timeline page of 100 events at a position spread over the whole timeline
             (the cursor a client sends), median and p99 in ms
  filter     one page of the TLS kinds ('tls.' prefix) from a position: an index range
  text       one page of a text search ('denied') from the start
  findings   every finding of the analysis

    .venv/bin/python benchmarks/storage.py [--events 200000] [--pages 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fleet_servers import PostgresServer  # noqa: E402

from correlator.analysis import Options, analyze  # noqa: E402
from correlator.api.storage import Store, TimelineQuery, open_store  # noqa: E402
from correlator.model import Event  # noqa: E402

SAMPLE = ROOT / "sample_logs" / "mixed"


def real_events() -> tuple[list[Event], list[dict[str, object]]]:
    captured: list[Event] = []
    result = analyze([SAMPLE], Options(), on_events=captured.extend, every_line=True)
    return captured, result.to_dict()["findings"]


def replay(events: list[Event], count: int) -> list[Event]:
    span = max(e.ts for e in events) - min(e.ts for e in events) + 1
    out: list[Event] = []
    n = 0
    while len(out) < count:
        out.extend(dataclasses.replace(e, ts=e.ts + n * span,
                                       connection=f"{e.connection}-{n}" if e.connection else None) for e in events)
        n += 1
    return out[:count]


def timed(call: Callable[[], object], times: int) -> list[float]:
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        spent.append((time.perf_counter() - start) * 1000)
    return spent


def p(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(store: Store, events: list[Event], findings: list[dict[str, object]], pages: int) -> dict[str, float]:
    analysis_id, folder = store.new_upload_dir()
    store.create(analysis_id, "bench.zip", folder / "bench.zip", 1)
    row = store.get(analysis_id)
    assert row is not None
    writer = store.writer(row.num)
    start = time.perf_counter()
    for i in range(0, len(events), 1000):  # as the engine hands them over
        writer.add(events[i:i + 1000])
    writer.finish()
    store.save_results(analysis_id, findings, {"json": "{}"}, status="done", events=len(events))
    write = len(events) / (time.perf_counter() - start)
    step = max(1, len(events) // pages)
    positions = iter(range(0, len(events), step))
    page = timed(lambda: store.timeline(row.num, TimelineQuery(after=next(positions), limit=100)), pages)
    positions = iter(range(0, len(events), step))
    kinds = timed(lambda: store.timeline(row.num, TimelineQuery(after=next(positions), limit=100,
                                                                kinds=["tls."])), pages)
    text = timed(lambda: store.timeline(row.num, TimelineQuery(limit=100, text="denied")), max(5, pages // 20))
    found = timed(lambda: store.findings(row.num), pages)
    return {"write events/s": write, "page p50 ms": p(page, 0.5), "page p99 ms": p(page, 0.99),
            "filter p50 ms": p(kinds, 0.5), "text p50 ms": p(text, 0.5), "findings p50 ms": p(found, 0.5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    captured, findings = real_events()
    events = replay(captured, args.events)
    print(f"{len(events):,} events (sample_logs/mixed's {len(captured)} replayed), {len(findings)} findings")
    work = Path(tempfile.mkdtemp(prefix="correlator-bench-"))
    server = PostgresServer().start()
    results = {}
    try:
        for name, url in (("sqlite", None), ("postgresql", server.new_database())):
            store = open_store(url, work / name)
            try:
                results[name] = measure(store, events, findings, args.pages)
            finally:
                store.close()
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'':18}{'sqlite':>12}{'postgresql':>12}{'pg/sqlite':>11}")
    for key in results["sqlite"]:
        lite, pg = results["sqlite"][key], results["postgresql"][key]
        print(f"{key:18}{lite:12,.2f}{pg:12,.2f}{pg / lite if lite else float('nan'):10.2f}x")
    print("(PostgreSQL on loopback with fsync off, as the tests run it; SQLite in WAL mode on the same disk)")


if __name__ == "__main__":
    main()
