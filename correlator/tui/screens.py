"""The app's other screens: the key help, the timeline filter and the time histogram. Each does
one thing and returns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Size
from textual.screen import ModalScreen, Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Label, Select, SelectionList, Static

from correlator.model import LEVELS
from correlator.tui.event_store import Filter
from correlator.tui.histogram import Bucket, CountFeed, Histogram, build, opening_size, zoom
from correlator.tui.widgets import KeysFooter

KEYS: list[tuple[str, str]] = [
    ("Findings", ""),
    ("↑ ↓", "choose a finding (its detail follows)"),
    ("enter", "jump to its evidence in the timeline"),
    ("c", "copy the fix's commands to the clipboard"),
    ("x v", "detail scrolled to its Fix / its Evidence"),
    ("Timeline", ""),
    ("/", "search as you type (enter keeps, esc drops)"),
    ("n N", "next / previous match (3/6 hits), or evidence line"),
    ("← →", "scroll the lines sideways (bottom bar: the whole line)"),
    ("e E", "next / previous error"),
    ("g G", "top / bottom (G follows new lines)"),
    ("f F", "filter: client id (its broker lines too), kind, level, source / clear"),
    ("i", "time histogram: when it started (enter jumps there)"),
    ("Views", ""),
    ("t d", "timeline / detail (side by side when wide)"),
    ("tab", "next pane · esc back to the findings"),
    ("p", "pause the screen (reading goes on) / resume"),
    ("? q", "this help / quit"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,enter", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        parts: list[RenderableType] = []
        grid: Table | None = None
        for key, what in KEYS:
            if not what:
                grid = Table.grid(padding=(0, 2))
                grid.add_column(style="bold cyan", width=7, no_wrap=True)
                grid.add_column(ratio=1)
                parts += [Text(key, style="bold underline"), grid]
            elif grid is not None:
                grid.add_row(key, what)
        with VerticalScroll(id="help"):
            yield Static(Text("correlator: keys  (esc closes)", style="bold"), id="help-title")
            yield Static(Group(*parts))


class FilterScreen(ModalScreen[Filter | None]):
    """Returns the new filter, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "apply", "Apply"),
                                             Binding("enter", "apply", "Apply", show=False)]

    def __init__(self, current: Filter, sources: list[str]) -> None:
        super().__init__()
        self.current = current
        self.sources = sources

    def compose(self) -> ComposeResult:
        with Vertical(id="filter"):
            yield Label(Text.assemble(("Filter the timeline", "bold"),
                                      ("   enter applies · esc cancels", "dim")),
                        id="filter-title")
            # the client id first: it is what an engineer filters by, and the dialog opens on it
            with Horizontal(classes="filter-row"):
                yield Label("client id contains", classes="filter-label")
                yield Input(self.current.client, placeholder="edge-02", id="filter-client")
            with Horizontal(classes="filter-row"):
                yield Label("kind contains", classes="filter-label")
                yield Input(self.current.kind, placeholder="tls", id="filter-kind")
            with Horizontal(classes="filter-row"):
                yield Label("level at least", classes="filter-label")
                yield Select([(level, level) for level in LEVELS], value=self.current.min_level,
                             allow_blank=False, id="filter-level")
            yield Label("sources (space ticks; none ticked = all)")
            yield SelectionList[str](*[(name, name, name in self.current.sources) for name in self.sources],
                                     id="filter-sources")

    def on_mount(self) -> None:
        self.query_one("#filter-client", Input).focus()

    def _value(self) -> Filter:
        level = self.query_one("#filter-level", Select).value
        return Filter(sources=frozenset(self.query_one("#filter-sources", SelectionList).selected),
                      client=self.query_one("#filter-client", Input).value.strip(),
                      kind=self.query_one("#filter-kind", Input).value.strip(),
                      min_level=level if isinstance(level, str) else "debug")

    def action_apply(self) -> None:
        self.dismiss(self._value())

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()


