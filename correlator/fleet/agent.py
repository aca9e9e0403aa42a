"""`correlator agent PATH... --nats URL --site SITE [--host HOST]`: an edge agent that follows a
plant's logs with the live analysis's own tailer and parsers (correlator/live_analysis.py) and
publishes each normalised event to `correlator.events.<site>.<host>` on the NATS cluster.

- **Once, whatever happens to the link.** Each event's `Nats-Msg-Id` is built from its source,
  file, byte offset and time, so a publish retried after a lost answer (a node that died, a link
  that dropped) is recognised by the stream and stored once. Across a restart of the agent, the
  position reached in each file is kept in a small state file (`--state FILE`): what was
  published before is not read again.
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
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from correlator.analysis import Options
from correlator.errors import CorrelatorError
from correlator.fleet import QueueUnavailable
from correlator.fleet.layout import DUPLICATE_WINDOW, Limits, ensure_stream
from correlator.fleet.link import Link, retrying, server_urls
from correlator.live_analysis import LiveAnalysis, LiveUpdate
from correlator.model import Event

log = logging.getLogger("correlator.fleet")

EVENTS_STREAM = "CORRELATOR_EVENTS"
EVENTS_SUBJECTS = "correlator.events.>"
#: Events waiting for the link at most before the tailer is held back.
BUFFER_EVENTS = 200_000
#: What a site or host name may hold: one NATS subject token.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def subject(site: str, host: str) -> str:
    for what, value in (("site", site), ("host", host)):
        if not _TOKEN.fullmatch(value):
            raise CorrelatorError(f"the {what} {value!r} must be 1-64 letters, digits, '-' or '_' (it is part of the "
                                  "NATS subject correlator.events.<site>.<host>)")
    return f"correlator.events.{site}.{host}"


def message_id(site: str, host: str, event: Event) -> str:
    """Source, file, offset and time: the same line read again (a retry, a restart) has the same
    id; a rotated file's first line has another time than its predecessor's."""
    return f"{site}/{host}/{event.source}/{event.file}@{event.offset}/{event.ts:.6f}"


def payload(event: Event) -> bytes:
    return json.dumps({**event.to_dict(), "ts": event.ts, "offset": event.offset, "line_count": event.line_count},
                      separators=(",", ":")).encode()


async def ensure_events(js: JetStreamContext, limits: Limits, max_bytes: int) -> None:
    await ensure_stream(js, StreamConfig(
        name=EVENTS_STREAM, subjects=[EVENTS_SUBJECTS], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, num_replicas=limits.replicas, max_age=limits.retention, max_bytes=max_bytes,
        discard=DiscardPolicy.OLD, duplicate_window=DUPLICATE_WINDOW,
        description="correlator: normalised events of the edge agents, by site and host"))


class Positions:
    """How far each file was published (`{path: [inode, offset]}` in a JSON file), so a restarted
    agent does not publish again what it read before. An offset is taken only for the file that
    has that inode now: a log rotated since starts from its beginning."""

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
        kept = self.offsets.get(event.file)
        if kept is None or event.offset < 0:
            return False
        try:
            inode = Path(event.file).stat().st_ino
        except OSError:
            return False
        return inode == kept[0] and event.offset <= kept[1]

    def reached(self, file: str, offset: int) -> None:
        try:
            inode = Path(file).stat().st_ino
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


class EdgeAgent:
    def __init__(self, paths: Sequence[Path], nats: str, site: str, host: str | None, options: Options,
                 limits: Limits, events_max_bytes: int, state: Path | None = None) -> None:
        self.site = site
        self.host = host or socket.gethostname().split(".")[0]
        self.subject = subject(site, self.host)
        self.link = Link(server_urls(nats), name=f"correlator-agent@{site}.{self.host}")
        try:
            self.link.run(retrying(lambda: ensure_events(self.link.js, limits, events_max_bytes),
                                   what="creating the events stream", patience=60))
        except BaseException:
            self.link.close()
            raise
        self._buffer: deque[tuple[str, int, str, bytes]] = deque()
        """(file, offset, message id, payload) of the events the link has not taken yet."""
        self._room = threading.Condition()
        self._wake = asyncio.Event()
        self.published = 0
        self.positions = Positions(state)
        self.live = LiveAnalysis(paths, options, on_update=self._on_update)

    def _on_update(self, update: LiveUpdate) -> None:
        """On the tailer's thread: queue the new events in order (waits while the buffer is full)."""
        if not update.events:
            return
        with self._room:
            while len(self._buffer) >= BUFFER_EVENTS:
                self._room.wait(1.0)
            self._buffer.extend((e.file, e.offset, message_id(self.site, self.host, e), payload(e))
                                for e in update.events if not self.positions.published(e))
        self.link.loop.call_soon_threadsafe(self._wake.set)

    async def _publish_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                file, offset, msg_id, data = self._buffer[0]
                while True:  # the same message until it is stored: order is kept through an outage
                    try:
                        await self.link.publish(self.subject, data, msg_id)
                        break
                    except QueueUnavailable as exc:
                        log.warning("the cluster does not answer; %d events wait (%s)", len(self._buffer), exc)
                with self._room:
                    self._buffer.popleft()
                    self._room.notify_all()
                self.published += 1
                self.positions.reached(file, offset)
            self.positions.save()

    def run(self) -> None:
        publisher = self.link.submit(self._publish_forever())
        self.live.start()
        log.info("agent %s.%s publishing to %s", self.site, self.host, self.subject)
        try:
            publisher.result()
        finally:
            self.live.stop()
            publisher.cancel()
            self.link.close()
