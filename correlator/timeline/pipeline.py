"""The timeline stage as one path: zones, clock skew, merge and stitching over a set of sources.

`correlator.analysis` (batch) and `correlator.live_analysis` (tails) call this module instead of wiring the
stages themselves, so both order, correct and stitch events the same way:

- `choose_zones(logs, config)`: each LogFile's zone, from the `--tz` rules and a peek at its first
  events (before any event is made, so naive times are parsed in the right zone once);
- `SkewTracker`: clock offsets per source. Estimation needs the broker's and the client's first
  connection attempts, so it looks ahead: the batch path reads each file's first `lookahead`
  seconds twice, once (a second LogFile on the same path) to collect its connection events for the
  tracker and once for real, corrected. Only connection events are kept (at most `max_events` per
  source), so memory does not grow with the file or with how busy it is, and at most `max_scan`
  events per source are read twice, so neither does the extra time. Live mode feeds the same
  tracker batch by batch (`observe`) and corrects each batch with the estimate known at that
  moment (`correct`); once a source's look-ahead is full its offset is frozen;
- `BatchTimeline(logs, ...)`: the batch path: zones, look-ahead and skew, `merge_chunks`, `Stitcher`;
  yields stitched events in timeline order, chunk by chunk, and hands finished connections to a
  callback. `sources()` reports each source's zone, offset and how both were found;
- `LiveTimeline`: the live path: the same tracker, `LiveMerger` (the batch merge's order with a
  watermark) and the same `Stitcher`, fed parsed batches from tailers and ticked by a timer.

Configured offsets (`--clock-offset client:edge-07=+300s`) replace the estimate for that source.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from correlator.errors import CorrelatorError
from correlator.kinds import kind_vocabulary
from correlator.model import Event, is_broker_source
from correlator.report_model import SourceInfo
from correlator.sources.files import LogFile
from correlator.timeline.connections import SUMMARY_EVENTS, Connection, Stitcher
from correlator.timeline.merge import LiveMerger, merge_chunks
from correlator.timeline.skew import (
    OffsetRule,
    SkewEstimate,
    apply_offset,
    configured_offset,
    estimate_sources,
    share_host_clocks,
)
from correlator.timeline.zones import ZoneChoice, ZoneConfig, guess_zoned

#: Seconds of each source's start that skew estimation looks at.
LOOKAHEAD = 600.0
#: Connection events per source kept for estimation at most, however busy the log.
MAX_LOOKAHEAD_EVENTS = 20_000
#: Events per source the look-ahead reads at most (it parses them twice: keep that cost bounded).
MAX_LOOKAHEAD_SCAN = 50_000
#: Events a log's look-ahead keeps for its real pass at most (see BatchTimeline._prime); past
#: them the rest of its look-ahead is read by a second reader.
PRIME_EVENTS = 10_000
#: Events LiveTimeline.hold() keeps back at most while existing files are read.
HOLD_EVENTS = 200_000
#: Seconds a live event waits for a quiet source (the merger's watermark) when the tailer polls
#: files: a line another log wrote at the same moment is only seen at the next poll.
WATERMARK_DELAY = 0.25
#: The same wait when the tailer is woken by inotify: a line written to any followed file reaches
#: the merger within milliseconds, so a longer wait guards against nothing but costs every live
#: line its latency (benchmarks/api.py: append -> SSE with client logs tailed).
PROMPT_DELAY = 0.03
#: The stitching window of the batch path (Stitcher's default), used for what live files held
#: before they were followed.
BATCH_STITCH_WINDOW = 2.0
#: The kinds that start, name or end a connection or an attempt: all estimation looks at (the
#: stitching roles of parsers/vocab/kinds.toml but `follows`, whose lines say nothing of time).
ANCHOR_KINDS = kind_vocabulary().with_any(("opens", "names", "takeover", "closes", "restart", "pending", "step",
                                           "ends_attempt"))


#: How a broker log's zone was found when its stamps are absolute times (ZoneConfig.choose): a
#: client's offset from it can be a zone of the client's own only (SkewEstimate.zone_like).
ABSOLUTE_ZONES = frozenset({"broker epoch", "from timestamps"})


def choose_zones(logs: Sequence[LogFile], config: ZoneConfig) -> list[ZoneChoice]:
    """Pick and set each log's zone before its events are made (LogFile.set_zone)."""
    choices = []
    for log in logs:
        sample = log.peek_events()
        stamped = [e.time_text for e in sample if e.time_text][:20]
        choice = config.choose(log.info.source, log.info.path, zoned_text=guess_zoned(sample),
                               broker_epoch=log.format.role == "broker" and bool(stamped)
                               and all(t.isdigit() for t in stamped))
        log.set_zone(choice.zone, choice.how)
        choices.append(choice)
    return choices


