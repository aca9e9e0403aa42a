"""The options every analysing command shares (analyze, tui, watch), defined once so they read,
default and validate the same way everywhere."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from correlator.model import SEVERITIES
from correlator.time_input import parse_epoch

if TYPE_CHECKING:
    from correlator.analysis import Options


def add_analysis_options(parser: argparse.ArgumentParser, *, time_range: bool = True) -> None:
    parser.add_argument("--tz", action="append", default=[], metavar="[SOURCE=]ZONE",
                        help="time zone of naive timestamps: 'Europe/Berlin' for every source, or "
                             "'client:edge-07=+01:00' / 'clients/*.log=America/Chicago' per source (repeatable)")
    parser.add_argument("--clock-offset", action="append", default=[], metavar="SOURCE=OFFSET",
                        help="a host's clock minus the broker's, e.g. 'client:edge-07=+300s', instead of the "
                             "estimate (repeatable)")
    parser.add_argument("--source-format", action="append", default=[], metavar="GLOB=FORMAT",
                        help="force a format for matching files instead of detecting it (repeatable)")
    if time_range:
        parser.add_argument("--since", metavar="TIME", help="ignore events before this time (ISO 8601 or epoch "
                                                            "seconds; UTC if no zone)")
        parser.add_argument("--until", metavar="TIME", help="ignore events after this time (as --since)")
    parser.add_argument("--min-severity", choices=SEVERITIES, default="info", help="hide findings below this")
    parser.add_argument("--formats-dir", action="append", default=[], metavar="DIR", help="extra format folder")
    parser.add_argument("--rules-dir", action="append", default=[], metavar="DIR", help="extra rule folder")


def options_from(args: argparse.Namespace) -> Options:
    from correlator.analysis import Options

    return Options(zones=args.tz, formats=args.source_format, clock_offsets=args.clock_offset,
                   since=parse_epoch(getattr(args, "since", None), "--since"),
                   until=parse_epoch(getattr(args, "until", None), "--until"), min_severity=args.min_severity,
                   formats_dirs=args.formats_dir, rules_dirs=args.rules_dir)
