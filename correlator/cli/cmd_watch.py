"""`correlator watch PATH...`: the TUI over logs followed live (files, and folders watched for new
logs). Textual is imported inside `run`, so `correlator --help` never pays for it."""

from __future__ import annotations

import argparse

from correlator.cli.options import add_analysis_options, options_from

ORDER = 20


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "watch", help="follow logs live in a TUI: findings, timeline, evidence and the fix",
        description="Tail log files and folders (new files included, through rotation) and show the root causes "
                    "the moment their evidence arrives. Keys: ? help, / search, e next error, p pause, q quit.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="log files or folders to follow")
    parser.add_argument("--new-only", action="store_true", help="start at the end of the files (only new lines)")
    parser.add_argument("--pattern", default="*.log", help="which files in a folder are logs (default *.log)")
    parser.add_argument("--polling", action="store_true", help="poll instead of inotify (network file systems)")
    add_analysis_options(parser, time_range=False)
    parser.add_argument("--stitch-window", type=float, default=0.05, metavar="SECONDS",
                        help="how long a line may wait for its connection's other lines before it is analysed "
                             "(default 0.05: live logs of one connection arrive within milliseconds; the finding "
                             "is on screen about this much after its line)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from correlator.errors import InputError
    from correlator.tui.app import ScreenSettings, create_app
    from correlator.tui.sources import LiveEventSource

    for path in args.paths:
        if not Path(path).exists():
            raise InputError(f"{path}: no such file or folder")
    source = LiveEventSource(args.paths, options_from(args), stitch_window=args.stitch_window, polling=args.polling,
                             from_beginning=not args.new_only, pattern=args.pattern)
    title = "correlator watch " + " ".join(str(p) for p in args.paths)
    create_app(ScreenSettings(title=title), source).run()
    return 0
