"""The timeline stage end to end over captured incidents: zones chosen before parsing, clock
offsets estimated from a bounded look-ahead and applied, sources merged and connections stitched;
the live tracker corrects batches with the same estimates."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.formats.registry import Registry, load_registry
from correlator.model import Event
from correlator.sources.files import LogFile
from correlator.timeline import pipeline
from correlator.timeline.pipeline import (
    PROMPT_DELAY,
    WATERMARK_DELAY,
    BatchTimeline,
    LiveTimeline,
    SkewTracker,
    timeline,
)
from correlator.timeline.skew import parse_offset_options
from correlator.timeline.zones import parse_zone_options

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(collect=True)


def incident(name: str, registry: Registry) -> list[LogFile]:
    folder = SAMPLES / name
    if (folder / "broker" / "mosquitto.log").exists():
        paths = [folder / "broker" / "mosquitto.log", *sorted((folder / "clients").glob("*.log"))]
    else:  # a bundle of several hosts (gateway_clock): each host's folder holds its logs
        paths = sorted(folder.rglob("*.log"))
    assert paths, f"sample_logs/{name} holds no log"
    return [LogFile(p, registry) for p in paths]


def test_mixed_incident_corrects_the_fast_clock_and_stitches_it(registry: Registry) -> None:
    logs = incident("mixed", registry)
    raw = {log.info.source: [e.ts for e in LogFile(log.path, registry).events()] for log in logs}
    events, connections, sources = timeline(logs)
    by_source = {s.info.source: s for s in sources}

    viewer = by_source["client:viewer-33"]
    assert abs(viewer.skew.offset - 300) < 1.0 and viewer.skew.strong and viewer.skew.significant()
    assert viewer.to_dict()["offset_how"].startswith("estimated from")
    corrected = [e for e in events if e.source == "client:viewer-33"]
    assert corrected and all(abs(e.skew + viewer.skew.offset) < 1e-9 for e in corrected)
    assert [round(e.ts + viewer.skew.offset, 6) for e in corrected] == [round(t, 6) for t in raw["client:viewer-33"]]
    assert by_source["broker"].zone.how == "broker epoch"
    for name in ("client:edge-30", "client:edge-31"):
        assert abs(by_source[name].skew.offset) < 1.5 and not by_source[name].skew.significant()

    # after correction viewer-33's session lines up with the broker's accept for its port
    (session,) = [c for c in connections if c.client_source == "client:viewer-33" and c.broker_source]
    assert session.link in ("port", "client_id")
    assert abs(session.client_events[0].ts - session.broker_events[0].ts) < 1.5
    assert {e.connection for e in session.client_events} == {session.id}
    assert len(events) == sum(len(v) for v in raw.values())


def test_zone_option_removes_an_hour_that_looked_like_skew(registry: Registry) -> None:
    as_utc = {s.info.source: s for s in timeline(incident("client_cert_expired", registry))[2]}
    assert as_utc["client:edge-04"].skew.zone_like
    zones = parse_zone_options(["clients/edge-04.log=Europe/Berlin"])
    fixed = {s.info.source: s for s in timeline(incident("client_cert_expired", registry), zones=zones)[2]}
    edge = fixed["client:edge-04"]
    assert edge.zone.name == "Europe/Berlin" and edge.zone.how.startswith("configured")
    assert abs(edge.skew.offset) < 1.5 and not edge.skew.significant()


def test_configured_offset_and_time_range(registry: Registry) -> None:
    logs = incident("mixed", registry)
    first = min(e.ts for e in LogFile(logs[0].path, registry).events())
    line = BatchTimeline(logs, offsets=parse_offset_options(["client:viewer-33=+5m"]), since=first + 2)
    events = list(line.events())
    assert events and all(e.ts >= first + 2 for e in events)
    viewer = next(s for s in line.sources() if s.info.source == "client:viewer-33")
    assert (viewer.skew.offset, viewer.skew.how) == (300.0, "configured")
    assert line.connections > 0


def test_live_tracker_uses_the_same_estimates(registry: Registry) -> None:
    logs = incident("mixed", registry)
    tracker = SkewTracker(lookahead=3600)
    batches = {log.info.source: list(log.events()) for log in logs}
    for log in logs:  # the tailer's batches, source by source
        tracker.observe(log.info.source, log.info.path, batches[log.info.source])
    assert abs(tracker.offset("client:viewer-33") - 300) < 1.0
    tracker.correct("client:viewer-33", batches["client:viewer-33"])
    tracker.correct("client:viewer-33", batches["client:viewer-33"])  # twice is once
    assert all(abs(e.skew + tracker.offset("client:viewer-33")) < 1e-9 for e in batches["client:viewer-33"])
    assert tracker.offset("broker") == 0.0


def test_live_feeding_stitches_like_batch(registry: Registry) -> None:
    """The tailer's path (LiveTimeline: batches per source, ticks) groups the lines of an incident
    into the same connections as the batch timeline, and corrects the fast clock the same way."""
    batch_events, _, batch_sources = timeline(incident("mixed", registry))

    def grouping(events: list[Event]) -> set[frozenset[tuple[str, int]]]:
        groups: dict[str, set[tuple[str, int]]] = {}
        for e in events:
            if e.connection is not None:
                groups.setdefault(e.connection, set()).add((e.file, e.line))
        return {frozenset(g) for g in groups.values()}

    # A faithful live replay: the clock runs at event time (0.1 s steps, a real 250 ms watermark),
    # and each file's lines arrive once the clock passes the time they were written (their stamp
    # minus their host's clock offset), 50 at most per read.
    logs = incident("mixed", registry)
    offsets = {s.info.source: s.skew.offset if s.skew.found else 0.0 for s in batch_sources}
    batches = {log.info.source: (log.info.path, list(log.events())) for log in logs}
    start = min(e.ts - offsets[s] for s, (_, events) in batches.items() for e in events)
    end = max(e.ts - offsets[s] for s, (_, events) in batches.items() for e in events)
    now = [start]
    live = LiveTimeline(clock=lambda: now[0])
    # a tailer that starts from the beginning reads every file's first batch before the first
    # release: that is the look-ahead the offsets are estimated from
    for source, (path, events) in batches.items():
        live.prime(source, path, events)
    sent = dict.fromkeys(batches, 0)
    out: list[Event] = []
    while now[0] <= end + 5:
        for source, (path, events) in batches.items():
            ready = sent[source]
            while ready < len(events) and events[ready].ts - offsets[source] <= now[0]:
                ready += 1
            if ready > sent[source]:
                out.extend(live.feed(source, path, events[sent[source]:ready]))
                sent[source] = ready
        now[0] += 0.1
        out.extend(live.tick())
    out.extend(live.flush())
    assert len(out) == len(batch_events) and live.merger.late == 0
    assert [(e.file, e.line) for e in out] == [(e.file, e.line) for e in batch_events]  # the same order
    assert grouping(out) == grouping(batch_events)
    viewer = next(s for s in batch_sources if s.info.source == "client:viewer-33")
    assert live.estimates()["client:viewer-33"].offset == pytest.approx(viewer.skew.offset)
    assert sorted(e.ts for e in out) == sorted(e.ts for e in batch_events)


def test_live_tick_releases_a_quiet_log() -> None:
    now = [0.0]
    live = LiveTimeline(window=1.0, clock=lambda: now[0])
    accept = Event(ts=100.0, time_text="100", source="broker", file="b.log", line=1, kind="net.accept", raw="",
                   fields={"peer_addr": "10.0.0.1", "peer_port": 4000, "listener_port": 8883})
    assert live.feed("broker", "b.log", [accept]) == []  # held: the watermark, then the stitch window
    now[0] = 0.3
    assert live.tick() == []  # out of the merger, into the stitcher's window
    now[0] = 3.0
    (released,) = live.tick()
    assert released is accept and accept.connection is not None


def test_live_catching_up_on_existing_files_stitches_like_batch(registry: Registry) -> None:
    """`watch` started on files that already hold an incident reads them one after the other; held
    until all are read (`hold`/`resume`), their lines come out in timeline order, corrected with
    the estimates all of them give, and grouped into the batch's connections."""
    batch_events, _, _ = timeline(incident("mixed", registry))
    now = [0.0]
    live = LiveTimeline(clock=lambda: now[0])
    live.hold()
    out: list[Event] = []
    for log in incident("mixed", registry):  # whole files, one after the other, as the tailer reads
        out.extend(live.feed(log.info.source, log.info.path, list(log.events())))
        now[0] += 1.0
        out.extend(live.tick())
    assert out == []  # nothing leaves while the files are being read
    out.extend(live.resume())
    out.extend(live.flush())
    assert [(e.file, e.line) for e in out] == [(e.file, e.line) for e in batch_events]
    assert sorted(e.ts for e in out) == sorted(e.ts for e in batch_events)
    assert live.merger.late == 0


