"""Runs a rule's own `[[test]]` cases: events written in the rule file, artifact check outcomes
stated beside them, and whether the rule must fire. `correlator rules test` and the test suite
both use this, so a rule file is tested the moment it is added."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from correlator.check_result import CheckResult
from correlator.engine.evaluate import Engine
from correlator.engine.rules import Rule, RuleTest
from correlator.model import Event
from correlator.report_model import EvidenceRef

_EVENT_KEYS = {"source", "kind", "t", "level", "raw", "connection", "host", "file", "line"}


class StatedFacts:
    """Artifact checks answered as a test case states them ('true'/'false'; absent: unknown)."""

    def __init__(self, facts: dict[str, bool]) -> None:
        self.facts = facts

    def check(self, name: str, events: list[Event], context: dict[str, Any]) -> CheckResult:
        if name not in self.facts:
            return CheckResult.not_run(name, "not stated by the test")
        if not self.facts[name]:
            return CheckResult.passed(name, f"{name} is false")
        return CheckResult.problem(name, f"{name} is true",
                                   evidence=(EvidenceRef("artifact", "test-artifact", None, f"{name} is true"),))

    def can_hold(self, name: str) -> bool:
        return bool(self.facts.get(name))


def make_event(spec: dict[str, Any], index: int, rule_file: str) -> Event:
    fields = {k: v for k, v in spec.items() if k not in _EVENT_KEYS}
    raw = spec.get("raw") or " ".join([str(spec.get("kind", ""))] + [f"{k}={v}" for k, v in fields.items()])
    return Event(ts=1_700_000_000.0 + float(spec.get("t", index)), time_text=str(spec.get("t", index)),
                 source=str(spec.get("source", "broker")), file=str(spec.get("file", "test.log")),
                 line=int(spec.get("line", index + 1)), kind=str(spec.get("kind", "other")), raw=raw,
                 level=str(spec.get("level", "info")), host=str(spec.get("host", "")), fields=fields,
                 connection=spec.get("connection"))


@dataclass
class TestOutcome:
    rule: str
    test: str
    expected: bool
    fired: bool

    @property
    def passed(self) -> bool:
        return self.expected == self.fired


def run_test(rule: Rule, test: RuleTest) -> TestOutcome:
    engine = Engine([rule], StatedFacts(test.facts))
    events = [make_event(spec, i, rule.file) for i, spec in enumerate(test.events)]
    engine.feed_many(events)
    if events:
        engine.advance_to(max(e.ts for e in events) + 10 * 86400)
    engine.finish()
    fired = any(f.id == rule.id for f in engine.findings())
    return TestOutcome(rule.id, test.name, test.fires, fired)
