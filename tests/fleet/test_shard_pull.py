"""A shard's consumer read in batches (fleet/shard_pull.py) on a real 3-node cluster: what is
stored comes at once and in order, at most a batch at a time, each message's stream position read
from its reply subject as nats-py's metadata reads it; a quiet consumer's request waits for
the next message and ends at its expiry; a consumer gone never holds the read past it."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from fleet.nats_cluster import NatsCluster
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from correlator.fleet.shard_pull import ShardPull, stream_position


def test_a_shards_messages_come_in_batches_in_order_and_a_quiet_one_waits(nats_cluster: NatsCluster) -> None:
    async def check() -> None:
        client = await nats.connect(servers=nats_cluster.urls)
        try:
            js = client.jetstream()
            await js.add_stream(StreamConfig(name="PULLED", subjects=["pulled.>"], num_replicas=3))
            await js.add_consumer("PULLED", ConsumerConfig(durable_name="shard", ack_policy=AckPolicy.ALL,
                                                           filter_subject="pulled.>"))
            for n in range(7):
                await js.publish(f"pulled.{n % 2}", str(n).encode())
            pull = await ShardPull(client, "PULLED", "shard").start()
            try:
                first = await pull.fetch(5, wait=2)
                rest = await pull.fetch(5, wait=2)
                assert [int(m.data) for m in first + rest] == list(range(7))
                assert len(first) == 5
                # the stream position read from the reply subject alone is the metadata's
                assert [stream_position(m) for m in first + rest] == [m.metadata.sequence.stream
                                                                      for m in first + rest] == list(range(1, 8))
                await rest[-1].ack()  # acknowledges all seven
                started = time.monotonic()
                with pytest.raises(TimeoutError):
                    await pull.fetch(5, wait=1)
                assert 0.9 < time.monotonic() - started < 2.5
                later = asyncio.create_task(pull.fetch(5, wait=5))
                await asyncio.sleep(0.3)
                started = time.monotonic()
                await js.publish("pulled.1", b"7")
                assert [int(m.data) for m in await later] == [7]
                assert time.monotonic() - started < 1.0  # the message ended the wait, not the expiry
                await js.delete_consumer("PULLED", "shard")
                started = time.monotonic()
                with pytest.raises((TimeoutError, NatsError)):
                    await pull.fetch(5, wait=1)
                assert time.monotonic() - started < 3.0
            finally:
                await pull.close()
        finally:
            await client.close()

    asyncio.run(check())
