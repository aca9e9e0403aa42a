"""The words of a finding filled in from what the input gave: its explanation, and its fix steps
safe to copy into a shell.

A rule's explanation and steps hold `{placeholders}` (parsers/vocab/placeholders.toml says what
each stands for). A value the input lacks is said in words, never left as `<name>`: the
explanation ends with "Not in the input: ...", a step's command carries a token to replace by hand
(`USERNAME`) and its text says what to add.

A rule declares each step's parts (`remediation` in rules/*.toml): the words (`text`) and the
`command` to run or the `config` line to write. The bundle is customer data and may be hostile:
a `password_file /tmp/x; curl ... | sh; echo` line would otherwise come back as a command the
reader pastes. So every value is `shlex.quote`d in a command, and a value holding shell or control
characters withholds the command altogether: the step says why instead (`FixStep.warning`), and
the TUI's copy key never puts it on the clipboard.
"""

from __future__ import annotations

import shlex
import string
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from correlator.errors import DefinitionError
from correlator.printable import printable
from correlator.redaction import redact
from correlator.report_model import FixKind, FixStep
from correlator.resources import builtin_dir

#: Characters that make a value a command of its own in a shell, quoted or not (a reader may
#: retype it, or paste it where it is not quoted): separators, substitutions, redirections,
#: quotes and the escape.
SHELL_CHARACTERS = frozenset(";&|$`<>()'\"\\")


@dataclass(frozen=True)
class Placeholder:
    """What a rule's placeholder stands for and what to say when the input lacks it
    (parsers/vocab/placeholders.toml)."""

    what: str
    missing: str
    inline: str | None = None
    token: str | None = None


@cache
def placeholders() -> dict[str, Placeholder]:
    path = builtin_dir("parsers") / "vocab" / "placeholders.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DefinitionError(f"cannot read the placeholder vocabulary: {exc}", file=path) from exc
    return {name: Placeholder(str(entry["what"]), str(entry["missing"]), entry.get("inline"), entry.get("token"))
            for name, entry in data.get("placeholder", {}).items()}


def _known(key: str) -> Placeholder:
    return placeholders().get(key) or Placeholder(key.replace("_", " "),
                                                  f"the input does not give {key.replace('_', ' ')}")


def unsafe(value: str, *, shell: bool) -> bool:
    """Whether a bundle value must not be put into a command: control or format characters (a
    newline ends the command, an escape drives the terminal, a bidi override reorders what is
    read), or, in a shell command, shell characters."""
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        return True
    return shell and not SHELL_CHARACTERS.isdisjoint(value)


Mode = Literal["prose", "shell", "config"]


class _Filler(string.Formatter):
    """str.format over the context. In prose a value goes in as it is and a missing one as the
    placeholder's words; in a shell command a value is quoted and a missing one is its token; in
    a config line a value goes in as it is. Unsafe values and gaps are collected."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self.gaps: dict[str, Placeholder] = {}
        self.unsafe: dict[str, str] = {}

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        if not isinstance(key, str):
            return super().get_value(key, args, kwargs)
        value = kwargs.get(key)
        if value in (None, ""):
            known = self.gaps[key] = _known(key)
            if self.mode == "prose":
                return known.inline or known.what
            return known.token or key.upper()
        if self.mode == "prose":
            return value
        text = str(value)
        if unsafe(text, shell=self.mode == "shell"):
            self.unsafe.setdefault(key, text)
        return shlex.quote(text) if self.mode == "shell" else text


def _missing_once(missing: Iterable[str]) -> list[str]:
    """What the input lacks, each thing once: several gaps often lack one file (a PKI folder gives
    a thumbprint and an ApplicationUri), said as "X is not in the bundle; add it" by each, with
    its own purpose or none. One sentence per thing, its purposes joined."""
    tails: dict[str, list[str]] = {}
    for text in missing:
        head, _, tail = text.partition("; ")
        said = tails.setdefault(head[:1].upper() + head[1:], [])
        if tail and tail not in said:
            said.append(tail)
    out = []
    for head, said in tails.items():
        # "add it" says nothing "add it to compare thumbprints" does not
        said = [t for t in said if not any(o != t and o.startswith(t + " ") for o in said)]
        words = [t.split() for t in said]
        common = 0
        while len(said) > 1 and all(len(w) > common + 1 and w[common] == words[0][common] for w in words):
            common += 1
        tail = (" ".join(words[0][:common]) + " " + " and ".join(" ".join(w[common:]) for w in words)
                if common else "; ".join(said))
        out.append(f"{head}; {tail}." if tail else f"{head}.")
    return out


def render(template: str, context: dict[str, Any]) -> str:
    """Prose filled from `context`; what the input lacks is said at the end ("Not in the input")."""
    filler = _Filler("prose")
    try:
        text = redact(filler.format(template, **context))
    except (ValueError, IndexError, AttributeError):
        return template
    if not filler.gaps:
        return text
    notes = " ".join(_missing_once(p.missing for p in filler.gaps.values()))
    return f"{text.rstrip()}\nNot in the input: {notes}"


def _wanted(when: str, context: dict[str, Any]) -> bool:
    """Whether a part that needs value `when` (none: "") is shown: the input gave that value; or,
    written `!name`, the input did not (the words said in its place)."""
    if when.startswith("!"):
        return not _wanted(when[1:], context)
    return not when or context.get(when) not in (None, "")


@dataclass(frozen=True, slots=True)
class Passage:
    """A part of a rule's explanation as the rule declares it: a string (always said) or a table
    with `text` and `when`, so a finding about several kinds of problem (an anonymous listener,
    an old TLS version) says only those the input shows, in the rule's own words."""

    text: str
    when: str = ""
    """A value the passage needs: without it the passage is left out."""


def explain(passages: Sequence[Passage], context: dict[str, Any]) -> str:
    """A finding's explanation: the rule's passages the input has values for, filled in from
    `context` (what it lacks is said at the end, as `render` does)."""
    return render("\n".join(p.text.strip() for p in passages if _wanted(p.when, context)), context)


@dataclass(frozen=True, slots=True)
class StepTemplate:
    """A fix step as a rule declares it: a string (words only) or a table with `text` and a
    `command` or a `config` line, and `when`."""

    text: str
    command: str = ""
    kind: FixKind = "shell"
    """'shell' (the rule's `command`) or 'config' (its `config`: a line for a configuration file)."""
    when: str = ""
    """A value the step needs: without it the step is left out (the fix of a setting not found)."""


def fill_step(step: StepTemplate, context: dict[str, Any]) -> FixStep | None:
    """The step filled in from `context`, or None when it needs a value the input lacks (`when`)."""
    if not _wanted(step.when, context):
        return None
    text = render(step.text, context).replace("\nNot in the input: ", " Not in the input: ")
    if not step.command:
        return FixStep(text)
    filler = _Filler(step.kind)
    try:
        command = filler.format(step.command, **context)
    except (ValueError, IndexError, AttributeError):
        return FixStep(text)
    if filler.gaps:
        text += " (" + "; ".join(f"{p.token or key.upper()}: {p.missing}" for key, p in filler.gaps.items()) + ")"
    if filler.unsafe:
        named = "; ".join(f"{_known(key).what}: {printable(repr(value))}" for key, value in filler.unsafe.items())
        what, thing = ("shell or control characters", "command") if step.kind == "shell" else \
            ("control characters", "line")
        return FixStep(text, "", step.kind, redact(
            f"Not shown as a {thing}: a value from the bundle holds {what} ({named}). Check the bundle; "
            f"type the {thing} by hand only once you trust the value."))
    return FixStep(text, redact(command), step.kind)
