"""Learns a log file's layout from its first lines, so a layout no format lists still reaches a
catalogue.

Logging libraries let every application choose its own line layout (Python's `logging` alone has
dozens in the wild: with or without a colon after the logger, ` - ` separated, thread names in
brackets, the level first or the time last). Listing one pattern per layout never ends. Instead a
line's head is read as a run of parts - a time, a level word, the logger's name, bracketed fields
(thread, pid) - joined by separators, and the run most of the first lines share becomes one line
pattern. Which message catalogue applies is then decided by the registry, by how many bodies each
format's catalogue knows (`Registry.detect`).

The parts are data (`parsers/vocab/layouts.toml`: time shapes with how each is parsed, level
words with the level each means).
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from correlator.errors import DefinitionError
from correlator.formats.definition import LinePattern
from correlator.formats.timeparse import TimeParser
from correlator.model import LEVELS

#: Name of the line pattern a learned layout becomes (shown in `correlator formats test`).
LEARNED = "learned"
#: A learned layout must explain at least this share of the first lines with a head (and two lines)
#: to be tried; the registry keeps only those that read more lines.
MIN_SHARE = 0.05
#: At most this many parts in a head (time, level, logger, thread, pid ...).
MAX_PARTS = 6

_SEP = re.compile(r"[ \t]*(?:([-:;|,])[ \t]*)?")
_IDENT = re.compile(r"[A-Za-z_$][\w.$\-]*(?:\[\d+\])?")
_DOTTED = re.compile(r"^[A-Za-z_$][\w$\-]*(?:\.[\w$\-]+)+$")
_CLOSE = {"[": "]", "(": ")", "<": ">"}
#: How each separator is matched in a learned pattern: spaces vary with padding (`%-8s`), and a
#: punctuation mark may have spaces around it or not.
_SEP_REGEX = {"": "", " ": r"\s+", "-": r"\s*-\s*", ":": r":\s*", ";": r";\s*", "|": r"\s*\|\s*", ",": r",\s*"}


@dataclass(frozen=True)
class TimeShape:
    name: str
    source: str
    regex: re.Pattern[str]
    time: str


@dataclass(frozen=True)
class LayoutVocabulary:
    """The parts a head can be made of."""

    times: tuple[TimeShape, ...]
    levels: dict[str, str]
    """Level word as written -> correlator level."""
    level_regex: re.Pattern[str]
    level_source: str

    @property
    def level_map(self) -> dict[str, str]:
        """The level words lower-cased, as `Format.levels` keys them."""
        return {word.lower(): level for word, level in self.levels.items()}


def load_layouts(file: Path) -> LayoutVocabulary:
    """Read `layouts.toml`; every time shape must match and parse its samples."""
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DefinitionError(f"cannot read layout vocabulary: {exc}", file=file) from exc
    times = []
    for index, entry in enumerate(data.get("time", [])):
        where = f"time[{index}]"
        if not isinstance(entry, dict) or not {"name", "regex", "time"} <= entry.keys():
            raise DefinitionError("a time needs 'name', 'regex' and 'time'", file=file, context=where)
        try:
            regex = re.compile(entry["regex"])
        except re.error as exc:
            raise DefinitionError(f"regex does not compile: {exc}", file=file, context=where) from exc
        parser = TimeParser(entry["time"])
        for sample in entry.get("samples", []):
            if not regex.fullmatch(sample):
                raise DefinitionError(f"sample {sample!r} does not match", file=file, context=where)
            try:
                parser.parse(sample, year=2026, ref=1795444795.0)
            except ValueError as exc:
                raise DefinitionError(f"sample {sample!r}: {exc}", file=file, context=where) from exc
        times.append(TimeShape(str(entry["name"]), entry["regex"], regex, str(entry["time"])))
    levels = {str(k): str(v) for k, v in data.get("levels", {}).items()}
    for word, level in levels.items():
        if level not in LEVELS:
            raise DefinitionError(f"level {level!r} is not one of {', '.join(LEVELS)}", file=file,
                                  context=f"levels.{word}")
    alternation = "|".join(sorted((re.escape(w) for w in levels), key=len, reverse=True))
    return LayoutVocabulary(tuple(times), levels, re.compile(rf"(?:{alternation})(?![\w])"), alternation)


# A part of a head: (separator before it, what it is, how it is wrapped). What it is: "time:<shape>",
# "level", "logger" or "field"; the wrapping: "" or the opening bracket.
Part = tuple[str, str, str]
Signature = tuple[tuple[Part, ...], str]
"""A head's parts and the separator between the head and the message."""


def _separator(line: str, pos: int) -> tuple[str, int]:
    match = _SEP.match(line, pos)
    assert match is not None  # the pattern matches the empty string
    mark = match.group(1)
    if mark:
        return mark, match.end()
    return (" " if match.end() > pos else ""), match.end()


def _bracketed(line: str, pos: int, vocab: LayoutVocabulary) -> tuple[str, int] | None:
    close = line.find(_CLOSE[line[pos]], pos + 1)
    if close < 0 or close - pos > 100:
        return None
    inner = line[pos + 1:close].strip()
    end = close + 1
    for shape in vocab.times:
        if shape.regex.fullmatch(inner):
            return f"time:{shape.name}", end
    if inner in vocab.levels:
        return "level", end
    if _DOTTED.match(inner):
        return "logger", end
    return "field", end


def _bare(line: str, pos: int, vocab: LayoutVocabulary, found: set[str]) -> tuple[str, int] | None:
    if "time" not in found:
        for shape in vocab.times:
            match = shape.regex.match(line, pos)
            if match is not None and not line[match.end():match.end() + 1].isalnum():
                return f"time:{shape.name}", match.end()
    if "level" not in found:
        match = vocab.level_regex.match(line, pos)
        if match is not None:
            return "level", match.end()
    match = _IDENT.match(line, pos)
    if match is not None and "logger" not in found:
        return "logger", match.end()
    return None


