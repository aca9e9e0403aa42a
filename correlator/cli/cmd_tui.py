"""`correlator tui BUNDLE...`: the TUI over a finished bundle (files, folders, archives). The
screen comes up at once and fills while the bundle is read on a worker thread."""

from __future__ import annotations

import argparse

from correlator.model import SEVERITIES

ORDER = 21


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "tui", help="explore a log bundle in a TUI: findings, timeline, evidence and the fix",
        description="Analyse files, folders and bundles (.zip, .tar.gz ...) as `analyze` does and explore the "
                    "result: findings worst first, the merged timeline, the evidence of each finding, the fix.")
    parser.add_argument("paths", nargs="+", metavar="BUNDLE", help="log files, folders, or bundles")
    parser.add_argument("--tz", action="append", default=[], metavar="[SOURCE=]ZONE",
                        help="time zone of naive timestamps (as for analyze; repeatable)")
    parser.add_argument("--clock-offset", action="append", default=[], metavar="SOURCE=OFFSET",
                        help="a host's clock minus the broker's, e.g. 'client:edge-07=+300s', instead of the "
                             "estimate (repeatable)")
    parser.add_argument("--source-format", action="append", default=[], metavar="GLOB=FORMAT",
                        help="force a format for matching files (repeatable)")
    parser.add_argument("--since", metavar="TIME", help="ignore events before this time (ISO 8601)")
    parser.add_argument("--until", metavar="TIME", help="ignore events after this time")
    parser.add_argument("--min-severity", choices=SEVERITIES, default="info", help="hide findings below this")
    parser.add_argument("--formats-dir", action="append", default=[], metavar="DIR", help="extra format folder")
    parser.add_argument("--rules-dir", action="append", default=[], metavar="DIR", help="extra rule folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from correlator.analysis import Options
    from correlator.cli.cmd_analyze import _time
    from correlator.errors import InputError
    from correlator.tui.app import Settings, create_app
    from correlator.tui.sources import BundleEventSource

    for path in args.paths:
        if not Path(path).exists():
            raise InputError(f"{path}: no such file or folder")
    options = Options(zones=args.tz, formats=args.source_format, clock_offsets=args.clock_offset,
                      since=_time(args.since, "--since"),
                      until=_time(args.until, "--until"), min_severity=args.min_severity,
                      formats_dirs=args.formats_dir, rules_dirs=args.rules_dir)
    source = BundleEventSource(args.paths, options)
    title = "correlator tui " + " ".join(str(p) for p in args.paths)
    create_app(Settings(title=title), source).run()
    return 0
