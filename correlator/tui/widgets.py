"""The app's widgets: the findings table, the timeline (rendered row by row from the store), the
per-source activity panel and the status bar."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.events import Click, Resize
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import DataTable, Footer, Static
from textual.widgets._footer import FooterKey

from correlator.printable import printable
from correlator.report_model import Finding
from correlator.tui import screen_text as fmt
from correlator.tui.event_store import EventStore
from correlator.tui.sources import SourceStatus


def source_colour(index: int) -> str:
    return fmt.SOURCE_COLOURS[index % len(fmt.SOURCE_COLOURS)]


class FindingsTable(DataTable[Text]):
    """Findings worst first. Rows are keyed by id|group so the cursor stays on its finding when
    the order changes under it. Enter jumps to the evidence (a click only chooses: reading the
    detail must not throw the view elsewhere)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "app.evidence", "Evidence", show=True, priority=False)]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self.keys: list[str] = []
        self._signature: tuple[object, ...] = ()
        self._last: tuple[list[Finding], float, dict[str, float], bool] | None = None

    def on_mount(self) -> None:
        self._titled = False
        self._hosted = False
        """The findings name more than one host (a bundle of several machines): a column says whose."""
        self._columns()

    def _columns(self) -> None:
        if self._hosted:
            self.add_column("host", key="host", width=12)
        self.add_column("sev", key="sev", width=6)
        self.add_column("finding", key="id", width=28)
        self.add_column("×", key="count", width=5)
        self.add_column("clients", key="clients", width=18)
        self.add_column("last", key="last", width=8)
        if self._titled:
            self.add_column("what", key="title")

    #: From this many columns the table also shows each finding's title (the detail always does).
    TITLE_FROM = 100

    def on_resize(self) -> None:
        titled = self.size.width >= self.TITLE_FROM
        if titled != self._titled:
            self._titled = titled
            self._recolumn()
            self.app.call_later(self._reshow)

    def _recolumn(self) -> None:
        # all columns anew: a column added to a table that has drawn keeps its old width
        self._signature = ()
        self.clear(columns=True)
        self.keys = []
        self._columns()

    def _reshow(self) -> None:
        if self._last is not None:
            findings, now, new, live = self._last
            self.show(findings, now, new, live=live)

    def show(self, findings: list[Finding], now: float, new: dict[str, float], *, live: bool = True) -> None:
        """`live`: 'last' says how long ago (42s); for a finished bundle, 'now' is days after the
        incident, so it says when within the incident (14:42:29, UTC like the timeline)."""
        self._last = (findings, now, new, live)
        rows = []
        for f in findings:
            key = f"{f.id}|{f.group}"
            is_new = new.get(key, 0.0) > now
            who = ", ".join(sorted(f.clients)) or "-"
            last = fmt.ago(now - f.last_seen) if live else fmt.clock_time(f.last_seen)[:8]
            rows.append((key, f, who, last, is_new))
        signature = tuple((k, f.count, f.severity, w, lst, n) for k, f, w, lst, n in rows)
        if signature == self._signature:
            return
        self._signature = signature
        current = self.keys[self.cursor_row] if self.keys and 0 <= self.cursor_row < len(self.keys) else None
        hosted = len({f.host for f in findings}) > 1
        if hosted != self._hosted:
            self._hosted = hosted
            self._recolumn()
        self.clear()
        self.keys = []
        for key, f, who, last, is_new in rows:
            who = printable(who)
            label = Text(f.id, style="bold reverse" if is_new else "bold")
            last_text = Text("NEW", style="bold black on yellow") if is_new else Text(last, style="dim")
            host = printable(f.host or "-")
            cells = [Text(host if len(host) <= 12 else host[:11] + "…", style="dim")] if self._hosted else []
            cells += [fmt.badge(f.severity), label, Text(str(f.count), justify="right"),
                     Text(who if len(who) <= 18 else who[:17] + "…"), last_text]
            if self._titled:
                cells.append(Text(printable(f.title)))
            self.add_row(*cells, key=key)
            self.keys.append(key)
        if current in self.keys:
            self.move_cursor(row=self.keys.index(current), animate=False)

    @property
    def selected(self) -> str | None:
        if not self.keys or not 0 <= self.cursor_row < len(self.keys):
            return None
        return self.keys[self.cursor_row]


