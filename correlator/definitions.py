"""What format files and rule files share: reading a TOML file, refusing unknown keys, compiling
regexes, and saying where a mistake is (the file and line, the format or rule, the key). One
place, so a user's typo reads the same whether it is in a format or in a rule.

`tomllib` gives values without positions, so the line of a key is found again in the text when
an error needs it (`key_lines`): only then, because a scan of every character costs more than the
parse itself.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlator.errors import DefinitionError
from correlator.resources import search_path

if TYPE_CHECKING:
    from correlator.formats.patterns import FormatPattern

#: A key's place in a TOML document: table names, array indexes and key names, outermost first.
KeyPath = tuple[str | int, ...]


class DefinitionFile:
    """Base of the format and rule loaders. `what` is 'format' or 'rule'; `name` becomes the
    definition's own name once read (the file's stem until then)."""

    what = "definition"
    bounded = True
    """Whether the file's patterns run under a time bound (formats/patterns.py): a rule's always,
    a user's format's; only the built-in formats' stay on plain `re`."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.name = file.stem
        self.text = ""
        self.at: KeyPath = ()
        """The table being read (`("message", 3)`): where an error points unless told otherwise."""
        self._lines: dict[KeyPath, int] | None = None

    def error(self, message: str, key: str, *sub: str | int, at: KeyPath | None = None) -> DefinitionError:
        """An error at `key` (said in words), on the line of the key path `at` (default: the
        table being read) extended by `sub`."""
        return DefinitionError(message, file=self.file, line=self.line_of((self.at if at is None else at) + sub),
                               context=f"{self.what} {self.name}, {key}")

    def line_of(self, path: KeyPath) -> int | None:
        if self._lines is None:
            self._lines = key_lines(self.text)
        return locate(self._lines, path)

    def read(self) -> dict[str, Any]:
        try:
            self.text = self.file.read_text(encoding="utf-8")
            return tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            raise DefinitionError(f"not valid TOML: {exc}", file=self.file, line=_toml_error_line(exc)) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise DefinitionError(f"cannot read: {exc}", file=self.file) from exc

    def keys(self, table: Any, allowed: set[str], key: str) -> dict[str, Any]:
        """`table` as a dict, refusing keys outside `allowed` (a typo must not silently do nothing)."""
        if not isinstance(table, dict):
            raise self.error("must be a table", key)
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.error(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})", key,
                             unknown[0])
        return table

    def pattern(self, source: str, key: str, at: KeyPath) -> FormatPattern:
        """A pattern that runs on text from the input, compiled as `bounded` says (`regex` under a
        time bound, or `re`): one that does not compile is an error at `key`."""
        # imported here: formats/patterns.py says where a pattern is with this module's line_in
        from correlator.formats.patterns import PATTERN_ERRORS, compile_pattern

        try:
            return compile_pattern(source, bounded=self.bounded, file=self.file, what=f"{self.what} {self.name}, {key}",
                                   at=at)
        except PATTERN_ERRORS as exc:
            raise self.error(f"regex does not compile: {exc}", key, at=at) from exc

    def regex(self, pattern: str, key: str, flags: int = 0, at: KeyPath | None = None) -> re.Pattern[str]:
        try:
            return re.compile(pattern, flags)
        except re.error as exc:
            raise self.error(f"regex does not compile: {exc}", key, at=at) from exc


def definition_files(kind: str, extra_dirs: Sequence[str | Path] | None = None) -> list[Path]:
    """The TOML files of `kind` ('parsers' or 'rules') in search order: built-in first, then the
    environment's folders, then the given ones; a later file replaces an earlier one of the same
    name."""
    by_name: dict[str, Path] = {}
    for folder in search_path(kind, list(extra_dirs or [])):
        if not folder.is_dir():
            raise DefinitionError(f"{'format' if kind == 'parsers' else 'rule'} folder does not exist", file=folder)
        for file in sorted(folder.glob("*.toml")):
            by_name[file.name] = file
    return list(by_name.values())


_TOML_AT = re.compile(r"\(at line (\d+), column \d+\)")


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    found = _TOML_AT.search(str(exc))
    return int(found.group(1)) if found else None


