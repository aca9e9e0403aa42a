"""The cluster harness itself: three real nats-server nodes form one JetStream cluster, a stream
kept on all three survives the SIGKILL of one node, and the node rejoins on its own store."""

from __future__ import annotations

import asyncio

import nats
from fleet.nats_cluster import NatsCluster
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NoStreamResponseError


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


async def _roundtrip(cluster: NatsCluster) -> None:
    client = await nats.connect(servers=cluster.urls, connect_timeout=2, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.2)
    try:
        js = client.jetstream(timeout=5)
        await js.add_stream(StreamConfig(name="HARNESS", subjects=["harness.>"], num_replicas=3))
        for i in range(10):
            await _publish(js, "harness.before", i)
        info = await js.stream_info("HARNESS")
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2  # the leader and two replicas
        leader = info.cluster.leader
        index = next(i for i, node in enumerate(cluster.nodes) if node.name == leader)
        cluster.kill(index)
        for i in range(10, 20):  # a new leader takes over; the client fails over to a live node
            await _publish(js, "harness.after", i)
        info = await js.stream_info("HARNESS")
        assert info.state.messages == 20  # each once: the retries were recognised by their id
        assert info.cluster is not None and info.cluster.leader != leader
        cluster.restart(index)
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