class HistogramScreen(Screen[float | None]):
    """The time histogram (lnav's `i`): one row per time bucket, messages per source stacked in
    their colours or side by side, errors and finding evidence marked. + and - zoom, s switches
    stacked / per source, enter returns the bucket's start (the app jumps the timeline there),
    esc returns nothing."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,i", "cancel", "Back"),
        Binding("enter", "choose", "Jump there"),
        Binding("plus,equals_sign", "zoom(-1)", "Zoom in", key_display="+"),
        Binding("minus", "zoom(1)", "Zoom out", key_display="-"),
        Binding("s", "stacked", "Stacked / per source"),
        Binding("e", "next_error(1)", "Next error"),
        Binding("E", "next_error(-1)", "Prev error", show=False),
    ]

    def __init__(self, feeds: Sequence[CountFeed], evidence: Sequence[float], at: float | None,
                 colour: Callable[[int], str]) -> None:
        super().__init__()
        self.feeds = list(feeds)
        self.evidence = list(evidence)
        self.at = at
        self.colour = colour

    def compose(self) -> ComposeResult:
        yield Static("", id="histogram-title")
        yield HistogramView(id="histogram")
        yield KeysFooter()

    def on_mount(self) -> None:
        view = self.query_one(HistogramView)
        view.colour = self.colour
        view.show(build(self.feeds, opening_size(self.feeds), self.evidence), self.at)
        view.focus()
        self._title()

    def _title(self) -> None:
        view = self.query_one(HistogramView)
        hist = view.histogram
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(f" messages per {_size_label(hist.size)}", "bold")
        title.append(" stacked " if view.stacked else " per source ", "italic")
        # the marks' legend before the sources: at 80 columns the sources are what gets cut
        title.append(" ✗ errors", "red")
        title.append("  ◆ evidence ", "bold yellow")
        for index, name in enumerate(hist.sources):
            title.append(" ▌", self.colour(index))
            title.append(name.split(":", 1)[-1], self.colour(index))
        self.query_one("#histogram-title", Static).update(title)

    def action_zoom(self, step: int) -> None:
        view = self.query_one(HistogramView)
        bucket = view.current()
        keep = bucket.start if bucket is not None else None
        view.show(build(self.feeds, zoom(view.histogram.size, step, self.feeds), self.evidence), keep)
        self._title()

    def action_stacked(self) -> None:
        view = self.query_one(HistogramView)
        view.stacked = not view.stacked
        view.refresh()
        self._title()

    def action_next_error(self, step: int) -> None:
        view = self.query_one(HistogramView)
        buckets = view.histogram.buckets
        at = view.cursor + step
        while 0 <= at < len(buckets):
            if buckets[at].errors or buckets[at].evidence:
                view.go(at)
                return
            at += step
        self.notify("No more errors " + ("below." if step > 0 else "above."), timeout=2)

    def action_choose(self) -> None:
        bucket = self.query_one(HistogramView).current()
        self.dismiss(float(bucket.start) if bucket is not None else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def _size_label(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


class HistogramView(ScrollView, can_focus=True):
    """The histogram's rows, drawn one at a time (a day at one second a bucket is 86,400 rows)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup,b", "page(-1)", "Page up", show=False),
        Binding("pagedown,space", "page(1)", "Page down", show=False),
        Binding("home,g", "go(0)", "Top", show=False),
        Binding("end,G", "go(-1)", "Bottom", show=False),
    ]

    #: Columns before the bar: time, then after it the count, errors and evidence marks.
    LEFT = 9
    RIGHT = 19

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.histogram = Histogram(1, (), ())
        self.cursor = 0
        self.stacked = True
        self.colour: Callable[[int], str] = lambda index: "white"

    def show(self, histogram: Histogram, at: float | None) -> None:
        self.histogram = histogram
        buckets = histogram.buckets
        if at is not None:
            self.cursor = histogram.index_of(at)
        else:  # the first bucket with an error, else the busiest: where an engineer looks first
            errors = [i for i, b in enumerate(buckets) if b.errors or b.evidence]
            self.cursor = errors[0] if errors else max(range(len(buckets)), key=lambda i: buckets[i].total, default=0)
        self.virtual_size = Size(self.size.width, len(buckets))
        self.go(self.cursor)

    def current(self) -> Bucket | None:
        buckets = self.histogram.buckets
        return buckets[self.cursor] if 0 <= self.cursor < len(buckets) else None

    def go(self, index: int) -> None:
        count = len(self.histogram.buckets)
        if not count:
            return
        self.cursor = index % count if index < 0 else min(index, count - 1)
        self.call_after_refresh(self._reveal)
        self._reveal()
        self.refresh()

    def _reveal(self) -> None:
        height = self.size.height
        top = self.scroll_offset.y
        if height <= 0:
            return
        if not top <= self.cursor < top + height:
            self.scroll_to(y=max(0, self.cursor - height // 3), animate=False, immediate=True)

    def action_move(self, step: int) -> None:
        self.go(max(0, self.cursor + step))

    def action_page(self, step: int) -> None:
        self.go(max(0, self.cursor + step * max(1, self.size.height - 1)))

    def action_go(self, index: int) -> None:
        self.go(index)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.histogram.buckets))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        index = self.scroll_offset.y + y
        buckets = self.histogram.buckets
        if not 0 <= index < len(buckets):
            return Strip.blank(width, self.rich_style)
        bucket = buckets[index]
        bar_width = max(4, width - self.LEFT - self.RIGHT)
        line = Text(no_wrap=True, overflow="crop", end="")
        stamp = datetime.fromtimestamp(bucket.start, UTC)
        line.append(stamp.strftime("%H:%M:%S"), "dim" if bucket.total else "grey30")
        if index == self.cursor:  # the time and the numbers: a reversed bar would lose its colours
            line.stylize("reverse" if self.has_focus else "underline")
        line.append(" ")
        line.append_text(self._bar(bucket, bar_width))
        numbers = len(line)
        line.append(f" {bucket.total:>8,}", "bold" if bucket.total else "grey30")
        line.append(f" {'✗' + format(bucket.errors, ','):>6}" if bucket.errors else " " * 7,
                    "bold red" if bucket.errors else "")
        line.append(f" ◆{bucket.evidence:<2}" if bucket.evidence else "    ", "bold yellow" if bucket.evidence else "")
        if index == self.cursor:
            line.stylize("reverse" if self.has_focus else "underline", numbers)
        segments = list(line.render(self.app.console))
        return Strip(segments).crop_extend(0, width, self.rich_style)

    def _bar(self, bucket: Bucket, width: int) -> Text:
        """Stacked: one bar, each source's share in its colour, scaled to the busiest bucket.
        Per source: one column per source, each scaled to that source's busiest bucket."""
        bar = Text(end="")
        hist = self.histogram
        if self.stacked:
            peak = hist.peak() or 1
            used = 0
            for i, n in enumerate(bucket.counts):
                cells = round(n / peak * width) if n else 0
                cells = max(cells, 1) if n else 0
                cells = min(cells, width - used)
                bar.append("█" * cells, self.colour(i))
                used += cells
            bar.append(" " * (width - used))
            return bar
        columns = max(1, len(hist.sources))
        each = max(2, width // columns)
        for i, (n, peak) in enumerate(zip(bucket.counts, hist.source_peaks(), strict=True)):
            cells = max(1, round(n / (peak or 1) * (each - 1))) if n else 0
            bar.append("█" * cells + " " * (each - cells), self.colour(i))
        bar.append(" " * max(0, width - each * columns))
        return bar

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