def test_a_prompt_tailer_shortens_the_wait_for_quiet_sources() -> None:
    """With inotify a line written to any followed log arrives within milliseconds, so a broker
    line waits PROMPT_DELAY for a quiet client log, not the polling watermark."""
    now = [0.0]
    live = LiveTimeline(window=0.0, clock=lambda: now[0])
    live.add_source("client:edge-02", "edge-02.log")
    line = Event(ts=100.0, time_text="100", source="broker", file="b.log", line=1, kind="tls.handshake_failed", raw="")
    assert live.feed("broker", "b.log", [line]) == []
    now[0] = PROMPT_DELAY
    assert live.tick() == []  # polling: still held
    live.set_prompt(True)
    assert live.merger.pending() == 1
    assert live.merger.release(now[0]) == [line]
    live.set_prompt(False)
    assert live.merger.delay == WATERMARK_DELAY


def _timeline_of(name: str, registry: Registry, bulk: bool,
                 ) -> tuple[list[tuple[str, int, float, str]], list[dict[str, object]]]:
    """The events (source, line, corrected time, kind) and sources of an incident's timeline, its
    broker log read with the bulk reader (as `analyze` reads it) or every line parsed."""
    logs = incident(name, registry)
    if bulk:
        for log in logs:
            log.count_routine((frozenset(), frozenset()))
    line = BatchTimeline(logs)
    events = [(e.source, e.line, round(e.ts, 6), e.kind) for chunk in line.chunks() for e in chunk]
    return events, [s.to_dict() for s in line.sources()]


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "every-line"])
@pytest.mark.parametrize("name", ["mixed", "clock_a_day_behind", "gateway_clock"])
def test_a_log_s_look_ahead_is_its_real_pass_s_start(name: str, bulk: bool, registry: Registry,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A log's look-ahead keeps the chunks it read for the real pass, which goes on with the same
    reader: the same events and offsets as when a second reader reads the start again (past
    PRIME_EVENTS kept events, the rest of the look-ahead is read that way); no second reader is
    opened."""
    monkeypatch.setattr(pipeline, "PRIME_EVENTS", 10**9)
    kept = _timeline_of(name, registry, bulk)
    assert kept[0]
    assert any(s["offset"] for s in kept[1]) or name != "mixed"
    monkeypatch.setattr(pipeline, "PRIME_EVENTS", 1)
    assert _timeline_of(name, registry, bulk) == kept
    monkeypatch.setattr(BatchTimeline, "_prime", BatchTimeline._probe)  # every look-ahead by a second reader
    assert _timeline_of(name, registry, bulk) == kept

    probed: list[str] = []
    probe = BatchTimeline._probe

    def second_reader(self: BatchTimeline, log: LogFile, after: int = 0) -> None:
        probed.append(log.info.source)
        probe(self, log, after)

    monkeypatch.undo()
    monkeypatch.setattr(BatchTimeline, "_probe", second_reader)
    _timeline_of(name, registry, bulk)
    assert not probed
