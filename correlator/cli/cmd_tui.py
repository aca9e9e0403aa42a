"""`correlator tui BUNDLE...`: the TUI over a finished bundle (files, folders, archives). The
screen comes up at once and fills while the bundle is read on a worker thread."""

from __future__ import annotations

import argparse

from correlator.cli.options import add_analysis_options, options_from

ORDER = 21


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "tui", help="explore a log bundle in a TUI: findings, timeline, evidence and the fix",
        description="Analyse files, folders and bundles (.zip, .tar.gz ...) as `analyze` does and explore the "
                    "result: findings worst first, the merged timeline, the evidence of each finding, the fix.")
    parser.add_argument("paths", nargs="+", metavar="BUNDLE", help="log files, folders, or bundles")
    add_analysis_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from correlator.errors import InputError
    from correlator.tui.app import ScreenSettings, create_app
    from correlator.tui.sources import BundleEventSource

    for path in args.paths:
        if not Path(path).exists():
            raise InputError(f"{path}: no such file or folder")
    source = BundleEventSource(args.paths, options_from(args))
    title = "correlator tui " + " ".join(str(p) for p in args.paths)
    create_app(ScreenSettings(title=title), source).run()
    return 0
