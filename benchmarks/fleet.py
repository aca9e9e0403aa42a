"""The fleet on this machine: N sites of edge agents and batch workers on 3 real NATS nodes and a
real PostgreSQL, with figures, never timed tests.

1. **Agents.** `--sites` agents (1,000 by default) run as asyncio coroutines in this process, over
   `--connections` NATS connections spread over the three nodes (a real agent has one of its own;
   a thousand in one process on two cores would measure this process's sockets, not the
   cluster). Each site replays the timeline events of one real sample incident (sample_logs/,
   read as `correlator analyze` reads them) to `correlator.events.<shard>.<site>.<host>` the way
   `correlator agent` publishes: the agent's own payload and Nats-Msg-Id, each publish waiting for
   its acknowledgement (stored on a quorum of the 3 replicas) before the next. Meanwhile a
   consumer reads the stream as central analysis does (a durable pull consumer over
   `correlator.events.>`).
   - paced: every site sends `--rate` events a second for `--seconds`: the events/s the cluster
     sustained, publish→stored (the acknowledgement) and agent→consumer latencies, p50/p99;
   - flat out: every site sends as fast as its acknowledgements come: the ceiling.
2. **Findings.** `--live-workers` (2) real `correlator worker --live` processes (PostgreSQL store)
   take the sites; each site replays its incident once, its events spread over `--finding-seconds` (the first
   one beforehand, once the workers share the shards, so every site is known to its worker
   before the clock runs), all sites' schedules sent by one coroutine with `publish_async` (the
   agent's payloads and ids, made before the clock runs; each site's events in order on its
   connection; each acknowledgement timed by a callback: the publishers stand for 1,000 agents
   and must cost this machine as little as they can),
   while a subscriber on `correlator.findings.>` notes when each finding arrives. A finding's
   latency runs from the moment the agent published the event that completes it (the first event
   after which an analysis of the incident fed one event at a time holds the finding; the
   incident's last event otherwise) to its arrival: agent→finding p50/p99, findings made against
   expected, the shards each worker holds, and the CPU seconds of each part (NATS nodes, live
   workers, PostgreSQL, this process), to say where the time goes.
3. **Bundles.** `--bundles` uploads of real sample incidents (each zip made distinct by its
   comment, so none is answered from an earlier analysis of the same bytes) to an API node with
   `--nats` and PostgreSQL, analysed by 1, then 2 `correlator worker` processes of one analysis
   slot each: bundles analysed per minute.

    .venv/bin/python benchmarks/fleet.py [--sites 1000] [--rate 2] [--seconds 20] [--finding-seconds 60]
        [--live-workers 2] [--bundles 24] [--skip-agents] [--skip-findings] [--skip-bundles] [--nats-profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# this script is named as the tests' fleet/ folder, whose harness it imports: not its own folder
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import nats  # noqa: E402
import psutil  # noqa: E402
from api_helpers import SAMPLES, zip_folder  # noqa: E402
from fleet.fleet_nodes import WorkerProcess, api_node, wait_status  # noqa: E402
from fleet.nats_cluster import NatsCluster, NatsNode, nats_binary  # noqa: E402
from fleet_servers import PostgresServer  # noqa: E402
from nats.aio.client import Client  # noqa: E402
from nats.aio.msg import Msg  # noqa: E402
from nats.errors import TimeoutError as NatsTimeout  # noqa: E402
from nats.js import JetStreamContext  # noqa: E402
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: E402

from correlator.analysis import Options, analyze, prepare  # noqa: E402
from correlator.api.finding_keys import finding_key  # noqa: E402
from correlator.api.storage import open_store  # noqa: E402
from correlator.fleet import DEFAULT_SHARDS  # noqa: E402
from correlator.fleet.agent import EVENTS_STREAM, ensure_events, message_id, payload, subject  # noqa: E402
from correlator.fleet.layout import Limits  # noqa: E402
from correlator.fleet.live_worker import SiteAnalysis  # noqa: E402
from correlator.fleet.sites import FINDINGS_SUBJECTS, event_of  # noqa: E402
from correlator.model import Event  # noqa: E402

#: Real incidents, each a different cause: site i replays INCIDENTS[i % len].
INCIDENTS = ("server_cert_expired", "bad_credentials", "client_cert_expired", "publish_denied",
             "server_hostname_mismatch", "anonymous_denied", "client_id_takeover", "subscribe_denied",
             "tls_version_mismatch", "connection_refused", "server_chain_incomplete", "mixed")
SENT = "Correlator-Sent"
"""A header of this benchmark's messages only: when the agent published it (for the consumer's latency)."""


def incident_events() -> list[list[Event]]:
    """Each incident's timeline events, as `analyze` reads them (and the agent publishes them)."""
    out = []
    for name in INCIDENTS:
        events: list[Event] = []
        analyze([SAMPLES / name], on_events=events.extend, every_line=True)
        out.append(events)
    return out


