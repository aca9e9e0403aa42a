"""`correlator agent PATH... --nats URL --site SITE [--host HOST]`: an edge agent that follows a
plant's logs with the live analysis's own tailer and parsers (correlator/live_analysis.py) and
publishes each normalised event to `correlator.events.<shard>.<site>.<host>` on the NATS cluster.

- **Sharded subjects.** The subject names the site's shard (`shard_of`: a hash of the site into
  the setting `fleet_shards`, 32 by default), so the central live analysis reads a shard's sites
  with one durable consumer (a filter `correlator.events.<shard>.>`): its cost on the cluster
  follows the shards, not the sites. The count decides every site's subject, so every agent,
  live worker and API node of a cluster must have the same (`agree_shards`).

- **Routine traffic as counts.** Lines a format declares routine (a busy broker's PUBLISH/PUBACK
  flood) that no rule reads line by line are classified as the batch reader classifies them
  (correlator/sources/routine.py) and never become events: every COUNTS_EVERY seconds each file's
  routine lines since the last count go to `correlator.events.<shard>.<site>.<host>.counts` (the
  shard's consumer reads them with the events, in one order) as one message of
  counts per kind, client and second (`{"source", "file", "first", "last", "lines", "counts":
  [[kind, client, second, n], ...]}`, offsets of the first and last line counted). A plant's
  uplink carries the few events that matter and a few hundred bytes a second of numbers.
- **Once, whatever happens to the link.** Each event's `Nats-Msg-Id` is built from its source,
  file, byte offset and time (a count's from the offsets of its first and last line), so a
  publish retried after a lost answer (a node that died, a link that dropped) is recognised by
  the stream and stored once. Across a restart of the agent, the positions reached in each file
  (by events, and by counts) are kept in a small state file (`--state FILE`): what was
  published before is not published again.
- **In order, through an outage.** One publisher sends the events in the order the timeline
  released them and waits for each to be stored before the next; while no node answers, the
  events wait in memory (`BUFFER_EVENTS` at most, then the tailer waits too and the log files
  themselves are the buffer) and go out in order when the link is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import zlib
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import KeyWrongLastSequenceError

from correlator.analysis import Options
from correlator.errors import CorrelatorError
from correlator.fleet import DEFAULT_SHARDS, QueueUnavailable
from correlator.fleet.layout import DUPLICATE_WINDOW, Limits, ensure_bucket, ensure_stream
from correlator.fleet.link import Link, retrying, server_urls
from correlator.live_analysis import LiveAnalysis, LiveUpdate, RoutineBatch
from correlator.model import Event
from correlator.sources.routine import RoutineLine

log = logging.getLogger("correlator.fleet")

EVENTS_STREAM = "CORRELATOR_EVENTS"
EVENTS_SUBJECTS = "correlator.events.>"
#: The last token of a counts subject (`correlator.events.<shard>.<site>.<host>.counts`).
COUNTS_TOKEN = "counts"
#: The key-value bucket of what every node of a cluster must agree on (key `shards`).
LAYOUT_BUCKET = "correlator-fleet-layout"
#: Seconds between two count messages of a file (its routine lines are summed meanwhile).
COUNTS_EVERY = 1.0
#: Events waiting for the link at most before the tailer is held back.
BUFFER_EVENTS = 200_000
#: What a site or host name may hold: one NATS subject token.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def shard_of(site: str, shards: int = DEFAULT_SHARDS) -> int:
    """The site's shard: every host of a site publishes into the same one, so its events keep one
    order on the shard's consumer."""
    return zlib.crc32(site.encode()) % shards


def subject(site: str, host: str, counts: bool = False, shards: int = DEFAULT_SHARDS) -> str:
    """`correlator.events.<shard>.<site>.<host>` (events), with `.counts` after it (counts)."""
    for name, value in (("site", site), ("host", host)):
        if not _TOKEN.fullmatch(value):
            raise CorrelatorError(f"the {name} {value!r} must be 1-64 letters, digits, '-' or '_' (it is part of the "
                                  "NATS subject correlator.events.<shard>.<site>.<host>)")
    events = f"correlator.events.{shard_of(site, shards)}.{site}.{host}"
    return f"{events}.{COUNTS_TOKEN}" if counts else events


def message_id(site: str, host: str, event: Event) -> str:
    """Source, file, offset and time: the same line read again (a retry, a restart) has the same
    id; a rotated file's first line has another time than its predecessor's."""
    return f"{site}/{host}/{event.source}/{event.file}@{event.offset}/{event.ts:.6f}"


