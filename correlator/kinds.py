"""The event kinds: every kind a format may emit, what it means, and its roles in the timeline.

`parsers/vocab/kinds.toml` declares them, as an lnav format declares its value table. Formats and
rules are checked against it when they load (an unknown kind is an error with its file and line,
never a silent no-match), and the stitcher and the engine ask it which kinds open, name, end or
refuse a connection instead of keeping their own lists. It sits in the ground layer because
formats, the timeline and the engine all read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from correlator.definitions import DefinitionFile
from correlator.model import FieldValue
from correlator.resources import builtin_dir

#: How a kind is spelt: `area.name`, lower case (`other` and `unparsed` are the two exceptions).
KIND_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
_KIND_KEYS = {"meaning", "roles", "step", "when", "fields"}


@dataclass(frozen=True)
class Kind:
    name: str
    meaning: str
    roles: frozenset[str] = frozenset()
    step: int | None = None
    """The order of a client's connect step (for the `step` role)."""
    when: Mapping[str, Mapping[str, FieldValue]] = field(default_factory=dict)
    """Roles that hold only when the event's fields have these values."""
    fields: frozenset[str] = frozenset()
    """Fields the events of a kind made by code (not by a format's patterns) carry."""


@dataclass(frozen=True)
class KindVocabulary:
    kinds: Mapping[str, Kind]
    roles: Mapping[str, str]
    """Role name -> what it means."""
    file: str

    def __contains__(self, name: object) -> bool:
        return name in self.kinds

    def with_role(self, role: str) -> frozenset[str]:
        """The kinds that always play `role` (a conditional role is asked with `plays`)."""
        if role not in self.roles:
            raise KeyError(f"no role {role!r} in {self.file}")
        return frozenset(k.name for k in self.kinds.values() if role in k.roles)

    def with_any(self, roles: Iterable[str]) -> frozenset[str]:
        return frozenset().union(*(self.with_role(role) for role in roles))

    def conditional(self, role: str) -> Mapping[str, Mapping[str, FieldValue]]:
        """Kind -> the field values under which it plays `role`."""
        return {k.name: k.when[role] for k in self.kinds.values() if role in k.when}

    def steps(self) -> dict[str, int]:
        return {k.name: k.step for k in self.kinds.values() if "step" in k.roles and k.step is not None}

    def suggest(self, name: str) -> str:
        """' (did you mean X?)' for a misspelt kind, or nothing."""
        import difflib  # an error's hint only: not imported by every start

        close = difflib.get_close_matches(name, list(self.kinds), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    def extended(self, kinds: Iterable[Kind]) -> KindVocabulary:
        """This vocabulary with kinds a format declares itself."""
        merged = dict(self.kinds)
        merged.update((k.name, k) for k in kinds)
        return KindVocabulary(merged, self.roles, self.file)


class _KindsLoader(DefinitionFile):
    what = "kinds"

    def load(self) -> KindVocabulary:
        data = self.read()
        self.keys(data, {"role", "kind"}, "top level")
        roles: dict[str, str] = {}
        for name, entry in self.table(data, "role").items():
            self.at = ("role", name)
            entry = self.keys(entry, {"meaning", "used_by"}, f"role.{name}")
            roles[name] = str(entry.get("meaning", ""))
        kinds = {}
        for name, entry in self.table(data, "kind").items():
            self.at = ("kind", name)
            kinds[name] = self.kind(name, entry, roles)
        return KindVocabulary(kinds, roles, str(self.file))

    def table(self, data: dict[str, Any], name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise self.error("must be a table", name, at=(name,))
        return value

    def kind(self, name: str, entry: Any, roles: Mapping[str, str]) -> Kind:
        key = f'kind."{name}"'
        entry = self.keys(entry, _KIND_KEYS, key)
        if not KIND_NAME.match(name) and name not in ("other", "unparsed"):
            raise self.error(f"kind {name!r} must look like area.name (lower case)", key)
        if not isinstance(entry.get("meaning"), str) or not entry["meaning"].strip():
            raise self.error("a kind needs its 'meaning'", key)
        kind_roles = entry.get("roles", [])
        if not isinstance(kind_roles, list):
            raise self.error("'roles' must be a list of role names", key, "roles")
        when = entry.get("when", {})
        if not isinstance(when, dict) or not all(isinstance(v, dict) for v in when.values()):
            raise self.error("'when' must be a table of role = { field = value }", key, "when")
        for role in (*kind_roles, *when):
            if role not in roles:
                raise self.error(f"unknown role {role!r} (known: {', '.join(sorted(roles))})", key, "roles")
        step = entry.get("step")
        if ("step" in kind_roles) != isinstance(step, int):
            raise self.error("the 'step' role and a 'step' number go together", key, "step")
        fields = entry.get("fields", [])
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise self.error("'fields' must be a list of field names", key, "fields")
        return Kind(name, entry["meaning"].strip(), frozenset(kind_roles), step, when, frozenset(fields))


def load_kinds(file: Path) -> KindVocabulary:
    return _KindsLoader(file).load()


def declared_kinds(entries: Any, loader: DefinitionFile) -> list[Kind]:
    """Kinds a format declares for itself (`[kind."area.name"] meaning = ...`): a meaning only,
    because roles act on code that reads the built-in vocabulary."""
    if not isinstance(entries, dict):
        raise loader.error("'kind' must be a table of kinds", "kind", at=("kind",))
    kinds = []
    for name, entry in entries.items():
        key = f'kind."{name}"'
        entry = loader.keys(entry, {"meaning"}, key)
        if not KIND_NAME.match(name):
            raise loader.error(f"kind {name!r} must look like area.name (lower case)", key, at=("kind", name))
        if not isinstance(entry.get("meaning"), str) or not entry["meaning"].strip():
            raise loader.error("a kind needs its 'meaning'", key, at=("kind", name))
        kinds.append(Kind(name, entry["meaning"].strip()))
    return kinds


@cache
def kind_vocabulary() -> KindVocabulary:
    """The built-in vocabulary, read once per process (kept in the start-up cache: reading the
    TOML took 4-5 ms of every start)."""
    from correlator import startup_cache

    file = builtin_dir("parsers") / "vocab" / "kinds.toml"
    return startup_cache.cached("kinds", [file], lambda: load_kinds(file), KindVocabulary)