@dataclass
class _Buffer:
    path: str
    events: list[Event] = field(default_factory=list)
    first: float | None = None
    full: bool = False
    scanned: int = 0
    seen: set[int] = field(default_factory=set)


class _FarEnough(Exception):
    """The look-ahead has read every line the tracker would look at."""


@dataclass
class _Primed:
    """A log's first chunks, read by its own reader for the look-ahead, and that reader to go on
    with (or the input error it stopped at, raised where the real pass would have met it)."""

    chunks: list[list[Event]]
    rest: Iterator[list[Event]]
    error: Exception | None = None


class SkewTracker:
    """Clock offsets per source name, from look-ahead buffers (see the module doc). One source
    name is one host's clock: rotated files of one log share it."""

    def __init__(self, offsets: Sequence[OffsetRule] = (), *, lookahead: float = LOOKAHEAD,
                 max_events: int = MAX_LOOKAHEAD_EVENTS, max_scan: int = MAX_LOOKAHEAD_SCAN,
                 reach: Mapping[str, frozenset[str]] | None = None,
                 clock_groups: Mapping[str, str] | None = None) -> None:
        """`reach`: the brokers each client can talk to (estimates pair only with them);
        `clock_groups`: source -> host for logs that share one host's clock (correlator.hosts)."""
        self.rules = list(offsets)
        self.reach = dict(reach or {})
        self.clock_groups = dict(clock_groups or {})
        self.lookahead = lookahead
        self.max_events = max_events
        self.max_scan = max_scan
        self._buffers: dict[str, _Buffer] = {}
        self._estimates: dict[str, SkewEstimate] = {}
        self._dirty = False
        self._computed = float("-inf")
        #: Seconds between re-estimates while live batches keep bringing connection events.
        self.min_interval = 1.0

    def observe(self, source: str, path: str, events: Sequence[Event]) -> bool:
        """Remember a source's events while its look-ahead lasts; False once it is full."""
        buffer = self._buffers.get(source)
        if buffer is None:
            buffer = self._buffers[source] = _Buffer(path)
        if buffer.full:
            return False
        for event in events:
            # lines, not events: the bulk reader makes events of a few lines in a thousand
            buffer.scanned = max(buffer.scanned + 1, event.line)
            if buffer.scanned > self.max_scan:
                buffer.full = True
                break
            if not event.estimated:
                if buffer.first is None:
                    buffer.first = event.ts
                elif event.ts - buffer.first > self.lookahead:
                    buffer.full = True
                    break
            if event.kind in ANCHOR_KINDS:
                # only what stitching needs to find connections and attempts: a busy log's
                # publishes and pings would cost memory and say nothing about the clock
                if id(event) in buffer.seen:
                    continue  # read ahead once (prime) and fed again: count it once
                buffer.seen.add(id(event))
                buffer.events.append(event)
                self._dirty = True
                if len(buffer.events) >= self.max_events:
                    buffer.full = True
                    break
        return not buffer.full

    def finish(self, source: str) -> None:
        """The source has nothing more to look ahead at (end of file)."""
        buffer = self._buffers.get(source)
        if buffer is not None:
            buffer.full = True

    @property
    def complete(self) -> bool:
        return all(b.full for b in self._buffers.values())

    def estimates(self, *, force: bool = False) -> dict[str, SkewEstimate]:
        """Current estimates for every client source: recomputed when new connection events came,
        at most once per `min_interval` seconds (live batches) unless forced."""
        now = time.monotonic()
        if self._dirty and (force or now - self._computed >= self.min_interval):
            self._computed = now
            found = estimate_sources({s: b.events for s, b in self._buffers.items()}, reach=self.reach)
            for source, buffer in self._buffers.items():
                rule = configured_offset(self.rules, source, buffer.path)
                if rule is not None:
                    found[source] = rule
            self._estimates = share_host_clocks(found, self.clock_groups) if self.clock_groups else found
            self._dirty = False
        return self._estimates

    def offset(self, source: str) -> float:
        estimate = self.estimates().get(source)
        return estimate.offset if estimate is not None and estimate.found else 0.0

    def estimate(self, source: str) -> SkewEstimate:
        return self.estimates().get(source) or SkewEstimate(source, 0.0, "none: not a client source")

    def correct(self, source: str, events: Sequence[Event]) -> None:
        """Apply the source's current offset to events not corrected yet (live batches)."""
        offset = self.offset(source)
        if offset:
            apply_offset([e for e in events if e.skew == 0.0], offset)

    def release(self) -> None:
        """Drop the look-ahead buffers once every estimate is final."""
        self.estimates(force=True)
        for buffer in self._buffers.values():
            buffer.events = []
            buffer.seen = set()


