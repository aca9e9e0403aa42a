"""Text from a bundle as it may be shown: a log line, a topic or a client id can hold any byte,
and a terminal obeys control sequences (`ESC ] 52` writes the clipboard, `ESC [ 2J` clears the
screen, `ESC ] 8` makes links). Every text surface (the text, Markdown and HTML reports, the TUI)
draws bundle text through `printable`; JSON escapes control characters itself (`\\u001b`).
"""

from __future__ import annotations

#: Control characters drawn as their Unicode pictures (␀ ␛ ␡ ...), C1 controls (8-bit CSI and the
#: like) and the bidirectional overrides that reorder what a reader sees as U+FFFD.
_CONTROLS = {**{c: 0x2400 + c for c in range(32) if c != 9}, 0x7F: 0x2421,
             **{c: 0xFFFD for c in range(0x80, 0xA0)},
             **{c: 0xFFFD for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}}
TAB = 4


def printable(text: str) -> str:
    """A text as it may be drawn: tabs expanded, control characters made visible (a newline too:
    split lines first where they are meant)."""
    if text.isprintable():
        return text
    return text.expandtabs(TAB).translate(_CONTROLS)


def printable_lines(text: str) -> str:
    """`printable` for a document of lines (a Markdown or HTML report): its newlines stay."""
    return "\n".join(printable(line) for line in text.split("\n"))
