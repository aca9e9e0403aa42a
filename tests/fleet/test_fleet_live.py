"""The central live analysis on a real 3-node NATS cluster and a real PostgreSQL: edge agents tail
real broker logs (sample incidents made by real mosquitto and clients) at two sites, live workers
(`correlator worker --live`) own one site each at a time, and their findings reach the store and
`correlator.findings.<site>`. The worker owning a site's shard is killed with SIGKILL while its
events flow: another takes the shard over, and every finding is made once, with the counts and
revisions of one uninterrupted analysis of the same events."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from api.test_api_live_stream import sse_events
from api_helpers import HTTP_TIMEOUT, SAMPLES
from fleet.fleet_nodes import WorkerProcess, api_node
from fleet.nats_cluster import NatsCluster
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from correlator.analysis import Options, prepare
from correlator.api.finding_keys import finding_key
from correlator.api.storage import Store, open_store
from correlator.errors import CorrelatorError
from correlator.fleet import DEFAULT_SHARDS
from correlator.fleet.agent import EVENTS_STREAM, ensure_events, shard_of, subject
from correlator.fleet.layout import Limits
from correlator.fleet.live_worker import SiteAnalysis
from correlator.fleet.remote_site import RemoteSiteSource
from correlator.fleet.sites import (
    FINDINGS_STREAM,
    LagView,
    event_of,
    events_filter,
    host_of,
    lag_view,
    shard_consumer,
    shard_filter,
    site_lags,
)
from correlator.tui.app import ScreenSettings, create_app
from correlator.tui.widgets import Timeline

#: The lease the tests give a site: a killed worker's sites go to another after it.
TEST_LEASE = "2"
#: Seconds between a site's checkpoints in the tests: a takeover resumes from a recent one.
TEST_CHECKPOINT = "0.5"
#: The sites and the sample incident each one's broker logs.
SITES = {"plant-1": "mixed", "plant-2": "client_id_takeover"}


def live_worker(cluster: NatsCluster, database: str, tmp_path: Path, name: str, lease: str = TEST_LEASE
                ) -> WorkerProcess:
    return WorkerProcess(cluster.url, tmp_path / "state", tmp_path / f"{name}.log", "--live", "--database", database,
                         env={"CORRELATOR_SITE_LEASE": lease, "CORRELATOR_NATS_REPLICAS": "3",
                              "CORRELATOR_SITE_CHECKPOINT_SECONDS": TEST_CHECKPOINT})


def wait_logged(worker: WorkerProcess, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker.log():
        assert worker.process.poll() is None, f"the worker exited: {worker.log()[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in the worker's log: {worker.log()[-3000:]}"
        time.sleep(0.05)


def agents_on_first_lines(cluster: NatsCluster, tmp_path: Path, agents: list[subprocess.Popen[bytes]],
                          ) -> tuple[dict[str, Path], dict[str, list[bytes]]]:
    """Each site's broker log begun with its sample's first 10 lines and an agent following it
    (added to `agents`): the sites' logs, and the lines each has still to be written."""
    logs, rests = {}, {}
    for site, sample in SITES.items():
        folder = tmp_path / site
        folder.mkdir()
        logs[site] = folder / "mosquitto.log"
        lines = (SAMPLES / sample / "broker" / "mosquitto.log").read_bytes().splitlines(keepends=True)
        logs[site].write_bytes(b"".join(lines[:10]))
        rests[site] = lines[10:]
        agents.append(agent(cluster, folder, site, tmp_path / f"agent-{site}.log"))
    return logs, rests


def agent(cluster: NatsCluster, folder: Path, site: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "correlator", "agent", str(folder), "--nats", cluster.url,
                                 "--site", site, "--host", "gw-1"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, "CORRELATOR_NATS_REPLICAS": "3"})


