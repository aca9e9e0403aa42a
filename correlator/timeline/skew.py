"""Estimate each client host's clock offset from the broker's, from events that must be nearly
simultaneous: a client's connection attempt and the broker's connection for it.

Anchors. The broker side's anchors are its stitched connections (the `New connection from` line, or
the one-line TLS failure), with the client id, source port and outcome stitching found. A client's
anchors are its attempts (see timeline.connections), with the client id, local port and outcome its
log shows. Both come from `Stitcher` run over one source at a time, so estimation needs no merged
timeline (it runs before the merge, which needs the corrected times).

Pairing without assuming closeness. A client whose clock is days off must still be matched, so no
time window is used to find partners. Every compatible (attempt, broker connection) pair gives a
candidate offset `client time - broker time`; compatible means no contradicting port or client id
and outcomes that agree (a TLS failure on one side is not a session on the other). When any pair
agrees on the port (or the client id), only such pairs count. The true offset is where most
distinct attempts agree: the densest `tolerance`-wide cluster of candidates, counted in distinct
attempts; each attempt contributes its pair nearest the cluster's median; the offset is the median
of those, with N pairs and their spread reported. A second cluster as good as the best one makes
the estimate ambiguous, and it is not used.

Resolution. mosquitto stamps whole seconds: the true time lies in [t, t+1), so anchors stamped
without a fraction are taken at t + 0.5. That keeps the estimate unbiased (within ±0.5 s).

The estimate is the evidence for the root cause `client.clock_skew`: `SkewEstimate.significant()`
says when |offset| exceeds `CLOCK_SKEW_THRESHOLD`. An offset within a minute of a whole number of
quarter hours is flagged `zone_like`: a wrong time zone for a naive log looks exactly like that,
as long as a zone could make it. Against a broker whose times are absolute (epoch stamps, or stamps
that carry their zone) a naive log can be off by its own zone only, UTC-12 to UTC+14: a client a
whole day behind such a broker has its clock wrong, however round the offset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from correlator.errors import CorrelatorError
from correlator.model import Event, is_broker_source
from correlator.timeline.connections import UNKNOWN, Connection, Stitcher, compatible
from correlator.timeline.zones import pattern_matches

#: |offset| above which a client's clock counts as wrong (the `client.clock_skew` finding).
CLOCK_SKEW_THRESHOLD = 120.0
#: The offsets a zone can have from UTC (UTC-12 to UTC+14), in seconds: what a naive log read as
#: UTC can be off by against a broker whose times are absolute.
ZONE_RANGE = (-12 * 3600.0, 14 * 3600.0)
#: What two naive logs' zones can differ by.
ZONES_APART = 26 * 3600.0
#: Seconds from a whole number of quarter hours an offset may be and still read like a zone.
ZONE_SLACK = 60.0
#: Width of the cluster of candidate offsets that count as one estimate. Whole-second broker
#: stamps spread true pairs over about a second; network and logging latency add a little.
TOLERANCE = 1.5
#: Anchors used per source at most (the first ones): bounded work and memory, enough pairs.
MAX_ANCHORS = 300

_FRACTION = re.compile(r"(?::\d{2}[.,]\d)|(?:^\d{9,11}\.\d)|(?:^\d{12,})")


class SkewError(CorrelatorError):
    """A configured clock offset is not understood."""


@dataclass(frozen=True)
class Anchor:
    """One side of a connection attempt, at the time that side logged its start."""

    ts: float
    client_id: str | None
    port: int | None
    outcome: str
    event: Event

    def as_connection(self) -> Connection:
        conn = Connection(id="", start=self.ts, end=self.ts, client_id=self.client_id, peer_port=self.port,
                          outcome=self.outcome)
        return conn


@dataclass(frozen=True)
class SkewPair:
    client: Anchor
    broker: Anchor

    @property
    def offset(self) -> float:
        return self.client.ts - self.broker.ts


@dataclass(frozen=True)
class SkewEstimate:
    """A source's clock offset from the broker and how it was found. `offset` is client clock
    minus broker clock: the correction applied to the source's events is `-offset`."""

    source: str
    offset: float
    how: str
    """'estimated from N pairs', 'configured', 'none: <why>'."""
    pairs: tuple[SkewPair, ...] = ()
    spread: float = 0.0
    """max - min of the paired offsets used."""
    strong: bool = False
    """The pairs agree on the client's port or client id, not only on time and outcome."""
    shared_from: str = ""
    """The source of the same host whose estimate this is (a gateway's logs share one clock), or ''."""
    reference_absolute: bool = False
    """The brokers it was paired with stamp absolute times (epoch, or a zone in the stamp): the
    offset can then be a zone of the client's own only (`ZONE_RANGE`), not two zones apart."""

    @property
    def found(self) -> bool:
        return not self.how.startswith("none")

    @property
    def zone_like(self) -> bool:
        """A whole number of quarter hours (±60 s) that a zone could make: more likely a wrong zone
        for a naive log than a wrong clock. Against absolute broker times that is the client's own
        zone (`ZONE_RANGE`); between two naive logs, at most the 26 h two zones can differ by."""
        quarters = round(self.offset / 900.0)
        low, high = ZONE_RANGE if self.reference_absolute else (-ZONES_APART, ZONES_APART)
        return (quarters != 0 and low - ZONE_SLACK <= self.offset <= high + ZONE_SLACK
                and abs(self.offset - quarters * 900.0) <= ZONE_SLACK)

    def significant(self, threshold: float = CLOCK_SKEW_THRESHOLD) -> bool:
        """Evidence for `client.clock_skew`: a found offset beyond the threshold."""
        return self.found and abs(self.offset) > threshold

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "offset": round(self.offset, 3), "how": self.how, "pairs": len(self.pairs),
                "shared_from": self.shared_from,
                "spread": round(self.spread, 3), "strong": self.strong, "zone_like": self.zone_like,
                "evidence": [{"client": f"{p.client.event.file}:{p.client.event.line}",
                              "broker": f"{p.broker.event.file}:{p.broker.event.line}",
                              "offset": round(p.offset, 3)} for p in self.pairs[:10]]}


