"""Checkpoints of the sites' live analyses, so a live worker that takes a shard over resumes each
site from its last checkpoint instead of analysing every kept message of the shard again.

- **What is checkpointed**: a site's whole analysis state as the events fed so far made it
  (live_worker.SiteAnalysis.state: the rules engine's partial matches, windows and findings,
  the session's clients and histogram, the findings shown, their revisions, the counters), and
  the stream position it stands at. Not the rules: the pickle names each rule and match it holds
  by its place in the worker's rules, and a worker whose rules or version differ (the
  fingerprint) ignores the checkpoint and reads the site's events again instead.
- **Where**: the key-value bucket `correlator-site-checkpoints`, one key per site (history 1, kept
  `fleet_retention_days`, on `nats_replicas` nodes), zlib-compressed: a few kB a site. One larger
  than a NATS message may be (the server's `max_payload`, 1 MB by default: a site with very many
  clients or open windows) goes to the object store `correlator-site-checkpoints-large` (in
  chunks, the same retention and replicas) under the site's name, and the site's key then says
  so (CheckpointStore): the object first, then the key, so the key never names a checkpoint that
  is not there whole.
- **When**: after a batch is acknowledged, for each site of it whose checkpoint is due: a new
  site at its first batch, then a random two thirds to all of `site_checkpoint_seconds` after
  its last (so the sites a worker took together do not all come due in the same second again),
  32 a step at most (live_worker.STEP_CHECKPOINTS; the rest with the next). So a checkpoint never stands
  beyond the shard's acknowledged floor, and a new owner reads again at most about
  `site_checkpoint_seconds` of the shard's messages (a checkpoint beyond the floor, which cannot
  be written by a live owner, is ignored).
- The pickle is read with an unpickler that makes only correlator's own classes and a few
  standard containers, never a function (anything that can write the bucket could otherwise
  have a worker call any function of the package with arguments of its choosing), and finds
  the rules and matches it names among the worker's own: a key written by anything else fails
  to load (and is ignored) rather than running code.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import pickle
import zlib
from collections.abc import Sequence
from typing import Any

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BadRequestError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from correlator import __version__
from correlator.engine.rules import Match, Rule

log = logging.getLogger("correlator.fleet")

CHECKPOINTS = "correlator-site-checkpoints"
#: The object store of the checkpoints larger than a NATS message may be.
LARGE_CHECKPOINTS = "correlator-site-checkpoints-large"
#: What a site's key holds when its checkpoint is in LARGE_CHECKPOINTS (then its size).
IN_OBJECT_STORE = b"in-object-store\n"
#: Bytes of a message's max_payload left for its subject, headers and framing.
PAYLOAD_MARGIN = 4096
#: Seconds a large checkpoint's chunks may take to arrive (else the site reads its events again).
OBJECT_PATIENCE = 30.0
#: JetStream's error code for "stream name already in use with a different configuration".
_NAME_IN_USE = 10058
#: Modules whose classes a checkpoint may hold (the rest is refused on load).
_ALLOWED = ("correlator.", "collections", "builtins", "datetime", "copyreg")
#: The functions of copyreg a pickle names to make an instance of an allowed class.
_COPYREG = frozenset({"_reconstructor", "__newobj__", "__newobj_ex__"})
#: The builtins a pickle of these states names (no callable that could run code).
_BUILTINS = frozenset({"set", "frozenset", "dict", "list", "tuple", "bytearray", "complex", "slice", "range",
                       "object", "float", "int", "str", "bytes", "bool"})


def fingerprint(rules: Sequence[Rule]) -> str:
    """The version and the rules' definitions: a checkpoint is read only by a worker with both."""
    digest = hashlib.blake2s(json.dumps([rule.data for rule in rules], sort_keys=True, default=str).encode(),
                             digest_size=8).hexdigest()
    return f"{__version__}/{digest}"


def _reference(key: tuple[str, int, int]) -> Any:
    """What a checkpoint names in place of one of the worker's rules or matches (`key`: its place
    in the rules); _Unpickler reads it as its own rules' object, never by calling this."""
    raise pickle.UnpicklingError(f"no rule or match {key!r} outside a checkpoint's unpickler")