class Timeline(ScrollView, can_focus=True):
    """The merged timeline. Only the rows on screen are rendered, each read from the store (text
    from its file at its offset), so a two-million-row timeline costs what a screenful costs.

    `rows` is the filtered view (an array of store rows) or None for every row; `count` is how
    many rows are shown, frozen while the screen is paused."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup,b", "page(-1)", "Page up", show=False),
        Binding("pagedown,space", "page(1)", "Page down", show=False),
        Binding("home", "app.top", "Top", show=False),
        Binding("end", "app.bottom", "Bottom", show=False),
        Binding("right,l", "shift(1)", "Scroll right", show=False),
        Binding("left,h", "shift(-1)", "Scroll left", show=False),
    ]

    #: Columns left and right (← →) move the lines' text; the time and source stay put.
    SHIFT = 20

    cursor: reactive[int] = reactive(0, always_update=True)

    class Moved(Message):
        def __init__(self, row: int | None) -> None:
            self.row = row
            super().__init__()

    def __init__(self, store: EventStore, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.store = store
        self.rows: array[int] | None = None
        self.count = 0
        self.marked: set[int] = set()
        self.search = ""
        self.follow = True
        self.shift = 0
        """Columns of the lines' text scrolled off to the left (← →)."""
        self.source_colour: Callable[[int], str] = source_colour

    def set_view(self, rows: array[int] | None, count: int) -> None:
        self.rows = rows
        self.count = count
        self.virtual_size = Size(self.size.width, count)
        if self.follow and count:
            if self.cursor != count - 1:
                self.cursor = count - 1
            self._reveal(centre=False)
        elif self.cursor >= count:
            self.cursor = max(0, count - 1)
        self.refresh()

    def row_at(self, position: int) -> int | None:
        if not 0 <= position < self.count:
            return None
        return self.rows[position] if self.rows is not None else position

    def position_of(self, row: int) -> int | None:
        if self.rows is None:
            return row if row < self.count else None
        from bisect import bisect_left

        at = bisect_left(self.rows, row, 0, self.count)
        return at if at < self.count and self.rows[at] == row else None

    def watch_cursor(self, value: int) -> None:
        self.post_message(self.Moved(self.row_at(value)))
        self.refresh()

    def go(self, position: int, *, centre: bool = True) -> None:
        if not self.count:
            return
        position = max(0, min(self.count - 1, position))
        self.follow = position == self.count - 1
        self.cursor = position
        self._reveal(centre=centre)

    def _reveal(self, *, centre: bool) -> None:
        """Scroll so the cursor is on screen; again after the next layout when the widget has
        just been shown (a hidden widget has no height to scroll by)."""
        self._scroll_to_cursor(centre)
        self.call_after_refresh(self._scroll_to_cursor, centre)

    def _scroll_to_cursor(self, centre: bool) -> None:
        position = self.cursor
        height = self.size.height
        if height <= 0:
            return
        top = self.scroll_offset.y
        if centre and not top <= position < top + height:
            target = max(0, position - height // 3)
        elif position < top:
            target = position
        elif position >= top + height:
            target = position - height + 1
        else:
            return
        self.scroll_to(y=target, animate=False, immediate=True)

    def action_move(self, step: int) -> None:
        self.go(self.cursor + step, centre=False)

    def action_page(self, step: int) -> None:
        self.go(self.cursor + step * max(1, self.size.height - 1), centre=False)

    def action_shift(self, step: int) -> None:
        """Scroll the lines' text sideways (a long OpenSSL error at 80 columns); the bottom bar
        also shows the cursor's line whole."""
        self.shift = max(0, self.shift + step * self.SHIFT)
        self.refresh()
        self.post_message(self.Moved(self.row_at(self.cursor)))

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.count)
        # the bottom bar grows and shrinks with the cursor's line: keep the cursor in sight
        self._scroll_to_cursor(False)

    #: Columns before a line's text: mark, source colour, time, source name.
    PREFIX = 1 + 1 + 12 + 1 + 12 + 1

    def text_width(self) -> int:
        """Columns left for a line's text (the screen's width while the widget is not laid out)."""
        return max(1, (self.size.width or self.app.size.width) - self.PREFIX)

    def on_click(self, event: Click) -> None:
        self.focus()
        self.go(self.scroll_offset.y + event.y, centre=False)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        position = self.scroll_offset.y + y
        row = self.row_at(position)
        base = self.rich_style
        if row is None:
            return Strip.blank(width, base)
        store = self.store
        src = store.src[row]
        level = store.level_name(row)
        colour = self.source_colour(src)
        name = store.sources[src]
        mark = "◆" if row in self.marked else ("!" if level in ("error", "critical") else " ")
        mark_style = "bold yellow" if row in self.marked else fmt.LEVEL_STYLE.get(level, "")
        skew = store.skew(row)
        estimated = store.estimated(row)
        time_text = fmt.clock_time(store.ts[row], estimated=estimated)
        line = Text(no_wrap=True, overflow="crop", end="")
        line.append(mark, mark_style)
        line.append("▌", colour)
        line.append(time_text, "italic" if skew or estimated else "dim")
        line.append(" ")
        line.append(f"{short(name)[:12]:<12}", colour)
        line.append(" ")
        body = printable(store.text(row))
        if self.shift:
            body = ("…" + body[self.shift + 1:]) if len(body) > self.shift else ""
        start = len(line)
        line.append(body, fmt.LEVEL_STYLE.get(level, ""))
        if self.search:
            lowered = body.lower()
            needle = self.search.lower()
            at = lowered.find(needle)
            while at >= 0:
                line.stylize("black on yellow", start + at, start + at + len(needle))
                at = lowered.find(needle, at + len(needle))
        if position == self.cursor:
            line.stylize("reverse" if self.has_focus else "underline")
        segments = list(line.render(self.app.console))
        strip = Strip(segments).crop_extend(0, width, base).apply_style(base) if segments else Strip.blank(width)
        return strip

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


