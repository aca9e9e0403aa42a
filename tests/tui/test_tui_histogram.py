"""The time histogram (issue 18 item 12, lnav's `i`): messages per bucket per source or stacked,
errors and finding evidence marked, zoom in and out, and enter jumps the timeline there."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import pytest
from tui_helpers import SIZES, incident, screen_lines

from correlator.tui.app import CorrelatorApp
from correlator.tui.event_store import ERROR_RANK
from correlator.tui.histogram import StoreCounts, build, opening_size, zoom
from correlator.tui.screens import HistogramScreen, HistogramView
from correlator.tui.widgets import Timeline

Make = Callable[..., CorrelatorApp]
pytestmark = pytest.mark.anyio


class _Routine:
    """A second feed shaped as the fast reader's routine-line counts will be: lines it counted
    and never made rows of, by source name and second."""

    def __init__(self, counts: dict[str, dict[int, int]]) -> None:
        self.counts = counts

    def source_names(self) -> list[str]:
        return list(self.counts)

    def lines(self, source: int) -> Mapping[int, int]:
        return self.counts[list(self.counts)[source]]

    def errors(self, source: int) -> Mapping[int, int]:
        return {}


def test_buckets_add_every_feed_up_by_source() -> None:
    store = incident("mixed").store
    feed = StoreCounts(store)
    hist = build([feed], 1)
    assert sum(b.total for b in hist.buckets) == len(store)
    assert sum(b.errors for b in hist.buckets) == sum(1 for r in range(len(store)) if store.level[r] >= ERROR_RANK)
    starts = [b.start for b in hist.buckets]
    assert starts == list(range(starts[0], starts[0] + len(starts)))  # quiet seconds are buckets too
    first = hist.buckets[0].start
    routine = _Routine({"broker": {first: 1000, first + 3: 500}, "client:new-01": {first + 1: 7}})
    both = build([feed, routine], 5)
    assert both.sources[: len(hist.sources)] == hist.sources and both.sources[-1] == "client:new-01"
    assert sum(b.total for b in both.buckets) == len(store) + 1507
    broker = both.sources.index("broker")
    assert both.buckets[0].counts[broker] == sum(b.counts[broker] for b in hist.buckets[:5]) + 1500
    assert opening_size([feed]) == 1 and zoom(1, 1, [feed]) == 2 and zoom(2, -1, [feed]) == 1


@pytest.mark.parametrize("size", SIZES)
async def test_histogram_marks_errors_and_evidence_zooms_and_jumps(make_app: Make, size: tuple[int, int]) -> None:
    app = make_app("mixed")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        store = app.source.store
        await pilot.press("i")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HistogramScreen)
        view = screen.query_one(HistogramView)
        hist = view.histogram
        assert hist.size == 1 and sum(b.total for b in hist.buckets) == len(store)
        lines = screen_lines(app)
        assert "messages per 1 s" in lines[0] and "stacked" in lines[0]
        evidence = {int(ref.time) for f in app.ordered for ref in f.evidence if ref.time is not None}
        for bucket in hist.buckets:
            stamp = f"{bucket.start % 86400 // 3600:02d}:{bucket.start % 3600 // 60:02d}:{bucket.start % 60:02d}"
            line = next(line for line in lines if line.startswith(stamp))
            assert re.search(rf"\b{bucket.total:,}\b", line), line
            assert (f"✗{bucket.errors}" in line) is (bucket.errors > 0), line
            assert ("◆" in line) is (bucket.start in evidence), line
        # it opens on the first bucket with an error or evidence: where it started
        first = next(i for i, b in enumerate(hist.buckets) if b.errors or b.evidence)
        assert view.cursor == first
        await pilot.press("minus")
        assert view.histogram.size == 2 and "messages per 2 s" in screen_lines(app)[0]
        await pilot.press("plus")
        assert view.histogram.size == 1
        await pilot.press("s")
        assert not view.stacked and "per source" in screen_lines(app)[0]
        await pilot.press("e")  # the next bucket with errors
        target = view.histogram.buckets[view.cursor]
        assert view.cursor > first and (target.errors or target.evidence)
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, HistogramScreen)
        timeline = app.query_one(Timeline)
        assert app.focused is timeline
        row = timeline.row_at(timeline.cursor)
        assert row is not None and store.ts[row] >= target.start
        assert row == 0 or store.ts[row - 1] < target.start
        await pilot.press("i", "escape")
        assert not isinstance(app.screen, HistogramScreen) and timeline.row_at(timeline.cursor) == row
