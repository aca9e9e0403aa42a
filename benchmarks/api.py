"""The HTTP API under load: a real `correlator serve` process on loopback, a load generator of
httpx clients in threads (keep-alive connections), and the live path from a line appended to a
tailed file to its finding arriving on the server-sent-event stream.

The large bundle is a zip of a broker log built as in benchmarks/parse.py (every real mosquitto
line of sample_logs/ replayed with moving epoch prefixes, --lines of them) plus the client logs,
certificates, mosquitto.conf, ACL and password file of sample_logs/mixed. It is uploaded once
(analysed in the background; the upload-to-done time and the stored events are printed), then
each route is measured twice: one client at a time (latency p50/p99) and --clients clients at
once (requests/s). The baseline is GET /api/v1/health measured the same way in the same run:
the cost of the HTTP stack itself, so a ratio of 1.0 means the route adds nothing.

Live: the server tails a broker log; for each of --live-rounds rounds the benchmark appends one
refused TLS connection (three real lines from sample_logs/server_cert_expired, stamped now) and
waits for the finding's next revision on /api/v1/live/stream. It runs once per stitch window
(--stitch-window; by default 0.3 s, LiveAnalysis's own, 0.1 s, watch's, and 0.01 s, serve's),
with pauses of random length between rounds: broker stamps are whole seconds, and where in its
second a line falls changes how long it is held.

Issue 17's figures, in the same run (`--jobs`, on by default):

- findings GET p50/p99 with 1 client and with 20 clients at once (every request's latency);
- small uploads (sample_logs/mixed zipped, other bytes each time) answered while a big bundle is
  analysed: the busy plant of benchmarks/busy_plant.py (real mosquitto, fifty paho clients;
  --plant-lines, cached in ~/.cache), zipped, uploaded first; the big analysis's own time;
- append -> SSE latency with the broker log *and* a client log tailed: each round appends the
  broker's three lines of a refused TLS connection and the client's error line, stamped now.

Aims: findings p99 <= 20 ms at 1 client, a small upload <= 1 s during the big analysis, live
<= 100 ms.

    .venv/bin/python benchmarks/api.py [--lines 200000] [--requests 400] [--clients 8]
    .venv/bin/python benchmarks/api.py --jobs-only [--plant-lines 2000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from parse import build  # noqa: E402

EXPIRED = (SAMPLES / "server_cert_expired" / "broker" / "mosquitto.log").read_text().splitlines()
START = EXPIRED[:4]
FAILURE = [line.split(": ", 1)[1] for line in EXPIRED[4:7]]
CLIENT = (SAMPLES / "server_cert_expired" / "clients" / "edge-02.log").read_text().splitlines()
CLIENT_START, CLIENT_FAILURE = CLIENT[:2], CLIENT[2].split(" ", 2)[2]  # the error line, less its stamp


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`correlator serve` in its own process, so the load generator does not share its GIL."""

    def __init__(self, state: Path, live: list[Path], stitch_window: float | None = None,
                 background: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORRELATOR_")}
        if stitch_window is not None:
            env["CORRELATOR_LIVE_STITCH_WINDOW"] = str(stitch_window)
        if background:  # every upload in the background, so progress can be watched
            env["CORRELATOR_BACKGROUND_BYTES"] = "0"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "correlator", "serve", "--port", str(self.port), "--state-dir", str(state),
             "--log-level", "warning", "--max-upload-mb", "2048", *map(str, live)], env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url + "/api/v1/health")
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def build_bundle(folder: Path, lines: int) -> Path:
    broker = folder / "mosquitto.log"
    build(broker, lines)
    bundle = folder / "bundle.zip"
    mixed = SAMPLES / "mixed"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(broker, "bundle/broker/mosquitto.log")
        for file in sorted(mixed.rglob("*")):
            if file.is_file() and file.name not in ("mosquitto.log", "expected.json"):
                archive.write(file, Path("bundle") / file.relative_to(mixed))
    return bundle


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def latencies(url: str, paths: Callable[[int], str], count: int) -> list[float]:
    """One client, one request at a time: the latency a support tool sees."""
    out = []
    with httpx.Client(base_url=url) as client:
        for i in range(count):
            start = time.perf_counter()
            response = client.get(paths(i))
            out.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise SystemExit(f"{paths(i)}: {response.status_code} {response.text[:200]}")
    return out