@dataclass
class SourceTimeline:
    """What the timeline did with one source, for the report's source table."""

    info: SourceInfo
    zone: ZoneChoice
    skew: SkewEstimate

    def to_dict(self) -> dict[str, Any]:
        return {**self.info.to_dict(), "zone": self.zone.name, "zone_how": self.zone.how,
                "offset": round(self.skew.offset, 3) if self.skew.found else 0.0, "offset_how": self.skew.how,
                "skew": self.skew.to_dict()}


class BatchTimeline:
    """The batch timeline over opened LogFiles (the caller opens them: bundles, forced formats).

    Iterate `chunks()` once; `sources()` is complete after the iteration (line counts) and usable
    for zones and offsets as soon as `chunks()` has yielded its first chunk.
    """

    def __init__(self, logs: Sequence[LogFile], *, zones: ZoneConfig | None = None,
                 offsets: Sequence[OffsetRule] = (), since: float | None = None, until: float | None = None,
                 lookahead: float = LOOKAHEAD, max_lookahead_events: int = MAX_LOOKAHEAD_EVENTS,
                 stitcher: Stitcher | None = None, on_connection: Callable[[Connection], None] | None = None,
                 on_error: Callable[[LogFile, CorrelatorError], None] | None = None,
                 reach: Mapping[str, frozenset[str]] | None = None,
                 clock_groups: Mapping[str, str] | None = None) -> None:
        """`reach` and `clock_groups` come from correlator.hosts: connections are stitched and
        clocks estimated only between a client and the brokers it can talk to, and the logs of a
        host with no broker share one clock."""
        self.logs = list(logs)
        self.zone_config = zones or ZoneConfig()
        self.tracker = SkewTracker(offsets, lookahead=lookahead, max_events=max_lookahead_events, reach=reach,
                                   clock_groups=clock_groups)
        self.since = since
        self.until = until
        self.stitcher = stitcher or Stitcher(reach=reach, max_events=SUMMARY_EVENTS)
        self.on_connection = on_connection
        self.on_error = on_error
        self.connections = 0
        #: Events --since/--until left out, so a report can say why it saw so little.
        self.outside = 0
        self._zones: list[ZoneChoice] = []
        self._primed: dict[int, _Primed] = {}

    def sources(self) -> list[SourceTimeline]:
        absolute = {log.info.source for log, zone in zip(self.logs, self._zones, strict=False)
                    if zone.how in ABSOLUTE_ZONES}
        out = []
        for log, zone in zip(self.logs, self._zones, strict=False):
            skew = self.tracker.estimate(log.info.source)
            if skew.pairs and all(p.broker.event.source in absolute for p in skew.pairs):
                skew = replace(skew, reference_absolute=True)
            out.append(SourceTimeline(log.info, zone, skew))
        return out

    def chunks(self) -> Iterator[list[Event]]:
        """Stitched events in timeline order, in chunks."""
        self._zones = choose_zones(self.logs, self.zone_config)
        if self.tracker.rules or not all(is_broker_source(log.info.source) for log in self.logs):
            # brokers alone have no clock to estimate (offsets are client minus broker): their
            # start is not read twice
            for log in self.logs:
                self._look_ahead(log)
        self.tracker.release()
        streams = [self._corrected(log) for log in self.logs]
        stitcher = self.stitcher
        for run in merge_chunks(streams):
            out: list[Event] = []
            for event in run:
                out.extend(stitcher.push(event))
            self._closed()
            out = self._select(out)
            if out:
                yield out
        tail = self._select(stitcher.flush())
        self._closed()
        if tail:
            yield tail

    def events(self) -> Iterator[Event]:
        for chunk in self.chunks():
            yield from chunk

    def routine(self) -> Iterator[tuple[str, float, int]]:
        """(source, corrected time, lines) per second of the routine lines the bulk reader counted
        instead of parsing, within --since/--until (the rest count in `outside`). After `chunks()`."""
        lo = float("-inf") if self.since is None else self.since
        hi = float("inf") if self.until is None else self.until
        for log in self.logs:
            offset = self.tracker.offset(log.info.source)
            for second, lines in log.routine.seconds.items():
                ts = second - offset
                if lo <= ts <= hi:
                    yield log.info.source, ts, lines
                else:
                    self.outside += lines

    def _look_ahead(self, log: LogFile) -> None:
        """First pass: the beginning of the file feeds the skew tracker, read by the log's own
        reader (`_prime`); by a second reader of the same file in the same format and zone
        (`_probe`) for a surface that keeps where routine lines are (their rows take the final
        offsets), for a log read up to a rotated log's shared stretch (the second reader reads
        past it) and for a log read in a layout learned from its lines (the second reader reads
        it in the listed format the layout was added to): there the two readers' events differ,
        and every surface estimates the clocks from the second reader's, as before."""
        if log.on_routine is None and log.end is None and log.format is log.registry.formats.get(log.format.name):
            self._prime(log)
        else:
            self._probe(log)
        self.tracker.finish(log.info.source)

    def _prime(self, log: LogFile) -> None:
        """The look-ahead by the reader of the log's real pass: the chunks read are kept and the
        real pass starts with them, then goes on with the same reader. A log read with the bulk
        reader has events for a few lines in a thousand (routine traffic is counted), and reading
        a busy broker's start twice cost its analysis a tenth of a second (its connects are where
        its clients start: most of its events); a small client log is read once instead of
        opened twice. The tracker sees the same events in the same order as from a second
        reader; past PRIME_EVENTS kept events the rest is read by one (`_probe`), so memory stays
        bounded however many lines the start makes events of."""
        source = log.info.source
        limit = self.tracker.max_scan
        rest = log.chunks()
        primed = self._primed[id(log)] = _Primed([], rest)
        held = 0
        try:
            for chunk in rest:
                primed.chunks.append(chunk)
                held += len(chunk)
                if not self.tracker.observe(source, log.info.path, chunk) or log.lines > limit:
                    return  # the next line is past what the tracker reads
                if held >= PRIME_EVENTS:
                    self._probe(log, after=chunk[-1].line)
                    return
        except (OSError, CorrelatorError) as exc:
            primed.error = exc  # the real pass reports it, after the chunks before it

    def _probe(self, log: LogFile, after: int = 0) -> None:
        """The look-ahead by a second reader of the same file, in the same format and zone; only
        connection events are kept, so a look-ahead costs re-parsing a few minutes of log, not
        holding them. `after`: the line the tracker has seen the events up to."""
        source = log.info.source
        try:
            probe = LogFile(log.path, log.registry, format_name=log.format.name, tz=log.parser.tz,
                            source=source, display_path=log.info.path)
            probe.routine_spec, probe.block_size = log.routine_spec, 1 << 20
            probe.thinner = log.thinner.fresh() if log.thinner is not None else None
            limit = self.tracker.max_scan

            def far_enough() -> None:
                # a busy log's blocks past the lines the tracker reads may hold no event at all:
                # stop reading there, not at the next event (which may be half the file on)
                if probe.lines > limit:
                    raise _FarEnough

            probe.on_read = far_enough
            for chunk in probe.chunks():
                if after:
                    chunk = [event for event in chunk if event.line > after]
                if not self.tracker.observe(source, log.info.path, chunk):
                    break
        except (OSError, CorrelatorError, _FarEnough):
            pass  # the real pass reports it; this source just gets no estimate

    def _corrected(self, log: LogFile) -> Iterator[list[Event]]:
        offset = self.tracker.offset(log.info.source)
        for chunk in self._guarded(log):
            apply_offset(chunk, offset)
            yield chunk

    def _guarded(self, log: LogFile) -> Iterator[list[Event]]:
        """One file that breaks half-way (a cut-off archive member, a disk error) keeps what it
        gave and is reported with its file and line; the rest go on. Only CorrelatorError is
        caught: the readers turn every input fault into one, so anything else is a bug and must
        fail the analysis (and the tests), not become a line in the report."""
        primed = self._primed.pop(id(log), None)
        try:
            if primed is None:
                yield from log.chunks()
            else:
                yield from primed.chunks
                if primed.error is not None:
                    raise primed.error
                yield from primed.rest
        except CorrelatorError as exc:
            if self.on_error is None:
                raise
            self.on_error(log, exc)
        # what went wrong without stopping the file (a user's pattern that ran out of time)
        for problem in log.problems():
            if self.on_error is not None:
                self.on_error(log, problem)

    def _select(self, events: list[Event]) -> list[Event]:
        if self.since is None and self.until is None:
            return events
        lo = float("-inf") if self.since is None else self.since
        hi = float("inf") if self.until is None else self.until
        kept = [e for e in events if lo <= e.ts <= hi]
        self.outside += len(events) - len(kept)
        return kept

    def _closed(self) -> None:
        closed = self.stitcher.pop_closed()
        # a reissued connection (an untimed client paired with it later) was counted the first time
        self.connections += sum(1 for conn in closed if not conn.reissued)
        if self.on_connection is not None:
            for conn in closed:
                self.on_connection(conn)


