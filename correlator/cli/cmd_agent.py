"""`correlator agent PATH... --nats URL --site SITE [--host HOST]`: follows a plant's logs and
publishes their normalised events to the NATS cluster (correlator/fleet/agent.py).

The fleet is imported inside `run`, so `correlator --help` does not pay for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from correlator.cli.options import add_service_reading_options
from correlator.errors import CorrelatorError

ORDER = 62


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("agent", help="follow logs at a site and publish their events to a NATS cluster",
                            description="Follows files and folders as `watch` does and publishes its normalised "
                            "events to correlator.events.<shard>.<site>.<host>, and its routine traffic as counts per "
                            "second to the same subject with .counts after it, on the NATS JetStream cluster, each "
                            "once and in "
                            "order, buffering while the link is down.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="log files or folders to follow")
    parser.add_argument("--nats", metavar="URL", help="the NATS servers, comma-separated; or CORRELATOR_NATS")
    parser.add_argument("--site", required=True, help="the site's name (letters, digits, '-', '_')")
    parser.add_argument("--host", help="this machine's name in the subject (default: its host name)")
    parser.add_argument("--state", type=Path, metavar="FILE", help="where the position reached in each file is "
                        "kept, so a restart publishes nothing twice (default: none, read the files again)")
    parser.add_argument("--config", type=Path, help="TOML file with the settings (as for serve)")
    add_service_reading_options(parser, rules=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from correlator.api.settings import load_settings
    from correlator.fleet.agent import EdgeAgent
    from correlator.fleet.layout import Limits

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings(args.config, nats=args.nats, zones=args.zones, formats_dirs=args.formats_dirs)
    if not settings.nats:
        raise CorrelatorError("an agent needs the NATS cluster: --nats nats://HOST:4222 (or CORRELATOR_NATS)")
    for path in args.paths:
        if not path.exists():
            raise CorrelatorError("no such file or folder", file=path)
    EdgeAgent(args.paths, settings.nats, args.site, args.host, settings.analysis_options(), Limits.of(settings),
              settings.events_max_bytes, state=args.state).run()
    return 0
