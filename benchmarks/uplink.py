"""What a plant's uplink carries: `correlator agent` on the busy plant (benchmarks/busy_plant.py:
a real mosquitto with `log_type all` and about fifty paho clients) against a real 3-node NATS
cluster, compared with the raw log's bytes.

The agent reads the plant from its first line (as after an outage) and publishes its events and
routine counts; once everything is stored, the bytes of the messages on the agent's subjects
(payloads and headers, as sent) are summed and set against the log's bytes and its time span. Two
runs: the broker's log alone, and the whole plant folder (with the ACL file, a rule reads each
client's first `Received PUBLISH` line after its CONNECT, so those lines go up as events).

    .venv/bin/python benchmarks/uplink.py [--lines 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# the tests' fleet/ harness (a namespace package) is imported before this folder is on the path:
# a module named fleet (benchmarks/fleet.py) would be found instead
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import nats  # noqa: E402
from fleet.nats_cluster import NatsCluster, nats_binary  # noqa: E402

sys.path.append(str(HERE))
from busy_plant import cache_dir, line_count  # noqa: E402

from correlator.fleet.agent import COUNTS_TOKEN, EVENTS_STREAM  # noqa: E402


async def _stored(urls: list[str], site: str) -> tuple[int, int, int, int]:
    """(events, counted lines, event bytes, count bytes) stored for `site`."""
    client = await nats.connect(servers=urls)
    try:
        js = client.jetstream()
        info = await js.stream_info(EVENTS_STREAM)
        events = counted = event_bytes = count_bytes = 0
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(EVENTS_STREAM, seq)
            subject = msg.subject or ""
            if f".{site}." not in subject:
                continue
            size = len(msg.data or b"") + sum(len(k) + len(v) + 4 for k, v in (msg.headers or {}).items())
            size += len(subject)
            if subject.endswith(f".{COUNTS_TOKEN}"):
                counted += int(json.loads(msg.data or b"{}")["lines"])
                count_bytes += size
            else:
                events += 1
                event_bytes += size
        return events, counted, event_bytes, count_bytes
    finally:
        await client.close()


def _span(log: Path) -> float:
    """Seconds from the log's first epoch stamp to its last."""
    with log.open("rb") as handle:
        first = int(handle.readline()[:10])
        handle.seek(max(0, log.stat().st_size - 4096))
        last = int(handle.read().splitlines()[-1][:10])
    return max(1.0, last - first)


def measure(cluster: NatsCluster, paths: list[Path], logs: list[Path], site: str, work: Path) -> None:
    lines = sum(line_count(log) for log in logs)
    out = (work / f"{site}.log").open("ab")
    started = time.monotonic()
    agent = subprocess.Popen([sys.executable, "-m", "correlator", "agent", *map(str, paths), "--nats", cluster.url,
                              "--site", site, "--host", "gw"], stdout=out, stderr=subprocess.STDOUT,
                             env={**os.environ, "CORRELATOR_NATS_REPLICAS": "3"}, cwd=ROOT)
    try:
        last, still = (-1, -1), 0
        while True:
            time.sleep(2)
            try:
                events, counted, event_bytes, count_bytes = asyncio.run(_stored(cluster.urls, site))
            except Exception:
                continue
            if (events, counted) == last:
                still += 1
                if still >= 3 and events + counted >= lines * 0.99:
                    break
            else:
                last, still = (events, counted), 0
            if time.monotonic() - started > 1800:
                print("  gave up after 30 min", file=sys.stderr)
                break
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    took = time.monotonic() - started - 6  # the last three polls found nothing new
    raw = sum(log.stat().st_size for log in logs)
    span = _span(logs[0])
    sent = event_bytes + count_bytes
    print(f"{site}: {lines:,} lines in {len(logs)} logs ({raw / 1e6:.1f} MB, {lines / span:,.0f} lines/s over "
          f"{span:.0f} s of log)")
    print(f"  events: {events:,} messages, {event_bytes / 1e3:,.1f} kB; routine lines as counts: {counted:,} "
          f"in {count_bytes / 1e3:,.1f} kB")
    print(f"  uplink: {sent / 1e3:,.1f} kB = {sent / raw:.2%} of the raw log ({raw / sent:,.0f}x less); "
          f"{sent / span / 1e3:,.2f} kB/s for the plant's {raw / span / 1e3:,.1f} kB/s of log")
    print(f"  the agent caught up on the whole log in {took:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000, help="the busy plant's size (made by busy_plant.py)")
    args = parser.parse_args()
    plant = cache_dir(args.lines)
    if not (plant / "READY").exists():
        print(f"no busy plant of {args.lines} lines: run benchmarks/busy_plant.py --lines {args.lines} first",
              file=sys.stderr)
        return 2
    log = plant / "broker" / "mosquitto.log"
    with tempfile.TemporaryDirectory(prefix="correlator-uplink-") as tmp:
        work = Path(tmp)
        cluster = NatsCluster(work / "nats", size=3, binary=nats_binary())
        cluster.start()
        try:
            measure(cluster, [log], [log], "broker-log", work)
            measure(cluster, [plant], [log, *sorted(set(plant.rglob("*.log")) - {log})], "plant-folder", work)
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