def payload(event: Event) -> bytes:
    """The event as JSON. A multi-line record's `head_lines` and `reason_line` go along when they
    are not the defaults, so a finding made centrally quotes the same lines as one made locally
    (a JUL record's head and its SEVERE line, the PKIX line inside a stack trace)."""
    item = {**event.to_dict(), "ts": event.ts, "offset": event.offset, "line_count": event.line_count}
    if event.head_lines != 1:
        item["head_lines"] = event.head_lines
    if event.reason_line:
        item["reason_line"] = event.reason_line
    return json.dumps(item, separators=(",", ":")).encode()


class Counting:
    """A file's routine lines since its last count message."""

    def __init__(self, source: str, file: str) -> None:
        self.source = source
        self.file = file
        self.first = -1
        self.last = -1
        self.lines = 0
        self.table: dict[tuple[str, str, int], int] = {}

    def add(self, line: RoutineLine) -> None:
        if self.first < 0:
            self.first = line.offset
        self.last = line.offset
        self.lines += 1
        key = (line.kind, line.client, line.second)
        self.table[key] = self.table.get(key, 0) + 1

    def message_id(self, site: str, host: str) -> str:
        """The offsets of the first and last line counted, and the first second (a rotated
        file's offsets start again at 0)."""
        first = min(second for _, _, second in self.table)
        return f"{site}/{host}/{self.source}/{self.file}@{self.first}-{self.last}/{first}/counts"

    def payload(self) -> bytes:
        counts = [[kind, client, second, n] for (kind, client, second), n in sorted(self.table.items())]
        return json.dumps({"source": self.source, "file": self.file, "first": self.first, "last": self.last,
                           "lines": self.lines, "counts": counts}, separators=(",", ":")).encode()


async def ensure_events(js: JetStreamContext, limits: Limits, max_bytes: int) -> None:
    """Create the events stream if missing (else give it these limits), once this node's shard
    count is the cluster's (`agree_shards`)."""
    await agree_shards(js, limits)
    await ensure_stream(js, StreamConfig(
        name=EVENTS_STREAM, subjects=[EVENTS_SUBJECTS], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, num_replicas=limits.replicas, max_age=limits.retention, max_bytes=max_bytes,
        discard=DiscardPolicy.OLD, duplicate_window=DUPLICATE_WINDOW,
        description="correlator: normalised events and routine counts of the edge agents, by site and host"))


async def agree_shards(js: JetStreamContext, limits: Limits) -> None:
    """The first node to start stores its shard count on the cluster (key `shards` of the bucket
    LAYOUT_BUCKET, no TTL); a node with another count raises CorrelatorError instead of starting:
    its sites' events would go to (or be read from) other shards' subjects, and two workers could
    analyse one site. A cluster made before the count was a setting had 32."""
    kv = await ensure_bucket(js, LAYOUT_BUCKET, "correlator: what every agent and worker of the cluster must agree on",
                             replicas=limits.replicas)
    try:
        await kv.create("shards", str(limits.shards).encode())
        return
    except KeyWrongLastSequenceError:
        entry = await kv.get("shards")
    stored = int(entry.value or b"0")
    if stored != limits.shards:
        raise CorrelatorError(f"this node's fleet_shards is {limits.shards} but the cluster's is {stored}: every "
                              "agent, live worker and API node of a cluster must have the same (it decides the "
                              f"subject of every site's events); set fleet_shards = {stored}, or see the README to "
                              "change it")


