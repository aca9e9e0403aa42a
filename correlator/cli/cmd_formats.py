"""`correlator formats list|test|validate`: see which formats exist, what each line of a file
becomes and why, and check a folder of user formats before relying on it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from correlator.errors import InputError
from correlator.formats.definition import Format
from correlator.formats.parse import match_line
from correlator.formats.patterns import PatternTimeout
from correlator.formats.registry import Registry, load_registry
from correlator.model import UNPARSED
from correlator.sources.bundle import open_bundle
from correlator.sources.files import LogFile

ORDER = 60


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("formats", help="list, test and validate log format definitions")
    actions = parser.add_subparsers(dest="formats_command", metavar="ACTION", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--formats-dir", action="append", default=[], metavar="DIR",
                        help="extra folder of format files (also: CORRELATOR_PARSERS)")

    listing = actions.add_parser("list", parents=[common], help="the formats that are loaded")
    listing.add_argument("--format", dest="output", choices=("text", "json"), default="text")
    listing.set_defaults(func=_list)

    test = actions.add_parser("test", parents=[common],
                              help="show, line by line, which format and pattern matched and the fields")
    test.add_argument("files", nargs="+", type=Path, metavar="FILE")
    test.add_argument("--force", metavar="FORMAT", help="parse with this format instead of detecting one")
    test.add_argument("--only-unparsed", action="store_true", help="show only lines no format explained")
    test.add_argument("--format", dest="output", choices=("text", "json"), default="text")
    test.set_defaults(func=_test)

    validate = actions.add_parser("validate", parents=[common],
                                  help="load every format and run its samples; report every error")
    validate.set_defaults(func=_validate)


def _list(args: argparse.Namespace) -> int:
    registry = load_registry(args.formats_dir)
    rows = [{"name": f.name, "title": f.title, "role": f.role, "file": f.file, "line_patterns": len(f.lines),
             "messages": len(f.messages), "samples": len(f.samples), "fallback": f.fallback}
            for f in sorted(registry.formats.values(), key=lambda f: f.name)]
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("format", "role", "lines", "messages", "samples", "file", title="log formats")
    for row in rows:
        name = f"{row['name']} (fallback)" if row["fallback"] else str(row["name"])
        table.add_row(name, str(row["role"]), str(row["line_patterns"]), str(row["messages"]),
                      str(row["samples"]), str(row["file"]))
    Console().print(table)
    return 0


def _matches(registry: Registry, fmt: Format, text: str) -> bool:
    try:
        return match_line(fmt, text, registry.evidence) is not None
    except PatternTimeout:
        return False  # the file's own reading already said so


def _why_unparsed(registry: Registry, fmt_name: str, text: str) -> str:
    others = [f.name for f in registry.formats.values() if f.name != fmt_name and _matches(registry, f, text)]
    why = f"no line pattern of {fmt_name} matched and the generic format found no timestamp"
    return why + (f" (it would match format(s) {', '.join(others)})" if others else "")


def _logs_in(folder: Path) -> list[Path]:
    """The logs of a folder as `analyze` sorts them (by content): its certificates, keys,
    configurations and expected.json are not logs and are not tested as such."""
    with open_bundle([folder]) as bundle:
        return sorted(p for p in bundle.logs if p.is_relative_to(folder))


def _test(args: argparse.Namespace) -> int:
    registry = load_registry(args.formats_dir)
    status = 0
    results: list[dict[str, Any]] = []
    for path in args.files:
        files = _logs_in(path) if path.is_dir() else [path]
        for file in files:
            try:
                log = LogFile(file, registry, format_name=args.force)
                events = list(log.events())
            except InputError as exc:
                print(f"correlator: error: {exc}", file=sys.stderr)
                status = 2
                continue
            for problem in log.problems():
                print(f"correlator: error: {problem}", file=sys.stderr)
            lines = []
            for event in events:
                if args.only_unparsed and event.kind != UNPARSED:
                    continue
                entry: dict[str, Any] = {"line": event.line, "pattern": event.format or None, "kind": event.kind,
                                         "level": event.level, "time": event.to_dict()["time"],
                                         "estimated": event.estimated, "fields": event.fields}
                if event.kind == UNPARSED:
                    entry["why"] = _why_unparsed(registry, log.format.name, event.raw)
                    entry["raw"] = event.raw
                lines.append(entry)
            results.append({"file": str(file), **log.info.to_dict(), "lines": lines})
    if args.output == "json":
        print(json.dumps(results, indent=2, default=str))
        return status
    for result in results:
        share = f"{result['detected']:.0%}"
        print(f"{result['file']}: format {result['format']} ({share} of first lines), source {result['source']}, "
              f"zone {result['zone']}; {result['lines_read']} lines, {result['unparsed']} unparsed, "
              f"{result['estimated']} with estimated time")
        for entry in result["lines"]:
            fields = " ".join(f"{k}={v}" for k, v in entry["fields"].items())
            marker = "~" if entry["estimated"] else " "
            if entry["kind"] == UNPARSED:
                print(f"  {entry['line']:>6}{marker} UNPARSED  {entry['why']}\n          {entry['raw'][:200]}")
            else:
                print(f"  {entry['line']:>6}{marker} {entry['kind']:<24} {entry['pattern']}  {fields}")
    return status


def _validate(args: argparse.Namespace) -> int:
    registry = load_registry(args.formats_dir, collect=True)
    for error in registry.errors:
        print(f"error: {error}")
    samples = sum(len(f.samples) for f in registry.formats.values())
    print(f"{len(registry.formats)} formats loaded, {samples} samples passed, {len(registry.errors)} errors")
    return 1 if registry.errors else 0