def throughput(url: str, paths: Callable[[int], str], count: int, clients: int) -> float:
    """`clients` keep-alive connections in threads, `count` requests each: requests per second."""
    barrier = threading.Barrier(clients + 1)

    def worker() -> None:
        with httpx.Client(base_url=url) as client:
            client.get(paths(0))
            barrier.wait()
            for i in range(count):
                client.get(paths(i))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return clients * count / (time.perf_counter() - start)


def sse(response: httpx.Response) -> Iterator[dict[str, Any]]:
    event = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "finding":
            yield json.loads(line[6:])


def live_latency(folder: Path, rounds: int, stitch_window: float, clients: bool = False) -> list[float]:
    """Append -> finding on the stream; with `clients`, a client log is tailed too and each round
    appends the client's error line as well (the two sides of one refused connection)."""
    tag = f"{stitch_window}-{'clients' if clients else 'broker'}"
    live = folder / f"live-{tag}"
    live.mkdir()
    log = live / "mosquitto.log"
    log.write_text("".join(line + "\n" for line in START))
    client_log = live / "edge-02.log"
    if clients:
        client_log.write_text("".join(line + "\n" for line in CLIENT_START))
    server = Server(folder / f"live-state-{tag}", [live], stitch_window)
    try:
        results: list[float] = []
        with httpx.Client(base_url=server.url + "/api/v1", timeout=30) as client, \
                client.stream("GET", "/live/stream") as response:
            stream = sse(response)
            count = 0
            pacing = random.Random(5)
            for _ in range(rounds):
                now = time.time()
                stamp = int(now)
                text = "".join(f"{stamp}: {line}\n" for line in FAILURE)
                client_text = (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f",{int(now % 1 * 1000):03d} "
                               + CLIENT_FAILURE + "\n")
                start = time.perf_counter()
                with log.open("a") as out:
                    out.write(text)
                if clients:
                    with client_log.open("a") as out:
                        out.write(client_text)
                finding = next(f for f in stream if f["id"] == "tls.server_cert_expired" and f["count"] > count)
                results.append(time.perf_counter() - start)
                count = finding["count"]
                # broker stamps are whole seconds: vary where in a second the next line falls
                time.sleep(pacing.uniform(0.2, 1.2))
        return results
    finally:
        server.stop()


def concurrent_latencies(url: str, path: str, count: int, clients: int) -> list[float]:
    """`clients` keep-alive connections at once, `count` requests each: every request's latency."""
    barrier = threading.Barrier(clients + 1)
    out: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = []
        with httpx.Client(base_url=url) as client:
            client.get(path)
            barrier.wait()
            for _ in range(count):
                start = time.perf_counter()
                client.get(path)
                mine.append(time.perf_counter() - start)
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    return out


#: Small uploads timed on the idle server, before the big analysis: the peer of those during it.
IDLE_UPLOADS = 5


def small_bundle(folder: Path, i: int) -> bytes:
    """sample_logs/mixed zipped, with a comment that makes its bytes (and so its analysis) new."""
    target = folder / f"small-{i}.zip"
    mixed = SAMPLES / "mixed"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.comment = f"ticket {i}".encode()
        for file in sorted(mixed.rglob("*")):
            if file.is_file() and file.name != "expected.json":
                archive.write(file, Path("mixed") / file.relative_to(mixed))
    return target.read_bytes()