def _midpoint(event: Event, ts: float) -> float:
    """Whole-second stamps mean 'some time in this second': take its middle."""
    return ts if _FRACTION.search(event.time_text) else ts + 0.5


def anchors(events: Iterable[Event], *, limit: int = MAX_ANCHORS) -> list[Anchor]:
    """The connection anchors of ONE source's events (broker connections or client attempts)."""
    found: list[Anchor] = []
    stitcher = Stitcher(on_close=lambda conn: _anchor(conn, found), annotate=False)
    for event in events:
        if event.estimated or not event.time_text:
            continue  # a time borrowed from neighbours says nothing about the clock
        stitcher.push(event)
        if len(found) >= limit:
            break
    stitcher.flush()
    found.sort(key=lambda a: (a.ts, a.event.line))
    return found[:limit]


def _anchor(conn: Connection, out: list[Anchor]) -> None:
    events = conn.broker_events or conn.client_events
    if not events:
        return
    first = events[0]
    out.append(Anchor(_midpoint(first, first.ts), conn.client_id, conn.peer_port, conn.outcome, first))


def estimate(source: str, client: Sequence[Anchor], broker: Sequence[Anchor], *,
             tolerance: float = TOLERANCE) -> SkewEstimate:
    """The offset of `client`'s clock from `broker`'s, from their anchors (see the module doc)."""
    if not client or not broker:
        side = "client" if not client else "broker"
        return SkewEstimate(source, 0.0, f"none: no {side} connection attempts to pair")
    candidates: list[tuple[float, int, int, bool]] = []
    for i, a in enumerate(client):
        ca = a.as_connection()
        for j, b in enumerate(broker):
            if not compatible(b.as_connection(), ca):
                continue
            strong = (a.port is not None and a.port == b.port) or (
                a.client_id is not None and a.client_id == b.client_id)
            if a.outcome == UNKNOWN and b.outcome == UNKNOWN and not strong:
                continue
            candidates.append((a.ts - b.ts, i, j, strong))
    if any(c[3] for c in candidates):
        candidates = [c for c in candidates if c[3]]
    if not candidates:
        return SkewEstimate(source, 0.0, "none: no attempt matches a broker connection")
    candidates.sort()
    best, best_score, runner_up = _clusters(candidates, tolerance)
    if runner_up is not None and runner_up >= best_score:
        return SkewEstimate(source, 0.0, "none: ambiguous (several offsets fit equally well)")
    import statistics  # with decimal and fractions, 5 ms a start that estimates no clock (a broker's log alone) saves

    window = candidates[best[0]:best[1]]
    centre = statistics.median(d for d, *_ in window)
    # Ports and client ids are unique per connection; when every attempt has one, pairs by time
    # alone are noise. Otherwise attempts without them pair by order around the same centre.
    strong_only = all(a.port is not None for a in client)
    used: list[tuple[float, int, int, bool]] = []
    for _ in range(2):  # pair in order around the cluster's centre, then once more around the result
        paired = _in_order(client, broker, centre, tolerance, strong_only)
        if not paired:
            break
        used = paired
        centre = statistics.median(d for d, *_ in used)
    if not used:
        return SkewEstimate(source, 0.0, "none: no attempt matches a broker connection")
    strong = any(c[3] for c in used)
    if len(used) < 2 and not strong:
        return SkewEstimate(source, 0.0, "none: a single attempt matched by time only")
    offsets = [d for d, *_ in used]
    offset = statistics.median(offsets)
    pairs = tuple(SkewPair(client[i], broker[j]) for _, i, j, _ in used)
    word = "pair" if len(pairs) == 1 else "pairs"
    return SkewEstimate(source, offset, f"estimated from {len(pairs)} {word}", pairs,
                        max(offsets) - min(offsets), strong)


