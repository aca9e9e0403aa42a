"""What format files and rule files share: reading a TOML file, refusing unknown keys, compiling
regexes, and saying where a mistake is (the file, the format or rule, the key). One place, so a
user's typo reads the same whether it is in a format or in a rule."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from correlator.errors import DefinitionError
from correlator.resources import search_path


class DefinitionFile:
    """Base of the format and rule loaders. `what` is 'format' or 'rule'; `name` becomes the
    definition's own name once read (the file's stem until then)."""

    what = "definition"

    def __init__(self, file: Path) -> None:
        self.file = file
        self.name = file.stem

    def error(self, message: str, key: str) -> DefinitionError:
        return DefinitionError(message, file=self.file, context=f"{self.what} {self.name}, {key}")

    def read(self) -> dict[str, Any]:
        try:
            return tomllib.loads(self.file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise DefinitionError(f"not valid TOML: {exc}", file=self.file) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise DefinitionError(f"cannot read: {exc}", file=self.file) from exc

    def keys(self, table: Any, allowed: set[str], key: str) -> dict[str, Any]:
        """`table` as a dict, refusing keys outside `allowed` (a typo must not silently do nothing)."""
        if not isinstance(table, dict):
            raise self.error("must be a table", key)
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.error(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})", key)
        return table

    def regex(self, pattern: str, key: str, flags: int = 0) -> re.Pattern[str]:
        try:
            return re.compile(pattern, flags)
        except re.error as exc:
            raise self.error(f"regex does not compile: {exc}", key) from exc


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