@dataclass(frozen=True)
class Head:
    """What a line's head was read as: its parts, the separator before the message, and the bare
    word that ends it when that word may be the logger's name or the message's first word."""

    parts: tuple[Part, ...]
    last: str
    word: str | None = None

    @property
    def signature(self) -> Signature:
        return self.parts, self.last

    @property
    def without_word(self) -> Signature:
        """The head without its ambiguous last word (it then starts the message)."""
        return self.parts[:-1], self.parts[-1][0]


def read_head(line: str, vocab: LayoutVocabulary) -> Head | None:
    """`line`'s head, or None when it has neither a time nor a level."""
    parts: list[Part] = []
    found: set[str] = set()
    pos = 0
    sep = ""
    word: str | None = None
    while len(parts) < MAX_PARTS and pos < len(line):
        begin = pos
        if line[pos] in _CLOSE:
            read = _bracketed(line, pos, vocab)
            wrap = line[pos]
        else:
            read = _bare(line, pos, vocab, found)
            wrap = ""
        if read is None:
            break
        what, end = read
        area = what.split(":")[0]
        if area in ("time", "level") and area in found:
            break
        next_sep, after = _separator(line, end)
        bare_name = area == "logger" and not wrap
        leading = not found & {"time", "level"}
        if bare_name and (next_sep in ("", ",") or (leading and next_sep == " ")):
            break  # a word glued to what follows, or a leading word, is the message
        parts.append((sep, what, wrap))
        found.add(area)
        sep, pos = next_sep, after
        if bare_name and not leading and next_sep == " ":
            word = line[begin:end]
            break
    if not found & {"time", "level"}:
        return None
    return Head(tuple(parts), sep, word)


def _is_logger_column(words: list[str]) -> bool:
    """Whether the bare words that end these heads are a logger's names (dotted, or few names
    repeated) rather than the first words of messages."""
    dotted = sum(1 for word in words if "." in word.strip(".")) / len(words)
    return dotted >= 0.8 or len(set(words)) <= max(1, len(words) // 10)


def _part_regex(what: str, wrap: str, vocab: LayoutVocabulary, names: Counter[str]) -> str:
    area, _, shape_name = what.partition(":")
    if area == "time":
        shape = next(s for s in vocab.times if s.name == shape_name)
        inner = f"(?P<ts>{shape.source})"
    elif area == "level":
        inner = f"(?P<level>{vocab.level_source})"
    else:
        names[area] += 1
        name = ("thread" if area == "field" else "logger") if names[area] == 1 else f"_{area}{names[area]}"
        if wrap:
            return rf"\{wrap}(?P<{name}>[^\{_CLOSE[wrap]}]*)\{_CLOSE[wrap]}"
        return rf"(?P<{name}>{_IDENT.pattern})"
    return rf"\{wrap}\s*{inner}\s*\{_CLOSE[wrap]}" if wrap else inner


def to_line_pattern(signature: Signature, vocab: LayoutVocabulary, *,
                    not_before: tuple[tuple[Part, str], ...] = ()) -> LinePattern:
    """One line pattern for a signature: the head's parts as named groups, then the message. The
    message must not start with any of `not_before` (a part and the separator after it): the parts
    by which a longer learned head goes on, so a line always goes to the longest head it has,
    whichever pattern is tried first."""
    parts, last = signature
    names: Counter[str] = Counter()
    regex = "^" + "".join(_SEP_REGEX[sep] + _part_regex(what, wrap, vocab, names) for sep, what, wrap in parts)
    regex += _SEP_REGEX[last]
    for (_, what, wrap), after in not_before:
        shape = re.sub(r"\(\?P<\w+>", "(?:", _part_regex(what, wrap, vocab, Counter()))
        regex += f"(?!{shape}{_SEP_REGEX[after]})"
    regex += "(?P<body>.*)$"
    time = next((what.partition(":")[2] for _, what, _ in parts if what.startswith("time:")), None)
    spec = next((s.time for s in vocab.times if s.name == time), None)
    return LinePattern(LEARNED, re.compile(regex), TimeParser(spec) if spec else None)


def learn(lines: list[str], vocab: LayoutVocabulary, *, limit: int = 4) -> list[LinePattern]:
    """Line patterns for the heads the first lines share, each explaining at least MIN_SHARE of
    the lines that have a head at all: longer heads first (a shorter head would also match their
    lines, with their extra parts in the message), then the most common."""
    votes: Counter[Signature] = Counter()
    ambiguous: dict[Signature, list[Head]] = {}
    headed = 0
    for line in lines:
        head = read_head(line, vocab)
        if head is None:
            continue
        headed += 1
        if head.word is None:
            votes[head.signature] += 1
        else:
            ambiguous.setdefault(head.signature, []).append(head)
    for signature, heads in ambiguous.items():
        if _is_logger_column([head.word or "" for head in heads]):
            votes[signature] += len(heads)
        else:
            votes[heads[0].without_word] += len(heads)
    if not headed:
        return []
    chosen = [signature for signature, count in votes.most_common(limit) if count >= max(2.0, MIN_SHARE * headed)]
    chosen.sort(key=lambda signature: -len(signature[0]))
    patterns = []
    for signature in chosen:
        size = len(signature[0])
        longer = tuple((parts[size], parts[size + 1][0] if len(parts) > size + 1 else last)
                       for parts, last in chosen
                       if len(parts) > size and parts[:size] == signature[0] and parts[size][0] == signature[1])
        patterns.append(to_line_pattern(signature, vocab, not_before=longer))
    return patterns
