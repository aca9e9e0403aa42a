"""`correlator tui BUNDLE` on the fast reader: routine traffic is counted, not parsed, yet every
line is on the timeline (read back from its file at the offset the bulk reader gave), and the
findings show while the bundle is still being read."""

from __future__ import annotations

import gzip
import shutil
import threading
from pathlib import Path

import pytest
from tui_helpers import SAMPLES, screen_lines, settings

from correlator.analysis import Options, analyze
from correlator.formats.scan import hyperscan_available
from correlator.report_model import Finding
from correlator.tui import sources
from correlator.tui.app import create_app
from correlator.tui.event_store import ROUTINE, EventStore
from correlator.tui.histogram import build
from correlator.tui.screens import HistogramView
from correlator.tui.sources import BundleEventSource, analyse_with_events
from correlator.tui.widgets import Timeline

needs_engine = pytest.mark.skipif(not hyperscan_available(),
                                  reason="the fast extra (hyperscan, numpy) is not installed")


def _rows(store: EventStore) -> list[tuple[object, ...]]:
    return [(store.ts[r], store.source(r), store.files[store.file[r]], store.line[r], store.kinds[store.kind[r]],
             store.level_name(r), store.text(r)) for r in range(len(store))]


def _hold_after_first_findings(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Hold the reader right after analyze() tells its first findings: `told` is set then, and
    the reader goes on when the test sets `go_on` (or after 30 s, so a failing test never hangs)."""
    told = threading.Event()
    go_on = threading.Event()
    take = BundleEventSource._take_findings

    def held(self: BundleEventSource, findings: list[Finding]) -> None:
        take(self, findings)
        told.set()
        go_on.wait(30)

    monkeypatch.setattr(BundleEventSource, "_take_findings", held)
    return told, go_on


@needs_engine
@pytest.mark.parametrize("name", ["mixed", "healthy_noisy", "multi_broker_acl", "paho_logging_layouts",
                                  "shared_port_brokers"])
def test_the_fast_read_draws_the_timeline_of_reading_every_line(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same rows in the same order, with the same times, files, line numbers, kinds, levels and
    text, whether routine lines were parsed into events or only placed by the bulk reader."""
    fast = analyse_with_events([SAMPLES / name])
    monkeypatch.setattr(sources, "keeps_lines", lambda: False)
    slow = analyse_with_events([SAMPLES / name])
    try:
        routine = sum(1 for r in range(len(fast.store)) if fast.store.flags[r] & ROUTINE)
        assert routine, "the sample has routine traffic the bulk reader counts"
        assert not any(slow.store.flags[r] & ROUTINE for r in range(len(slow.store)))
        assert _rows(fast.store) == _rows(slow.store)
        assert fast.store.ordered
        assert [f.to_dict() for f in fast.analysis.findings] == [f.to_dict() for f in slow.analysis.findings]
        # the activity chart and the histogram count the routine lines too
        assert [s.rows for s in fast.store.stats] == [s.rows for s in slow.store.stats]
        assert [s.per_second for s in fast.store.stats] == [s.per_second for s in slow.store.stats]
    finally:
        fast.store.close()
        slow.store.close()


@needs_engine
def test_a_compressed_log_is_read_line_by_line(tmp_path: Path) -> None:
    """Its lines cannot be read back from the file at an offset, so they are kept as events."""
    folder = tmp_path / "healthy_noisy"
    shutil.copytree(SAMPLES / "healthy_noisy", folder)
    log = folder / "broker" / "mosquitto.log"
    with log.open("rb") as plain, gzip.open(log.with_suffix(".log.gz"), "wb") as packed:
        shutil.copyfileobj(plain, packed)
    lines = log.read_bytes().splitlines()
    log.unlink()
    source = analyse_with_events([folder])
    store = source.store
    broker = [r for r in range(len(store)) if store.source(r) == "broker"]
    assert len(broker) == len(lines)
    assert not any(store.flags[r] & ROUTINE for r in range(len(store)))
    assert store.text(broker[-1]) == lines[-1].decode()
    store.close()


@needs_engine
def test_routine_lines_outside_since_until_stay_off_the_timeline() -> None:
    whole = analyse_with_events([SAMPLES / "healthy_noisy"])
    stamps = sorted(set(whole.store.ts))
    since, until = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    part = analyse_with_events([SAMPLES / "healthy_noisy"], Options(since=since, until=until))
    kept = [row for row in _rows(whole.store) if since <= float(row[0]) <= until]  # type: ignore[arg-type]
    assert _rows(part.store) == kept
    assert any(part.store.flags[r] & ROUTINE for r in range(len(part.store)))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_findings_are_on_screen_while_the_bundle_is_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader is held right after analyze() told the first findings: they are on screen, the
    status says it is reading, and the rest arrives when it goes on."""
    told, go_on = _hold_after_first_findings(monkeypatch)
    source = BundleEventSource([SAMPLES / "mixed"])
    app = create_app(settings(), source)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            while not app.ordered:
                await pilot.pause(0.05)
            assert told.is_set() and source.analysis is None
            assert source.status().startswith("reading")
            screen = "\n".join(screen_lines(app))
            assert "auth.bad_credentials" in screen
            assert "reading" in screen
            go_on.set()
            while source.status() != "done":
                await pilot.pause(0.05)
            await pilot.pause(0.1)
            final = analyze([SAMPLES / "mixed"])
            assert sorted(f.id for f in app.ordered) == sorted(f.id for f in final.findings)
            store = app.query_one(Timeline).store
            assert len(store) == final.events  # the events and the routine lines counted
            assert any(store.flags[r] & ROUTINE for r in range(len(store)))
    finally:
        go_on.set()


@needs_engine
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_histogram_counts_routine_lines_exactly_while_reading_and_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Mid-read, the routine lines counted so far are in the histogram though not yet rows; once
    they are rows, they are counted once, and every bucket equals reading every line."""
    told, go_on = _hold_after_first_findings(monkeypatch)
    source = BundleEventSource([SAMPLES / "mixed"])
    app = create_app(settings(), source)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            while not told.is_set():
                await pilot.pause(0.05)
            assert source.routine is not None and source.routine.lines
            await pilot.press("i")
            await pilot.pause()
            view = app.screen.query_one(HistogramView)
            assert sum(b.total for b in view.histogram.buckets) == len(source.store) + source.routine.lines
            await pilot.press("escape")
            go_on.set()
            while source.status() != "done":
                await pilot.pause(0.05)
            await pilot.pause(0.1)
            await pilot.press("i")
            await pilot.pause()
            view = app.screen.query_one(HistogramView)
            assert source.analysis is not None
            assert sum(b.total for b in view.histogram.buckets) == source.analysis.events == len(source.store)
    finally:
        go_on.set()
    monkeypatch.setattr(sources, "keeps_lines", lambda: False)
    slow = analyse_with_events([SAMPLES / "mixed"])
    every = build(slow.counts(), view.histogram.size)
    assert view.histogram.sources == every.sources
    assert [b.counts for b in view.histogram.buckets] == [b.counts for b in every.buckets]
    slow.store.close()


@needs_engine
def test_the_scan_started_ahead_is_taken_by_the_read_and_ended_with_it() -> None:
    """`correlator tui` starts a big log's scan before the screen's imports, as `analyze` does
    (correlator/sources/early.py): the bundle's read takes it, gives the findings and timeline of
    a read without it, and ends it (the switch interval it lowered restored) once it is over."""
    import sys

    from correlator.sources import early

    incident = SAMPLES / "healthy_noisy"
    interval = sys.getswitchinterval()
    plain = analyse_with_events([incident])
    reads = early.EarlyReads([incident], min_bytes=0).__enter__()
    assert reads.passes
    source = BundleEventSource([incident], early=reads)
    source.start(lambda: None)
    assert source.wait(60)
    assert reads.taken and not reads.passes
    assert reads not in early._ACTIVE and sys.getswitchinterval() == interval
    assert source.analysis is not None
    assert [f.to_dict() for f in source.analysis.findings] == [f.to_dict() for f in plain.analysis.findings]
    source.store.renumber()
    assert _rows(source.store) == _rows(plain.store)
    source.end_early()  # once only: a second end (the command's, after the screen) does nothing
    source.stop()
    plain.stop()
