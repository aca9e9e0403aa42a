"""The edge agent against a real 3-node NATS cluster: every line of a real broker log becomes one
event on correlator.events.<shard>.<site>.<host> (routine traffic: a count on the same subject with
`.counts` after it),
in order, also when the whole cluster is down for a while (the agent buffers, then catches up) and
when the agent itself restarts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats
from api_helpers import SAMPLES
from fleet.nats_cluster import NatsCluster

from correlator.engine.evaluate import Engine
from correlator.engine.facts import Artifacts
from correlator.engine.rules import load_rules
from correlator.fleet.agent import EVENTS_STREAM, subject
from correlator.formats.registry import default_registry
from correlator.sources.files import LogFile

SUBJECT = subject("plant-1", "gw-1")


async def _stored(cluster: NatsCluster, to: str) -> list[tuple[str, dict[str, Any]]]:
    """(message id, body) of every message stored for the subject `to`, in stream order."""
    client = await nats.connect(servers=cluster.urls)
    try:
        js = client.jetstream()
        info = await js.stream_info(EVENTS_STREAM)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(EVENTS_STREAM, seq)
            if msg.subject == to:
                found.append(((msg.headers or {}).get("Nats-Msg-Id", ""), json.loads(msg.data or b"{}")))
        return found
    finally:
        await client.close()


def _wait_events(cluster: NatsCluster, count: int, timeout: float = 90) -> list[tuple[str, dict[str, object]]]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = asyncio.run(_stored(cluster, SUBJECT))
        except Exception:  # the cluster is still electing its leaders
            found = []
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _agent(cluster: NatsCluster, folder: Path, state: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "correlator", "agent", str(folder), "--nats", cluster.url,
                                 "--site", "plant-1", "--host", "gw-1", "--state", str(state)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "CORRELATOR_NATS_REPLICAS": "3"})


def test_the_agent_publishes_each_line_once_in_order_through_an_outage_and_a_restart(
        nats_cluster: NatsCluster, tmp_path: Path) -> None:
    lines = (SAMPLES / "bad_credentials" / "broker" / "mosquitto.log").read_bytes().splitlines(keepends=True)
    assert len(lines) > 10
    first, rest = lines[: len(lines) // 2], lines[len(lines) // 2:]
    folder = tmp_path / "site"
    folder.mkdir()
    log = folder / "mosquitto.log"
    log.write_bytes(b"".join(first))
    state = tmp_path / "agent.json"
    agent = _agent(nats_cluster, folder, state, tmp_path / "agent.log")
    try:
        assert len(_wait_events(nats_cluster, len(first))) == len(first)
        for i in range(len(nats_cluster.nodes)):  # the plant's uplink is down: no node answers
            nats_cluster.kill(i)
        with log.open("ab") as out:
            out.write(b"".join(rest))
        time.sleep(3)
        assert agent.poll() is None
        nats_cluster.restart_all()
        found = _wait_events(nats_cluster, len(lines))
        assert len(found) == len(lines)
        offsets = [int(str(event["offset"])) for _, event in found]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(lines)  # in order, each once
        assert [str(event["raw"]) for _, event in found] == [line.decode().rstrip("\n") for line in lines]
        assert all(event["source"] == "broker" for _, event in found)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    # a restarted agent reads the files again but publishes nothing twice
    again = _agent(nats_cluster, folder, state, tmp_path / "agent2.log")
    try:
        time.sleep(5)
        assert len(asyncio.run(_stored(nats_cluster, SUBJECT))) == len(lines)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)




def test_routine_traffic_goes_up_as_counts_equal_to_the_batch_reader_s(
        nats_cluster: NatsCluster, tmp_path: Path) -> None:
    """A real broker log with `log_type all`: its routine PUBLISH/PUBACK lines arrive as counts per
    kind, client and second, the rest as events, and together they are what `analyze` reads."""
    folder = tmp_path / "site"
    folder.mkdir()
    log = folder / "mosquitto.log"
    log.write_bytes((SAMPLES / "mixed" / "broker" / "mosquitto.log").read_bytes())
    batch = LogFile(log, default_registry())
    batch.count_routine(Engine(load_rules([])[0], Artifacts()).needs())
    expected = {e.offset: e.kind for e in batch.events()}
    assert batch.routine.lines > 20 and expected
    agent = _agent(nats_cluster, folder, tmp_path / "agent.json", tmp_path / "agent.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                events = asyncio.run(_stored(nats_cluster, SUBJECT))
                counts = asyncio.run(_stored(nats_cluster, subject("plant-1", "gw-1", counts=True)))
            except Exception:  # the cluster is still electing its leaders
                events, counts = [], []
            if len(events) + sum(int(c["lines"]) for _, c in counts) >= len(expected) + batch.routine.lines:
                break
            assert time.monotonic() < deadline, (len(events), len(counts))
            time.sleep(0.5)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    assert {int(e["offset"]): e["kind"] for _, e in events} == expected
    kinds: dict[str, int] = {}
    seconds: dict[int, int] = {}
    clients: set[str] = set()
    for _, body in counts:
        for kind, client, second, n in body["counts"]:
            kinds[kind] = kinds.get(kind, 0) + n
            seconds[second] = seconds.get(second, 0) + n
            clients.add(client)
    assert kinds == batch.routine.kinds
    assert seconds == batch.routine.seconds
    assert clients >= {"edge-30", "viewer-33", "hmi-30"} and "" not in clients
    ids = [msg_id for msg_id, _ in [*events, *counts]]
    assert len(set(ids)) == len(ids)