#: Bucket sizes for the activity chart: per minute when the logs span hours, finer for short incidents.
BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def short(name: str) -> str:
    """'client:edge-07' -> 'edge-07': the role is in the colour and the file; the name must fit."""
    return name.split(":", 1)[1] if ":" in name else name


def bucket_label(seconds: int) -> str:
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}min"


class Activity(Static):
    """One line per source: its colour, its events over time as a sparkline (per minute when the
    logs span hours, finer for a short incident), its warnings and errors, its zone and offset.
    A burst of failures shows as a spike without reading a number."""

    def show(self, store: EventStore, infos: list[SourceStatus], width: int, *, rows: int = 0) -> None:
        """`rows` > 0 limits the chart to that many sources, the noisiest in warnings first."""
        by_name = {info.name: info for info in infos}
        width = self.size.width or width  # its pane, once laid out (half the screen when wide)
        first, last = store.first_ts(), store.last_ts()
        spark_width = max(8, min(72, width - 47))
        span = int(last - first) + 1 if first is not None and last is not None else 1
        bucket = next((b for b in BUCKETS if b * spark_width >= span), BUCKETS[-1])
        lines = []
        order = list(range(len(store.sources)))
        if rows and len(order) > rows:
            order = sorted(order, key=lambda i: -store.stats[i].alarming)[:rows]
        for index in order:
            name = store.sources[index]
            stats = store.stats[index]
            counts = store.counts(index, int(last), bucket, spark_width) if last is not None else []
            info = by_name.get(name)
            offset = info.offset if info is not None and info.offset else stats.skew
            zone = info.zone if info is not None else ""
            colour = source_colour(index)
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append("▌", colour)
            line.append(f"{short(name)[:14]:<14} ", colour)
            line.append(fmt.sparkline(counts), colour)
            line.append(f" {stats.rows:>6,}", "bold")
            line.append(f" {stats.alarming:>5,} warn+", "red" if stats.alarming else "dim")
            line.append(f" {zone} {offset:+.1f}s", "dim")
            lines.append(line)
        if not lines:
            lines.append(Text("waiting for the first lines…", style="dim italic"))
        elif not rows:
            label = "events per " + bucket_label(bucket)
            lines.insert(0, Text(f" {'source':<14} {label:<{spark_width}} {'events':>6} {'':11} zone offset",
                                 style="dim"))
        self.update(Text("\n").join(lines))


class KeysFooter(Footer):
    """The footer with whole keys only: Textual's cuts the keys that do not fit mid-word (`x` at 80
    columns), which reads as nothing and cannot be scrolled with the keyboard. The keys from the
    first one that does not fit on are left out (`?` lists every key)."""

    async def recompose(self) -> None:
        await super().recompose()
        self.call_after_refresh(self._fit)

    def on_resize(self, _: Resize) -> None:
        for key in self.query(FooterKey):
            key.display = True
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        right = self.content_region.right
        cut = False
        for key in self.query(FooterKey):
            cut = cut or key.region.right > right
            key.display = not cut


