"""Rules as data: loading, validating and compiling the TOML files in `rules/`.

A rule names one root cause from ROOT_CAUSES.md and says how the logs show it, with one or more
`[[match]]` blocks, each of one type:

- `event`: one event with field predicates;
- `sequence`: ordered steps joined by a key (named differently per step if the sources differ),
  within `maxspan`, cancelled by an optional `until`;
- `absence`: a `first` event not followed by a `missing` event with the same key within `within`;
- `threshold`: `count` events with the same key within `within`;
- `fact`: an artifact check alone (certificates, configs), no log needed.

`[[check]]` entries name artifact checks (correlator/engine/facts.py) that confirm or refute a
match; `[[test]]` entries are the rule's own test cases. Predicates are tables of field -> value,
where a value is a scalar (equality), a list (membership) or a table of operators
(eq, ne, in, not_in, regex, not_regex, gt, ge, lt, le, exists, startswith).
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlator.definitions import DefinitionFile, definition_files
from correlator.engine.remedy import Passage, StepTemplate
from correlator.errors import DefinitionError
from correlator.model import SEVERITIES, Event, Severity, is_broker_source, is_opcua_server_source
from correlator.report_model import FixKind, Side

Predicate = Callable[[Event], bool]

_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z0-9_]+$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_OPS = {"eq", "ne", "in", "not_in", "regex", "not_regex", "gt", "ge", "lt", "le", "exists", "startswith"}


def side_of(event: Event) -> Side:
    """Whose view an event is: the broker's, an OPC UA server's, or a client's."""
    source = event.source
    if is_broker_source(source):
        return "broker"
    if is_opcua_server_source(source):
        return "server"
    return "client"


def _value(event: Event, name: str) -> Any:
    if name == "side":
        return side_of(event)
    return event.get(name)


def _all(tests: list[Predicate]) -> Predicate:
    """Every test passes, in order. The tests are called directly, chained two by two: `all()`
    over a generator costs a generator per event and rule, and a predicate runs for every event
    each rule is offered (a refused login's three tests, side, kind and reason, ran through one)."""
    if not tests:
        return lambda event: True
    if len(tests) == 1:
        return tests[0]
    first, rest = tests[0], _all(tests[1:])
    return lambda event: first(event) and rest(event)


@dataclass(frozen=True)
class Step:
    where: Predicate
    by: tuple[str, ...]
    text: str
    kinds: frozenset[str] | None = None
    """The event kinds this step can match at all (None: any kind), so the engine looks at a
    step only for events of those kinds."""
    needs: str | None = None
    """A field the step cannot match without (when its kind is not pinned down): the same
    indexing for rules written on evidence fields such as tls_reason."""
    plain: bool = False
    """The step tests nothing but the kind and the side: any line of its kinds from that side
    matches it (the bulk reader may then pass on only the lines that can matter, see
    `Engine.first_lines`)."""


@dataclass
class Match:
    type: str
    steps: tuple[Step, ...] = ()
    until: Step | None = None
    window: float = 0.0
    count: int = 1
    check: str | None = None
    require: tuple[str, ...] = ()
    """Artifact checks that must be true for this match to count (evidence that says nothing alone,
    like a PUBLISH the broker received, that only the artifacts make a failure)."""
    require_if_known: tuple[str, ...] = ()
    """Artifact checks that must not be false: the match counts when the artifacts confirm the
    check, and also when they cannot say (the certificate or CA file is not in the input), then on
    the log alone, with low confidence and the rule's `confirm_with`; it is refused only when the
    artifacts show the check false. For evidence that fits a few causes (a client's bare
    'certificate verify failed', the broker hearing the alert 'certificate unknown'): a user who
    pasted only the log still gets the likeliest cause, its look-alikes named beside it."""
    unless_known: tuple[str, ...] = ()
    """Artifact checks that must not be true: the match is refused when the artifacts show the
    check's problem (a look-alike cause the same line fits: open62541's BadSecurityPolicyRejected
    for a renewed server certificate), and counts undecided when they cannot say (low confidence,
    the rule's look-alikes beside it), as `require_if_known` does."""


@dataclass(frozen=True)
class Check:
    name: str
    on_true: str
    on_false: str
    on_unknown: str


