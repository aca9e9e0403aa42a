"""Rule validators: a pass apart from loading that checks what each rule names against the rest
of the system, in the style of pySigma's validators.

Loading (engine/rules.py) makes sure a rule file is well formed. These checks look outward: an
unknown check name or rule id, a kind no format emits, a `{placeholder}` nothing fills, a rule
without a test that fires and one that must not. Each of them would otherwise load without a
word and then silently never match, or print `<name>` in a report. Every validator runs over
every rule and every error is collected, each with its file and line, so one run of `correlator
rules validate` shows them all.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from correlator.definitions import KeyPath, line_in
from correlator.engine.facts import PROVIDES
from correlator.engine.rules import Rule
from correlator.errors import DefinitionError
from correlator.kinds import KindVocabulary, kind_vocabulary

#: What the engine puts in every explanation's context, whatever the rule matched.
ENGINE_VALUES = frozenset({"clients", "users", "hosts", "count", "source", "username"})


@dataclass(frozen=True)
class Known:
    """What rules may name: kinds, the fields events of each kind carry, artifact checks with the
    values they give, and rule ids."""

    kinds: KindVocabulary
    fields: Mapping[str, frozenset[str]]
    """Kind -> the fields its events can carry (named groups, constants, evidence)."""
    any_event: frozenset[str]
    """Fields an event of any kind can carry (the evidence vocabularies look into every line)."""
    checks: Mapping[str, frozenset[str]]
    """Check name -> the values it gives."""
    rule_ids: frozenset[str]

    def fields_of(self, kinds: Iterable[str] | None) -> frozenset[str]:
        """Fields events of these kinds can carry; every kind's when the kinds are not pinned."""
        chosen = self.fields.values() if kinds is None else (self.fields.get(k, frozenset()) for k in kinds)
        return self.any_event.union(*chosen)


def known(rules: Iterable[Rule], registry: Any | None = None, kinds: KindVocabulary | None = None) -> Known:
    """What the loaded formats (a formats.registry.Registry) and rules make known. Without a
    registry, only the vocabulary's kinds and no event fields: enough for names and ids."""
    vocabulary = kinds or kind_vocabulary()
    fields: dict[str, set[str]] = {name: set(kind.fields) for name, kind in vocabulary.kinds.items()}
    evidence: frozenset[str] = frozenset()
    if registry is not None:
        evidence = frozenset(registry.evidence.fields)
        for fmt in registry.formats.values():
            vocabulary = vocabulary.extended(fmt.kinds)
            line_fields = {name for lp in fmt.lines for _, name in lp.extras}
            line_fields |= {name for lp in fmt.lines for name in lp.json_keys if name not in ("ts", "body", "level")}
            for message in fmt.messages:
                groups = {name for name in message.regex.groupindex if not name.startswith("_")}
                fields.setdefault(message.kind, set()).update(groups, message.const, line_fields)
            for kind in ("other", *(v.kind for v in registry.evidence.vocabularies), "opcua.status"):
                fields.setdefault(kind, set()).update(line_fields)
    return Known(vocabulary, {k: frozenset(v) for k, v in fields.items()}, evidence,
                 {name: provides for name, provides in PROVIDES.items()}, frozenset(r.id for r in rules))


Validator = Callable[[Rule, Known], Iterator[tuple[str, KeyPath]]]
"""A validator yields (message, key path) for each thing wrong with one rule."""


def _matches(rule: Rule) -> list[dict[str, Any]]:
    matches = rule.data.get("match", [])
    return [m for m in matches if isinstance(m, dict)] if isinstance(matches, list) else []


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def check_names(rule: Rule, known: Known) -> Iterator[tuple[str, KeyPath]]:
    """Every `require`, `require_if_known`, `unless_known`, fact `check` and `[[check]]` name is a check engine/facts.py
    has."""
    def unknown(name: str) -> str:
        import difflib  # an error's hint only: every analysis validates its rules, and loads no difflib for it

        close = difflib.get_close_matches(name, list(known.checks), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known.checks))}"
        return f"unknown check {name!r} ({hint})"
    for index, match in enumerate(_matches(rule)):
        for key in ("require", "require_if_known", "unless_known"):
            for name in _names(match.get(key, [])):
                if name not in known.checks:
                    yield unknown(name), ("match", index, key)
        if match.get("type") == "fact" and isinstance(match.get("check"), str) and match["check"] not in known.checks:
            yield unknown(match["check"]), ("match", index, "check")
    for index, check in enumerate(rule.checks):
        if check.name not in known.checks:
            yield unknown(check.name), ("check", index, "name")


def rule_ids(rule: Rule, known: Known) -> Iterator[tuple[str, KeyPath]]:
    """`look_alike` and `explains` name rules that are loaded."""
    for key in ("look_alike", "explains"):
        for index, other in enumerate(getattr(rule, key)):
            if other not in known.rule_ids:
                yield f"{key} names {other!r}, which is no loaded rule", ("rule", key, index)


def _wheres(match: dict[str, Any], at: KeyPath) -> Iterator[tuple[Any, KeyPath]]:
    """Every predicate table of a match, with where it is."""
    if "where" in match:
        yield match["where"], (*at, "where")
    for index, step in enumerate(match.get("steps", []) if isinstance(match.get("steps"), list) else []):
        if isinstance(step, dict):
            yield step.get("where"), (*at, "steps", index)
    for name in ("until", "first", "missing"):
        if isinstance(match.get(name), dict):
            yield match[name].get("where"), (*at, name)


def _kinds_named(where: Any) -> list[str]:
    spec = where.get("kind") if isinstance(where, dict) else None
    if isinstance(spec, dict):
        return _names(spec.get("eq")) + _names(spec.get("in")) + _names(spec.get("ne")) + _names(spec.get("not_in"))
    return _names(spec)