def line_in(file: str | Path, path: KeyPath) -> int | None:
    """The line of `path` in a definition file, for an error found after loading (a sample that
    does not yield what it declares). The file is read again, which only errors pay for."""
    try:
        return locate(key_lines(Path(file).read_text(encoding="utf-8")), path)
    except (OSError, UnicodeDecodeError):
        return None


def locate(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of `path`, else of the nearest enclosing key or table that has one."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


_HEADER = re.compile(r"\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(?:#.*)?$")
_BARE_KEY = re.compile(r"\s*((?:[A-Za-z0-9_-]+|\"(?:[^\"\\]|\\.)*\"|'[^']*')"
                       r"(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"(?:[^\"\\]|\\.)*\"|'[^']*'))*)\s*=")
_KEY_PART = re.compile(r"[A-Za-z0-9_-]+|\"((?:[^\"\\]|\\.)*)\"|'([^']*)'")


def _dotted(text: str) -> tuple[str, ...]:
    return tuple(m.group(1) if m.group(1) is not None else m.group(2) if m.group(2) is not None else m.group(0)
                 for m in _KEY_PART.finditer(text))


class _ValueScan:
    """Follows a TOML value across lines (arrays, inline tables, multi-line strings), recording
    the line where each element of an array begins, so a sample or a test case inside
    `samples = [...]` has a line of its own."""

    def __init__(self, lines: dict[KeyPath, int]) -> None:
        self.lines = lines
        self.stack: list[list[Any]] = []  # [opener, path, element index, element started]
        self.quote = ""  # the open multi-line string's delimiter

    @property
    def open(self) -> bool:
        return bool(self.stack) or bool(self.quote)

    def scan(self, text: str, start: int, number: int, path: KeyPath) -> None:
        i = start
        while i < len(text):
            if self.quote:
                end = text.find(self.quote, i)
                if end < 0:
                    return
                i, self.quote = end + 3, ""
                continue
            char = text[i]
            if char == "#":
                return
            if char in " \t\r":
                i += 1
                continue
            top = self.stack[-1] if self.stack else None
            if top is not None and top[0] == "[":
                if char == ",":
                    top[2], top[3] = top[2] + 1, False
                    i += 1
                    continue
                if char != "]" and not top[3]:
                    top[3] = True
                    self.lines.setdefault((*top[1], top[2]), number)
            if char in "[{":
                inner = (*top[1], top[2]) if top is not None and top[0] == "[" else path if top is None else top[1]
                self.stack.append([char, inner, 0, False])
                i += 1
            elif char in "]}":
                if self.stack:
                    self.stack.pop()
                i += 1
            elif text.startswith(('"""', "'''"), i):
                self.quote = text[i:i + 3]
                i += 3
            elif char in "\"'":
                i = _string_end(text, i)
            else:
                i += 1


def _string_end(text: str, start: int) -> int:
    quote = text[start]
    i = start + 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return i


def _table_path(names: tuple[str, ...], array: bool, counts: dict[KeyPath, int]) -> KeyPath:
    """A header's key path: an array of tables named on the way gets the index of its last entry
    (`[[message.samples]]` belongs to the last `[[message]]`); a new `[[...]]` entry its own."""
    path: KeyPath = ()
    for position, name in enumerate(names):
        path = (*path, name)
        if array and position == len(names) - 1:
            index = counts.get(path, 0)
            counts[path] = index + 1
            return (*path, index)
        if path in counts:
            path = (*path, counts[path] - 1)
    return path


def key_lines(document: str) -> dict[KeyPath, int]:
    """The line (from 1) of every table, array-of-tables entry and key of a TOML document, and of
    every element of an array value: `("message", 2, "kind")`, `("message", 2, "samples", 0)`."""
    lines: dict[KeyPath, int] = {}
    counts: dict[KeyPath, int] = {}
    table: KeyPath = ()
    value = _ValueScan(lines)
    for number, text in enumerate(document.splitlines(), 1):
        if value.open:
            value.scan(text, 0, number, table)
            continue
        header = _HEADER.match(text)
        if header is not None:
            table = _table_path(_dotted(header.group(2)), header.group(1) == "[[", counts)
            lines.setdefault(table, number)
            continue
        key = _BARE_KEY.match(text)
        if key is None:
            continue
        path = (*table, *_dotted(key.group(1)))
        lines.setdefault(path, number)
        value.scan(text, key.end(), number, path)
    return lines
