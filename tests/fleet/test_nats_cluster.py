"""The cluster harness itself: three real nats-server nodes form one JetStream cluster, a stream
kept on all three survives the SIGKILL of one node, and the node rejoins on its own store."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import nats
from fleet.nats_cluster import NatsCluster
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import StreamConfig, StreamInfo
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError


async def _publish(js: JetStreamContext, subject: str, number: int) -> None:
    """Publish until acknowledged: a publish sent while the stream elects a new leader gets no
    answer, and the same Nats-Msg-Id makes the retry of one that was stored a duplicate."""
    for _ in range(50):
        try:
            await js.publish(subject, str(number).encode(), timeout=1, headers={"Nats-Msg-Id": f"m{number}"})
            return
        except (NatsTimeout, NoStreamResponseError):
            await asyncio.sleep(0.2)
    raise AssertionError(f"message {number} was never acknowledged")


async def _fetch_all(subscription: JetStreamContext.PullSubscription, wanted: int) -> list[int]:
    """Fetch until `wanted` messages came: one fetch returns what the stream's leader has at hand,
    which right after a node rejoined can be part of a batch; a missing message still fails the
    test, after 30 s."""
    got: list[int] = []
    deadline = asyncio.get_running_loop().time() + 30
    while len(got) < wanted and asyncio.get_running_loop().time() < deadline:
        try:
            batch = await subscription.fetch(wanted - len(got), timeout=2)
        except NatsTimeout:
            continue
        for message in batch:
            await message.ack()
            got.append(int(message.data))
    return got


async def _settled(js: JetStreamContext, stream: str, leader_not: str | None = None,
                   timeout: float = 30) -> StreamInfo:
    """The stream's info once it has a leader (other than `leader_not`) and both replicas are
    current: a stream that just lost its leader, or whose node just rejoined, answers late or
    from a replica still catching up for a moment; one that never settles fails the test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            info = await js.stream_info(stream)
        except (NatsTimeout, ServiceUnavailableError):
            info = None
        if info is not None and info.cluster is not None and info.cluster.leader not in (None, leader_not):
            replicas = info.cluster.replicas or []
            if len(replicas) == 2 and all(peer.current for peer in replicas):
                return info
        assert loop.time() < deadline, f"the stream did not settle: {info}"
        await asyncio.sleep(0.2)


async def _roundtrip(cluster: NatsCluster) -> None:
    client = await nats.connect(servers=cluster.urls, connect_timeout=2, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.2)
    try:
        js = client.jetstream(timeout=5)
        await js.add_stream(StreamConfig(name="HARNESS", subjects=["harness.>"], num_replicas=3))
        for i in range(10):
            await _publish(js, "harness.before", i)
        info = await _settled(js, "HARNESS")  # the leader and two replicas
        assert info.cluster is not None and info.cluster.leader
        leader = info.cluster.leader
        index = next(i for i, node in enumerate(cluster.nodes) if node.name == leader)
        cluster.kill(index)
        for i in range(10, 20):  # a new leader takes over; the client fails over to a live node
            await _publish(js, "harness.after", i)
        info = await js.stream_info("HARNESS")
        assert info.state.messages == 20  # each once: the retries were recognised by their id
        assert info.cluster is not None and info.cluster.leader != leader
        cluster.restart(index)
        # the node rejoins on its own store and catches up with what it missed
        assert (await _settled(js, "HARNESS")).state.messages == 20
        subscription = await js.pull_subscribe("harness.>", durable="reader")
        assert sorted(await _fetch_all(subscription, 20)) == list(range(20))
    finally:
        await client.close()


def test_three_nodes_form_one_cluster_that_survives_a_killed_node(nats_cluster: NatsCluster) -> None:
    assert len({node.port for node in nats_cluster.nodes}) == 3
    assert all(node.alive for node in nats_cluster.nodes)
    leaders = set()
    for node in nats_cluster.nodes:
        meta = (node.monitor("/jsz") or {}).get("meta_cluster")
        assert isinstance(meta, dict)
        leaders.add(meta["leader"])
    assert len(leaders) == 1  # every node names the same JetStream meta leader
    asyncio.run(_roundtrip(nats_cluster))


def test_a_port_taken_before_a_node_binds_it_gets_the_cluster_new_ports(nats_server: str, tmp_path: Path) -> None:
    """Another process listening on a node's route port between the ports' choice and the start
    (a CI run lost its cluster to this race) costs a restart on new ports, not the test."""
    cluster = NatsCluster(tmp_path / "nats", size=3, binary=nats_server)
    taken = cluster.nodes[2].cluster_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with cluster:
            assert taken not in {port for node in cluster.nodes
                                 for port in (node.port, node.cluster_port, node.monitor_port)}
            assert all(node.alive for node in cluster.nodes)
