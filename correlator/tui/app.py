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
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import chain
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import get_current_worker

from correlator.model import LEVELS, Finding
from correlator.tui import text as fmt
from correlator.tui.event_store import ERROR_RANK, EventStore, Filter
from correlator.tui.screens import FilterScreen, HelpScreen
from correlator.tui.sources import EventSource
from correlator.tui.widgets import Activity, FindingsTable, StatusBar, Timeline

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
        self._pending = threading.Event()
        self._seen: set[str] | None = None
        self._filtered_upto = 0
        self._filtered: array[int] | None = None
        self._shown_detail: tuple[str, int] | None = None
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
        yield Input(placeholder="search the timeline (enter keeps, esc drops)", id="search")
        yield Footer()

    def on_mount(self) -> None:
        search = self.query_one("#search", Input)
        search.cursor_blink = self.settings.cursor_blink
        search.display = False
        self.query_one("#findings", FindingsTable).focus()
        self._layout(self.size.width)
        self.set_interval(self.settings.tick, self._tick)
        self.refresh_data()
        # the first frame goes out before the reader threads start competing for the GIL
        self.call_after_refresh(self.source.start, self._signal)

    def on_unmount(self) -> None:
        self.source.stop()

    def on_resize(self) -> None:
        self._layout(self.size.width)
        # the activity chart is sized to its pane: draw it again once the pane has its new size
        self.call_after_refresh(self._show_activity)

    def _show_activity(self) -> None:
        with suppress(NoMatches):
            short = self.size.height < 30
            self.query_one("#activity", Activity).show(self.source.store, self.source.source_info(),
                                                       self.size.width, rows=2 if short else 0)

    def _layout(self, width: int) -> None:
        body = self.query_one("#body")
        body.set_class(width >= self.settings.wide_at, "wide")
        # below 30 rows the activity chart would eat the timeline: two sources, then scroll
        self.query_one("#activity").set_class(self.size.height < 30, "short")
        self.query_one("#activity").display = self.size.height >= 20

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
        if not self.paused:
            self._take_findings()
            self._show_findings()
            self._show_timeline()
            self._show_activity()
        self._show_status()

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
        table.show(self.ordered, self.settings.clock(), self.new_until)
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
        self._shown_detail = stamp
        self.query_one("#detail-text", Static).update(
            fmt.detail(finding, self.settings.clock(), copy_hint="c copies the commands · enter shows the evidence",
                       short=self.short))

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
            errors=len(self.source.errors), offsets=self._offsets())

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
        timeline.search = ""
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
        search = self.query_one("#search", Input)
        if search.display:
            search.display = False
            self.query_one("#timeline", Timeline).focus()
            return
        timeline = self.query_one("#timeline", Timeline)
        if timeline.marked or timeline.search:
            timeline.marked = set()
            timeline.search = ""
            self.evidence_positions = []
            timeline.refresh()
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
        search.display = True
        search.value = ""
        search.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        timeline = self.query_one("#timeline", Timeline)
        timeline.search = event.value
        timeline.marked = set()
        self.evidence_positions = []
        if event.value:
            self._find(event.value, self.search_anchor, 1, wrap=True)
        timeline.refresh()

    @on(Input.Submitted, "#search")
    def _search_submitted(self, _: Input.Submitted) -> None:
        search = self.query_one("#search", Input)
        search.display = False
        self.query_one("#timeline", Timeline).focus()

    def action_next_match(self, step: int) -> None:
        timeline = self.query_one("#timeline", Timeline)
        if timeline.search:
            self.action_view("timeline")
            self._find(timeline.search, timeline.cursor + step, step, wrap=True)
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

    def _find(self, needle: str, start: int, step: int, *, wrap: bool) -> None:
        timeline = self.query_one("#timeline", Timeline)
        if timeline.count <= SYNC_ROWS:
            found = _scan(self.source.store, timeline.rows, timeline.count, needle, start, step, wrap,
                          lambda: False)
            self._found(needle, found)
        else:
            self._find_worker(needle, start, step, wrap, timeline.rows, timeline.count)

    @work(thread=True, exclusive=True, group="search")
    def _find_worker(self, needle: str, start: int, step: int, wrap: bool, rows: array[int] | None,
                     count: int) -> None:
        worker = get_current_worker()
        found = _scan(self.source.store, rows, count, needle, start, step, wrap, lambda: worker.is_cancelled)
        if not worker.is_cancelled:
            self.call_from_thread(self._found, needle, found)

    def _found(self, needle: str, position: int | None) -> None:
        timeline = self.query_one("#timeline", Timeline)
        if needle != timeline.search:
            return
        if position is None:
            self.notify(f"Not found: {needle}", severity="warning", timeout=2)
        else:
            timeline.go(position)

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
        if not rows:
            self.notify("Nothing matches this filter (F clears it).", severity="warning", timeout=3)

    @on(Timeline.Moved)
    def _row_moved(self, event: Timeline.Moved) -> None:
        try:
            info = self.query_one("#row-info", Static)
        except NoMatches:  # the cursor moved while the app was closing
            return
        row = event.row
        if row is None:
            info.update("")
            return
        store = self.source.store
        skew = store.skew(row)
        client = store.clients[store.client[row]]
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{self.short(store.files[store.file[row]])}:{store.line[row]}", "cyan")
        text.append(f"  {store.kinds[store.kind[row]]}", "bold")
        text.append(f"  {LEVELS[store.level[row]]}")
        text.append(f"  {fmt.clock_time(store.ts[row], date=True)} UTC", "dim")
        if skew:
            text.append(f" (clock corrected {skew:+.1f}s)", "italic")
        if client:
            text.append(f"  client {client}")
        info.update(text)


def _scan(store: EventStore, rows: array[int] | None, count: int, needle: str, start: int, step: int,
          wrap: bool, cancelled: Callable[[], bool]) -> int | None:
    """The next timeline position whose text holds `needle` (case-insensitive), from `start`."""
    if not count:
        return None
    needle = needle.lower()
    start = max(0, min(start, count - 1)) if step < 0 else max(0, start)
    order: Iterable[int] = range(start, count) if step > 0 else range(start, -1, -1)
    if wrap:
        order = chain(order, range(0, min(start, count)) if step > 0 else range(count - 1, start, -1))
    for checked, position in enumerate(order):
        if checked % 4096 == 0 and cancelled():
            return None
        row = rows[position] if rows is not None else position
        if needle in store.text(row).lower():
            return position
    return None


def create_app(settings: ScreenSettings, source: EventSource) -> CorrelatorApp:
    """The app over any source: the surfaces and the tests call this, never the class directly."""
    return CorrelatorApp(settings, source)
