"""`correlator rules list|test`: what the engine can diagnose, and the rules' own test cases."""

from __future__ import annotations

import argparse
import json
from typing import Any

from correlator.engine.rules import load_rules
from correlator.engine.selftest import run_test

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
    if args.output == "json":
        print(json.dumps([{"rule": o.rule, "test": o.test, "expected": o.expected, "fired": o.fired,
                           "passed": o.passed} for o in outcomes], indent=2))
    else:
        for outcome in outcomes:
            mark = "ok  " if outcome.passed else "FAIL"
            want = "fires" if outcome.expected else "does not fire"
            print(f"{mark} {outcome.rule}: {outcome.test} ({want})")
        print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