class Positions:
    """How far each file was published (`{path: [inode, offset]}` in a JSON file), so a restarted
    agent does not publish again what it read before. An offset is taken only for the file that
    has that inode now: a log rotated since starts from its beginning. Events and counts keep
    positions of their own (the counts under `<path> counts`): a file's counts go out every
    COUNTS_EVERY seconds, its events as the timeline releases them."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offsets: dict[str, tuple[int, int]] = {}
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text())
                self.offsets = {str(k): (int(v[0]), int(v[1])) for k, v in data.items()}
            except (OSError, ValueError, TypeError, IndexError) as exc:
                raise CorrelatorError(f"the agent's state file cannot be read ({exc}): move it away", file=path
                                      ) from None
        self._dirty = False

    def published(self, event: Event) -> bool:
        return event.offset >= 0 and self.reached_in(event.file) >= event.offset

    def reached_in(self, key: str) -> int:
        """The last offset published of the file `key` names as it is now (-1: none)."""
        kept = self.offsets.get(key)
        if kept is None:
            return -1
        try:
            inode = Path(key.removesuffix(COUNTS_KEY)).stat().st_ino
        except OSError:
            return -1
        return kept[1] if inode == kept[0] else -1

    def reached(self, file: str, offset: int) -> None:
        """`file` (key: a path, or a path and COUNTS_KEY) published up to `offset`."""
        try:
            inode = Path(file.removesuffix(COUNTS_KEY)).stat().st_ino
        except OSError:
            return
        kept = self.offsets.get(file)
        if kept is not None and kept[0] == inode:
            offset = max(offset, kept[1])
        self.offsets[file] = (inode, offset)
        self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        part = self.path.with_suffix(".part")
        part.write_text(json.dumps({k: list(v) for k, v in self.offsets.items()}))
        part.replace(self.path)
        self._dirty = False


COUNTS_KEY = " counts"
"""Appended to a file's path: the key of its counts' position."""


class EdgeAgent:
    def __init__(self, paths: Sequence[Path], nats: str, site: str, host: str | None, options: Options,
                 limits: Limits, events_max_bytes: int, state: Path | None = None) -> None:
        self.site = site
        self.host = host or socket.gethostname().split(".")[0]
        self.subject = subject(site, self.host, shards=limits.shards)
        self.counts_subject = subject(site, self.host, counts=True, shards=limits.shards)
        self.link = Link(server_urls(nats), name=f"correlator-agent@{site}.{self.host}")
        try:
            self.link.run(retrying(lambda: ensure_events(self.link.js, limits, events_max_bytes),
                                   what="creating the events stream", patience=60))
        except BaseException:
            self.link.close()
            raise
        self._buffer: deque[tuple[str, str, int, str, bytes]] = deque()
        """(subject, position key, offset, message id, payload) of the messages the link has not
        taken yet, in order."""
        self._counting: dict[str, Counting] = {}
        """Per file, its routine lines since its last count message (moved to the buffer every
        COUNTS_EVERY seconds)."""
        self._room = threading.Condition()
        self._wake = asyncio.Event()
        self.published = 0
        self.counted = 0
        """Routine lines sent as counts."""
        self.positions = Positions(state)
        self.live = LiveAnalysis(paths, options, on_update=self._on_update, every_line=False,
                                 on_routine=self._on_routine)

    def _on_update(self, update: LiveUpdate) -> None:
        """On the tailer's thread: queue the new events in order (waits while the buffer is full)."""
        if not update.events:
            return
        with self._room:
            while len(self._buffer) >= BUFFER_EVENTS:
                self._room.wait(1.0)
            self._buffer.extend((self.subject, e.file, e.offset, message_id(self.site, self.host, e), payload(e))
                                for e in update.events if not self.positions.published(e))
        self.link.loop.call_soon_threadsafe(self._wake.set)

    def _on_routine(self, batch: RoutineBatch) -> None:
        """On the tailer's thread: a file's routine lines into its running count (those a
        previous run of the agent counted are left out)."""
        key = batch.file + COUNTS_KEY
        with self._room:
            done = self.positions.reached_in(key)
            counting = self._counting.get(batch.file)
            if counting is None:
                counting = self._counting[batch.file] = Counting(batch.source, batch.file)
            for line in batch.lines:
                if line.offset > done:
                    counting.add(line)

    async def _count_forever(self) -> None:
        """Every COUNTS_EVERY seconds, each file's running count into the buffer, in order."""
        while True:
            await asyncio.sleep(COUNTS_EVERY)
            with self._room:
                ready = [c for c in self._counting.values() if c.lines]
                for counting in ready:
                    del self._counting[counting.file]
                    self._buffer.append((self.counts_subject, counting.file + COUNTS_KEY, counting.last,
                                         counting.message_id(self.site, self.host), counting.payload()))
                    self.counted += counting.lines
            if ready:
                self._wake.set()

    async def _publish_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                to, file, offset, msg_id, data = self._buffer[0]
                while True:  # the same message until it is stored: order is kept through an outage
                    try:
                        await self.link.publish(to, data, msg_id)
                        break
                    except QueueUnavailable as exc:
                        log.warning("the cluster does not answer; %d messages wait (%s)", len(self._buffer), exc)
                with self._room:
                    self._buffer.popleft()
                    self._room.notify_all()
                self.published += 1
                self.positions.reached(file, offset)
            self.positions.save()

    def run(self) -> None:
        publisher = self.link.submit(self._publish_forever())
        counter = self.link.submit(self._count_forever())
        self.live.start()
        log.info("agent %s.%s publishing to %s", self.site, self.host, self.subject)
        try:
            publisher.result()
        finally:
            self.live.stop()
            counter.cancel()
            publisher.cancel()
            self.link.close()