@dataclass
class RuleTest:
    name: str
    fires: bool
    events: list[dict[str, Any]]
    facts: dict[str, bool]


@dataclass
class Rule:
    id: str
    title: str
    severity: Severity
    file: str
    explanation: tuple[Passage, ...]
    """Its passages in order: the words every finding of the rule says, parts with `when` only
    when the input gives that value."""
    matches: list[Match]
    group_by: tuple[str, ...] = ()
    checks: list[Check] = field(default_factory=list)
    confirm_with: str = ""
    look_alike: tuple[str, ...] = ()
    explains: tuple[str, ...] = ()
    """Causes that are consequences of this one: their findings are folded into this one's."""
    tell_apart: str = ""
    remediation: tuple[StepTemplate, ...] = ()
    tests: list[RuleTest] = field(default_factory=list)
    priority: int = 50
    count: str = "connection"
    """What one occurrence is: a 'connection' (a failed handshake is one however many lines both
    sides wrote about it) or an 'event' (five denied publishes in one session are five)."""
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The file's tables as read, for the validators (engine/validate.py), which check what the
    rule names against the rest of the system and point at the line that names it."""


def _kinds(where: Any) -> frozenset[str] | None:
    """The kinds a predicate table admits, when it pins `kind` down (equality, a list, eq or in)."""
    spec = where.get("kind") if isinstance(where, dict) else None
    if isinstance(spec, str):
        return frozenset({spec})
    if isinstance(spec, list) and all(isinstance(v, str) for v in spec):
        return frozenset(spec)
    if isinstance(spec, dict):
        if isinstance(spec.get("eq"), str):
            return frozenset({spec["eq"]})
        if isinstance(spec.get("in"), list):
            return frozenset(str(v) for v in spec["in"])
    return None


_PSEUDO_FIELDS = frozenset({"kind", "source", "side", "level", "host", "file", "line", "raw", "connection", "ts",
                            "time_text", "format", "estimated"})


def _needs(where: Any) -> str | None:
    """A field the predicate table cannot be true without: one tested for a value (not for
    absence or inequality)."""
    if not isinstance(where, dict):
        return None
    for name, spec in where.items():
        if name in _PSEUDO_FIELDS:
            continue
        if isinstance(spec, str | int | float | list) and not isinstance(spec, bool):
            return str(name)
        if isinstance(spec, dict) and set(spec) & {"eq", "in", "regex", "gt", "ge", "lt", "le", "startswith"} \
                and spec.get("exists", True) is not False:
            return str(name)
        if isinstance(spec, dict) and spec.get("exists") is True:
            return str(name)
    return None


def parse_duration(value: Any) -> float | None:
    """Seconds in '10s', '5m', '2h', '1d', '250ms' or a bare number; None when it is none of them."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    return None


_KEY_PART = re.compile(r"\[(\d+)\]|([A-Za-z_][\w]*)")


def key_path(key: str) -> tuple[str | int, ...]:
    """A rule key as the loader says it (`match[1].steps[0].where`) as a key path."""
    return tuple(int(m.group(1)) if m.group(1) else m.group(2) for m in _KEY_PART.finditer(key))


