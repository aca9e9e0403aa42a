"""The correlator TUI: findings worst first, the detail and fix of the chosen one, the merged
timeline with its evidence, and a status bar, over any EventSource.

`create_app(settings, source)` is the one way to build it: `correlator watch` passes a live
source, `correlator tui` a bundle source, tests a static source over fixture events and a fixed
clock. The app never reads a file or runs the engine: sources do that on their own threads and
only say "changed"; the app coalesces those signals into one pending refresh, so a flood of lines
costs one repaint, and every refresh reads just what is on screen.
"""

from __future__ import annotations

import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from correlator.cancel import Cancelled
from correlator.model import LEVELS
from correlator.printable import printable
from correlator.report_model import Finding
from correlator.tui import screen_text as fmt
from correlator.tui.event_store import ERROR_RANK, Filter
from correlator.tui.screens import FilterScreen, HelpScreen, HistogramScreen
from correlator.tui.search import SearchIndex, find_rows
from correlator.tui.sources import EventSource
from correlator.tui.widgets import Activity, FindingsTable, KeysFooter, StatusBar, Timeline, source_colour

#: Below this many rows a filter or a search runs at once on the UI thread (it takes a few ms);
#: above, on a worker thread so the screen never stalls.
SYNC_ROWS = 20_000


@dataclass(frozen=True)
class ScreenSettings:
    """What the app is told rather than what it finds out: tests fix the clock and the blink."""

    title: str = "correlator"
    clock: Callable[[], float] = field(default=time.time)
    """Wall clock for 'time since last seen' and certificate days left."""
    tick: float = 1.0
    """Seconds between refreshes of times-since (data refreshes come from the source)."""
    new_for: float = 10.0
    """Seconds a finding that appeared live stays marked NEW."""
    wide_at: int = 150
    """From this many columns the detail and the timeline sit side by side."""
    history: float = 120.0
    """A live finding whose last evidence is older than this when it first shows (an old line of
    a log read from its start) is not announced as new."""
    cursor_blink: bool = True
    notify_new: bool = True


@dataclass
class Hits:
    """The search's answer: its needle, the hits as timeline positions (None while counting),
    which one the cursor is on, and whether the last move wrapped around."""

    needle: str
    generation: int
    positions: list[int] | None = None
    current: int = 0
    wrapped: bool = False


class Changed(Message):
    """The source has something new (posted from its thread; at most one is pending)."""


class CorrelatorApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "correlator"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("n", "next_match(1)", "Next"),
        Binding("N", "next_match(-1)", "Prev", show=False),
        Binding("e", "next_error(1)", "Error"),
        Binding("E", "next_error(-1)", "Prev error", show=False),
        Binding("f", "filter", "Filter"),
        Binding("F", "clear_filter", "Clear filter", show=False),
        Binding("p", "pause", "Pause"),
        Binding("c", "copy_fix", "Copy fix"),
        Binding("x", "section('Fix')", "Fix"),
        Binding("v", "section('Evidence')", "Evidence", show=False),
        Binding("i", "histogram", "Histogram"),
        Binding("t", "view('timeline')", "Timeline"),
        Binding("d", "view('detail')", "Detail"),
        Binding("g", "top", "Top", show=False),
        Binding("G", "bottom", "Bottom", show=False),
        Binding("q", "quit", "Quit"),
        Binding("escape", "escape", "Back", show=False),
    ]

    def __init__(self, settings: ScreenSettings, source: EventSource) -> None:
        super().__init__()
        self.settings = settings
        self.source = source
        self.title = settings.title
        self.paused = False
        self.filter = Filter()
        self.findings: dict[str, Finding] = {}
        self.ordered: list[Finding] = []
        self.new_until: dict[str, float] = {}
        self.last_copied = ""
        self.evidence_positions: list[int] = []
        self.search_anchor = 0
        self.hits = Hits("", 0)
        self._index = SearchIndex(source.store)
        self._index_lock = threading.Lock()
        self._pending = threading.Event()
        self._seen: set[str] | None = None
        self._filtered_upto = 0
        self._filtered: array[int] | None = None
        self._shown_detail: tuple[str, int] | None = None
        self._detail: RenderableType = Text("")
        self.refreshes = 0
        self.short = fmt.shortener(getattr(source, "roots", ()))

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield FindingsTable(id="findings")
        with Horizontal(id="body", classes="mode-detail"):
            with VerticalScroll(id="detail", classes="pane"):
                yield Static(Text("Waiting for findings…", style="dim italic"), id="detail-text")
            with Vertical(id="timeline-pane", classes="pane"):
                yield Activity(id="activity")
                yield Timeline(self.source.store, id="timeline")
                yield Static("", id="row-info")
        with Horizontal(id="search-bar"):
            yield Input(placeholder="search the timeline (enter keeps, esc drops)", id="search")
            yield Static("", id="search-count")
        yield KeysFooter()

    def on_mount(self) -> None:
        search = self.query_one("#search", Input)
        search.cursor_blink = self.settings.cursor_blink
        self.query_one("#search-bar").display = False
        self.query_one("#findings", FindingsTable).focus()
        self._layout(self.size)
        self.set_interval(self.settings.tick, self._tick)
        self.refresh_data()
        # the first frame goes out before the reader threads start competing for the GIL
        self.call_after_refresh(self.source.start, self._signal)

    def on_unmount(self) -> None:
        self.source.stop()

    def on_resize(self, event: Resize) -> None:
        # the event's size: `self.size` may still hold the old one while the app handles it
        self._layout(event.size)
        # the activity chart is sized to its pane: draw it again once the pane has its new size
        self.call_after_refresh(self._show_activity)
        self.call_after_refresh(self._show_status)

    def _show_activity(self) -> None:
        with suppress(NoMatches):
            short = self.size.height < 30
            self.query_one("#activity", Activity).show(self.source.store, self.source.source_info(),
                                                       self.size.width, rows=2 if short else 0)

    def _layout(self, size: Size) -> None:
        """Everything that depends on the terminal's size, recomputed on every resize."""
        body = self.query_one("#body")
        body.set_class(size.width >= self.settings.wide_at, "wide")
        # below 30 rows the activity chart would eat the timeline: two sources, then scroll
        self.query_one("#activity").set_class(size.height < 30, "short")
        self.query_one("#activity").display = size.height >= 20

    # -- data --------------------------------------------------------------------------------

    def _signal(self) -> None:
        """From any thread: ask for one refresh unless one is already pending (floods collapse)."""
        if not self._pending.is_set():
            self._pending.set()
            self.post_message(Changed())

    def on_changed(self, _: Changed) -> None:
        self._pending.clear()
        with suppress(NoMatches):  # a signal that arrives while the app is closing
            self.refresh_data()

    def _tick(self) -> None:
        with suppress(NoMatches):
            self._show_findings()
            self._show_status()

    def refresh_data(self) -> None:
        self.refreshes += 1
        moved = self.source.store.renumber()
        if moved is not None:
            self._renumbered(moved)
        if not self.paused:
            self._take_findings()
            self._show_findings()
            self._show_timeline()
            self._show_activity()
        self._show_status()

    def _renumbered(self, moved: array[int]) -> None:
        """The store's rows moved (a bundle's routine lines joined the timeline when its read
        ended): the cursor stays on its line, marks on theirs, and the filter and the search are
        worked out again over the new rows."""
        timeline = self.query_one("#timeline", Timeline)
        row = timeline.row_at(timeline.cursor)
        follow = timeline.follow
        timeline.marked = {moved[r] for r in timeline.marked if r < len(moved)}
        with self._index_lock:
            self._index = SearchIndex(self.source.store)
        if self.filter.active:
            marked = timeline.marked
            self._apply_filter(self.filter)
            timeline.marked = marked
        else:
            timeline.set_view(None, len(self.source.store))
            if row is not None and row < len(moved) and not follow:
                timeline.go(moved[row])
        self.evidence_positions = sorted(p for r in timeline.marked if (p := timeline.position_of(r)) is not None)
        self._research()

    def _take_findings(self) -> None:
        now = self.settings.clock()
        found = {f"{f.id}|{f.group}": f for f in self.source.findings()}
        if self._seen is None:
            self._seen = set()
        # a bundle's findings all arrive at the end of the read: only live ones are news, and of
        # those only the ones with recent evidence (watch reads existing logs from the start)
        fresh = [k for k in found if k not in self._seen] if self.source.live else []
        for key in fresh:
            self._seen.add(key)
        fresh = [k for k in fresh if found[k].last_seen >= now - self.settings.history]
        for key in fresh:
            self.new_until[key] = now + self.settings.new_for
        if fresh and self.settings.notify_new:
            if len(fresh) <= 3:
                for key in fresh:
                    finding = found[key]
                    self.notify(f"{finding.id}: {finding.title}", title=f"New finding ({finding.severity})",
                                severity="error" if finding.severity in ("critical", "high") else "warning",
                                timeout=6)
            else:
                self.notify(", ".join(sorted({found[k].id for k in fresh})), title=f"{len(fresh)} new findings",
                            severity="error", timeout=6)
            self.bell()
        self.findings = found
        self.ordered = fmt.order(list(found.values()))

    def _show_findings(self) -> None:
        table = self.query_one("#findings", FindingsTable)
        table.show(self.ordered, self.settings.clock(), self.new_until, live=self.source.live)
        self._show_detail()

    def _show_detail(self) -> None:
        table = self.query_one("#findings", FindingsTable)
        key = table.selected
        finding = self.findings.get(key) if key else None
        if finding is None:
            if self._shown_detail is not None or not self.ordered:
                message = Text("No finding yet: watching the logs…" if self.source.live
                               else "No root cause found." if self.source.status() == "done" else "Reading…",
                               style="dim italic")
                if self.source.errors:
                    message.append("\n\nErrors (the rest was analysed):\n", style="bold red")
                    message.append("\n".join(self.source.errors[:20]), style="red")
                self.query_one("#detail-text", Static).update(message)
                self._shown_detail = None
            return
        stamp = (key or "", finding.revision * 1000 + finding.count)
        if stamp == self._shown_detail:
            return
        if self._shown_detail is None or self._shown_detail[0] != stamp[0]:
            # another finding: its heading first, wherever the last one was scrolled to
            self.query_one("#detail", VerticalScroll).scroll_home(animate=False, immediate=True)
        self._shown_detail = stamp
        self._detail = fmt.detail(finding, self.settings.clock(), copy_hint="c copies the commands · enter shows "
                                  "the evidence", short=self.short)
        self.query_one("#detail-text", Static).update(self._detail)

    def _show_timeline(self) -> None:
        timeline = self.query_one("#timeline", Timeline)
        count = len(self.source.store)
        if not self.filter.active:
            timeline.set_view(None, count)
            return
        if self._filtered is None:
            return  # a worker is computing the view
        store = self.source.store
        for row in range(self._filtered_upto, count):
            if store.accepts(self.filter, row):
                self._filtered.append(row)
        self._filtered_upto = count
        timeline.set_view(self._filtered, len(self._filtered))

    def _offsets(self) -> dict[str, float]:
        """Each source's clock offset (its clock minus the broker's, as the reports give it), from the
        analysis or, live, from the correction its events carry (which is the offset negated)."""
        store = self.source.store
        found = {stats.name: -stats.skew for stats in list(store.stats) if stats.skew}
        for info in self.source.source_info():
            if info.offset:
                found[info.name] = info.offset
        return found

    def _show_status(self) -> None:
        timeline = self.query_one("#timeline", Timeline)
        pending = len(self.source.store) - (self._filtered_upto if self.filter.active else timeline.count)
        self.query_one("#status", StatusBar).show(
            live=self.source.live, paused=self.paused, pending=max(0, pending), state=self.source.status(),
            sources=len(self.source.store.sources) or len(self.source.source_info()),
            rate=self.source.lines_per_second(), findings=self.ordered, filter_text=self.filter.describe(),
            errors=len(self.source.errors), offsets=self._offsets(), width=self.size.width)

    # -- findings ----------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#findings")
    def _row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        with suppress(NoMatches):  # the table also highlights while the app is closing
            self._show_detail()

    def selected_finding(self) -> Finding | None:
        key = self.query_one("#findings", FindingsTable).selected
        return self.findings.get(key) if key else None

    def action_evidence(self) -> None:
        """Show the chosen finding's evidence lines in the timeline, marked, the first one under
        the cursor; n and N walk through them."""
        finding = self.selected_finding()
        if finding is None:
            return
        store = self.source.store
        rows = {row for ref in finding.evidence if ref.line
                for row in [store.find_line(ref.file, ref.line, ref.time)] if row is not None}
        timeline = self.query_one("#timeline", Timeline)
        self.action_view("timeline")
        if not rows:
            self.notify("Its evidence lines are not in the timeline (artifact evidence only, or outside "
                        "--since/--until).", severity="warning")
            return
        if self.filter.active and any(timeline.position_of(r) is None for r in rows):
            self._apply_filter(Filter(), sync=True)
            self.notify("Filter cleared to show the evidence.")
        timeline.marked = rows
        self._search_for("")
        self.evidence_positions = sorted(p for r in rows if (p := timeline.position_of(r)) is not None)
        if self.evidence_positions:
            timeline.go(self.evidence_positions[0])
        timeline.refresh()

    def action_copy_fix(self) -> None:
        finding = self.selected_finding()
        if finding is None or not finding.remediation:
            self.notify("No fix to copy: choose a finding first.", severity="warning")
            return
        text = fmt.fix_commands(finding)
        self.last_copied = text
        self.copy_to_clipboard(text)
        commands = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        self.notify(f"Fix of {finding.id} copied ({commands} command{'s' if commands != 1 else ''}); "
                    "terminals without OSC 52 ignore it: the commands are in the detail pane.")

    # -- views -------------------------------------------------------------------------------

    def action_view(self, which: str) -> None:
        body = self.query_one("#body")
        body.set_class(which == "timeline", "mode-timeline")
        body.set_class(which == "detail", "mode-detail")
        target = self.query_one("#timeline" if which == "timeline" else "#detail")
        target.focus()

    def action_section(self, heading: str) -> None:
        """Show the detail scrolled so `heading` (Fix, Evidence) is its first line: at 80x24 the
        fix is below the fold."""
        finding = self.selected_finding()
        if finding is None:
            self.notify("Choose a finding first.", severity="warning", timeout=2)
            return
        self.action_view("detail")
        self.call_after_refresh(self._scroll_to_heading, heading)

    def _scroll_to_heading(self, heading: str) -> None:
        pane = self.query_one("#detail", VerticalScroll)
        width = self.query_one("#detail-text", Static).content_region.width or pane.size.width
        options = self.console.options.update_width(max(1, width))
        lines = self.console.render_lines(self._detail, options, pad=False)
        for y, segments in enumerate(lines):
            if "".join(segment.text for segment in segments).startswith(heading):
                pane.scroll_to(y=y, animate=False, immediate=True)
                return
        self.notify(f"This finding has no {heading} section.", timeout=2)

    def action_histogram(self) -> None:
        """The time histogram; a bucket chosen with enter moves the timeline to its first line."""
        timeline = self.query_one("#timeline", Timeline)
        row = timeline.row_at(timeline.cursor) if self.query_one("#body").has_class("mode-timeline") else None
        at = self.source.store.ts[row] if row is not None else None
        evidence = [ref.time for f in self.ordered for ref in f.evidence if ref.time is not None]

        def chosen(start: float | None) -> None:
            if start is not None:
                self.jump_to_time(start)

        self.push_screen(HistogramScreen(self.source.counts(), evidence, at, source_colour), chosen)

    def jump_to_time(self, ts: float) -> None:
        """The timeline's cursor to the first line of the view at or after `ts` (the last line
        when none is)."""
        self.action_view("timeline")
        timeline = self.query_one("#timeline", Timeline)
        store = self.source.store
        if not timeline.count:
            return
        stamps = store.ts
        if store.ordered:
            if timeline.rows is None:
                position = bisect_left(stamps, ts, 0, timeline.count)
            else:
                position = bisect_left(timeline.rows, ts, 0, timeline.count, key=stamps.__getitem__)
        else:  # a late live line made time go backwards: look at each
            position = next((p for p in range(timeline.count) if stamps[timeline.row_at(p) or 0] >= ts),
                            timeline.count)
        timeline.go(min(position, timeline.count - 1))

    def action_top(self) -> None:
        if isinstance(self.focused, FindingsTable):
            self.focused.move_cursor(row=0)
            return
        self.action_view("timeline")
        self.query_one("#timeline", Timeline).go(0)

    def action_bottom(self) -> None:
        if isinstance(self.focused, FindingsTable):
            self.focused.move_cursor(row=self.focused.row_count - 1)
            return
        self.action_view("timeline")
        timeline = self.query_one("#timeline", Timeline)
        timeline.go(timeline.count - 1)
        timeline.follow = True

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_escape(self) -> None:
        bar = self.query_one("#search-bar")
        timeline = self.query_one("#timeline", Timeline)
        if bar.display:
            # esc drops the search: one still counting is cancelled and will never answer
            bar.display = False
            self._search_for("")
            timeline.focus()
            return
        if timeline.marked or timeline.search:
            timeline.marked = set()
            self.evidence_positions = []
            self._search_for("")
        elif isinstance(self.focused, Timeline | VerticalScroll):
            self.query_one("#findings").focus()

    # -- pause -------------------------------------------------------------------------------

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.refresh_data()
        else:
            self._show_status()

    # -- timeline: errors, search, filter ----------------------------------------------------

    def action_next_error(self, step: int) -> None:
        self.action_view("timeline")
        timeline = self.query_one("#timeline", Timeline)
        level = self.source.store.level
        position = timeline.cursor + step
        while 0 <= position < timeline.count:
            row = timeline.row_at(position)
            if row is not None and level[row] >= ERROR_RANK:
                timeline.go(position)
                return
            position += step
        self.notify("No more errors " + ("below" if step > 0 else "above") + ".", timeout=2)

    def action_search(self) -> None:
        self.action_view("timeline")
        search = self.query_one("#search", Input)
        timeline = self.query_one("#timeline", Timeline)
        self.search_anchor = timeline.cursor
        timeline.follow = False
        self.query_one("#search-bar").display = True
        search.value = ""
        search.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        timeline = self.query_one("#timeline", Timeline)
        timeline.marked = set()
        self.evidence_positions = []
        self._search_for(event.value)

    def _search_for(self, needle: str) -> None:
        """Start counting `needle`'s hits over the timeline's view (a worker above SYNC_ROWS);
        whatever search ran before is cancelled and its answer will be dropped."""
        timeline = self.query_one("#timeline", Timeline)
        self.workers.cancel_group(self, "search")
        self.hits = Hits(needle, self.hits.generation + 1)
        timeline.search = needle
        if needle:
            if timeline.count <= SYNC_ROWS:
                self._hits_ready(self.hits.generation, self._search_rows(needle, timeline.count, lambda: False))
            else:
                self._search_worker(self.hits.generation, needle, timeline.count)
        self._show_search()
        timeline.refresh()

    def _search_rows(self, needle: str, count: int, cancelled: Callable[[], bool]) -> list[int]:
        with self._index_lock:
            return find_rows(self.source.store, self._index, needle, count, cancelled)

    @work(thread=True, exclusive=True, group="search")
    def _search_worker(self, generation: int, needle: str, count: int) -> None:
        worker = get_current_worker()
        try:
            rows = self._search_rows(needle, count, lambda: worker.is_cancelled)
        except Cancelled:
            return
        if not worker.is_cancelled:
            self.call_from_thread(self._hits_ready, generation, rows)

    def _hits_ready(self, generation: int, rows: list[int]) -> None:
        """The rows of a finished search, as positions of the current view; the cursor goes to
        the first at or after where the search began (wrapping, and saying so)."""
        if generation != self.hits.generation:
            return  # cancelled, or an older keystroke's answer
        timeline = self.query_one("#timeline", Timeline)
        positions = [p for r in rows if (p := timeline.position_of(r)) is not None]
        self.hits.positions = positions
        if positions:
            at = bisect_left(positions, self.search_anchor)
            self._go_hit(at % len(positions), wrapped=at == len(positions))
        else:
            self._show_search()

    def _go_hit(self, index: int, *, wrapped: bool) -> None:
        hits = self.hits
        hits.current, hits.wrapped = index, wrapped
        if wrapped:
            self.notify(f"Search wrapped to the {'top' if index == 0 else 'bottom'}.", timeout=2)
        assert hits.positions is not None
        self.query_one("#timeline", Timeline).go(hits.positions[index])
        self._show_search()

    def _show_search(self) -> None:
        self.query_one("#search-count", Static).update(self._search_note())
        timeline = self.query_one("#timeline", Timeline)
        self._row_moved(Timeline.Moved(timeline.row_at(timeline.cursor)))

    def _search_note(self) -> Text:
        """'2/6 "not authorised"', 'no match …', 'searching …': what the search found so far."""
        hits = self.hits
        if not hits.needle:
            return Text("")
        if hits.positions is None:
            return Text(f"searching {hits.needle!r}… ", "italic")
        if not hits.positions:
            return Text(f"{hits.needle!r} not found ", "bold yellow")
        note = Text(f"{hits.current + 1}/{len(hits.positions)} {hits.needle!r}", "bold")
        if hits.wrapped:
            note.append(" wrapped", "yellow")
        return note + Text("  ")

    @on(Input.Submitted, "#search")
    def _search_submitted(self, _: Input.Submitted) -> None:
        self.query_one("#search-bar").display = False
        self.query_one("#timeline", Timeline).focus()

    def _research(self) -> None:
        """The view changed under a search: count its hits again in the new view."""
        if self.hits.needle:
            self.search_anchor = self.query_one("#timeline", Timeline).cursor
            self._search_for(self.hits.needle)

    def action_next_match(self, step: int) -> None:
        timeline = self.query_one("#timeline", Timeline)
        hits = self.hits
        if hits.needle:
            self.action_view("timeline")
            if hits.positions is None:
                self.notify("Still searching…", timeout=1)
            elif not hits.positions:
                self.notify(f"Not found: {hits.needle}", severity="warning", timeout=2)
            else:
                # from the cursor, not the last hit: the user may have moved since
                cur = timeline.cursor
                at = (bisect_right(hits.positions, cur) if step > 0 else bisect_left(hits.positions, cur) - 1)
                wrapped = not 0 <= at < len(hits.positions)
                self._go_hit(at % len(hits.positions), wrapped=wrapped)
            return
        if self.evidence_positions:
            self.action_view("timeline")
            cur = timeline.cursor
            after = [p for p in self.evidence_positions if (p > cur if step > 0 else p < cur)]
            if after:
                timeline.go(after[0] if step > 0 else after[-1])
            else:
                timeline.go(self.evidence_positions[0] if step > 0 else self.evidence_positions[-1])
                self.notify("Evidence wrapped around.", timeout=2)
            return
        self.notify("Nothing to go to: / searches, enter on a finding marks its evidence.", timeout=3)

    def action_filter(self) -> None:
        def apply(result: Filter | None) -> None:
            if result is not None:
                self._apply_filter(result)

        self.push_screen(FilterScreen(self.filter, list(self.source.store.sources)), apply)

    def action_clear_filter(self) -> None:
        self._apply_filter(Filter())

    def _apply_filter(self, flt: Filter, *, sync: bool = False) -> None:
        self.filter = flt
        timeline = self.query_one("#timeline", Timeline)
        timeline.marked = set()
        self.evidence_positions = []
        self.action_view("timeline")
        if not flt.active:
            self._filtered, self._filtered_upto = None, 0
            timeline.set_view(None, len(self.source.store))
            self._show_status()
            self._research()
            return
        count = len(self.source.store)
        if sync or count <= SYNC_ROWS:
            self._filtered_ready(flt, self.source.store.matches(flt) or array("I"), count)
        else:
            self._filtered = None
            self._filter_worker(flt, count)

    @work(thread=True, exclusive=True, group="filter")
    def _filter_worker(self, flt: Filter, count: int) -> None:
        rows = self.source.store.matches(flt) or array("I")
        self.call_from_thread(self._filtered_ready, flt, rows, count)

    def _filtered_ready(self, flt: Filter, rows: array[int], count: int) -> None:
        if flt != self.filter:
            return
        # matches() may have looked at rows appended after `count`: keep only what it saw
        while rows and rows[-1] >= count:
            rows.pop()
        self._filtered, self._filtered_upto = rows, count
        timeline = self.query_one("#timeline", Timeline)
        timeline.follow = True
        self._show_timeline()
        self._show_status()
        self._research()
        if not rows:
            self.notify("Nothing matches this filter (F clears it).", severity="warning", timeout=3)

    @on(Timeline.Moved)
    def _row_moved(self, event: Timeline.Moved) -> None:
        try:
            info = self.query_one("#row-info", Static)
            timeline = self.query_one("#timeline", Timeline)
        except NoMatches:  # the cursor moved while the app was closing
            return
        row = event.row
        if row is None:
            info.update(self._search_note())
            return
        store = self.source.store
        skew = store.skew(row)
        client = store.clients[store.client[row]]
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append_text(self._search_note())
        text.append(f"{self.short(store.files[store.file[row]])}:{store.line[row]}", "cyan")
        text.append(f"  {store.kinds[store.kind[row]]}", "bold")
        text.append(f"  {LEVELS[store.level[row]]}")
        text.append(f"  {fmt.clock_time(store.ts[row], date=True, estimated=store.estimated(row))} UTC", "dim")
        if store.estimated(row):
            text.append(" (no time of its own)", "italic")
        if skew:
            text.append(f" (clock corrected {skew:+.1f}s)", "italic")
        if client:
            text.append(f"  client {client}")
        body = printable(store.text(row))
        if len(body) > timeline.text_width() or timeline.shift:
            # the timeline cuts it: the bottom bar has it whole, wrapped
            info.update(Group(text, Text(body, style=fmt.LEVEL_STYLE.get(store.level_name(row), ""))))
        else:
            info.update(text)


def create_app(settings: ScreenSettings, source: EventSource) -> CorrelatorApp:
    """The app over any source: the surfaces and the tests call this, never the class directly."""
    return CorrelatorApp(settings, source)
