"""A log format as data: how a line starts (timestamp, wrapper, level) and what its messages mean.

A format file holds one `[format]` table with its `[[format.line]]` patterns (each captures `ts`
and `body`, optionally `level`, `host` and other fields; groups whose names start with `_` are
matched but not kept) and a catalogue of `[[message]]` patterns applied to the body, each naming
the event kind and carrying sample lines. Unknown keys are errors, so a typo in a user's file is
reported with the file, the format and the key instead of silently doing nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from correlator.definitions import DefinitionFile
from correlator.formats.patterns import PATTERN_ERRORS, FormatPattern, PatternTimeout, compile_pattern
from correlator.formats.scan import RoutineSpec, ScanPatternError, epoch_digits
from correlator.formats.timeparse import TimeParser
from correlator.kinds import KIND_NAME, Kind, KindVocabulary, declared_kinds, kind_vocabulary
from correlator.model import LEVELS, FieldValue
from correlator.resources import builtin_dir

#: Field names whose values are integers unless a format says otherwise.
INT_FIELDS = frozenset({
    "peer_port", "listener_port", "keepalive", "connack_code", "reason_code", "rc", "pid", "qos",
    "retain", "mid", "bytes", "count", "port", "local_port", "dup",
})

_ROLES = ("broker", "client", "opcua_server", "opcua_client", "any")


@dataclass
class Sample:
    line: str
    kind: str
    fields: dict[str, FieldValue]
    where: str
    message: str | None = None
    """Name of the message pattern that must match (set for samples listed under a message)."""
    at: tuple[str | int, ...] = ()
    """Where the sample is in its file (a key path, see definitions.key_lines)."""


@dataclass
class LinePattern:
    name: str
    regex: FormatPattern
    time: TimeParser | None
    strip: FormatPattern | None = None
    decode: str = "regex"
    json_keys: dict[str, str] = field(default_factory=dict)
    json_match: dict[str, str] = field(default_factory=dict)
    level: str | None = None
    require_message: bool = False
    """The pattern only counts when the body is a known message (for lines with no prefix at all,
    which would otherwise claim every line of every file)."""
    strip_time: TimeParser | None = None
    """How to read the `(?P<ts>...)` of the `strip` pattern (`strip_time`, "epoch" by default): when
    the stripped prefix carries a time of its own, it dates the line, not the outer one. A syslog
    header's date has no year and the receiver's zone; the mosquitto epoch behind it has both
    (a journal pasted years later would otherwise be dated this year)."""
    groups: tuple[int, int, int, int] = field(init=False, repr=False)
    """Group numbers of ts, body, level and host (0 when the regex has none). Worked out once, so a
    line costs one `groups()` call instead of a groupdict and the dict juggling after it."""
    extras: tuple[tuple[int, str], ...] = field(init=False, repr=False)
    """(group number, field name) of the kept fields beyond those four."""

    def __post_init__(self) -> None:
        index = self.regex.groupindex
        self.groups = (index.get("ts", 0), index.get("body", 0), index.get("level", 0), index.get("host", 0))
        self.extras = tuple((number, name) for name, number in index.items()
                            if name not in ("ts", "body", "level", "host") and not name.startswith("_"))


@dataclass
class MessagePattern:
    name: str
    kind: str
    regex: FormatPattern
    level: str | None
    extract: bool
    const: dict[str, FieldValue]
    first_words: tuple[str, ...]
    """The body's first word must be one of these for the message to match (empty: any)."""
    samples: list[Sample]
    routine: str | None = None
    """A narrower pattern for this message's routine lines, which the bulk reader counts without
    parsing (see correlator/formats/scan.py); None: every line of it is parsed."""
    generic: bool = False
    """A catch-all (`Error: ...`): it reads the format's own lines, but says nothing of whose log
    a file is, so detection counts it as a line pattern's match, not a known message."""


