"""`correlator tui BUNDLE...`: the TUI over a finished bundle (files, folders, archives). The
screen comes up at once and fills while the bundle is read on a worker thread.

`correlator tui --nats URL --site SITE`: the live screens over a remote site, whose agents publish
its events to the NATS cluster (correlator/fleet/remote_site.py)."""

from __future__ import annotations

import argparse

from correlator.cli.options import add_analysis_options, options_from

ORDER = 21


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "tui", help="explore a log bundle in a TUI: findings, timeline, evidence and the fix",
        description="Analyse files, folders and bundles (.zip, .tar.gz ...) as `analyze` does and explore the "
                    "result: findings worst first, the merged timeline, the evidence of each finding, the fix. "
                    "With --nats and --site: a remote site live, from the events its agents publish.")
    parser.add_argument("paths", nargs="*", metavar="BUNDLE", help="log files, folders, or bundles")
    parser.add_argument("--nats", metavar="URL", help="with --site: the NATS servers the site's agents publish to "
                        "(comma-separated; or CORRELATOR_NATS)")
    parser.add_argument("--site", help="show this site live, as `watch` shows local logs (with --nats)")
    add_analysis_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from correlator.errors import CorrelatorError, InputError

    if args.site is None and args.paths and all(Path(path).exists() for path in args.paths):
        # a big log's scan starts now, beside the start (the screen's imports, rules, engine), as
        # `analyze` starts it; the bundle's reader takes it, and ends it when its read is over
        from correlator.sources.early import EarlyReads

        early: EarlyReads | None = EarlyReads(args.paths, forced=args.source_format or (),
                                              formats_dirs=args.formats_dir or ()).__enter__()
    else:
        early = None
    from correlator.tui.app import ScreenSettings, create_app
    from correlator.tui.sources import BundleEventSource

    if args.site is not None:
        import os

        from correlator.fleet.remote_site import RemoteSiteSource

        nats = args.nats or os.environ.get("CORRELATOR_NATS")
        if args.paths or not nats:
            raise CorrelatorError("--site shows a remote site: give --nats URL (or CORRELATOR_NATS) and no BUNDLE")
        remote = RemoteSiteSource(nats, args.site, options_from(args))
        create_app(ScreenSettings(title=f"correlator tui --site {args.site}"), remote).run()
        return 0
    if not args.paths:
        raise CorrelatorError("give a BUNDLE (files, folders, archives), or --nats URL --site SITE")
    for path in args.paths:
        if not Path(path).exists():
            raise InputError(f"{path}: no such file or folder")
    source = BundleEventSource(args.paths, options_from(args), early=early)
    title = "correlator tui " + " ".join(str(p) for p in args.paths)
    try:
        create_app(ScreenSettings(title=title), source).run()
    finally:
        source.end_early()
    return 0
