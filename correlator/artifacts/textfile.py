"""What the line-based artifact parsers (mosquitto.conf, ACL, password file) share: reading a file
that may be binary or badly encoded without raising, and the hint for a first word mosquitto
would not recognise, so the same mistake reads the same in every file."""

from __future__ import annotations


def decode_artifact(data: str | bytes) -> str | None:
    """Text of an artifact; None when it is binary (a NUL byte early on). Bad bytes are replaced,
    never fatal: one odd character must not hide the rest of the file."""
    if isinstance(data, str):
        return data
    if b"\x00" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def keyword_hint(word: str) -> str:
    """Why mosquitto would not recognise `word` as a keyword, when the cause is invisible."""
    if word.startswith("\ufeff"):
        return " (the file starts with a UTF-8 byte order mark: save it without BOM)"
    if "\t" in word:
        return " (a tab is not a separator for mosquitto)"
    if word.startswith("#"):
        return " (only a line starting with '#' is a comment)"
    return ""
