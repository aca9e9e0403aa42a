"""What the central live analysis keeps in JetStream, and how its messages read: one place, stated
in the README.

- The agents' events and counts (`CORRELATOR_EVENTS`, agent.py) are read per shard (the sites
  hashed into the setting `fleet_shards`) through a durable pull consumer, `correlator-shard-<n>` (filter
  `correlator.events.<n>.>`, acknowledge-all): its acknowledged floor is the shard's last
  analysed message, its pending count the shard's lag (`/metrics`). Its state is kept in memory
  on `nats_replicas` nodes, not on disk: writing each consumer's state file on every change was
  about a seventh of the nodes' CPU, and a replicated consumer in memory survives a node's loss
  (one lost with the whole cluster resumes from the store's positions). The worker that owns the
  shard creates it; the cluster removes one no worker has read for `fleet_retention_days` (by
  then its events are gone too). The consumers of the per-site layout before it
  (`correlator-site-<site>`) are removed by the first live worker that starts.
- The key-value bucket `correlator-site-owners`: the lease of the worker that analyses each shard
  (key `shard-<n>`; leases.py, as for jobs), removed `site_lease` seconds after its worker stopped
  renewing it.
- The key-value bucket `correlator-live-workers`: one key per running live worker, renewed as its
  leases are; how many there are decides each one's share of the shards.
- The key-value bucket `correlator-site-checkpoints`: each site's analysis state at a position
  (checkpoints.py), read by a worker that takes its shard over.
- `CORRELATOR_FINDINGS` (subjects `correlator.findings.<site>`): each finding of a site as it is
  made or updated (`{"kind": "finding", "site", "key", "finding"}`) and each that is no longer
  current (`{"kind": "removed", "site", "key", "id"}`). Its `Nats-Msg-Id` is the site, the key and
  the finding's revision, so the same step analysed again by a worker that took the site over is
  stored once. Limits retention: `fleet_retention_days` old and `findings_max_bytes` at most, the
  oldest dropped first. Its sequence numbers are the SSE event ids of the API's site streams.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from correlator.fleet.agent import COUNTS_TOKEN, EVENTS_STREAM, ensure_events
from correlator.fleet.agent import subject as event_subject
from correlator.fleet.checkpoints import CHECKPOINTS
from correlator.fleet.layout import DUPLICATE_WINDOW, SETUP_PATIENCE, Limits, ensure_bucket, ensure_stream
from correlator.fleet.link import retrying
from correlator.model import Event

if TYPE_CHECKING:
    from correlator.api.settings import Settings

log = logging.getLogger("correlator.fleet")

FINDINGS_STREAM = "CORRELATOR_FINDINGS"
FINDINGS_SUBJECTS = "correlator.findings.>"
SITE_OWNERS = "correlator-site-owners"
LIVE_WORKERS = "correlator-live-workers"
#: The durable consumer of a shard's events: this prefix and the shard's number.
SHARD_CONSUMER = "correlator-shard-"
#: The prefix of the per-site consumers of the layout before the shards (removed at start).
OLD_SITE_CONSUMER = "correlator-site-"
#: Sites of lagging shards whose own lag one look counts at most (a short-lived consumer each).
LAG_SITES = 200
#: Seconds the cluster keeps such a consumer if its maker could not remove it.
LAG_CONSUMER_TTL = 10.0


@dataclass(frozen=True)
class SiteLimits:
    """The settings of the live analysis's streams and leases (see the module's docstring)."""

    fleet: Limits
    lease: float = 10.0
    events_max_bytes: int = 1024**3
    findings_max_bytes: int = 256 * 1024**2
    checkpoint_every: float = 30.0

    @classmethod
    def of(cls, settings: Settings) -> SiteLimits:
        return cls(fleet=Limits.of(settings), lease=settings.site_lease, events_max_bytes=settings.events_max_bytes,
                   findings_max_bytes=settings.findings_max_bytes,
                   checkpoint_every=settings.site_checkpoint_seconds)

    @property
    def heartbeat(self) -> float:
        """Seconds between renewals: three per lease, so one lost to a fail-over costs nothing."""
        return self.lease / 3


def check_site(site: str) -> str:
    """The site's name, or CorrelatorError when it cannot be one token of a subject."""
    event_subject(site, "_")
    return site


def findings_subject(site: str) -> str:
    return f"correlator.findings.{site}"


def events_filter(site: str) -> str:
    """The site's events, without its counts (one token after the host's), whatever its shard."""
    return f"correlator.events.*.{site}.*"


