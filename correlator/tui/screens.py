"""Small modal screens: the key help and the timeline filter. Each does one thing and returns."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, SelectionList, Static

from correlator.model import LEVELS
from correlator.tui.store import Filter

KEYS: list[tuple[str, str]] = [
    ("Findings", ""),
    ("↑ ↓", "choose a finding (the detail follows)"),
    ("enter", "jump to its evidence in the timeline (n / N: next / previous evidence line)"),
    ("c", "copy the fix's commands to the clipboard"),
    ("Views", ""),
    ("t", "timeline · d  detail · tab  next pane"),
    ("Timeline", ""),
    ("/", "search (incremental; enter keeps it, esc drops it)"),
    ("n  N", "next / previous match"),
    ("e  E", "next / previous error"),
    ("g  G", "top / bottom (G follows new lines)"),
    ("f", "filter by source, client id, kind, level · F clears the filter"),
    ("↑ ↓ PgUp PgDn", "move"),
    ("Live", ""),
    ("p", "pause the screen (reading goes on) / resume"),
    ("?", "this help · q  quit"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,enter", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        text = Text()
        for key, what in KEYS:
            if not what:
                text.append(f"\n{key}\n", "bold underline")
            else:
                text.append(f"  {key:<14}", "bold cyan")
                text.append(what + "\n")
        with VerticalScroll(id="help"):
            yield Static(Text("correlator: keys", style="bold"), id="help-title")
            yield Static(text)
            yield Static(Text("esc closes", style="dim"))


class FilterScreen(ModalScreen[Filter | None]):
    """Returns the new filter, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "apply", "Apply")]

    def __init__(self, current: Filter, sources: list[str]) -> None:
        super().__init__()
        self.current = current
        self.sources = sources

    def compose(self) -> ComposeResult:
        with Vertical(id="filter"):
            yield Label("Filter the timeline", id="filter-title")
            yield Label("sources (space toggles; none ticked = all)")
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
            with Horizontal(id="filter-buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Clear", id="clear")
                yield Button("Cancel", id="cancel")

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

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.action_apply()
        elif event.button.id == "clear":
            self.dismiss(Filter())
        else:
            self.dismiss(None)