def timeline(logs: Sequence[LogFile], **options: Any) -> tuple[list[Event], list[Connection], list[SourceTimeline]]:
    """Batch helper for tests and small inputs: everything in memory at once."""
    connections: list[Connection] = []
    line = BatchTimeline(logs, on_connection=connections.append, **options)
    events = list(line.events())
    unique = list({id(conn): conn for conn in connections}.values())  # a reissued one is listed once
    return events, unique, line.sources()


class LiveTimeline:
    """The live form of `BatchTimeline`: the same tracker, merge rule and stitcher, fed batches.

    A tailer's callback parses a batch (SourceParser, as LogFile does) and calls `feed(source,
    path, events)`; a timer calls `tick()` (every 100 ms or so) so quiet logs still release their
    lines. Both return the events that are final now, in timeline order, with `Event.connection`
    set and the source's clock offset applied (the estimate known when the batch came: see
    SkewTracker). Finished connections come out of `pop_closed()`. Not thread-safe: feed and tick
    from one thread (the tailer's worker), or hold a lock around both.
    """

    def __init__(self, *, offsets: Sequence[OffsetRule] = (), lookahead: float = LOOKAHEAD,
                 delay: float = WATERMARK_DELAY, window: float = 2.0, clock: Callable[[], float] | None = None,
                 reach: Mapping[str, frozenset[str]] | None = None,
                 clock_groups: Mapping[str, str] | None = None) -> None:
        """`reach` and `clock_groups`: as BatchTimeline's (correlator.hosts)."""
        self.clock = clock or time.monotonic
        self.tracker = SkewTracker(offsets, lookahead=lookahead, reach=reach, clock_groups=clock_groups)
        self.merger = LiveMerger(delay=delay, clock=self.clock)
        self.stitcher = Stitcher(window=window, reach=reach, max_events=SUMMARY_EVENTS)
        self._last = self.clock()
        self._paths: dict[str, str] = {}
        self._holding = False
        self._held: list[tuple[str, list[Event]]] = []
        self._held_events = 0

    def set_prompt(self, prompt: bool) -> None:
        """Whether new lines reach `feed` within milliseconds of being written (an inotify-woken
        tailer): events then wait PROMPT_DELAY for a quiet source instead of WATERMARK_DELAY."""
        self.merger.delay = PROMPT_DELAY if prompt else WATERMARK_DELAY

    def add_source(self, source: str, path: str) -> None:
        self._paths[source] = path
        self.merger.add_source(source)

    def prime(self, source: str, path: str, events: Sequence[Event]) -> None:
        """Read-ahead for the clock estimate: a tailer that starts at the beginning of existing
        files can hand their first lines here before feeding them, so the first released lines
        are already corrected (the same look-ahead the batch path makes)."""
        self.tracker.observe(source, path, events)

    def close_source(self, source: str) -> None:
        self.tracker.finish(source)
        self.merger.close_source(source)

    def hold(self) -> None:
        """Keep everything back while the tailer reads what the files already hold: files are
        read one after the other, and a broker log released before its clients' logs arrive
        would leave its connections without their client sides. Ends with `resume()`, or by
        itself once HOLD_EVENTS events wait (a huge log read from its start must not sit in
        memory whole; past that the usual watermark order applies)."""
        self._holding = True

    def resume(self) -> list[Event]:
        """End the hold: the held batches are corrected with the clock estimates all of them
        together gave (as the batch path's look-ahead does), merged and released."""
        self._holding = False
        now = self._last = self.clock()
        for source, events in self._held:
            self.tracker.correct(source, events)
            self.merger.feed(source, events, now)
        self._held, self._held_events = [], 0
        # what the files held before we followed them is stitched as the batch path stitches it:
        # a short live window is for latency, and nothing about these lines is late
        window = self.stitcher.window
        self.stitcher.window = max(window, BATCH_STITCH_WINDOW)
        try:
            return self._stitch(self.merger.release(now))
        finally:
            self.stitcher.window = window

    def feed(self, source: str, path: str, events: list[Event]) -> list[Event]:
        if source not in self._paths:
            self.add_source(source, path)
        self.tracker.observe(source, path, events)
        if self._holding:
            self._held.append((source, events))
            self._held_events += len(events)
            return [] if self._held_events < HOLD_EVENTS else self.resume()
        self.tracker.correct(source, events)
        now = self.clock()
        self.merger.feed(source, events, now)
        self._last = now
        return self._stitch(self.merger.release(now))

    def tick(self) -> list[Event]:
        """Release what the watermark lets go and, once nothing is held back, move the stitcher's
        clock on by the wall time that passed, so a quiet log's last lines are not held for ever."""
        if self._holding:
            return []
        now = self.clock()
        elapsed = now - self._last
        self._last = now
        out = self._stitch(self.merger.release(now))
        if not self.merger.pending() and elapsed > 0:
            out.extend(self.stitcher.advance(elapsed))
        return out

    def flush(self) -> list[Event]:
        out = self.resume() if self._holding else []
        out += self._stitch(self.merger.flush())
        out.extend(self.stitcher.flush())
        return out

    def pop_closed(self) -> list[Connection]:
        return self.stitcher.pop_closed()

    def earliest_held(self) -> float:
        """The earliest time of an event fed and not released yet (inf: none): a line of a later
        time that bypasses the timeline (a routine line the TUI draws, not an event) would be
        shown before it."""
        held = [event.ts for _, events in self._held for event in events]
        held += [item[3].ts for item in self.merger._heap]
        held += [item[1].ts for item in self.stitcher._hold]
        return min(held, default=float("inf"))

    def estimates(self) -> dict[str, SkewEstimate]:
        return self.tracker.estimates()

    def _stitch(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            out.extend(self.stitcher.push(event))
        return out