def shard_filter(shard: int) -> str:
    """Every event and count of the shard's sites."""
    return f"correlator.events.{shard}.>"


def shard_consumer(shard: int) -> str:
    return f"{SHARD_CONSUMER}{shard}"


def shard_lease(shard: int) -> str:
    """The shard's key in the owners' bucket."""
    return f"shard-{shard}"


def read_subject(subject: str) -> tuple[str, str, bool] | None:
    """(site, host, counts?) of an events or counts subject
    (`correlator.events.<shard>.<site>.<host>[.counts]`); None for any other subject."""
    parts = subject.split(".")
    if parts[:2] != ["correlator", "events"] or len(parts) not in (5, 6):
        return None
    if len(parts) == 6 and parts[5] != COUNTS_TOKEN:
        return None
    return parts[3], parts[4], len(parts) == 6


def host_of(subject: str) -> str:
    found = read_subject(subject)
    return found[1] if found is not None else ""


def event_of(data: bytes) -> Event:
    """An event as an agent published it (agent.payload); ValueError when the message is not one."""
    try:
        item: Any = json.loads(data)
        return Event(ts=float(item["ts"]), time_text=str(item["time_text"]), source=str(item["source"]),
                     file=str(item["file"]), line=int(item["line"]), kind=str(item["kind"]), raw=str(item["raw"]),
                     level=str(item["level"]), host=str(item.get("host", "")), fields=dict(item.get("fields") or {}),
                     format=str(item.get("format", "")), estimated=bool(item.get("estimated", False)),
                     line_count=int(item.get("line_count", 1)), offset=int(item.get("offset", -1)),
                     skew=float(item.get("skew", 0.0)), connection=item.get("connection"),
                     head_lines=int(item.get("head_lines", 1)), reason_line=int(item.get("reason_line", 0)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not an event ({type(exc).__name__}: {exc})") from None


def counted_lines(data: bytes) -> int:
    """The routine lines a count message (agent.Counting) holds; ValueError when it is not one."""
    try:
        lines = json.loads(data)["lines"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a count ({type(exc).__name__}: {exc})") from None
    if not isinstance(lines, int) or isinstance(lines, bool) or lines < 0:
        raise ValueError(f"not a count (lines {lines!r})")
    return lines


def finding_message(site: str, finding: dict[str, Any]) -> tuple[bytes, str]:
    """(payload, Nats-Msg-Id) of a new or updated finding."""
    key = finding["key"]
    body = {"kind": "finding", "site": site, "key": key, "finding": finding}
    return json.dumps(body, separators=(",", ":")).encode(), f"{site}/{key}/{finding.get('revision', 0)}"


def removal_message(site: str, key: str, revision: int) -> tuple[bytes, str]:
    """(payload, Nats-Msg-Id) of a finding that is no longer current (`revision`: its last)."""
    body = {"kind": "removed", "site": site, "key": key, "id": key.split("~", 1)[0]}
    return json.dumps(body, separators=(",", ":")).encode(), f"{site}/{key}/removed@{revision}"


async def ensure_live(js: JetStreamContext, limits: SiteLimits) -> tuple[KeyValue, KeyValue, KeyValue]:
    """Create the events and findings streams and the three buckets if missing (every live worker
    and API node calls this at its start); (owners, workers, checkpoints)."""

    async def setup() -> tuple[KeyValue, KeyValue, KeyValue]:
        await ensure_events(js, limits.fleet, limits.events_max_bytes)
        await ensure_stream(js, StreamConfig(
            name=FINDINGS_STREAM, subjects=[FINDINGS_SUBJECTS], retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE, num_replicas=limits.fleet.replicas, max_age=limits.fleet.retention,
            max_bytes=limits.findings_max_bytes, discard=DiscardPolicy.OLD, duplicate_window=DUPLICATE_WINDOW,
            description="correlator: the live findings of each site as they are made, updated and removed"))
        replicas, same_lease = limits.fleet.replicas, "every live worker needs the same site_lease"
        owners = await ensure_bucket(js, SITE_OWNERS, "correlator: the live worker analysing each site",
                                     replicas=replicas, ttl=limits.lease, if_other=same_lease)
        workers = await ensure_bucket(js, LIVE_WORKERS, "correlator: the live workers running", replicas=replicas,
                                      ttl=limits.lease, if_other=same_lease)
        checkpoints = await ensure_bucket(js, CHECKPOINTS, "correlator: each site's live analysis at a position",
                                          replicas=replicas, ttl=limits.fleet.retention)
        return owners, workers, checkpoints

    return await retrying(setup, what="creating the live analysis's streams", patience=SETUP_PATIENCE)


async def site_subjects(js: JetStreamContext) -> dict[str, tuple[int, int]]:
    """(shard, events and counts kept) per site on the cluster (every site an agent has published
    for; the shard as its subjects name it)."""
    info = await js.stream_info(EVENTS_STREAM, subjects_filter="correlator.events.>")
    counts: dict[str, tuple[int, int]] = {}
    for name, count in (info.state.subjects or {}).items():
        found, shard = read_subject(name), name.split(".")[2]
        if found is not None and shard.isdigit():
            counts[found[0]] = (int(shard), counts.get(found[0], (0, 0))[1] + count)
    return counts


async def consumers(js: JetStreamContext) -> AsyncIterator[ConsumerInfo]:
    """Every consumer of the events stream, page by page."""
    offset = 0
    while True:
        page = await js.consumers_info(EVENTS_STREAM, offset=offset)
        for info in page:
            yield info
        if len(page) < 256:  # the server's page
            return
        offset += len(page)


async def shard_lags(js: JetStreamContext) -> dict[int, int]:
    """Messages of each shard whose consumer exists that no live worker has analysed yet."""
    lags = {}
    async for info in consumers(js):
        if info.name.startswith(SHARD_CONSUMER) and info.name[len(SHARD_CONSUMER):].isdigit():
            lags[int(info.name[len(SHARD_CONSUMER):])] = (info.num_pending or 0) + (info.num_ack_pending or 0)
    return lags


@dataclass
class LagView:
    """What the cluster says of the sites' lag in two requests: each shard's (its consumer's
    pending and unacknowledged messages) and each site's shard and kept messages."""

    shards: dict[int, int]
    sites: dict[str, tuple[int, int]]

    def lagging(self) -> list[str]:
        """The sites whose shard's consumer has messages not analysed yet."""
        return [site for site, (shard, _) in self.sites.items() if self.shards.get(shard)]


async def lag_view(js: JetStreamContext) -> LagView:
    return LagView(await shard_lags(js), await site_subjects(js))


async def site_pending(js: JetStreamContext, site: str, shard: int, position: int) -> int:
    """The site's messages the cluster keeps after `position` (the last one a live worker
    analysed): the pending count of a short-lived consumer of the site's subjects from there."""
    info = await js.add_consumer(EVENTS_STREAM, ConsumerConfig(
        filter_subject=f"correlator.events.{shard}.{site}.>", deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=position + 1, ack_policy=AckPolicy.NONE, mem_storage=True, num_replicas=1,
        inactive_threshold=LAG_CONSUMER_TTL))
    try:
        return info.num_pending or 0
    finally:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(EVENTS_STREAM, info.name)


async def site_lags(js: JetStreamContext, view: LagView, positions: dict[str, int],
                    most: int = LAG_SITES, first: int = 0) -> dict[str, int]:
    """Each site's lag: the messages of its own the cluster keeps that no live worker has analysed.
    - a site whose shard's consumer has nothing pending or unacknowledged: 0, with no request;
    - a site of a lagging shard: its messages after its stored position (`positions`, the store's),
      counted by the cluster (`site_pending`), for `most` sites per call at most: the lagging
      sites from the `first`-th on, round the list (the others report their shard's lag, an upper
      bound, until a call whose `first` reaches them: the caller moves it on by `most`);
    - a site whose shard no worker has taken: every kept message of its own."""
    lagging = view.lagging()
    counted = {lagging[(first + n) % len(lagging)] for n in range(min(most, len(lagging)))}
    lags: dict[str, int] = {}
    for site, (shard, kept) in view.sites.items():
        pending = view.shards.get(shard)
        if pending is None:
            lags[site] = kept
        elif pending == 0:
            lags[site] = 0
        elif site in counted:
            lags[site] = min(pending, await site_pending(js, site, shard, positions.get(site, 0)))
        else:
            lags[site] = pending
    return lags


async def remove_old_consumers(js: JetStreamContext) -> int:
    """Remove the per-site consumers of the layout before the shards; how many there were."""
    old = [info.name async for info in consumers(js) if info.name.startswith(OLD_SITE_CONSUMER)]
    for name in old:
        try:
            await js.delete_consumer(EVENTS_STREAM, name)
        except NotFoundError:  # another worker removed it first
            continue
    return len(old)