def jobs(folder: Path, args: argparse.Namespace) -> None:
    """Findings at 1 and 20 clients, and small uploads while the busy plant is analysed."""
    from busy_plant import ensure

    plant = ensure(args.plant_lines)
    bundle = folder / "plant.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(plant.rglob("*")):
            if file.is_file() and file.name != "READY":
                archive.write(file, Path("plant") / file.relative_to(plant))
    server = Server(folder / "jobs-state", [])
    print(f"load average at the start: {os.getloadavg()[0]:.1f}")
    try:
        with httpx.Client(base_url=server.url + "/api/v1", timeout=600) as client:
            small = client.post("/analyses", content=small_bundle(folder, 0), params={"name": "mixed.zip"}).json()
            path = f"/api/v1/analyses/{small['id']}/findings"
            one = [t * 1000 for t in latencies(server.url, lambda i: path, args.requests)]
            many = [t * 1000 for t in concurrent_latencies(server.url, path, args.requests // 4, 20)]
            print(f"\nfindings GET (3 findings), idle server      p50 {percentile(one, 0.5):7.2f} ms  "
                  f"p99 {percentile(one, 0.99):7.2f} ms  (1 client; aim p99 <= 20 ms)")
            print(f"{'':44}p50 {percentile(many, 0.5):7.2f} ms  p99 {percentile(many, 0.99):7.2f} ms  "
                  "(20 clients at once)")

            # the peer of the uploads during the big analysis: the same uploads with nothing else running
            idle: list[float] = []
            for i in range(1000, 1000 + IDLE_UPLOADS):
                body = small_bundle(folder, i)
                t0 = time.perf_counter()
                answer = client.post("/analyses", content=body, params={"name": "mixed.zip"})
                idle.append((time.perf_counter() - t0) * 1000)
                if answer.status_code != 201:
                    raise SystemExit(f"small upload: {answer.status_code} {answer.text[:200]}")
            print(f"small uploads, idle server ({len(idle)}): p50 {percentile(idle, 0.5):7.1f} ms  "
                  f"max {max(idle):7.1f} ms")

            start = time.perf_counter()
            big = client.post("/analyses", content=bundle.read_bytes(), params={"name": "plant.zip"}).json()
            print(f"\nbig bundle: {args.plant_lines:,}-line busy plant ({bundle.stat().st_size / 1e6:.0f} MB zip), "
                  f"answered {big['status']}")
            while client.get(f"/analyses/{big['id']}").json()["status"] == "queued":
                time.sleep(0.1)
            uploads: list[float] = []
            during: list[float] = []
            i = 0
            while True:
                state = client.get(f"/analyses/{big['id']}").json()
                if state["status"] != "running" or (args.small_uploads and i >= args.small_uploads):
                    break
                i += 1
                body = small_bundle(folder, i)
                t0 = time.perf_counter()
                answer = client.post("/analyses", content=body, params={"name": "mixed.zip"})
                took = time.perf_counter() - t0
                if answer.status_code != 201:
                    raise SystemExit(f"small upload: {answer.status_code} {answer.text[:200]}")
                uploads.append(took * 1000)
                t0 = time.perf_counter()
                client.get(path)
                during.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.5)
            while (state := client.get(f"/analyses/{big['id']}").json())["status"] not in ("done", "failed"):
                time.sleep(0.5)
            took_big = time.perf_counter() - start
            if uploads:
                ratio = percentile(uploads, 0.5) / percentile(idle, 0.5)
                print(f"small uploads during it ({len(uploads)}): p50 {percentile(uploads, 0.5):7.1f} ms  "
                      f"max {max(uploads):7.1f} ms  (aim <= 1000 ms; {ratio:.2f}x the idle p50); findings GET "
                      f"meanwhile p50 {percentile(during, 0.5):.1f} ms max {max(during):.1f} ms")
            print(f"big analysis {state['status']} in {took_big:.1f} s, {state['events']:,} timeline lines "
                  f"({state['events'] / took_big:,.0f} lines/s; routine lines kept as places in the log)")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000, help="broker lines in the large bundle")
    parser.add_argument("--requests", type=int, default=400, help="requests per route and client")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for requests/s")
    parser.add_argument("--live-rounds", type=int, default=20)
    parser.add_argument("--stitch-window", type=float, action="append",
                        help="live stitch windows to measure (repeatable; default 0.3, LiveAnalysis's own; "
                        "0.1, watch's; 0.01, serve's)")
    parser.add_argument("--live-only", action="store_true", help="skip the bundle and the load")
    parser.add_argument("--jobs-only", action="store_true", help="only issue 17's figures: findings at 1 and 20 "
                        "clients, small uploads during a big analysis, live with client logs")
    parser.add_argument("--no-jobs", action="store_true", help="skip the busy-plant part")
    parser.add_argument("--plant-lines", type=int, default=2_000_000, help="broker lines of the big bundle")
    parser.add_argument("--small-uploads", type=int, default=0,
                        help="small uploads during the big analysis (0: as many as fit, one every 0.5 s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="correlator-api-bench-") as temp:
        folder = Path(temp)
        base = None if args.live_only or args.jobs_only else load(folder, args)
        if not args.live_only and not args.no_jobs:
            jobs(folder, args)
        print("\nlive: lines appended to tailed logs -> the finding on /api/v1/live/stream")
        windows = args.stitch_window or ([0.01] if args.jobs_only else [0.3, 0.1, 0.01])
        for window in windows:
            for clients in (False, True):
                times = live_latency(folder, args.live_rounds, window, clients)
                label = f"stitch window {window} s, {'broker + client log' if clients else 'broker log'}"
                ms = [t * 1000 for t in times]
                ratio = f"  (p50 / health p50: {statistics.median(ms) / base[0]:.0f}x)" if base else ""
                print(f"  {label:<44} p50 {statistics.median(ms):7.1f} ms  p99 {percentile(ms, 0.99):7.1f} ms  "
                      f"min {min(ms):6.1f} ms  max {max(ms):7.1f} ms{ratio}")
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


def load(folder: Path, args: argparse.Namespace) -> tuple[float, float, float]:
    """The bundle's analysis and the request load; the /health figures, the baseline."""
    bundle = build_bundle(folder, args.lines)
    print(f"bundle: {bundle.stat().st_size / 1e6:.1f} MB zip, {args.lines} broker lines replayed from "
          f"sample_logs/ + sample_logs/mixed clients and artifacts")
    server = Server(folder / "state", [], background=True)
    try:
        with httpx.Client(base_url=server.url + "/api/v1", timeout=600) as client:
            start = time.perf_counter()
            created = client.post("/analyses", content=bundle.read_bytes(), params={"name": "bundle.zip"})
            analysis = created.json()
            progress = []
            while analysis["status"] not in ("done", "failed"):
                time.sleep(0.25)
                analysis = client.get(f"/analyses/{analysis['id']}").json()
                progress.append(analysis["progress"])
            took = time.perf_counter() - start
            if analysis["status"] != "done":
                raise SystemExit(f"analysis failed: {analysis['message']}")
            aid = analysis["id"]
            findings = client.get(f"/analyses/{aid}/findings").json()["items"]
            deep = client.get(f"/analyses/{aid}/timeline", params={"after": analysis["events"] // 2,
                                                                   "limit": 1}).json()["items"][0]["seq"]
        print(f"upload answered {created.status_code}; analysed in {took:.1f} s "
              f"({analysis['events'] / took:,.0f} events/s stored), {analysis['events']} events, "
              f"{len(findings)} findings; progress seen: {sorted(set(progress))}")
        routes: dict[str, Callable[[int], str]] = {
            "health (baseline)": lambda i: "/api/v1/health",
            "findings": lambda i: f"/api/v1/analyses/{aid}/findings",
            "findings ?min_severity=high": lambda i: f"/api/v1/analyses/{aid}/findings?min_severity=high",
            "one finding": lambda i: f"/api/v1/analyses/{aid}/findings/{findings[i % len(findings)]['key']}",
            "timeline page 1 (100)": lambda i: f"/api/v1/analyses/{aid}/timeline",
            "timeline deep page (100)": lambda i: f"/api/v1/analyses/{aid}/timeline?after={deep + i}",
            "timeline source+kind": lambda i: f"/api/v1/analyses/{aid}/timeline?source=broker&kind=tls.",
            "timeline since (time range)": lambda i: (f"/api/v1/analyses/{aid}/timeline?"
                                                      f"since={analysis['summary']['last_event']}"),
            "timeline text q=": lambda i: f"/api/v1/analyses/{aid}/timeline?q=Denied%20PUBLISH",
        }
        print(f"\n{'route':<30} {'p50 ms':>8} {'p99 ms':>8} {'req/s x' + str(args.clients):>12} "
              f"{'p50/base':>9} {'p99/base':>9} {'rps/base':>9}")
        base: tuple[float, float, float] | None = None
        for name, paths in routes.items():
            lat = latencies(server.url, paths, args.requests)
            rps = throughput(server.url, paths, args.requests // 4, args.clients)
            p50, p99 = percentile(lat, 0.5) * 1000, percentile(lat, 0.99) * 1000
            base = base or (p50, p99, rps)
            print(f"{name:<30} {p50:8.2f} {p99:8.2f} {rps:12.0f} {p50 / base[0]:9.2f} {p99 / base[1]:9.2f} "
                  f"{rps / base[2]:9.2f}")
    finally:
        server.stop()

    assert base is not None
    return base


if __name__ == "__main__":
    main()