def _in_order(client: Sequence[Anchor], broker: Sequence[Anchor], centre: float, tolerance: float,
              strong_only: bool) -> list[tuple[float, int, int, bool]]:
    """One-to-one pairs that keep both sides' order: each attempt, in time order, takes the first
    unused compatible broker connection within `tolerance` of `centre`. Retries a fraction of a
    second apart against whole-second broker stamps are matched by order, not by nearest time."""
    out: list[tuple[float, int, int, bool]] = []
    start = 0
    for i in sorted(range(len(client)), key=lambda k: client[k].ts):
        a = client[i]
        ca = a.as_connection()
        while start < len(broker) and a.ts - broker[start].ts - centre > tolerance:
            start += 1
        first: tuple[float, int, int, bool] | None = None
        for j in range(start, len(broker)):
            b = broker[j]
            d = a.ts - b.ts
            if d - centre < -tolerance:
                break
            if not compatible(b.as_connection(), ca):
                continue
            strong = (a.port is not None and a.port == b.port) or (
                a.client_id is not None and a.client_id == b.client_id)
            if strong:  # a partner by port or id beats one by order
                first = (d, i, j, True)
                break
            if first is None and not strong_only:
                first = (d, i, j, False)
        if first is not None:
            out.append(first)
            start = first[2] + 1
    return out


def _clusters(candidates: list[tuple[float, int, int, bool]],
              tolerance: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int] | None]:
    """The best window [lo, hi) of sorted candidates no wider than `tolerance`, scored by
    (distinct attempts, strong pairs), and the score of the best window that does not overlap it.
    Two pointers with running counts: linear in the number of candidates."""
    n = len(candidates)
    per_attempt: dict[int, int] = {}
    strong = 0
    hi = 0
    windows: list[tuple[int, int, int, int]] = []  # distinct, strong, lo, hi
    for lo in range(n):
        while hi < n and candidates[hi][0] - candidates[lo][0] <= tolerance:
            attempt = candidates[hi][1]
            per_attempt[attempt] = per_attempt.get(attempt, 0) + 1
            strong += candidates[hi][3]
            hi += 1
        windows.append((len(per_attempt), strong, lo, hi))
        attempt = candidates[lo][1]
        per_attempt[attempt] -= 1
        if not per_attempt[attempt]:
            del per_attempt[attempt]
        strong -= candidates[lo][3]

    def width(w: tuple[int, int, int, int]) -> float:
        return candidates[w[3] - 1][0] - candidates[w[2]][0]

    best = max(windows, key=lambda w: (w[0], w[1], -width(w)))
    lo_value, hi_value = candidates[best[2]][0], candidates[best[3] - 1][0]
    others = [(w[0], w[1]) for w in windows
              if candidates[w[3] - 1][0] < lo_value - tolerance or candidates[w[2]][0] > hi_value + tolerance]
    return (best[2], best[3]), (best[0], best[1]), max(others) if others else None