class StatusBar(Static):
    """One line: the mode, the active filter, the findings, then what else fits. At 80 columns
    the parts give way (shortened first, then dropped) in reverse order of importance, so the
    filter, which changes what every other pane shows, stays in sight."""

    def show(self, *, live: bool, paused: bool, pending: int, state: str, sources: int, rate: float,
             findings: list[Finding], filter_text: str, errors: int,
             offsets: dict[str, float] | None = None, width: int = 0) -> None:
        parts: list[tuple[int, list[Text]]] = []  # (importance, forms from longest to shortest)
        if paused:
            mode = Text(" ⏸ PAUSED ", "bold black on yellow")
            if pending:
                mode.append(f" +{pending:,} new", "yellow")
        elif live:
            mode = Text(" ● LIVE ", "bold white on dark_green")
        else:
            mode = Text(" ■ BUNDLE " if state == "done" else f" … {state} ", "bold white on grey35")
        parts.append((100, [mode]))
        if filter_text:
            filter_text = printable(filter_text)
            parts.append((90, [Text(f"filter: {filter_text}", "italic yellow"),
                               Text(f"filter: {filter_text}"[:40] + "…", "italic yellow")]))
        parts.append((80, self._findings(findings, live)))
        if errors:
            parts.append((70, [Text(f"{errors} error{'s' if errors != 1 else ''}", "red"), Text(f"{errors}✗", "red")]))
        if live:
            parts.append((60, [Text(f"{rate:,.0f} lines/s"), Text(f"{rate / 1000:,.1f}k/s" if rate >= 1000
                                                                      else f"{rate:,.0f}/s")]))
        parts.append((50, [Text(f"{sources} source{'s' if sources != 1 else ''}"), Text(f"{sources} src")]))
        # sub-second offsets are the network's latency, not a wrong clock: the activity chart has them
        moved = sorted(((v, n) for n, v in (offsets or {}).items() if abs(v) >= 1.0), key=lambda p: -abs(p[0]))
        if moved:
            shown = ", ".join(f"{short(n)} {v:+.0f}s" if abs(v) >= 10 else f"{short(n)} {v:+.1f}s"
                              for v, n in moved[:2])
            more = f" (+{len(moved) - 2})" if len(moved) > 2 else ""
            parts.append((40, [Text(f"clock corrected: {shown}{more}", "italic"),
                               Text(f"clock ±{len(moved)}", "italic")]))
        self.update(fit(parts, width or self.size.width or 10_000))

    @staticmethod
    def _findings(findings: list[Finding], live: bool) -> list[Text]:
        if not findings:
            return [Text("no finding yet" if live else "no finding", "green")]
        worst: dict[str, int] = {}
        for f in findings:
            worst[f.severity] = worst.get(f.severity, 0) + 1
        full = Text(f"{len(findings)} finding{'s' if len(findings) != 1 else ''}", "bold")
        brief = Text(f"{len(findings)}⚑", "bold")
        for sev in ("critical", "high", "medium", "low", "info"):
            if worst.get(sev):
                full.append(" ")
                full.append(f"{worst[sev]} {fmt.SEVERITY_LABEL[sev].lower()}", fmt.SEVERITY_STYLE[sev])
        return [full, Text(f"{len(findings)} finding{'s' if len(findings) != 1 else ''}", "bold"), brief]


def fit(parts: list[tuple[int, list[Text]]], width: int) -> Text:
    """Join the parts in their order until the line fits `width`, giving way least important
    first: the parts below 80 take their shorter forms, then they are left out, then the rest
    (the findings, then the filter) are shortened. What is still too long ends in '…'."""
    chosen = [0] * len(parts)
    dropped = [False] * len(parts)

    def length() -> int:
        shown = [forms[chosen[i]] for i, (_, forms) in enumerate(parts) if not dropped[i]]
        return sum(t.cell_len for t in shown) + 3 * max(0, len(shown) - 1)

    ascending = sorted(range(len(parts)), key=lambda i: parts[i][0])
    steps = ([("shorten", i) for i in ascending if parts[i][0] < 80 for _ in parts[i][1][1:]]
             + [("drop", i) for i in ascending if parts[i][0] < 80]
             + [("shorten", i) for i in ascending if parts[i][0] >= 80 for _ in parts[i][1][1:]])
    for action, i in steps:
        if length() <= width:
            break
        if action == "drop":
            dropped[i] = True
        elif chosen[i] + 1 < len(parts[i][1]):
            chosen[i] += 1
    line = Text(no_wrap=True, overflow="ellipsis")
    shown = [forms[chosen[i]] for i, (_, forms) in enumerate(parts) if not dropped[i]]
    for number, text in enumerate(shown):
        if number:  # the first part (the mode badge) is followed by a space only
            line.append(" " if number == 1 else " · ")
        line.append_text(text)
    return line


__all__ = ["Activity", "FindingsTable", "Segment", "StatusBar", "Style", "Timeline", "source_colour"]