class _Pickler(pickle.Pickler):
    """The worker's rules and matches as references to their place (_reference), each the first
    time it is met (later ones are the pickle's memo): through the dispatch table, which the
    pickler asks of these two classes only (a `persistent_id` is asked of every object: half of
    a checkpoint's time)."""

    def __init__(self, file: io.BytesIO, names: dict[int, tuple[str, int, int]]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.names = names
        self.dispatch_table = {Rule: self._reduce, Match: self._reduce}

    def _reduce(self, obj: Any) -> Any:
        key = self.names.get(id(obj))
        return obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL) if key is None else (_reference, (key,))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, objects: dict[tuple[str, int, int], Any]) -> None:
        super().__init__(file)
        self.objects = objects

    def persistent_load(self, pid: Any) -> Any:
        return self._reference(pid)

    def _reference(self, key: Any) -> Any:
        try:
            return self.objects[tuple(key)]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(f"no rule or match {key!r}") from None

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == _reference.__name__:
            return self._reference
        if ((module == "builtins" and name not in _BUILTINS) or (module == "copyreg" and name not in _COPYREG)
                or not module.startswith(_ALLOWED)):
            raise pickle.UnpicklingError(f"a checkpoint does not hold {module}.{name}")
        found = super().find_class(module, name)
        if module != "copyreg" and not isinstance(found, type):
            raise pickle.UnpicklingError(f"a checkpoint does not hold {module}.{name} (not a class)")
        return found


class Checkpoints:
    """Pickles and reads site states made with one worker's rules."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.fingerprint = fingerprint(rules).encode()
        self._names: dict[int, tuple[str, int, int]] = {}
        self._objects: dict[tuple[str, int, int], Rule | Match] = {}
        for r, rule in enumerate(rules):
            self._names[id(rule)] = ("rule", r, 0)
            self._objects["rule", r, 0] = rule
            for m, match in enumerate(rule.matches):
                self._names[id(match)] = ("match", r, m)
                self._objects["match", r, m] = match

    def dumps(self, position: int, state: dict[str, Any]) -> bytes:
        """The checkpoint of a state at a stream position: fingerprint, position, pickle."""
        buffer = io.BytesIO()
        _Pickler(buffer, self._names).dump(state)
        return self.fingerprint + b"\n" + str(position).encode() + b"\n" + zlib.compress(buffer.getvalue(), 1)

    def loads(self, data: bytes) -> tuple[int, dict[str, Any]]:
        """(position, state); ValueError for a checkpoint of other rules, or not one at all."""
        try:
            made_with, position, body = data.split(b"\n", 2)
        except ValueError:
            raise ValueError("not a checkpoint") from None
        if made_with != self.fingerprint:
            raise ValueError(f"made by {made_with.decode(errors='replace')}, not {self.fingerprint.decode()}")
        try:
            state = _Unpickler(io.BytesIO(zlib.decompress(body)), self._objects).load()
            return int(position), state
        except (pickle.UnpicklingError, zlib.error, EOFError, AttributeError, ImportError, TypeError,
                ValueError) as exc:
            raise ValueError(f"not a checkpoint ({type(exc).__name__}: {exc})") from None


class CheckpointStore:
    """The sites' checkpoints on the cluster: each in the bucket `correlator-site-checkpoints` under
    the site's name, or, when larger than a message may be, in the object store
    LARGE_CHECKPOINTS (made at the first such checkpoint) with the site's key saying so."""

    def __init__(self, js: JetStreamContext, bucket: KeyValue, max_payload: int, replicas: int,
                 ttl: float) -> None:
        self.js = js
        self.bucket = bucket
        self.largest = max_payload - PAYLOAD_MARGIN
        """Bytes a checkpoint may have to go in the bucket."""
        self.replicas = replicas
        self.ttl = ttl
        self._objects: ObjectStore | None = None

    async def objects(self) -> ObjectStore:
        if self._objects is None:
            try:
                self._objects = await self.js.create_object_store(LARGE_CHECKPOINTS, ObjectStoreConfig(
                    description="correlator: the sites' live analyses too large for one message",
                    ttl=self.ttl, storage=StorageType.FILE, replicas=self.replicas))
            except BadRequestError as exc:
                if exc.err_code != _NAME_IN_USE:
                    raise
                self._objects = await self.js.object_store(LARGE_CHECKPOINTS)
        return self._objects

    async def put(self, site: str, data: bytes) -> None:
        if len(data) <= self.largest:
            await self.bucket.put(site, data)
            return
        await (await self.objects()).put(site, data)
        await self.bucket.put(site, IN_OBJECT_STORE + str(len(data)).encode())

    async def get(self, site: str) -> bytes | None:
        """The site's checkpoint, or None when it has none (or its large one could not be read
        whole: the site reads its events again)."""
        try:
            entry = await self.bucket.get(site)
        except (KeyNotFoundError, NotFoundError):
            return None
        data = entry.value or b""
        if not data.startswith(IN_OBJECT_STORE):
            return data
        try:
            result = await asyncio.wait_for((await self.objects()).get(site), OBJECT_PATIENCE)
        except (TimeoutError, NatsError) as exc:  # replaced while read, or gone with its retention
            log.warning("site %s: its large checkpoint could not be read: %s", site, exc)
            return None
        return bytes(result.data or b"")
