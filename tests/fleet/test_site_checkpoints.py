"""A site's live analysis checkpointed mid-incident and restored by another worker's analysis
(fleet/checkpoints.py) goes on exactly as the uninterrupted one: same findings, counts and
revisions; one larger than a NATS message is kept in the object store of a real cluster. The
takeover itself (a real kill -9) is in test_fleet_live.py."""

from __future__ import annotations

import asyncio
import os
import pickle
import zlib

import nats
import pytest
from api_helpers import SAMPLES
from fleet.nats_cluster import NatsCluster
from nats.errors import MaxPayloadError

from correlator.analysis import Options, analyze, prepare
from correlator.api.finding_keys import finding_key
from correlator.fleet.agent import payload
from correlator.fleet.checkpoints import CHECKPOINTS, Checkpoints, CheckpointStore, _reference, fingerprint
from correlator.fleet.layout import ensure_bucket
from correlator.fleet.live_worker import SiteAnalysis
from correlator.fleet.sites import event_of
from correlator.model import Event


def incident(name: str) -> list[Event]:
    """The incident's events as a live worker reads them from the agent's messages."""
    events: list[Event] = []
    analyze([SAMPLES / name], on_events=events.extend, every_line=True)
    return [event_of(payload(event)) for event in events]


def outcome(analysis: SiteAnalysis) -> dict[str, tuple[int, int, list[str]]]:
    return {finding_key(f.id, f.group, f.host): (f.count, f.revision, sorted(f.clients))
            for f in analysis.live.findings()}


def test_a_finding_made_from_the_agents_messages_quotes_what_analyze_quotes() -> None:
    """java_clients: Paho Java's JUL record is a head line and a SEVERE line, with JSSE's reason
    deep in its stack trace; the messages carry which lines a finding quotes, so the central
    worker's evidence reads as the local analysis's."""
    prepared = prepare(Options())
    site = SiteAnalysis("plant-1", Options(), prepared.registry, prepared.rules)
    site.feed(incident("java_clients"), {"gw-1"}, 1)
    [central] = [f for f in site.live.findings() if f.id == "tls.server_cert_untrusted"]
    [local] = [f for f in analyze([SAMPLES / "java_clients"]).findings if f.id == "tls.server_cert_untrusted"]
    quoted = [e.text for e in central.evidence if "PKIX path building failed" in e.text]
    assert quoted and all("SEVERE: connection to ssl://" in text for text in quoted)
    assert quoted == [e.text for e in local.evidence if "PKIX path building failed" in e.text]


@pytest.mark.parametrize("name", ["mixed", "client_id_takeover", "bad_credentials"])
def test_a_restored_checkpoint_goes_on_as_the_uninterrupted_analysis(name: str) -> None:
    prepared = prepare(Options())
    events = incident(name)
    whole = SiteAnalysis("plant-1", Options(), prepared.registry, prepared.rules)
    for at in range(0, len(events), 7):
        whole.feed(events[at:at + 7], {"gw-1"}, at + 7)
    half = len(events) // 2
    first = SiteAnalysis("plant-1", Options(), prepared.registry, prepared.rules)
    first.feed(events[:half], {"gw-1"}, half)
    data = Checkpoints(prepared.rules).dumps(half, first.state())
    # another worker: its own rules, loaded again
    other = prepare(Options())
    position, state = Checkpoints(other.rules).loads(data)
    heir = SiteAnalysis("plant-1", Options(), other.registry, other.rules)
    heir.restore(state)
    assert position == half and heir.events == half
    for at in range(half, len(events), 7):
        heir.feed(events[at:at + 7], {"gw-1"}, at + 7)
    assert outcome(heir) == outcome(whole) and outcome(whole)
    assert heir.events == whole.events and heir.lines == whole.lines and heir.revisions == whole.revisions


def test_a_checkpoint_of_other_rules_or_holding_anything_else_is_refused() -> None:
    prepared = prepare(Options())
    analysis = SiteAnalysis("plant-1", Options(), prepared.registry, prepared.rules)
    analysis.feed(incident("bad_credentials"), {"gw-1"}, 10)
    checkpoints = Checkpoints(prepared.rules)
    data = checkpoints.dumps(10, analysis.state())
    with pytest.raises(ValueError, match="made by"):
        Checkpoints(prepared.rules[1:]).loads(data)
    with pytest.raises(ValueError, match=r"does not hold \w+\.system"):
        evil = pickle.dumps(os.system)  # a pickle that names a function
        checkpoints.loads(checkpoints.fingerprint + b"\n1\n" + zlib.compress(evil))
    with pytest.raises(ValueError, match=r"does not hold correlator\.fleet\.checkpoints\.fingerprint \(not a class\)"):
        evil = pickle.dumps(fingerprint)  # a function of the package's own, callable with any arguments
        checkpoints.loads(checkpoints.fingerprint + b"\n1\n" + zlib.compress(evil))
    with pytest.raises(ValueError, match="no rule or match"):
        evil = pickle.dumps(_NoSuchRule())  # a rule beyond the worker's, by reference
        checkpoints.loads(checkpoints.fingerprint + b"\n1\n" + zlib.compress(evil))
    with pytest.raises(ValueError, match="other rules"):
        fewer = SiteAnalysis("plant-1", Options(), prepared.registry, prepared.rules[1:])
        fewer.restore(checkpoints.loads(data)[1])


class _NoSuchRule:
    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return _reference, (("rule", 10**6, 0),)


async def _checkpoints_on_the_cluster(cluster: NatsCluster) -> None:
    client = await nats.connect(servers=cluster.urls)
    try:
        js = client.jetstream()
        bucket = await ensure_bucket(js, CHECKPOINTS, "checkpoints", replicas=3, ttl=3600)
        store = CheckpointStore(js, bucket, client.max_payload, replicas=3, ttl=3600)
        prepared = prepare(Options())
        analysis = SiteAnalysis("plant-1", Options(), prepared.registry, prepared.rules)
        analysis.feed(incident("mixed"), {"gw-1"}, 10)
        small = Checkpoints(prepared.rules).dumps(10, analysis.state())
        # compressed state is as dense as random bytes: three times what one message may carry
        large = small + os.urandom(3 * client.max_payload)
        with pytest.raises(MaxPayloadError):  # what a site this large met before: no checkpoint at all
            await bucket.put("plant-1", large)
        assert await store.get("plant-1") is None
        await store.put("plant-1", large)
        assert await store.get("plant-1") == large
        await store.put("plant-1", small)  # the site's state shrank again
        assert await store.get("plant-1") == small
        assert Checkpoints(prepared.rules).loads(small)[0] == 10
        larger = large + os.urandom(client.max_payload)
        await store.put("plant-1", larger)
        # another worker (its own connection) reads it whole
        other = await nats.connect(servers=cluster.urls)
        try:
            ojs = other.jetstream()
            heir = CheckpointStore(ojs, await ojs.key_value(CHECKPOINTS), other.max_payload, replicas=3, ttl=3600)
            assert await heir.get("plant-1") == larger
        finally:
            await other.close()
    finally:
        await client.close()


def test_a_checkpoint_larger_than_a_message_is_kept_in_the_object_store(nats_cluster: NatsCluster) -> None:
    """A site whose checkpoint is over the 1 MB a NATS message may carry keeps it all the same, in
    chunks in the object store, and a worker taking its shard over reads it whole; one that shrinks
    goes back to the bucket."""
    asyncio.run(_checkpoints_on_the_cluster(nats_cluster))