def estimate_sources(events_by_source: Mapping[str, Sequence[Event]], *, tolerance: float = TOLERANCE,
                     reach: Mapping[str, Iterable[str]] | None = None) -> dict[str, SkewEstimate]:
    """Estimates for every client source against the broker source(s), from buffered events. With
    `reach`, a client is paired only with the brokers it can talk to (correlator.hosts): another
    host's broker is another clock."""
    # the reference clocks are the brokers': an OPC UA server, though the stitcher pairs its
    # connections too, is a clock to estimate like any client's (it may run on a gateway's clock)
    if all(not events or is_broker_source(events[0].source) for events in events_by_source.values()):
        return {}
    per_broker = {source: anchors(events) for source, events in events_by_source.items()
                  if events and is_broker_source(events[0].source)}
    everyone = sorted((a for found in per_broker.values() for a in found), key=lambda a: a.ts)
    out: dict[str, SkewEstimate] = {}
    for source, events in events_by_source.items():
        if not events or is_broker_source(events[0].source):
            continue
        brokers = (reach or {}).get(source)
        pool = everyone if brokers is None else sorted(
            (a for b in brokers for a in per_broker.get(b, ())), key=lambda a: a.ts)
        out[source] = estimate(source, anchors(events), pool, tolerance=tolerance)
    return out


def share_host_clocks(estimates: dict[str, SkewEstimate], groups: Mapping[str, str]) -> dict[str, SkewEstimate]:
    """Logs of one host share its clock: a source with no estimate of its own (an OPC UA server's
    log on a gateway, which never talks to the broker) takes the one of its host's source with the
    most pairs. Configured offsets and a source's own estimate stay."""
    best: dict[str, SkewEstimate] = {}
    for source, found in estimates.items():
        host = groups.get(source)
        if host is None or not found.found or found.how == "configured":
            continue
        if host not in best or len(found.pairs) > len(best[host].pairs):
            best[host] = found
    out = dict(estimates)
    for source, host in groups.items():
        own = out.get(source)
        shared = best.get(host)
        if shared is None or shared.source == source or (own is not None and own.found):
            continue
        out[source] = SkewEstimate(source, shared.offset, f"the clock of host {host} ({shared.how} for "
                                   f"{shared.source})", spread=shared.spread, strong=shared.strong,
                                   shared_from=shared.source)
    return out


def apply_offset(events: Iterable[Event], offset: float) -> None:
    """Correct a source's events in place for a clock `offset` (client minus broker)."""
    if not offset:
        return
    for event in events:
        event.ts -= offset
        event.skew -= offset


# ---------------------------------------------------------------------- configured offsets

_DURATION = re.compile(r"^(?P<sign>[+-])?(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|min|h|d)?$")
_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_offset(text: str, *, option: str | None = None) -> float:
    """`+300`, `-2.5s`, `+5m`, `-3h`, `+1d`: a client clock's offset from the broker's."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise SkewError(f"clock offset {text.strip()!r} is not a duration such as +300s, -5m, +2h, +1d",
                        context=option)
    value = float(match.group("num")) * _UNITS[match.group("unit")]
    return -value if match.group("sign") == "-" else value


@dataclass(frozen=True)
class OffsetRule:
    pattern: str
    offset: float
    text: str


def parse_offset_options(options: Iterable[str]) -> list[OffsetRule]:
    """`--clock-offset 'client:edge-07=+300s'` options: a source name or file glob, then the
    offset of that host's clock from the broker's (which the tool then does not estimate)."""
    rules = []
    for option in options:
        text = option.strip()
        pattern, sep, value = text.rpartition("=")
        if not sep or not pattern.strip():
            raise SkewError("expected SOURCE=OFFSET (e.g. client:edge-07=+300s)",
                            context=f"--clock-offset {option}")
        rules.append(OffsetRule(pattern.strip(), parse_offset(value, option=f"--clock-offset {option}"), text))
    return rules


def configured_offset(rules: Sequence[OffsetRule], source: str, path: str) -> SkewEstimate | None:
    found = None
    for rule in rules:
        if pattern_matches(rule.pattern, source, path):
            found = rule
    if found is None:
        return None
    return SkewEstimate(source, found.offset, "configured")