@dataclass
class Format:
    name: str
    title: str
    file: str
    role: str
    multiline: bool
    priority: int
    lines: list[LinePattern]
    messages: list[MessagePattern]
    levels: dict[str, str]
    types: dict[str, str]
    continuation: FormatPattern | None
    samples: list[Sample]
    fallback: bool = False
    notes: str = ""
    kinds: tuple[Kind, ...] = ()
    """Kinds this format declares for itself (beyond parsers/vocab/kinds.toml)."""
    roles: dict[str, FormatPattern] = field(default_factory=dict)
    """A role other than `role` for a log whose first lines match its pattern: one Python logging
    layout serves asyncua's server and its clients, and only the logger names tell them apart."""
    extract_continuation: bool = False
    """Evidence found in continuation lines is added to the record (stack traces); off by default
    because continuations can be payload (mosquitto_sub) whose words are not evidence."""
    routine: RoutineSpec | None = None
    """What the bulk reader may count instead of parsing (`[format.routine]`)."""
    bounded: bool = False
    """A user's format: its patterns run under a time bound (formats/patterns.py)."""
    by_word: dict[str, list[MessagePattern]] = field(default_factory=dict)
    unkeyed: list[MessagePattern] = field(default_factory=list)
    _combined: dict[str | None, _Combined | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        keyed: dict[str, list[MessagePattern]] = {}
        for message in self.messages:
            for word in message.first_words:
                keyed.setdefault(word, []).append(message)
            if not message.first_words:
                self.unkeyed.append(message)
        # Each word's list already merged with the unkeyed patterns in catalogue order, so a line
        # costs one dict lookup before its few regex tries.
        order = {id(m): i for i, m in enumerate(self.messages)}
        for word, messages in keyed.items():
            self.by_word[word] = sorted(messages + self.unkeyed, key=lambda m: order[id(m)])

    def find_message(self, body: str) -> tuple[MessagePattern, dict[str, FieldValue]] | None:
        """The first catalogue message (in catalogue order) that matches `body`, with its fields
        already typed. One regex call per line: the candidates of a first word are
        compiled into one alternation whose outer group names the message."""
        space = body.find(" ")
        word = body if space < 0 else body[:space]
        combined = (self._alternation(word) if word in self.by_word else None) or self._alternation(None)
        return None if combined is None else combined.match(body)

    def compile_ahead(self) -> None:
        """Every alternation compiled now (for the start-up cache, correlator/startup_cache.py, which
        keeps them compiled: a busy log's first lines and the detection of a folder's logs needed
        dozens, each a large regex)."""
        for word in [*self.by_word, None]:
            self._alternation(word)
        if self.routine is not None:
            _ = self.routine.patterns  # the bulk reader's Hyperscan patterns
            _ = self.routine.key_places  # where the thinning reads a routine line's key

    def _alternation(self, word: str | None) -> _Combined | None:
        """The first word's alternation (None: of the unkeyed messages), compiled when a line
        first needs it: most formats never read a line, and a log uses a few of its words."""
        try:
            return self._combined[word]
        except KeyError:
            group = self.by_word[word] if word is not None else self.unkeyed
            combined = self._combined[word] = _Combined.build(group, self) if group else None
            return combined

    def role_of(self, lines: list[str]) -> str:
        """The role of a log with these first lines: the first of `roles` whose pattern one of
        them matches, else the format's own."""
        for role, pattern in self.roles.items():
            try:
                if any(pattern.search(line) for line in lines):
                    return role
            except PatternTimeout:
                continue  # a role pattern that backtracks names no role; the lines are still read
        return self.role

    def without(self, pattern: FormatPattern) -> Format:
        """This format with `pattern` set aside (a user's pattern that keeps running out of time):
        the line pattern or message it is dropped, a strip or continuation pattern no longer used.
        A shallow copy with its own alternations; the original, shared by other files, is kept."""
        derived = copy.copy(self)
        derived.lines = [lp if lp.strip is not pattern else dataclasses.replace(lp, strip=None)
                         for lp in self.lines if lp.regex is not pattern]
        derived.messages = [m for m in self.messages if m.regex is not pattern]
        derived.continuation = None if self.continuation is pattern else self.continuation
        derived.roles = {role: p for role, p in self.roles.items() if p is not pattern}
        derived.by_word, derived.unkeyed, derived._combined = {}, [], {}
        derived.__post_init__()
        return derived

    def kind_of(self, name: str) -> str:
        """A field's type: the format's own word for it, else int for the known numeric fields."""
        return str(self.types.get(name, "int" if name in INT_FIELDS else "str"))

    def convert(self, name: str, value: str) -> FieldValue:
        if name not in INT_FIELDS and name not in self.types:
            return value  # the common case: text stays text, no lookups beyond these two
        return typed(self.kind_of(name), value)

    def level_of(self, word: str | None) -> str | None:
        if not word:
            return None
        lowered = word.strip().lower()
        mapped = self.levels.get(lowered)
        if mapped:
            return mapped
        return lowered if lowered in LEVELS else None


def typed(kind: str, value: str) -> FieldValue:
    """`value` as the field type says; text that does not fit stays text rather than failing."""
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            return value
    if kind == "float":
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "lower":
        return value.lower()
    return value


_GROUP_NAME = re.compile(r"\(\?P<([A-Za-z_]\w*)>")
_BACKREF = re.compile(r"\(\?P=([A-Za-z_]\w*)\)")


def _to_int(value: str) -> FieldValue:
    try:
        return int(value)
    except ValueError:
        return value


def _to_float(value: str) -> FieldValue:
    try:
        return float(value)
    except ValueError:
        return value


#: How a field type turns text into a value (str needs nothing); `typed` says the same per call.
def _lower(value: str) -> FieldValue:
    return value.lower()


#: Conversions by a field's type: functions of this module (the start-up cache names them).
_CONVERT: dict[str, Callable[[str], FieldValue]] = {"int": _to_int, "float": _to_float, "lower": _lower}


_DIGITS_ONLY = re.compile(r"^(?:\\d|\[0-9\])(?:[+*]|\{\d+(?:,\d*)?\})?$")


def _top_level(pattern: str, start: int) -> list[tuple[int, str]]:
    """The parentheses and bars of `pattern` from `start` on that are not escaped or inside a
    character class, with their positions: enough structure to find a group's end or split an
    alternation without a regex parser."""
    out = []
    i, in_class = start, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "()|":
            out.append((i, char))
        i += 1
    return out


def _group_end(pattern: str, open_at: int) -> int | None:
    """Position of the parenthesis that closes the group opened at `open_at`."""
    depth = 0
    for i, char in _top_level(pattern, open_at):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


def group_source(pattern: str, name: str) -> str | None:
    """The text of the named group `name` in a regex source (what sits between `(?P<name>` and its
    closing parenthesis), or None when the pattern has no such group."""
    head = f"(?P<{name}>"
    start = pattern.find(head)
    end = _group_end(pattern, start) if start >= 0 else None
    return None if end is None else pattern[start + len(head):end]


@dataclass
class _Fields:
    """How to read one message's fields out of a combined match: the group numbers in one
    `group(*numbers)` call, the names to zip them with, and per field its conversion (None for
    text; the plain `int` builtin where the group can only hold digits, so no fallback is needed)."""

    numbers: tuple[int, ...]
    names: tuple[str, ...]
    convert: tuple[Callable[[str], FieldValue] | None, ...]


@dataclass
class _Combined:
    """Several message regexes as one alternation. Python tries alternatives in order, so the
    first message that matches wins exactly as if each were tried in turn; the last group to
    close is the outer one, so `lastgroup` names the message that matched."""

    regex: FormatPattern | None
    messages: dict[str, tuple[MessagePattern, _Fields]]
    fallback: list[MessagePattern]
    fmt: Format
    """Whose field types the values take (`Format.kind_of`)."""

    def kind_of(self, name: str) -> str:
        return self.fmt.kind_of(name)

    @classmethod
    def build(cls, group: list[MessagePattern], fmt: Format) -> _Combined:
        parts = []
        keys: dict[str, tuple[MessagePattern, list[tuple[str, str]]]] = {}
        for index, message in enumerate(group):
            prefix = f"m{index}_"
            source = _GROUP_NAME.sub(f"(?P<{prefix}\\1>", message.regex.pattern)
            source = _BACKREF.sub(f"(?P={prefix}\\1)", source)
            marker = f"m{index}"
            parts.append(f"(?P<{marker}>{source})")
            keys[marker] = (message, [(prefix + name, name) for name in message.regex.groupindex
                                      if not name.startswith("_")])
        try:
            regex: FormatPattern | None = compile_pattern(
                "|".join(parts), bounded=fmt.bounded, file=fmt.file, what=f"format {fmt.name}, its messages together",
                at=("message",))
        except PATTERN_ERRORS:
            regex = None  # inline flags or too many groups: fall back to one regex at a time
        messages: dict[str, tuple[MessagePattern, _Fields]] = {}
        if regex is not None:
            for marker, (message, fields) in keys.items():
                convert: list[Callable[[str], FieldValue] | None] = []
                for _, name in fields:
                    kind = fmt.kind_of(name)
                    digits = _DIGITS_ONLY.match(group_source(message.regex.pattern, name) or "")
                    convert.append(int if kind == "int" and digits else _CONVERT.get(kind))
                messages[marker] = (message, _Fields(tuple(regex.groupindex[key] for key, _ in fields),
                                                     tuple(name for _, name in fields), tuple(convert)))
        return cls(regex, messages, group, fmt)

    def match(self, body: str) -> tuple[MessagePattern, dict[str, FieldValue]] | None:
        if self.regex is None:
            return self._one_by_one(body)
        try:
            found = self.regex.match(body)
        except PatternTimeout as exc:
            if exc.pattern is not self.regex:
                raise
            # A user's messages together ran out of time: each alone says which one backtracks
            # (PatternTimeout naming it); when none does, the sum was slow and stays one by one.
            result = self._one_by_one(body)
            self.regex = None
            return result
        if found is None or found.lastgroup is None:
            return None
        message, fields = self.messages[found.lastgroup]
        numbers = fields.numbers
        if not numbers:
            return message, {}
        values = found.group(*numbers) if len(numbers) > 1 else (found.group(numbers[0]),)
        try:
            return message, {name: value if convert is None else convert(value)
                             for name, convert, value in zip(fields.names, fields.convert, values, strict=True)
                             if value is not None}
        except ValueError:
            # the plain `int` of a digits-only group refuses a run of over 4,300 digits (or none):
            # such a value stays text, as `typed` keeps it
            return message, {name: typed(self.kind_of(name), value)
                             for name, value in zip(fields.names, values, strict=True) if value is not None}

    def _one_by_one(self, body: str) -> tuple[MessagePattern, dict[str, FieldValue]] | None:
        for message in self.fallback:
            found = message.regex.match(body)
            if found is not None:
                return message, {k: typed(self.kind_of(k), v) for k, v in found.groupdict().items()
                                 if v is not None and not k.startswith("_")}
        return None


_META = set(".^$*+?{}[]|()")


def first_words(pattern: str) -> tuple[str, ...]:
    """The literal first words a message regex demands: one, or one per branch when it starts
    with a group of alternatives (`^(?:Config loaded from|Loading config file) ...`). Empty when
    any branch does not start with a literal word: the message is then tried on every line, so
    each one keyed here is one regex branch fewer for every line of a busy log."""
    text = pattern[1:] if pattern.startswith("^") else pattern
    if not text.startswith("(?:"):
        word = first_word(text)
        return (word,) if word else ()
    end = _group_end(text, 0)
    if end is None or text[end + 1:end + 2] in ("?", "*", "+", "{"):
        return ()
    cuts, depth = [], 0
    for i, char in _top_level(text[:end], 3):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "|" and depth == 0:
            cuts.append(i)
    bounds = [2, *cuts, end]
    words = []
    for left, right in pairwise(bounds):
        word = first_word(text[left + 1:right] + text[end + 1:])
        if word is None:
            return ()
        words.append(word)
    return tuple(dict.fromkeys(words))


def first_word(pattern: str) -> str | None:
    """The literal first word a message regex demands (ended by a space, `\\s` or `$`), or None
    when the regex does not start with one. Only then may the message be looked up by the first
    word of a body; anything cleverer stays in the always-tried list."""
    text = pattern[1:] if pattern.startswith("^") else pattern
    word: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in " s" or (nxt == "x" and text[i:i + 4] == "\\x20"):
                return "".join(word) or None
            if nxt.isalnum():
                return None
            word.append(nxt)
            i += 2
            continue
        if char == " ":
            return "".join(word) or None
        if char == "$" and i == len(text) - 1:
            return "".join(word) or None
        if char in _META:
            return None
        word.append(char)
        i += 1
    return None


# --- loading ---------------------------------------------------------------------------------

_FORMAT_KEYS = {"name", "title", "role", "roles", "multiline", "priority", "line", "levels", "types", "continuation",
                "fallback", "notes", "description", "extract_continuation", "routine"}
_LINE_KEYS = {"name", "regex", "time", "strip", "strip_time", "decode", "json", "json_match", "level", "sample",
              "require_message"}
_MESSAGE_KEYS = {"name", "kind", "regex", "level", "extract", "set", "samples", "notes", "routine", "generic"}
_ROUTINE_KEYS = {"line", "prefix"}
_SAMPLE_KEYS = {"line", "kind", "fields", "message"}


class _Loader(DefinitionFile):
    what = "format"
    vocabulary: KindVocabulary

    def __init__(self, file: Path) -> None:
        super().__init__(file)
        # a built-in format's patterns stay on `re` (formats/patterns.py says why)
        self.bounded = file.resolve().parent != builtin_dir("parsers").resolve()

    def check_keys(self, table: Any, allowed: set[str], key: str) -> dict[str, Any]:
        return self.keys(table, allowed, key)

    def need(self, table: dict[str, Any], name: str, key: str, kind: type = str) -> Any:
        if name not in table:
            raise self.error(f"missing key {name!r}", key)
        value = table[name]
        if not isinstance(value, kind):
            raise self.error(f"{name!r} must be a {kind.__name__}", f"{key}.{name}", name)
        return value

    def level(self, value: Any, key: str, at: tuple[str | int, ...] | None = None) -> str | None:
        if value is None:
            return None
        if value not in LEVELS:
            raise self.error(f"level {value!r} is not one of {', '.join(LEVELS)}", key,
                             *(() if at else ("level",)), at=at)
        return str(value)

    def kind(self, kind: str, key: str, *sub: str | int, at: tuple[str | int, ...] | None = None) -> str:
        """`kind` when the vocabulary (or this format's own `[kind]` table) has it."""
        if kind not in self.vocabulary:
            raise self.error(f"unknown kind {kind!r}{self.vocabulary.suggest(kind)}: declare it in "
                             f"parsers/vocab/kinds.toml or in this file's [kind.\"{kind}\"] table", key, *sub, at=at)
        return kind

    def samples(self, entries: Any, key: str, kind: str | None, message: str | None,
                at: tuple[str | int, ...]) -> list[Sample]:
        if not isinstance(entries, list):
            raise self.error("samples must be a list of tables", key, at=at)
        result = []
        for index, entry in enumerate(entries):
            where = f"{key}[{index}]"
            self.at = (*at, index)
            entry = self.check_keys(entry, _SAMPLE_KEYS, where)
            line = self.need(entry, "line", where)
            sample_kind = entry.get("kind", kind)
            if sample_kind is None:
                raise self.error("missing key 'kind'", where)
            self.kind(sample_kind, where)
            fields = entry.get("fields", {})
            if not isinstance(fields, dict):
                raise self.error("'fields' must be a table", where)
            result.append(Sample(line, sample_kind, fields, where, entry.get("message", message), self.at))
        return result

    def load(self) -> Format:
        data = self.read()
        extra = sorted(set(data) - {"format", "message", "sample", "kind"})
        if extra:
            raise self.error(f"unknown top-level key(s) {', '.join(extra)}", "top level", at=(extra[0],))
        own_kinds = declared_kinds(data.get("kind", {}), self)
        self.vocabulary = kind_vocabulary().extended(own_kinds)
        self.at = ("format",)
        head = self.check_keys(data.get("format"), _FORMAT_KEYS, "[format]")
        self.name = self.need(head, "name", "[format]")
        role = head.get("role", "any")
        if role not in _ROLES:
            raise self.error(f"role {role!r} is not one of {', '.join(_ROLES)}", "format.role", "role")
        roles_data = head.get("roles", {})
        if not isinstance(roles_data, dict):
            raise self.error("'roles' must be a table of role = regex", "format.roles", "roles")
        roles = {}
        for name, pattern in roles_data.items():
            if name not in _ROLES:
                raise self.error(f"role {name!r} is not one of {', '.join(_ROLES)}", f"format.roles.{name}", "roles")
            roles[name] = self.pattern(pattern, f"format.roles.{name}", ("format", "roles", name))
        lines_data = head.get("line")
        if not isinstance(lines_data, list) or not lines_data:
            raise self.error("at least one [[format.line]] pattern is needed", "format.line", "line")
        samples: list[Sample] = []
        lines = []
        for index, entry in enumerate(lines_data):
            key = f"format.line[{index}]"
            self.at = ("format", "line", index)
            entry = self.check_keys(entry, _LINE_KEYS, key)
            name = entry.get("name", f"line{index}")
            key = f"format.line '{name}'"
            regex = self.pattern(self.need(entry, "regex", key), f"{key}.regex", (*self.at, "regex"))
            decode = entry.get("decode", "regex")
            if decode not in ("regex", "json"):
                raise self.error("decode must be 'regex' or 'json'", f"{key}.decode", "decode")
            if decode == "regex" and "body" not in regex.groupindex:
                raise self.error("a line regex needs a (?P<body>...) group", f"{key}.regex", "regex")
            json_keys = entry.get("json", {})
            if decode == "json" and "body" not in json_keys:
                raise self.error("a json line needs json.body (the key holding the message)", f"{key}.json", "json")
            has_ts = "ts" in regex.groupindex or "ts" in json_keys
            time_spec = entry.get("time", "auto" if has_ts else None)
            if time_spec is not None and not has_ts:
                raise self.error("'time' is set but the pattern captures no (?P<ts>...)", f"{key}.time", "time")
            strip = self.pattern(entry["strip"], f"{key}.strip", (*self.at, "strip")) if "strip" in entry else None
            strip_time = entry.get("strip_time", "epoch" if strip is not None and "ts" in strip.groupindex else None)
            if strip_time is not None and (strip is None or "ts" not in strip.groupindex):
                raise self.error("'strip_time' is set but the strip pattern captures no (?P<ts>...)",
                                 f"{key}.strip_time", "strip_time")
            lines.append(LinePattern(name, regex, TimeParser(time_spec) if time_spec else None, strip, decode,
                                     dict(json_keys), dict(entry.get("json_match", {})),
                                     self.level(entry.get("level"), f"{key}.level"),
                                     bool(entry.get("require_message", False)),
                                     TimeParser(strip_time) if strip_time else None))
            samples += self.samples(entry.get("sample", []), f"{key}.sample", None, None,
                                    ("format", "line", index, "sample"))
        messages = []
        names: set[str] = set()
        for index, entry in enumerate(data.get("message", [])):
            key = f"message[{index}]"
            self.at = ("message", index)
            entry = self.check_keys(entry, _MESSAGE_KEYS, key)
            name = self.need(entry, "name", key)
            key = f"message '{name}'"
            if name in names:
                raise self.error("duplicate message name", key, "name")
            names.add(name)
            kind = self.need(entry, "kind", key)
            if not KIND_NAME.match(kind):
                raise self.error(f"kind {kind!r} must look like area.name (lower case)", f"{key}.kind", "kind")
            self.kind(kind, f"{key}.kind", "kind")
            pattern = self.need(entry, "regex", key)
            regex = self.pattern(pattern, f"{key}.regex", ("message", index, "regex"))
            level = self.level(entry.get("level"), f"{key}.level")
            message_samples = self.samples(entry.get("samples", []), f"{key}.samples", kind, name,
                                           ("message", index, "samples"))
            routine = entry.get("routine")
            if routine is not None:
                self.regex(routine, f"{key}.routine", at=("message", index, "routine"))
            messages.append(MessagePattern(
                name, kind, regex, level,
                bool(entry.get("extract", False)), dict(entry.get("set", {})), first_words(pattern),
                message_samples, routine, bool(entry.get("generic", False))))
            samples += message_samples
        samples += self.samples(data.get("sample", []), "sample", None, None, ("sample",))
        self.at = ("format",)
        levels = {str(k).lower(): str(v) for k, v in head.get("levels", {}).items()}
        for word, level in levels.items():
            self.level(level, f"format.levels.{word}", at=("format", "levels", word))
        continuation = head.get("continuation")
        routine = self.routine(head.get("routine"), lines, messages)
        return Format(
            name=self.name, title=head.get("title", self.name), file=str(self.file), role=role,
            multiline=bool(head.get("multiline", False)), priority=int(head.get("priority", 50)), lines=lines,
            messages=messages, levels=levels, types=dict(head.get("types", {})),
            continuation=self.pattern(continuation, "format.continuation", ("format", "continuation"))
            if continuation else None,
            samples=samples, fallback=bool(head.get("fallback", False)),
            notes=str(head.get("notes", head.get("description", ""))),
            extract_continuation=bool(head.get("extract_continuation", False)), roles=roles, kinds=tuple(own_kinds),
            routine=routine, bounded=self.bounded)

    def routine(self, table: Any, lines: list[LinePattern], messages: list[MessagePattern]) -> RoutineSpec | None:
        """`[format.routine]` and the messages' `routine` patterns, checked: a line pattern with epoch
        time, messages that pull no evidence and raise no alarm, and patterns the scanner compiles."""
        routine = [m for m in messages if m.routine is not None]
        if table is None:
            if routine:
                raise self.error("messages declare `routine` but [format.routine] is missing",
                                 f"message '{routine[0].name}'.routine")
            return None
        head = self.check_keys(table, _ROUTINE_KEYS, "format.routine")
        line = self.need(head, "line", "format.routine")
        prefix = self.need(head, "prefix", "format.routine")
        named = next((lp for lp in lines if lp.name == line), None)
        if named is None or named.time is None or named.time.spec != "epoch":
            raise self.error(f"line pattern {line!r} must exist and read epoch seconds", "format.routine.line",
                             at=("format", "routine", "line"))
        if not routine:
            raise self.error("no message declares a `routine` pattern", "format.routine", at=("format", "routine"))
        for message in routine:
            where = f"message '{message.name}'.routine"
            at = ("message", messages.index(message), "routine")
            if message.extract:
                raise self.error("a routine message cannot extract evidence (its lines are not parsed)", where, at=at)
            if message.level in ("warning", "error", "critical"):
                raise self.error("a routine message cannot be a warning or worse", where, at=at)
        try:
            spec = RoutineSpec(self.name, line, prefix, epoch_digits(prefix), [m.name for m in routine],
                               [m.kind for m in routine], [m.routine or "" for m in routine],
                               [m.level or "info" for m in routine],
                               [frozenset(m.regex.groupindex) | frozenset(m.const) for m in routine])
            spec.automaton  # noqa: B018 - compiled now, so a bad pattern is an error with its file
        except ScanPatternError as exc:
            raise self.error(str(exc), "format.routine", at=("format", "routine")) from exc
        return spec


def load_format(file: Path) -> Format:
    """Read and compile one format file. Samples are checked by the registry, which has the
    evidence vocabularies the samples' fields depend on."""
    return _Loader(file).load()