def pct(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Agents:
    def __init__(self, urls: list[str], sites: int, connections: int, incidents: list[list[Event]]) -> None:
        self.urls = urls
        self.sites = sites
        self.connections = connections
        self.incidents = incidents
        self.clients: list[Client] = []
        self.acks: list[float] = []
        self.seen: list[float] = []
        self.published = 0
        self.consumed = 0
        self._round = 0

    async def connect(self) -> None:
        for i in range(self.connections):
            self.clients.append(await nats.connect(servers=[self.urls[i % len(self.urls)], *self.urls],
                                                   name=f"bench-agents-{i}"))
        await ensure_events(self.clients[0].jetstream(), Limits(), 8 * 1024**3)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()

    async def site(self, number: int, until: float, interval: float | None) -> None:
        js = self.clients[number % len(self.clients)].jetstream(timeout=10)
        site, host = f"site-{number:04d}", "gw-1"
        to = subject(site, host)
        events = self.incidents[number % len(self.incidents)]
        loop = asyncio.get_running_loop()
        at, tick = 0, loop.time()
        while loop.time() < until:
            event = events[at % len(events)]
            round_ = at // len(events)
            at += 1
            msg_id = f"{message_id(site, host, event)}#{self._round}.{round_}"  # a replay is a new line
            sent = time.time()
            start = loop.time()
            await js.publish(to, payload(event), headers={"Nats-Msg-Id": msg_id, SENT: f"{sent:.6f}"})
            self.acks.append(loop.time() - start)
            self.published += 1
            if interval is not None:
                tick += interval
                delay = tick - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    tick = loop.time()

    async def consume(self, stop: asyncio.Event) -> None:
        """A durable pull consumer over every site's events, as central analysis reads them."""
        client = await nats.connect(servers=self.urls, name="bench-central")
        try:
            js = client.jetstream(timeout=10)
            name = f"bench-central-{self._round}"
            await js.add_consumer(EVENTS_STREAM, ConsumerConfig(
                durable_name=name, ack_policy=AckPolicy.ALL, deliver_policy=DeliverPolicy.NEW,
                filter_subject="correlator.events.>", max_ack_pending=-1))
            sub = await js.pull_subscribe_bind(durable=name, stream=EVENTS_STREAM)
            while not stop.is_set():
                try:
                    messages = await sub.fetch(500, timeout=0.5)
                except (TimeoutError, NatsTimeout):
                    continue
                now = time.time()
                for msg in messages:
                    sent = (msg.headers or {}).get(SENT)
                    if sent is not None:
                        self.seen.append(now - float(sent))
                self.consumed += len(messages)
                if messages:
                    await messages[-1].ack()
        finally:
            await client.close()

    async def run(self, seconds: float, rate: float | None) -> tuple[float, list[float], list[float]]:
        """(events/s, publish->stored latencies, agent->consumer latencies)."""
        self._round += 1
        self.acks, self.seen, self.published, self.consumed = [], [], 0, 0
        stop = asyncio.Event()
        consumer = asyncio.create_task(self.consume(stop))
        await asyncio.sleep(1)  # the consumer exists before the first event
        loop = asyncio.get_running_loop()
        started = loop.time()
        until = started + seconds
        interval = None if rate is None else 1 / rate
        await asyncio.gather(*(self.site(i, until, interval) for i in range(self.sites)))
        took = loop.time() - started
        deadline = loop.time() + 30
        while self.consumed < self.published and loop.time() < deadline:
            await asyncio.sleep(0.2)
        stop.set()
        await consumer
        return self.published / took, self.acks, self.seen


def report_agents(label: str, result: tuple[float, list[float], list[float]]) -> None:
    rate, acks, seen = result
    print(f"  {label}: {rate:,.0f} events/s sustained; publish->stored p50 {pct(acks, 50) * 1000:.0f} ms, "
          f"p99 {pct(acks, 99) * 1000:.0f} ms; agent->consumer p50 {pct(seen, 50) * 1000:.0f} ms, "
          f"p99 {pct(seen, 99) * 1000:.0f} ms ({len(seen):,} of {len(acks):,} read)")


def completing_events(events: list[Event]) -> dict[str, int]:
    """{finding key: index of the event that completes it} for one incident: the first event after
    which its analysis, fed one event at a time as a live worker's (the agent's payloads read
    back), holds the finding; a finding held only once the whole incident is in gets the last."""
    prepared = prepare(Options())
    analysis = SiteAnalysis("bench", Options(), prepared.registry, prepared.rules)
    read = [event_of(payload(event)) for event in events]
    first: dict[str, int] = {}
    for index, event in enumerate(read):
        analysis.feed([event], {"gw-1"}, index + 1)
        for finding in analysis.live.findings():
            first.setdefault(finding_key(finding.id, finding.group, finding.host), index)
    whole = SiteAnalysis("bench", Options(), prepared.registry, prepared.rules)
    whole.feed(read, {"gw-1"}, len(read))
    return {finding_key(f.id, f.group, f.host): first.get(finding_key(f.id, f.group, f.host), len(read) - 1)
            for f in whole.live.findings()}


def cpu_seconds(pids: Sequence[int], children: bool = True) -> float:
    """User and system CPU seconds of these processes (and their children) so far."""
    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for each in [process, *(process.children(recursive=True) if children else [])]:
                times = each.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


class Findings:
    """Sites replaying their incident once to the live workers, and the findings they make."""

    def __init__(self, urls: list[str], sites: int, connections: int, incidents: list[list[Event]]) -> None:
        self.urls = urls
        self.sites = sites
        self.connections = connections
        self.incidents = incidents
        self.completing = [completing_events(events) for events in incidents]
        self.clients: list[Client] = []
        self.sent: dict[str, list[float]] = {}
        """When the agent published each event of a site (before the publish, as `agent→consumer`)."""
        self.acks: list[float] = []
        self.failed = 0
        """Publishes the stream refused or never acknowledged."""
        self.messages: list[list[tuple[str, bytes, dict[str, str]]]] = []
        self.streams: list[JetStreamContext] = []
        self.arrived: dict[tuple[str, str], float] = {}
        """When each (site, finding key) first arrived on the findings subject."""

    def expected(self) -> int:
        return sum(len(self.completing[i % len(self.incidents)]) for i in range(self.sites))

    async def connect(self) -> None:
        for i in range(self.connections):
            self.clients.append(await nats.connect(servers=[self.urls[i % len(self.urls)], *self.urls],
                                                   name=f"bench-finding-agents-{i}"))
        listener = await nats.connect(servers=self.urls, name="bench-findings")
        self.clients.append(listener)

        async def arrived(msg: Msg) -> None:
            now = time.time()
            body = json.loads(msg.data)
            if body.get("kind") == "finding":
                self.arrived.setdefault((str(body["site"]), str(body["key"])), now)

        await listener.subscribe(FINDINGS_SUBJECTS, cb=arrived)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()

    def prepare(self) -> None:
        """Each site's subject and each event's payload and headers, made before the clock runs:
        this process stands for 1,000 agents on two cores it shares with what is measured, so what
        each publish costs here is kept to the client's own work."""
        self.messages = []
        for number in range(self.sites):
            site, host = f"site-{number:04d}", "gw-1"
            to = subject(site, host)
            self.messages.append([(to, payload(event), {"Nats-Msg-Id": message_id(site, host, event)})
                                  for event in self.incidents[number % len(self.incidents)]])
        self.streams = [client.jetstream(timeout=30, publish_async_max_pending=100_000)
                        for client in self.clients[:self.connections]]

    async def publish(self, number: int, index: int) -> asyncio.Future[Any]:
        """Publish a site's event as an agent does (its payload and Nats-Msg-Id, on one connection
        in order) without waiting here for the acknowledgement: its arrival is timed by a callback
        (publish->stored), so one coroutine sends for every site."""
        to, data, headers = self.messages[number][index]
        site = to.split(".")[3]
        self.sent.setdefault(site, []).append(time.time())
        started = time.monotonic()
        future = await self.streams[number % self.connections].publish_async(to, data, headers=headers)

        def stored(done: asyncio.Future[Any], started: float = started) -> None:
            if done.cancelled() or done.exception() is not None:
                self.failed += 1
            else:
                self.acks.append(time.monotonic() - started)

        future.add_done_callback(stored)
        return future

    async def replay(self, seconds: float) -> None:
        """Every site's incident after its first event, each site's events spread evenly over
        `seconds` from a random start, sent in one schedule by one coroutine."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        schedule = []
        for number in range(self.sites):
            count = len(self.messages[number])
            interval = seconds / max(1, count - 1)
            offset = random.uniform(0, interval)
            schedule += [(offset + (index - 1) * interval, number, index) for index in range(1, count)]
        schedule.sort()
        pending = []
        for due, number, index in schedule:
            # always a sleep, if only sleep(0): the connections' readers take the acknowledgements
            # (a loop that never yields is a slow consumer the server disconnects)
            await asyncio.sleep(max(0.0, start + due - loop.time()))
            pending.append(await self.publish(number, index))
        await asyncio.gather(*pending, return_exceptions=True)

    def latencies(self) -> list[float]:
        out = []
        for (site, key), at in self.arrived.items():
            index = self.completing[int(site.split("-")[1]) % len(self.incidents)].get(key)
            sent = self.sent.get(site, [])
            if index is not None and index < len(sent):
                out.append(at - sent[index])
        return out


def _shared(held: list[int], share: int) -> bool:
    """Every shard held, none by a worker beyond its share."""
    return sum(held) == DEFAULT_SHARDS and max(held) <= share


def shards_held(workers: Sequence[WorkerProcess]) -> list[int]:
    """Shards each worker holds, as its log tells: taken and not given back since."""
    held = []
    for worker in workers:
        log = worker.log()
        held.append(sum(1 for shard in set(re.findall(r"shard (\d+) taken by", log))
                        if log.count(f"shard {shard} taken by") > log.count(f"shard {shard} given back")))
    return held


async def findings_phase(cluster: NatsCluster, postgres: PostgresServer, args: argparse.Namespace,
                         work: Path) -> None:
    incidents = incident_events()
    findings = Findings(cluster.urls, args.sites, args.connections, incidents)
    state = work / "live-state"
    database = postgres.new_database()
    workers = [WorkerProcess(cluster.url, state, work / f"live-{i}.log", "--live", "--log-level", "info",
                             database=database, env={"CORRELATOR_NATS_REPLICAS": "3"})
               for i in range(args.live_workers)]
    try:
        for worker in workers:
            deadline = time.monotonic() + 120
            while "taking sites" not in worker.log():
                assert worker.process.poll() is None and time.monotonic() < deadline, worker.log()[-3000:]
                await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        share = -(-DEFAULT_SHARDS // len(workers))  # each worker takes up to its share (live_worker._balance)
        while not _shared(shards_held(workers), share) and loop.time() - started < 120:
            await asyncio.sleep(0.2)
        balancing = loop.time() - started
        await findings.connect()
        findings.prepare()
        # this process times each finding's arrival: its own collector must not stop it for long to
        # go through what it holds for the whole run (the prepared messages), so that is frozen
        gc.collect()
        gc.freeze()
        started = loop.time()
        await asyncio.gather(*[await findings.publish(i, 0) for i in range(args.sites)], return_exceptions=True)
        store = open_store(database, work / "reader")
        try:
            while len(await asyncio.to_thread(store.sites)) < args.sites and loop.time() - started < 600:
                await asyncio.sleep(0.2)
        finally:
            store.close()
        taking = loop.time() - started
        pids = {"NATS nodes": [node.process.pid for node in cluster.nodes if node.process is not None],
                "live workers": [worker.pid for worker in workers],
                "PostgreSQL": [postgres.process.pid] if postgres.process is not None else [],
                "this process (agents, subscriber)": [os.getpid()]}
        # this process's children are the servers and workers, counted on their own
        own = {name: name.startswith("this process") for name in pids}
        cpu_before = {name: cpu_seconds(p, not own[name]) for name, p in pids.items()}
        findings.acks = []
        profiles = [asyncio.create_task(asyncio.to_thread(profile, node, args.finding_seconds, args.nats_profile))
                    for node in cluster.nodes] if args.nats_profile else []
        started = loop.time()
        await findings.replay(args.finding_seconds)
        published = loop.time() - started
        expected = findings.expected()
        deadline = loop.time() + 120
        while len(findings.arrived) < expected and loop.time() < deadline:
            await asyncio.sleep(0.2)
        took = loop.time() - started
        cpu = {name: cpu_seconds(p, not own[name]) - cpu_before[name] for name, p in pids.items()}
        load = os.getloadavg()
        for saved in await asyncio.gather(*profiles):
            print(f"  NATS CPU profile over the replay: {saved}")
        events = sum(len(v) for v in findings.sent.values())
        latencies = findings.latencies()
        made = sum(1 for site, key in findings.arrived
                   if key in findings.completing[int(site.split("-")[1]) % len(incidents)])
        print(f"{args.sites} sites, each replaying its incident once over {args.finding_seconds:g} s "
              f"({events:,} events, {(events - args.sites) / published:,.0f} events/s), "
              f"{len(workers)} live worker{'s' if len(workers) > 1 else ''}, PostgreSQL:")
        print(f"  agent->finding p50 {pct(latencies, 50) * 1000:.0f} ms, p99 {pct(latencies, 99) * 1000:.0f} ms, "
              f"max {max(latencies, default=float('nan')) * 1000:.0f} ms; findings made {made:,} of {expected:,} "
              f"expected ({len(findings.arrived) - made} others); publish->stored p50 "
              f"{pct(findings.acks, 50) * 1000:.0f} ms, p99 {pct(findings.acks, 99) * 1000:.0f} ms"
              + (f"; {findings.failed} publishes failed" if findings.failed else ""))
        print(f"  shards held per worker: {' + '.join(str(n) for n in shards_held(workers))} of {DEFAULT_SHARDS} "
              f"({balancing:.1f} s after the workers started); every site's first event analysed {taking:.1f} s after "
              "it was published")
        print(f"  CPU over the {took:.0f} s: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in cpu.items())
              + f"; load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")
    finally:
        await findings.close()
        for worker in workers:
            worker.stop()


def profile(node: NatsNode, seconds: float, folder: Path) -> Path:
    """A node's Go CPU profile over `seconds` (its `prof_port`), saved in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{node.name}.pprof"
    url = f"http://127.0.0.1:{node.prof_port}/debug/pprof/profile?seconds={max(1, round(seconds))}"
    with urllib.request.urlopen(url, timeout=seconds + 60) as answer:
        target.write_bytes(answer.read())
    return target


def distinct_bundles(count: int, folder: Path) -> list[Path]:
    """`count` zips of the sample incidents, each made distinct by its comment."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        name = INCIDENTS[i % len(INCIDENTS)]
        target = zip_folder(SAMPLES / name, folder / f"{name}-{i}.zip")
        with zipfile.ZipFile(target, "a") as archive:
            archive.comment = f"bundle {i}".encode()
        out.append(target)
    return out


def bundles_per_minute(cluster: NatsCluster, database: str, bundles: list[Path], workers: int, work: Path) -> float:
    state = work / f"state-{workers}"
    node = api_node(cluster.url, state, background_bytes=0, database=database)
    processes = [WorkerProcess(cluster.url, state, work / f"worker-{workers}-{i}.log", "--workers", "1",
                               database=database, env={"CORRELATOR_SMALL_WORKERS": "1"})
                 for i in range(workers)]
    try:
        for process in processes:
            process.wait_taking_jobs()
        with node.client() as client:
            started = time.monotonic()
            ids = []
            for bundle in bundles:
                answer = client.post("/analyses", params={"name": bundle.name}, content=bundle.read_bytes())
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["id"])
            for analysis_id in ids:
                done = wait_status(client, analysis_id, timeout=1800)
                assert done["status"] == "done", done
            took = time.monotonic() - started
    finally:
        for process in processes:
            process.stop()
        node.stop()
    return len(bundles) / took * 60


async def agents_phase(cluster: NatsCluster, args: argparse.Namespace) -> None:
    incidents = incident_events()
    print(f"{args.sites} sites replaying {len(incidents)} real incidents "
          f"({statistics.mean(len(e) for e in incidents):.0f} events each), {args.connections} connections, "
          "3 NATS nodes, stream replicas 3")
    agents = Agents(cluster.urls, args.sites, args.connections, incidents)
    await agents.connect()
    try:
        report_agents(f"paced at {args.rate:g} events/s per site", await agents.run(args.seconds, args.rate))
        report_agents("flat out", await agents.run(args.seconds, None))
    finally:
        await agents.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2.0, help="events a second per site when paced")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--finding-seconds", type=float, default=60.0,
                        help="seconds over which each site replays its incident to the live workers")
    parser.add_argument("--live-workers", type=int, default=2, help="live workers taking the sites' findings")
    parser.add_argument("--bundles", type=int, default=24)
    parser.add_argument("--skip-agents", action="store_true")
    parser.add_argument("--skip-findings", action="store_true")
    parser.add_argument("--skip-bundles", action="store_true")
    parser.add_argument("--nats-profile", type=Path, metavar="DIR",
                        help="save each NATS node's Go CPU profile over the findings' replay in DIR (<node>.pprof)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="correlator-fleet-bench-") as tmp:
        work = Path(tmp)
        cluster = NatsCluster(work / "nats", size=3, binary=nats_binary(), profiled=args.nats_profile is not None)
        cluster.start()
        try:
            if not args.skip_agents:
                asyncio.run(agents_phase(cluster, args))
            if not (args.skip_findings and args.skip_bundles):
                postgres = PostgresServer()
                postgres.start()
                try:
                    if not args.skip_findings:
                        asyncio.run(findings_phase(cluster, postgres, args, work))
                    if not args.skip_bundles:
                        bundles = distinct_bundles(args.bundles, work / "bundles")
                        one = bundles_per_minute(cluster, postgres.new_database(), bundles, 1, work)
                        two = bundles_per_minute(cluster, postgres.new_database(), bundles, 2, work)
                        print(f"{len(bundles)} sample bundles, workers of one analysis at a time, PostgreSQL store:")
                        print(f"  1 worker: {one:.1f} bundles/min; 2 workers: {two:.1f} bundles/min "
                              f"({two / one:.2f}x)")
                finally:
                    postgres.close()
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