class _RuleLoader(DefinitionFile):
    what = "rule"

    def __init__(self, file: Path, tables: dict[str, Any] | None = None) -> None:
        """`tables`: the file's TOML as read before (the start-up cache), else it is read here."""
        super().__init__(file)
        self._tables = tables

    def read(self) -> dict[str, Any]:
        return self._tables if self._tables is not None else super().read()

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        if not self.text and self._tables is not None:  # an error in tables from the cache: its line
            with contextlib.suppress(OSError, UnicodeDecodeError):
                self.text = self.file.read_text(encoding="utf-8")
        return super().line_of(path)

    def error(self, message: str, key: str, *sub: str | int, at: tuple[str | int, ...] | None = None
              ) -> DefinitionError:
        """Rule keys are said as paths (`match[0].where`), so the key itself finds the line."""
        return super().error(message, key, *sub, at=key_path(key) if at is None else at)

    def fix_step(self, entry: Any, key: str) -> StepTemplate:
        """A step is words (a string), or a table: `text`, and the `command` to run or the `config`
        line to write, and `when` (the value the step needs to be shown)."""
        if isinstance(entry, str):
            return StepTemplate(entry)
        table = self.keys(entry, {"text", "command", "config", "when"}, key)
        if not all(isinstance(v, str) for v in table.values()) or not table.get("text"):
            raise self.error("a step needs 'text' and takes strings only", key)
        if "command" in table and "config" in table:
            raise self.error("a step has a 'command' or a 'config' line, not both", key)
        kind: FixKind = "config" if "config" in table else "shell"
        return StepTemplate(table["text"], table.get("command") or table.get("config") or "", kind,
                            table.get("when", ""))

    def passage(self, entry: Any, key: str) -> Passage:
        """A passage of the explanation is words (a string), or a table: `text`, and `when` (the
        value the passage needs to be said)."""
        if isinstance(entry, str):
            return Passage(entry.strip())
        table = self.keys(entry, {"text", "when"}, key)
        if not all(isinstance(v, str) for v in table.values()) or not table.get("text"):
            raise self.error("a passage needs 'text' and takes strings only", key)
        return Passage(table["text"].strip(), table.get("when", ""))

    def predicate(self, where: Any, key: str) -> Predicate:
        if not isinstance(where, dict) or not where:
            raise self.error("'where' must be a non-empty table of field predicates", key)
        return _all([self.field_test(name, spec, f"{key}.{name}") for name, spec in where.items()])

    def field_test(self, name: str, spec: Any, key: str) -> Predicate:
        if isinstance(spec, list):
            allowed = frozenset(spec)
            return lambda event: _value(event, name) in allowed
        if not isinstance(spec, dict):
            return lambda event: _value(event, name) == spec
        unknown = set(spec) - _OPS
        if unknown:
            raise self.error(f"unknown operator(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(_OPS))})",
                             key)
        return _all([self.operator(name, op, arg, f"{key}.{op}") for op, arg in spec.items()])

    def operator(self, name: str, op: str, arg: Any, key: str) -> Predicate:
        if op == "eq":
            return lambda e: _value(e, name) == arg
        if op == "ne":
            return lambda e: _value(e, name) != arg
        if op in ("in", "not_in"):
            if not isinstance(arg, list):
                raise self.error(f"'{op}' needs a list", key)
            values = frozenset(arg)
            return (lambda e: _value(e, name) in values) if op == "in" else (lambda e: _value(e, name) not in values)
        if op in ("regex", "not_regex"):
            # bounded (formats/patterns.py): a rule's pattern on a hostile line raises
            # PatternTimeout instead of backtracking for hours; the engine reports it
            regex = self.pattern(str(arg), key, key_path(key))
            if op == "regex":
                return lambda e: (v := _value(e, name)) is not None and regex.search(str(v)) is not None
            return lambda e: (v := _value(e, name)) is None or regex.search(str(v)) is None
        if op == "exists":
            return (lambda e: _value(e, name) not in (None, "")) if arg else (lambda e: _value(e, name) in (None, ""))
        if op == "startswith":
            return lambda e: str(_value(e, name) or "").startswith(str(arg))
        if not isinstance(arg, int | float):
            raise self.error(f"'{op}' needs a number", key)
        compare: dict[str, Callable[[float, float], bool]] = {
            "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b}
        fn = compare[op]

        def numeric(e: Event) -> bool:
            value = _value(e, name)
            return isinstance(value, int | float) and not isinstance(value, bool) and fn(value, arg)
        return numeric

    def duration(self, value: Any, key: str) -> float:
        seconds = parse_duration(value)
        if seconds is None:
            raise self.error(f"{value!r} is not a duration (like 10s, 5m, 2h)", key)
        return seconds

    def by(self, value: Any, key: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise self.error("'by' must be a field name or a list of field names", key)

    def step(self, table: Any, key: str, default_by: tuple[str, ...]) -> Step:
        table = self.keys(table, {"where", "by"}, key)
        if "where" not in table:
            raise self.error("missing key 'where'", key)
        by = self.by(table.get("by"), f"{key}.by") or default_by
        where = table["where"]
        return Step(self.predicate(where, f"{key}.where"), by, repr(where), _kinds(where), _needs(where),
                    isinstance(where, dict) and set(where) <= {"kind", "side"})

    def match(self, table: Any, key: str) -> Match:
        kind = table.get("type") if isinstance(table, dict) else None
        allowed = {"event": {"type", "where"},
                   "sequence": {"type", "by", "maxspan", "steps", "until"},
                   "absence": {"type", "by", "within", "first", "missing"},
                   "threshold": {"type", "by", "within", "count", "where"},
                   "fact": {"type", "check"}}
        if kind not in allowed:
            raise self.error(f"'type' must be one of {', '.join(allowed)}", f"{key}.type")
        table = self.keys(table, allowed[kind] | {"require", "require_if_known", "unless_known"}, key)
        match = self._match(kind, table, key)
        match.require = self.check_names(table, "require", key)
        match.require_if_known = self.check_names(table, "require_if_known", key)
        match.unless_known = self.check_names(table, "unless_known", key)
        return match

    def check_names(self, table: dict[str, Any], name: str, key: str) -> tuple[str, ...]:
        """A match's `require`, `require_if_known` or `unless_known`: a check name or a list of them."""
        names = table.get(name, [])
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise self.error(f"'{name}' must be a check name or a list of them", f"{key}.{name}")
        return tuple(names)

    def _match(self, kind: str, table: dict[str, Any], key: str) -> Match:
        default_by = self.by(table.get("by"), f"{key}.by")
        if kind == "event":
            return Match("event", (self.step({"where": table.get("where")}, key, ()),))
        if kind == "sequence":
            steps = table.get("steps")
            if not isinstance(steps, list) or len(steps) < 2:
                raise self.error("a sequence needs at least two steps", f"{key}.steps")
            compiled = tuple(self.step(s, f"{key}.steps[{i}]", default_by) for i, s in enumerate(steps))
            if any(not s.by for s in compiled):
                raise self.error("every step of a sequence needs a join key ('by' on the match or the step)", key)
            until = self.step(table["until"], f"{key}.until", default_by) if "until" in table else None
            window = self.duration(table.get("maxspan", "30s"), f"{key}.maxspan")
            return Match("sequence", compiled, until, window)
        if kind == "absence":
            for name in ("first", "missing", "within"):
                if name not in table:
                    raise self.error(f"missing key {name!r}", key)
            first = self.step(table["first"], f"{key}.first", default_by)
            missing = self.step(table["missing"], f"{key}.missing", default_by)
            if not first.by or not missing.by:
                raise self.error("an absence needs a join key ('by')", key)
            return Match("absence", (first, missing), None, self.duration(table["within"], f"{key}.within"))
        if kind == "threshold":
            count = table.get("count")
            if not isinstance(count, int) or count < 2:
                raise self.error("'count' must be an integer of at least 2", f"{key}.count")
            step = self.step({"where": table.get("where"), "by": table.get("by")}, key, ())
            window = self.duration(table.get("within", "60s"), f"{key}.within")
            return Match("threshold", (step,), None, window, count)
        check = table.get("check")
        if not isinstance(check, str):
            raise self.error("a fact match needs 'check' (the name of an artifact check)", f"{key}.check")
        return Match("fact", check=check)

    def load(self) -> Rule:
        data = self.read()
        self.keys(data, {"rule", "match", "check", "test"}, "top level")
        head = self.keys(data.get("rule"), {"id", "title", "severity", "explanation", "group_by", "confirm_with",
                                            "look_alike", "explains", "tell_apart", "remediation", "priority", "notes",
                                            "count"},
                         "[rule]")
        for name in ("id", "title", "severity"):
            if not isinstance(head.get(name), str):
                raise self.error(f"missing or non-text key {name!r}", "[rule]")
        self.name = head["id"]
        if not _ID.match(self.name):
            raise self.error("id must look like area.name (see ROOT_CAUSES.md)", "rule.id")
        if head["severity"] not in SEVERITIES:
            raise self.error(f"severity must be one of {', '.join(SEVERITIES)}", "rule.severity")
        explanation = head.get("explanation")
        if isinstance(explanation, str):
            explanation = [explanation]
        if not isinstance(explanation, list) or not explanation:
            raise self.error("'explanation' must be text or a list of passages", "rule.explanation")
        passages = tuple(self.passage(entry, f"rule.explanation[{i}]") for i, entry in enumerate(explanation))
        matches_data = data.get("match")
        if not isinstance(matches_data, list) or not matches_data:
            raise self.error("at least one [[match]] is needed", "match")
        matches = [self.match(m, f"match[{i}]") for i, m in enumerate(matches_data)]
        checks = []
        for index, entry in enumerate(data.get("check", [])):
            key = f"check[{index}]"
            entry = self.keys(entry, {"name", "on_true", "on_false", "on_unknown"}, key)
            effects = {"confirm", "refute", "keep"}
            values = [entry.get("on_true", "confirm"), entry.get("on_false", "keep"), entry.get("on_unknown", "keep")]
            if not isinstance(entry.get("name"), str) or any(v not in effects for v in values):
                raise self.error(f"a check needs 'name' and effects from {', '.join(sorted(effects))}", key)
            checks.append(Check(entry["name"], *values))
        tests = []
        for index, entry in enumerate(data.get("test", [])):
            key = f"test[{index}]"
            entry = self.keys(entry, {"name", "fires", "events", "facts"}, key)
            if not isinstance(entry.get("fires"), bool) or not isinstance(entry.get("events", []), list):
                raise self.error("a test needs 'fires' (true/false) and 'events' (a list)", key)
            tests.append(RuleTest(str(entry.get("name", key)), entry["fires"], list(entry.get("events", [])),
                                  dict(entry.get("facts", {}))))
        count = head.get("count", "connection")
        if count not in ("connection", "event"):
            raise self.error("count must be 'connection' or 'event'", "rule.count")
        remediation = head.get("remediation", [])
        if isinstance(remediation, str):
            remediation = [remediation]
        if not isinstance(remediation, list):
            raise self.error("remediation must be a list of steps", "rule.remediation")
        steps = tuple(self.fix_step(entry, f"rule.remediation[{i}]") for i, entry in enumerate(remediation))
        return Rule(
            id=self.name, title=head["title"], severity=head["severity"], file=str(self.file),
            explanation=passages, matches=matches,
            group_by=self.by(head.get("group_by"), "rule.group_by"), checks=checks,
            confirm_with=str(head.get("confirm_with", "")), look_alike=tuple(head.get("look_alike", [])),
            explains=tuple(head.get("explains", [])),
            tell_apart=str(head.get("tell_apart", "")), remediation=steps, tests=tests,
            priority=int(head.get("priority", 50)), count=count, data=data)


def load_rule(file: Path) -> Rule:
    return _RuleLoader(file).load()


def rule_files(extra_dirs: list[str | Path] | None = None) -> list[Path]:
    return definition_files("rules", extra_dirs)


def load_rules(extra_dirs: list[str | Path] | None = None, *, collect: bool = False
               ) -> tuple[list[Rule], list[DefinitionError]]:
    """The rules of every rule folder. A rule that names a check or a rule id that does not exist
    is refused as a malformed one is (it would load and then silently never match); the other
    validators (kinds, placeholders, tests) need the formats and run in `rules validate`."""
    from correlator.engine.validate import REFERENCES, known, validate

    rules: dict[str, Rule] = {}
    errors: list[DefinitionError] = []
    files = rule_files(extra_dirs)
    tables = _rule_tables(files)
    for file in files:
        try:
            rule = _RuleLoader(file, tables.get(str(file))).load()
        except DefinitionError as exc:
            if not collect:
                raise
            errors.append(exc)
            continue
        rules[rule.id] = rule
    wrong = validate(rules.values(), known(rules.values()), REFERENCES)
    if wrong and not collect:
        raise wrong[0]
    errors += wrong
    refused = {error.file for error in wrong}
    kept = [rule for rule in rules.values() if rule.file not in refused]
    return sorted(kept, key=lambda r: (r.priority, r.id)), errors


def _rule_tables(files: list[Path]) -> dict[str, dict[str, Any]]:
    """Each rule file's TOML as read (by path), kept in the start-up cache under the files'
    contents (correlator/startup_cache.py): reading the 32 built-in files took 12-17 ms of every
    start, unpickling them takes 1. Empty when a file cannot be read as TOML: each is then read on
    its own, and its error said, as before."""
    from correlator import startup_cache

    def read() -> dict[str, dict[str, Any]]:
        return {str(file): tomllib.loads(file.read_text(encoding="utf-8")) for file in files}

    try:
        return startup_cache.cached("rules", files, read, dict)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