def kinds(rule: Rule, known: Known) -> Iterator[tuple[str, KeyPath]]:
    """Every kind a predicate or a test event names is in the vocabulary (or a format declares it)."""
    def unknown(kind: str) -> str:
        return f"unknown kind {kind!r}{known.kinds.suggest(kind)} (see parsers/vocab/kinds.toml)"
    for index, match in enumerate(_matches(rule)):
        for where, at in _wheres(match, ("match", index)):
            for kind in _kinds_named(where):
                if kind not in known.kinds:
                    yield unknown(kind), at
    for index, test in enumerate(rule.tests):
        for number, event in enumerate(test.events):
            named = event.get("kind") if isinstance(event, dict) else None
            if isinstance(named, str) and named not in known.kinds:
                yield unknown(named), ("test", index, "events", number)


def _provided(rule: Rule, known: Known) -> frozenset[str]:
    """The names a rule's explanation and remediation may use: what the engine adds, the fields
    of the events its matches can take, the fields its predicates and keys name, and the values
    of the checks it asks."""
    names = set(ENGINE_VALUES) | set(rule.group_by)
    for index, match in enumerate(_matches(rule)):
        names.update(_names(match.get("by")))
        for name in _names(match.get("require", [])) + _names(match.get("require_if_known", [])) + \
                _names(match.get("unless_known", [])):
            names |= known.checks.get(name, frozenset())
        if match.get("type") == "fact":
            names |= known.checks.get(str(match.get("check")), frozenset())
        for where, _ in _wheres(match, ("match", index)):
            pinned = _kinds_named(where) if isinstance(where, dict) and "kind" in where else None
            names |= known.fields_of(pinned)
            names.update(where if isinstance(where, dict) else ())
        for step in match.get("steps", []) if isinstance(match.get("steps"), list) else []:
            names.update(_names(step.get("by")) if isinstance(step, dict) else ())
    for check in rule.checks:
        names |= known.checks.get(check.name, frozenset())
    return frozenset(names)


def placeholders(rule: Rule, known: Known) -> Iterator[tuple[str, KeyPath]]:
    """Every `{name}` in the explanation and the remediation is something the rule provides."""
    provided = _provided(rule, known)
    texts: list[tuple[str, KeyPath]] = []
    parts: list[tuple[str, KeyPath]] = []
    for index, passage in enumerate(rule.explanation):
        at_passage: KeyPath = ("rule", "explanation", index)  # the key's own line when it is one text
        texts.append((passage.text, at_passage))
        parts.append((passage.when, at_passage))
    for index, step in enumerate(rule.remediation):
        at_step: KeyPath = ("rule", "remediation", index)
        texts += [(step.text, at_step), (step.command, at_step)]
        parts.append((step.when, at_step))
        if step.kind == "shell":
            yield from ((message, at_step) for message in _quoted_placeholders(step.command))
    for when, at in parts:
        if when and when.removeprefix("!") not in provided:
            yield f"'when' names {when!r}, which nothing this rule matches or checks provides", at
    for text, at in texts:
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
        except ValueError as exc:
            yield f"not a valid template ({exc}); write a literal brace as {{{{ or }}}}", at
            continue
        for name in names:
            root = name.split(".", 1)[0].split("[", 1)[0]
            if not root:
                yield "a placeholder needs a name ({} or {0} is filled by nothing)", at
            elif root not in provided:
                yield (f"placeholder {{{root}}} is filled by nothing this rule matches or checks "
                       f"(its events' fields, its checks' values, or {', '.join(sorted(ENGINE_VALUES))})"), at


def _quoted_placeholders(command: str) -> Iterator[str]:
    """A placeholder inside quotes in a shell command would be quoted twice: the engine quotes
    every value itself (shlex.quote), so a rule writes `-subj /CN={cert_cn}`, not `"/CN={cert_cn}"`."""
    quote, at = "", 0
    while at < len(command):
        char = command[at]
        if char == "{" and command[at + 1:at + 2] == "{":
            at += 2  # a literal brace
            continue
        if quote and char == "{":
            yield f"placeholder inside {quote}quotes{quote} in a command: write it bare (every value is shell-quoted)"
            return
        if char == quote:
            quote = ""
        elif not quote and char in "'\"":
            quote = char
        at += 1


def tests_cover(rule: Rule, known: Known) -> Iterator[tuple[str, KeyPath]]:
    """A rule has a test that fires and one that must not: one proves it can match, the other
    that it is not a match-everything."""
    outcomes = {test.fires for test in rule.tests}
    at: KeyPath = ("test", 0) if rule.tests else ("rule",)
    if True not in outcomes:
        yield "no [[test]] with fires = true: nothing shows the rule can match", at
    if False not in outcomes:
        yield "no [[test]] with fires = false: nothing shows the rule does not match everything", at


#: Validators whose findings make a rule silently never match: also run when rules load.
REFERENCES: tuple[Validator, ...] = (check_names, rule_ids)
#: Every validator, as `correlator rules validate` and CI run them.
ALL: tuple[Validator, ...] = (check_names, rule_ids, kinds, placeholders, tests_cover)


def validate(rules: Iterable[Rule], known: Known, validators: Iterable[Validator] = ALL) -> list[DefinitionError]:
    """Every error of every rule, each with its file and line."""
    errors = []
    chosen = tuple(validators)
    for rule in rules:
        for validator in chosen:
            for message, at in validator(rule, known):
                errors.append(DefinitionError(message, file=rule.file, line=line_in(rule.file, at),
                                              context=f"rule {rule.id}, {_key(at)}"))
    return errors


def _key(at: KeyPath) -> str:
    """A key path as the rule loader says keys: `match[0].require`."""
    text = ""
    for part in at:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text
