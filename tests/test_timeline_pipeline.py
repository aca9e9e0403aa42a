"""The timeline stage end to end over captured incidents: zones chosen before parsing, clock
offsets estimated from a bounded look-ahead and applied, sources merged and connections stitched;
the live tracker corrects batches with the same estimates."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.formats.registry import Registry, load_registry
from correlator.model import Event
from correlator.sources.files import LogFile
from correlator.timeline.connections import Stitcher
from correlator.timeline.merge import LiveMerger
from correlator.timeline.pipeline import SkewTracker, Timeline, timeline
from correlator.timeline.skew import parse_offset_options
from correlator.timeline.zones import parse_zone_options

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(collect=True)


def incident(name: str, registry: Registry) -> list[LogFile]:
    folder = SAMPLES / name
    if not (folder / "broker" / "mosquitto.log").exists():
        pytest.skip(f"sample_logs/{name} not captured yet")
    paths = [folder / "broker" / "mosquitto.log", *sorted((folder / "clients").glob("*.log"))]
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
    line = Timeline(logs, offsets=parse_offset_options(["client:viewer-33=+5m"]), since=first + 2)
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
    """The tailer's path (batches per source into LiveMerger, ticks, the same Stitcher) groups the
    lines of an incident into the same connections as the batch timeline."""
    batch_events, _, _ = timeline(incident("healthy_noisy", registry), lookahead=0)

    def grouping(events: list[Event]) -> set[frozenset[tuple[str, int]]]:
        groups: dict[str, set[tuple[str, int]]] = {}
        for e in events:
            if e.connection is not None:
                groups.setdefault(e.connection, set()).add((e.file, e.line))
        return {frozenset(g) for g in groups.values()}

    # Replayed far faster than real time, a 250 ms watermark would release lines before slower
    # sources caught up; with the watermark out of the way release follows the sources' progress.
    now = [0.0]
    merger = LiveMerger(delay=1e9, clock=lambda: now[0])
    stitcher = Stitcher()
    logs = incident("healthy_noisy", registry)
    chunks = {log.info.source: list(log.events()) for log in logs}
    for source in chunks:
        merger.add_source(source)
    live: list[Event] = []
    for start in range(0, max(len(c) for c in chunks.values()), 50):  # 50 lines per source per read
        for source, events in chunks.items():
            merger.feed(source, events[start:start + 50])
        now[0] += 0.1
        for event in merger.release():
            live.extend(stitcher.push(event))
    for event in merger.flush():
        live.extend(stitcher.push(event))
    live.extend(stitcher.flush())
    assert len(live) == len(batch_events)
    assert grouping(live) == grouping(batch_events)
