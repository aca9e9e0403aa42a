"""A report as the text of a file: what `analyze -o FILE` writes and the API's report route
serves, byte for byte (one function, so the two cannot drift apart)."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from correlator.report_model import Analysis

ReportFormat = Literal["text", "json", "md", "html"]
FORMATS: tuple[ReportFormat, ...] = ("text", "json", "md", "html")
#: Columns of a text report written to a file (a terminal uses its own width).
TEXT_WIDTH = 100


def render_file(analysis: Analysis, fmt: ReportFormat, title: str) -> str:
    """The report in `fmt`, ending in a newline."""
    if fmt == "json":
        text = json.dumps(analysis.to_dict(), indent=2)
    elif fmt == "md":
        from correlator.reports.markdown import render as render_md

        text = render_md(analysis, title=title)
    elif fmt == "html":
        from correlator.reports.html import render as render_html

        text = render_html(analysis, title=title)
    else:
        from rich.console import Console

        from correlator.reports.text import render as render_text

        buffer = io.StringIO()
        render_text(analysis, Console(file=buffer, width=TEXT_WIDTH, highlight=False, no_color=True), title=title)
        text = buffer.getvalue()
    return text if text.endswith("\n") else text + "\n"
