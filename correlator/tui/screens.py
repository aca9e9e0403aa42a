"""Small modal screens: the key help and the timeline filter. Each does one thing and returns."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select, SelectionList, Static

from correlator.model import LEVELS
from correlator.tui.event_store import Filter

KEYS: list[tuple[str, str]] = [
    ("Findings", ""),
    ("↑ ↓", "choose a finding (its detail follows)"),
    ("enter", "jump to its evidence in the timeline"),
    ("c", "copy the fix's commands to the clipboard"),
    ("Timeline", ""),
    ("/", "search as you type (enter keeps, esc drops)"),
    ("n N", "next / previous match, or evidence line"),
    ("e E", "next / previous error"),
    ("g G", "top / bottom (G follows new lines)"),
    ("f F", "filter: source, client id, kind, level / clear"),
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
            yield Label("sources (space ticks; none ticked = all)")
            yield SelectionList[str](*[(name, name, name in self.current.sources) for name in self.sources],
                                     id="filter-sources")
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
