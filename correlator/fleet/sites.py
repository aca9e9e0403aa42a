"""What the central live analysis keeps in JetStream, and how its messages read: one place, stated
in the README.

- The agents' events (`CORRELATOR_EVENTS`, agent.py) are read per site through a durable pull
  consumer, `correlator-site-<site>` (filter `correlator.events.<site>.>`, acknowledge-all): its
  acknowledged floor is the site's last analysed event, its pending count the site's lag
  (`/metrics`). The worker that owns the site creates it.
- The key-value bucket `correlator-site-owners`: the lease of the worker that analyses each site
  (leases.py, as for jobs), removed `site_lease` seconds after its worker stopped renewing it.
- The key-value bucket `correlator-live-workers`: one key per running live worker, renewed as its
  leases are; how many there are decides each one's share of the sites.
- `CORRELATOR_FINDINGS` (subjects `correlator.findings.<site>`): each finding of a site as it is
  made or updated (`{"kind": "finding", "site", "key", "finding"}`) and each that is no longer
  current (`{"kind": "removed", "site", "key", "id"}`). Its `Nats-Msg-Id` is the site, the key and
  the finding's revision, so the same step analysed again by a worker that took the site over is
  stored once. Limits retention: `fleet_retention_days` old and `findings_max_bytes` at most, the
  oldest dropped first. Its sequence numbers are the SSE event ids of the API's site streams.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

from correlator.fleet.agent import EVENTS_STREAM, ensure_events
from correlator.fleet.agent import subject as event_subject
from correlator.fleet.layout import DUPLICATE_WINDOW, SETUP_PATIENCE, STREAM_NAME_IN_USE, Limits, ensure_stream
from correlator.fleet.link import retrying
from correlator.model import Event

if TYPE_CHECKING:
    from correlator.api.settings import Settings

log = logging.getLogger("correlator.fleet")

FINDINGS_STREAM = "CORRELATOR_FINDINGS"
FINDINGS_SUBJECTS = "correlator.findings.>"
SITE_OWNERS = "correlator-site-owners"
LIVE_WORKERS = "correlator-live-workers"
#: The durable consumer of a site's events: this prefix and the site.
SITE_CONSUMER = "correlator-site-"


@dataclass(frozen=True)
class SiteLimits:
    """The settings of the live analysis's streams and leases (see the module's docstring)."""

    fleet: Limits
    lease: float = 10.0
    events_max_bytes: int = 1024**3
    findings_max_bytes: int = 256 * 1024**2

    @classmethod
    def of(cls, settings: Settings) -> SiteLimits:
        return cls(fleet=Limits.of(settings), lease=settings.site_lease, events_max_bytes=settings.events_max_bytes,
                   findings_max_bytes=settings.findings_max_bytes)

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
    return f"correlator.events.{site}.>"


def site_consumer(site: str) -> str:
    return SITE_CONSUMER + site


def site_of(subject: str) -> str | None:
    """The site of an events or findings subject (`correlator.events.<site>.<host>`)."""
    parts = subject.split(".")
    return parts[2] if len(parts) >= 3 and parts[0] == "correlator" else None


def host_of(subject: str) -> str:
    parts = subject.split(".")
    return parts[3] if len(parts) >= 4 else ""


def event_of(data: bytes) -> Event:
    """An event as an agent published it (agent.payload); ValueError when the message is not one."""
    try:
        item: Any = json.loads(data)
        return Event(ts=float(item["ts"]), time_text=str(item["time_text"]), source=str(item["source"]),
                     file=str(item["file"]), line=int(item["line"]), kind=str(item["kind"]), raw=str(item["raw"]),
                     level=str(item["level"]), host=str(item.get("host", "")), fields=dict(item.get("fields") or {}),
                     format=str(item.get("format", "")), estimated=bool(item.get("estimated", False)),
                     line_count=int(item.get("line_count", 1)), offset=int(item.get("offset", -1)),
                     skew=float(item.get("skew", 0.0)), connection=item.get("connection"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not an event ({type(exc).__name__}: {exc})") from None


def finding_message(site: str, finding: dict[str, Any]) -> tuple[bytes, str]:
    """(payload, Nats-Msg-Id) of a new or updated finding."""
    key = finding["key"]
    body = {"kind": "finding", "site": site, "key": key, "finding": finding}
    return json.dumps(body, separators=(",", ":")).encode(), f"{site}/{key}/{finding.get('revision', 0)}"


def removal_message(site: str, key: str, revision: int) -> tuple[bytes, str]:
    """(payload, Nats-Msg-Id) of a finding that is no longer current (`revision`: its last)."""
    body = {"kind": "removed", "site": site, "key": key, "id": key.split("~", 1)[0]}
    return json.dumps(body, separators=(",", ":")).encode(), f"{site}/{key}/removed@{revision}"


async def ensure_live(js: JetStreamContext, limits: SiteLimits) -> tuple[KeyValue, KeyValue]:
    """Create the events and findings streams and the two buckets if missing (every live worker
    and API node calls this at its start); (owners, workers)."""

    async def bucket(name: str, description: str) -> KeyValue:
        try:
            return await js.create_key_value(KeyValueConfig(
                bucket=name, description=description, ttl=limits.lease, history=1, storage=StorageType.FILE,
                replicas=limits.fleet.replicas))
        except BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
            log.warning("the bucket %s exists with another TTL: every live worker needs the same site_lease", name)
            return await js.key_value(name)

    async def setup() -> tuple[KeyValue, KeyValue]:
        await ensure_events(js, limits.fleet, limits.events_max_bytes)
        await ensure_stream(js, StreamConfig(
            name=FINDINGS_STREAM, subjects=[FINDINGS_SUBJECTS], retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE, num_replicas=limits.fleet.replicas, max_age=limits.fleet.retention,
            max_bytes=limits.findings_max_bytes, discard=DiscardPolicy.OLD, duplicate_window=DUPLICATE_WINDOW,
            description="correlator: the live findings of each site as they are made, updated and removed"))
        owners = await bucket(SITE_OWNERS, "correlator: the live worker analysing each site")
        workers = await bucket(LIVE_WORKERS, "correlator: the live workers running")
        return owners, workers

    return await retrying(setup, what="creating the live analysis's streams", patience=SETUP_PATIENCE)


async def site_subjects(js: JetStreamContext) -> dict[str, int]:
    """Events kept per site on the cluster (every site an agent has published for)."""
    info = await js.stream_info(EVENTS_STREAM, subjects_filter="correlator.events.>")
    counts: dict[str, int] = {}
    for name, count in (info.state.subjects or {}).items():
        site = site_of(name)
        if site is not None:
            counts[site] = counts.get(site, 0) + count
    return counts


async def site_lags(js: JetStreamContext) -> dict[str, int]:
    """Events of each site no live worker has analysed yet: its consumer's pending and
    unacknowledged events, or every kept event of a site no worker has taken."""
    lags = {site: count for site, count in (await site_subjects(js)).items()}
    offset = 0
    while True:
        page = await js.consumers_info(EVENTS_STREAM, offset=offset)
        for info in page:
            if info.name.startswith(SITE_CONSUMER):
                lags[info.name[len(SITE_CONSUMER):]] = (info.num_pending or 0) + (info.num_ack_pending or 0)
        if len(page) < 256:  # the server's page
            return lags
        offset += len(page)
