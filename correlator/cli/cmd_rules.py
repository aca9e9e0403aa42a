"""`correlator rules list|test|validate`: what the engine can diagnose, the rules' own test
cases, and the validators that check each rule against the formats, the checks and the other
rules."""

from __future__ import annotations

import argparse
import json
from typing import Any

from correlator.engine.rules import load_rules
from correlator.engine.selftest import run_test
from correlator.engine.validate import ALL, known, validate
from correlator.formats.registry import load_registry

ORDER = 61


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("rules", help="list the root-cause rules and run their test cases")
    actions = parser.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--rules-dir", action="append", default=[], metavar="DIR",
                        help="extra folder of rule files (also: CORRELATOR_RULES)")
    common.add_argument("--format", dest="output", choices=("text", "json"), default="text")
    listing = actions.add_parser("list", parents=[common], help="the rules that are loaded")
    listing.set_defaults(func=_list)
    test = actions.add_parser("test", parents=[common],
                              help="run every rule's [[test]] cases (or only those of the given rule ids)")
    test.add_argument("ids", nargs="*", metavar="RULE_ID")
    test.set_defaults(func=_test)
    check = actions.add_parser("validate", parents=[common],
                               help="check every rule against the kinds, formats, checks and rules (every error, "
                                    "with file and line); exit 1 when there is one")
    check.add_argument("--formats-dir", action="append", default=[], metavar="DIR",
                       help="extra folder of format files whose kinds and fields rules may use")
    check.set_defaults(func=_validate)


def _list(args: argparse.Namespace) -> int:
    rules, _ = load_rules(args.rules_dir)
    rows: list[dict[str, Any]] = [
        {"id": r.id, "severity": r.severity, "title": r.title, "matches": sorted({m.type for m in r.matches}),
         "checks": [c.name for c in r.checks], "tests": len(r.tests), "file": r.file} for r in rules]
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "severity", "title", "matches", "tests", title=f"{len(rows)} rules")
    for row in rows:
        table.add_row(str(row["id"]), str(row["severity"]), str(row["title"]), ", ".join(row["matches"]),
                      str(row["tests"]))
    Console().print(table)
    return 0


def _test(args: argparse.Namespace) -> int:
    rules, _ = load_rules(args.rules_dir)
    if args.ids:
        unknown = set(args.ids) - {r.id for r in rules}
        if unknown:
            print(f"correlator: error: no rule with id {', '.join(sorted(unknown))}")
            return 2
        rules = [r for r in rules if r.id in args.ids]
    outcomes = [run_test(rule, test) for rule in rules for test in rule.tests]
    failed = [o for o in outcomes if not o.passed]
    # A rule without cases proves nothing: it is reported, and fails the run, never a quiet pass.
    untested = [r.id for r in rules if not r.tests]
    if args.output == "json":
        print(json.dumps([{"rule": o.rule, "test": o.test, "expected": o.expected, "fired": o.fired,
                           "passed": o.passed} for o in outcomes]
                         + [{"rule": rule_id, "test": None, "passed": False} for rule_id in untested], indent=2))
    else:
        for outcome in outcomes:
            mark = "ok  " if outcome.passed else "FAIL"
            want = "fires" if outcome.expected else "does not fire"
            print(f"{mark} {outcome.rule}: {outcome.test} ({want})")
        for rule_id in untested:
            print(f"NONE {rule_id}: the rule has no [[test]] cases")
        summary = f"{len(outcomes) - len(failed)} passed, {len(failed)} failed"
        print(summary + (f", {len(untested)} rules without tests" if untested else "")
              + ("" if outcomes else " (no test ran: nothing is proven)"))
    return 1 if failed or untested or not outcomes else 0


def _validate(args: argparse.Namespace) -> int:
    registry = load_registry(args.formats_dir, collect=True)
    rules, errors = load_rules(args.rules_dir, collect=True)
    errors = [*registry.errors, *errors, *validate(rules, known(rules, registry), ALL)]
    if args.output == "json":
        print(json.dumps([{"file": e.file, "line": e.line, "where": e.context, "message": e.message}
                          for e in errors], indent=2))
    else:
        for error in errors:
            print(error)
        print(f"{len(rules)} rules checked against {len(registry.formats)} formats, {len(errors)} errors")
    return 1 if errors else 0