async def _stream(cluster: NatsCluster, stream: str, subject: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(sequence, subject, message) of every message kept on `subject` (a filter), in order."""
    client = await nats.connect(servers=cluster.urls)
    try:
        js = client.jetstream()
        deadline = time.monotonic() + 60
        while True:  # a cluster just restarted whole answers once the stream has a leader again
            try:
                reader = await js.pull_subscribe(subject, stream=stream)
                break
            except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        found: list[tuple[int, str, dict[str, Any]]] = []
        while True:
            try:
                messages = await reader.fetch(500, timeout=1)
            except TimeoutError:  # nats-py's, or asyncio's when nothing came at all
                return found
            for msg in messages:
                found.append((msg.metadata.sequence.stream, msg.subject, json.loads(msg.data)))
                await msg.ack()
    finally:
        await client.close()


async def _old_site_consumer(cluster: NatsCluster, site: str) -> None:
    """The events stream with a durable consumer of the per-site layout, as that layout left it."""
    client = await nats.connect(servers=cluster.urls)
    try:
        js = client.jetstream()
        await ensure_events(js, Limits(replicas=3), 1024**2)
        await js.add_consumer(EVENTS_STREAM, ConsumerConfig(
            durable_name=f"correlator-site-{site}", filter_subject=f"correlator.events.{site}.>",
            ack_policy=AckPolicy.ALL))
    finally:
        await client.close()


async def _consumers(cluster: NatsCluster) -> dict[str, float | None]:
    """{name: inactive threshold} of the events stream's consumers."""
    client = await nats.connect(servers=cluster.urls)
    try:
        return {info.name: info.config.inactive_threshold
                for info in await client.jetstream().consumers_info(EVENTS_STREAM)}
    finally:
        await client.close()


def published_lines(cluster: NatsCluster, site: str) -> int:
    """Lines of the site's logs on the cluster: its events and the routine lines sent as counts."""
    events = asyncio.run(_stream(cluster, EVENTS_STREAM, events_filter(site)))
    counts = asyncio.run(_stream(cluster, EVENTS_STREAM, events_filter(site) + ".counts"))
    return sum(int(e.get("line_count", 1)) for _, _, e in events) + sum(int(c["lines"]) for _, _, c in counts)


def reference(cluster: NatsCluster, site: str) -> tuple[dict[str, tuple[int, int]], int]:
    """{key: (count, revision)} of one uninterrupted analysis of the site's events, and the
    sequence of its last event."""
    messages = asyncio.run(_stream(cluster, EVENTS_STREAM, events_filter(site)))
    prepared = prepare(Options())
    analysis = SiteAnalysis(site, Options(), prepared.registry, prepared.rules)
    analysis.feed([event_of(json.dumps(m).encode()) for _, _, m in messages], {host_of(s) for _, s, _ in messages},
                  messages[-1][0])
    found = {finding_key(f.id, f.group, f.host): (f.count, f.revision) for f in analysis.live.findings()}
    return found, messages[-1][0]


def write_slowly(log: Path, lines: list[bytes], chunks: int, pause: float) -> Iterator[int]:
    """Append the lines in `chunks` parts, `pause` seconds apart; yields the part written."""
    size = -(-len(lines) // chunks)
    for part in range(chunks):
        with log.open("ab") as out:
            out.write(b"".join(lines[part * size:(part + 1) * size]))
        yield part
        time.sleep(pause)


def wait_analysed(store: Store, site: str, position: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        row = store.site(site)
        if row is not None and row.position >= position:
            return
        assert time.monotonic() < deadline, f"site {site} analysed up to {row.position if row else 0} of {position}"
        time.sleep(0.1)


def taken(site: str) -> str:
    """What a worker logs when it takes the site's shard."""
    return f"shard {shard_of(site)} taken by"


def held(worker: WorkerProcess) -> set[int]:
    """The shards the worker holds, as its log tells: taken and not given back since."""
    log = worker.log()
    return {int(shard) for shard in set(re.findall(r"shard (\d+) taken by", log))
            if log.count(f"shard {shard} taken by") > log.count(f"shard {shard} given back")}


def wait_held(workers: list[WorkerProcess], counts: list[int], timeout: float = 60) -> None:
    """Until each worker holds as many shards as `counts` says."""
    deadline = time.monotonic() + timeout
    while [len(held(w)) for w in workers] != counts:
        assert time.monotonic() < deadline, ([len(held(w)) for w in workers], [w.log()[-2000:] for w in workers])
        time.sleep(0.1)


def owner_of(workers: list[WorkerProcess], site: str) -> WorkerProcess:
    """The worker that holds the site's shard now."""
    holders = [w for w in workers if shard_of(site) in held(w)]
    assert len(holders) == 1, [w.log()[-2000:] for w in workers]
    return holders[0]


def assert_analysed_once(cluster: NatsCluster, store: Store, site: str, sample: str) -> None:
    """Once the agent has published every line of the site's log: the store holds the findings,
    counts and revisions of one uninterrupted analysis of its events, every line counted once, and
    the findings subject has each finding once per revision, never going back."""
    lines = (SAMPLES / sample / "broker" / "mosquitto.log").read_bytes().splitlines()
    deadline = time.monotonic() + 60
    while published_lines(cluster, site) < len(lines):
        assert time.monotonic() < deadline, f"the agent of {site} did not publish every line"
        time.sleep(0.2)
    expected, _ = reference(cluster, site)
    # its last message: an event, or a count (the agent sends those every second)
    wait_analysed(store, site, asyncio.run(_stream(cluster, EVENTS_STREAM, events_filter(site)[:-1] + ">")
                                           )[-1][0])
    stored = dict(store.site_findings(site))
    assert {key: (f["count"], f["revision"]) for key, f in stored.items()} == expected, site
    row = store.site(site)
    events = asyncio.run(_stream(cluster, EVENTS_STREAM, events_filter(site)))
    assert row is not None and row.events == len(events) and row.hosts == ["gw-1"]
    # every line of the log once: those sent as events and the routine ones sent as counts
    assert row.lines == len(lines), (row.lines, len(lines))
    # the findings subject: each finding once per revision, never going back
    published: dict[str, list[int]] = {}
    for _, _, message in asyncio.run(_stream(cluster, FINDINGS_STREAM, f"correlator.findings.{site}")):
        assert message["site"] == site and message["kind"] == "finding"
        published.setdefault(message["key"], []).append(message["finding"]["revision"])
    assert published.keys() == expected.keys()
    for key, revisions in published.items():
        assert revisions == sorted(set(revisions)), (key, revisions)
        assert revisions[-1] == expected[key][1]


@pytest.mark.timeout(300)
def test_a_killed_live_worker_hands_its_site_over_and_every_finding_is_made_once(
        nats_cluster: NatsCluster, postgres_url: str, tmp_path: Path) -> None:
    """The second worker joins while the first analyses both sites: the first gives half the
    shards back between two batches and the newcomer takes them; then the owner of plant-1's
    shard is killed mid-flow."""
    store = open_store(postgres_url, tmp_path / "reader")
    workers = [live_worker(nats_cluster, postgres_url, tmp_path, "live-0")]
    agents: list[subprocess.Popen[bytes]] = []
    try:
        wait_logged(workers[0], "taking sites")
        wait_held(workers, [DEFAULT_SHARDS])
        logs, _ = agents_on_first_lines(nats_cluster, tmp_path, agents)
        for site in SITES:
            deadline = time.monotonic() + 60
            while not any(taken(site) in w.log() for w in workers):
                assert time.monotonic() < deadline, [w.log()[-2000:] for w in workers]
                time.sleep(0.1)
        for site in SITES:
            wait_analysed(store, site, 1)
        workers.append(live_worker(nats_cluster, postgres_url, tmp_path, "live-1"))
        wait_held(workers, [DEFAULT_SHARDS // 2, DEFAULT_SHARDS // 2])
        assert "given back" in workers[0].log() and "given back" not in workers[1].log()
        victim = owner_of(workers, "plant-1")
        heir = next(w for w in workers if w is not victim)
        wait_analysed(store, "plant-1", 1)
        rest = (SAMPLES / SITES["plant-1"] / "broker" / "mosquitto.log").read_bytes().splitlines(keepends=True)[10:]
        takes = heir.log().count(taken("plant-1"))  # it may have held the shard before the second worker came
        for part in write_slowly(logs["plant-1"], rest, chunks=6, pause=0.3):
            if part == 2:  # events flowing: the owner dies mid-stream
                victim.kill()
        more = (SAMPLES / SITES["plant-2"] / "broker" / "mosquitto.log").read_bytes().splitlines(keepends=True)[10:]
        logs["plant-2"].open("ab").write(b"".join(more))
        deadline = time.monotonic() + 60
        while heir.log().count(taken("plant-1")) == takes:
            assert time.monotonic() < deadline, heir.log()[-3000:]
            time.sleep(0.1)
        # the heir resumed plant-1 from its checkpoint: it read again only what followed it
        resumed = re.findall(rf"shard {shard_of('plant-1')}: (\d+) of its sites from their checkpoints, (\d+) "
                             r"earlier messages read again from message (\d+) to resume after message (\d+)",
                             heir.log())
        assert resumed, heir.log()[-3000:]
        restored, again, start, floor = map(int, resumed[-1])
        assert restored >= 1 and start > 1 and again < floor, resumed
        for site, sample in SITES.items():
            assert_analysed_once(nats_cluster, store, site, sample)
        assert "Traceback" not in heir.log() and " ERROR " not in heir.log(), heir.log()[-3000:]
        assert {f["id"] for _, f in store.site_findings("plant-1")} == {
            "acl.publish_denied", "tls.client_cert_expired", "auth.bad_credentials"}
        assert {f["id"] for _, f in store.site_findings("plant-2")} == {"session.client_id_takeover"}
    finally:
        for process in agents:
            process.send_signal(signal.SIGTERM)
        for process in agents:
            process.wait(timeout=30)
        for worker in workers:
            worker.stop()
        store.close()


async def _consumer_leader(cluster: NatsCluster, shard: int) -> str:
    client = await nats.connect(servers=cluster.urls)
    try:
        info = await client.jetstream().consumer_info(EVENTS_STREAM, shard_consumer(shard))
        assert info.cluster is not None and info.cluster.leader is not None, info
        return str(info.cluster.leader)
    finally:
        await client.close()


@pytest.mark.timeout(300)
def test_nats_nodes_killed_while_a_live_worker_analyses_lose_and_repeat_nothing(
        nats_cluster: NatsCluster, postgres_url: str, tmp_path: Path) -> None:
    """While events flow, the node leading plant-1's shard consumer is killed with SIGKILL (the
    consumer, kept in memory on three nodes, goes on from another), and later all three nodes at
    once (a consumer in memory is lost with them: the worker, whose lease outlives the outage,
    makes it again from the last message it analysed): every line analysed once, every finding
    stored and published once per revision."""
    store = open_store(postgres_url, tmp_path / "reader")
    worker = live_worker(nats_cluster, postgres_url, tmp_path, "live-0", lease="60")
    agents: list[subprocess.Popen[bytes]] = []
    try:
        wait_held([worker], [DEFAULT_SHARDS])
        logs, rests = agents_on_first_lines(nats_cluster, tmp_path, agents)
        for site in SITES:
            wait_analysed(store, site, 1)
        leader = asyncio.run(_consumer_leader(nats_cluster, shard_of("plant-1")))
        half = len(rests["plant-1"]) // 2
        for part in write_slowly(logs["plant-1"], rests["plant-1"][:half], chunks=4, pause=0.3):
            if part == 1:
                nats_cluster.kill(next(i for i, n in enumerate(nats_cluster.nodes) if n.name == leader))
        nats_cluster.restart_all()
        wait_analysed(store, "plant-1", 1)
        for index in range(len(nats_cluster.nodes)):
            nats_cluster.kill(index)
        logs["plant-1"].open("ab").write(b"".join(rests["plant-1"][half:]))
        logs["plant-2"].open("ab").write(b"".join(rests["plant-2"]))
        time.sleep(1)
        nats_cluster.restart_all()
        for site, sample in SITES.items():
            assert_analysed_once(nats_cluster, store, site, sample)
        log = worker.log()
        assert re.search(rf"shard {shard_of('plant-1')}: its consumer (was lost|lost its state) with the "
                         "cluster", log), log[-3000:]
        assert log.count(taken("plant-1")) == 1, log[-3000:]  # the same run went on throughout
    finally:
        for process in agents:
            process.send_signal(signal.SIGTERM)
        for process in agents:
            process.wait(timeout=30)
        worker.stop()
        store.close()


async def _agree(cluster: NatsCluster, shards: int) -> None:
    client = await nats.connect(servers=cluster.urls)
    try:
        await ensure_events(client.jetstream(), Limits(replicas=3, shards=shards), 1024**2)
    finally:
        await client.close()


@pytest.mark.timeout(120)
def test_a_stopped_live_worker_hands_its_shards_over_at_once_and_every_node_has_the_same_shard_count(
        nats_cluster: NatsCluster, postgres_url: str, tmp_path: Path) -> None:
    """With a lease of 60 s, a worker stopped with SIGTERM leaves its shards to the other within
    seconds: its key in the workers' bucket and its leases are gone, not left to lapse. A node
    whose `fleet_shards` differs from the cluster's refuses to start."""
    env = {"CORRELATOR_SITE_LEASE": "60", "CORRELATOR_NATS_REPLICAS": "3"}
    workers = [WorkerProcess(nats_cluster.url, tmp_path / "state", tmp_path / f"live-{i}.log", "--live", "--database",
                             postgres_url, env=env) for i in range(2)]
    try:
        wait_held(workers, [DEFAULT_SHARDS // 2, DEFAULT_SHARDS // 2])
        stopped = time.monotonic()
        workers[1].stop()
        wait_held(workers[:1], [DEFAULT_SHARDS], timeout=30)
        assert time.monotonic() - stopped < 20, "the shards waited for the stopped worker's lease to lapse"
        asyncio.run(_agree(nats_cluster, DEFAULT_SHARDS))  # the same count: agreed
        with pytest.raises(CorrelatorError, match=f"fleet_shards is 16 but the cluster's is {DEFAULT_SHARDS}"):
            asyncio.run(_agree(nats_cluster, 16))
    finally:
        for worker in workers:
            worker.stop()


async def _settled_view(js: JetStreamContext, done: Callable[[LagView], bool], timeout: float = 10.0) -> LagView:
    """The lag view once `done` holds of it (or the last one after `timeout`): a 3-node cluster
    answers the consumer list from what its nodes have applied so far."""
    deadline = asyncio.get_running_loop().time() + timeout
    view = await lag_view(js)
    while not done(view) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
        view = await lag_view(js)
    return view


def test_a_sites_lag_counts_its_own_messages_not_analysed(nats_cluster: NatsCluster) -> None:
    """Two sites of one shard: the shard's consumer lags by both sites' messages, each site by its
    own messages after the position a worker stored for it."""
    first = "plant-0"
    second = next(f"plant-{n}" for n in range(1, 1000) if shard_of(f"plant-{n}") == shard_of(first))
    shard = shard_of(first)

    async def check() -> None:
        client = await nats.connect(servers=nats_cluster.urls)
        try:
            js = client.jetstream()
            await ensure_events(js, Limits(replicas=3), 1024**2)
            seqs: dict[str, list[int]] = {}
            for site, count in ((first, 3), (second, 2)):
                for n in range(count):
                    ack = await js.publish(subject(site, "gw-1"), b"{}", headers={"Nats-Msg-Id": f"{site}/{n}"})
                    seqs.setdefault(site, []).append(ack.seq)
            # no worker took the shard yet: every kept message of each site
            assert await site_lags(js, await lag_view(js), {}) == {first: 3, second: 2}
            # the shard's consumer as its worker makes it, nothing acknowledged: the shard lags by 5
            await js.add_consumer(EVENTS_STREAM, ConsumerConfig(
                durable_name=shard_consumer(shard), filter_subject=shard_filter(shard), ack_policy=AckPolicy.ALL))
            # the cluster lists a new consumer, and its acknowledgements, a moment later
            view = await _settled_view(js, lambda v: v.shards.get(shard) == 5)
            assert view.shards[shard] == 5 and set(view.lagging()) == {first, second}
            assert await site_lags(js, view, {first: seqs[first][-1]}) == {first: 0, second: 2}
            assert await site_lags(js, view, {first: seqs[first][0]}) == {first: 2, second: 2}
            # one site counted per call at most: the other reports its shard's lag until a later call
            assert await site_lags(js, view, {first: seqs[first][-1]}, most=1) == {first: 0, second: 5}
            # and the next call, one further round the lagging sites, counts the other
            assert await site_lags(js, view, {first: seqs[first][-1]}, most=1, first=1) == {first: 5, second: 2}
            # everything acknowledged: no site lags, and none is asked about
            reader = await js.pull_subscribe_bind(durable=shard_consumer(shard), stream=EVENTS_STREAM)
            messages = await reader.fetch(5, timeout=5)
            await messages[-1].ack_sync()
            view = await _settled_view(js, lambda v: v.lagging() == [])
            assert view.lagging() == [] and await site_lags(js, view, {}) == {first: 0, second: 0}
            # the short-lived counting consumers are gone (as the cluster's list says a moment later)
            deadline = asyncio.get_running_loop().time() + 10
            names = [info.name for info in await js.consumers_info(EVENTS_STREAM)]
            while names != [shard_consumer(shard)] and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
                names = [info.name for info in await js.consumers_info(EVENTS_STREAM)]
            assert names == [shard_consumer(shard)]
        finally:
            await client.close()

    asyncio.run(check())


@pytest.mark.timeout(300)
def test_the_api_serves_the_sites_findings_and_streams_them_with_removals_and_resume(
        nats_cluster: NatsCluster, postgres_url: str, tmp_path: Path) -> None:
    """A site's client log shows refused connections; then its broker's log arrives, whose TLS
    listener never started: a more specific cause, so the stream retracts the first finding. The
    cluster held a consumer of the per-site layout before the shards: the worker removes it, and
    its shards' consumers are left for the cluster to remove once unread."""
    incident = SAMPLES / "broker_tls_config_error"
    folder = tmp_path / "plant-3"
    (folder / "clients").mkdir(parents=True)
    shutil.copy(incident / "clients" / "edge-02.log", folder / "clients" / "edge-02.log")
    asyncio.run(_old_site_consumer(nats_cluster, "plant-0"))
    worker = live_worker(nats_cluster, postgres_url, tmp_path, "live")
    site_agent = None
    try:
        wait_logged(worker, "taking sites")
        assert "removed 1 consumers of the per-site layout" in worker.log()
        assert "correlator-site-plant-0" not in asyncio.run(_consumers(nats_cluster))
        server = api_node(nats_cluster.url, tmp_path / "api", database=postgres_url, nats_replicas=3)
        try:
            with server.client(timeout=httpx.Timeout(30)) as client:
                assert client.get("/sites").json() == {"items": []}
                no_site = client.get("/sites/plant-3/findings")
                assert no_site.status_code == 404 and no_site.json()["error"] == "not_found"
                assert client.get("/sites/no.such/findings").status_code == 422
                site_agent = agent(nats_cluster, folder, "plant-3", tmp_path / "agent.log")
                with client.stream("GET", "/sites/plant-3/stream") as response:
                    events = sse_events(response)
                    ident, kind, refused = next(events)
                    assert kind == "finding" and refused["id"] == "net.connection_refused"
                    assert refused["site"] == "plant-3" and refused["key"].startswith("net.connection_refused")
                    first_id = int(ident)
                    threading.Timer(0.2, shutil.copy, (incident / "broker" / "mosquitto.log",
                                                       folder / "mosquitto.log")).start()
                    seen = []
                    for ident, kind, data in events:
                        seen.append((kind, data["id"]))
                        if kind == "removed":
                            assert data == {"site": "plant-3", "key": refused["key"], "id": "net.connection_refused"}
                            removed_id = int(ident)
                            break
                    assert ("finding", "broker.tls_config_error") in seen and removed_id > first_id
                # what the store says now, on any API node
                deadline = time.monotonic() + 30
                while True:
                    found = client.get("/sites/plant-3/findings").json()
                    if {f["id"] for f in found["items"]} == {"broker.tls_config_error"}:
                        break
                    assert time.monotonic() < deadline, found
                    time.sleep(0.2)
                assert found["site"] == "plant-3" and found["items"][0]["key"].startswith("broker.tls_config_error")
                sites = client.get("/sites").json()["items"]
                assert [s["site"] for s in sites] == ["plant-3"]
                assert sites[0]["hosts"] == ["gw-1"] and sites[0]["findings"] == 1 and sites[0]["events"] > 0
                assert sites[0]["lines"] >= sites[0]["events"]
                assert sites[0]["worst_severity"] == found["items"][0]["severity"]
                # resume after the first event: the rest comes again, in order, the removal included
                with client.stream("GET", "/sites/plant-3/stream", headers={"Last-Event-ID": str(first_id)}
                                   ) as response:
                    resumed = []
                    for ident, kind, _ in sse_events(response):
                        resumed.append(int(ident))
                        if int(ident) == removed_id:
                            assert kind == "removed"
                            break
                    assert resumed == sorted(resumed) and resumed[0] > first_id
                # a new client of every site: the current findings first
                with client.stream("GET", "/sites/stream", headers={"Last-Event-ID": "99999999"}) as response:
                    _, kind, current = next(sse_events(response))
                    assert kind == "finding" and current["site"] == "plant-3"
                    assert current["id"] == "broker.tls_config_error"
                shards = asyncio.run(_consumers(nats_cluster))
                assert shards[f"correlator-shard-{shard_of('plant-3')}"] == 7 * 86400  # fleet_retention_days
                deadline = time.monotonic() + 30
                while 'correlator_site_lag{site="plant-3"} 0.0' not in (
                        metrics := httpx.get(server.url + "/metrics", timeout=HTTP_TIMEOUT).text):
                    assert time.monotonic() < deadline, metrics
                    time.sleep(0.2)
                schema = client.get("/openapi.json").json()["paths"]
                for path in ("/api/v1/sites", "/api/v1/sites/{site}/findings", "/api/v1/sites/stream",
                             "/api/v1/sites/{site}/stream"):
                    assert schema[path]["get"]["summary"], path
        finally:
            server.stop()
    finally:
        if site_agent is not None:
            site_agent.send_signal(signal.SIGTERM)
            site_agent.wait(timeout=30)
        worker.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_the_tui_shows_a_remote_site_live(nats_cluster: NatsCluster, tmp_path: Path) -> None:
    """`correlator tui --nats URL --site SITE`: the live screens fill from the site's events on
    the cluster, with the finding a local watch of its logs makes."""
    folder = tmp_path / "plant-4"
    folder.mkdir()
    shutil.copy(SAMPLES / "bad_credentials" / "broker" / "mosquitto.log", folder / "mosquitto.log")
    site_agent = agent(nats_cluster, folder, "plant-4", tmp_path / "agent.log")
    try:
        source = RemoteSiteSource(nats_cluster.url, "plant-4")
        app = create_app(ScreenSettings(title="remote", clock=time.time, tick=0.2, history=1e12), source)
        async with app.run_test(size=(120, 30)) as pilot:
            timeline = app.query_one(Timeline)
            lines = len((folder / "mosquitto.log").read_text().splitlines())
            deadline = time.monotonic() + 60
            while not any(f.id == "auth.bad_credentials" for f in app.ordered) or timeline.count < lines:
                assert time.monotonic() < deadline, f"not on screen: {app.ordered}, {timeline.count} events"
                await pilot.pause(0.1)
            assert timeline.count == lines
            assert source.status() == "live: site plant-4"
            assert [s.name for s in source.source_info()] == ["broker@gw-1"]
    finally:
        site_agent.send_signal(signal.SIGTERM)
        site_agent.wait(timeout=30)
    with pytest.raises(CorrelatorError):
        RemoteSiteSource(nats_cluster.url, "no.such")
