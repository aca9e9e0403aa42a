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


def add_service_reading_options(parser: argparse.ArgumentParser, *, rules: bool = True) -> None:
    """How a long-running service (serve, worker, agent) reads logs: time zones and extra format
    and rule folders, given as settings (dest names of the settings file's keys; None: the
    file's or the default)."""
    parser.add_argument("--tz", action="append", dest="zones", metavar="[SOURCE=]ZONE",
                        help="time zone rules, as for analyze (repeatable; the same on every node)")
    parser.add_argument("--formats-dir", action="append", dest="formats_dirs", metavar="DIR")
    if rules:
        parser.add_argument("--rules-dir", action="append", dest="rules_dirs", metavar="DIR")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))


def add_job_budget_options(parser: argparse.ArgumentParser) -> None:
    """How many analyses a service runs at once and what each may take (serve, worker)."""
    parser.add_argument("--workers", type=int, help="large analyses run at once, a process each (default 2); "
                        "small bundles have small_workers slots of their own")
    parser.add_argument("--analysis-timeout", type=float, metavar="SECONDS",
                        help="an analysis running longer is stopped and marked failed (default 3600)")
    parser.add_argument("--analysis-memory-mb", type=int, metavar="MB",
                        help="an analysis process growing past this is stopped and marked failed (default 2048)")
