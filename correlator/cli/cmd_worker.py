"""`correlator worker --nats URL`: analyses the jobs that `correlator serve --nats URL` queues
(correlator/fleet/worker_loop.py). Run as many as there is work for, on any machines that reach
the NATS cluster and the shared store. With `--live`, it analyses the sites whose edge agents
publish events instead, the sites hashed into shards, each on one live worker at a time
(correlator/fleet/live_worker.py).

The fleet and the store are imported inside `run`, so `correlator --help` does not pay for them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from correlator.cli.options import add_job_budget_options, add_service_reading_options
from correlator.errors import CorrelatorError

ORDER = 61


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("worker", help="analyse the bundles queued on a NATS cluster by `serve --nats`",
                            description="Takes analysis jobs from the NATS JetStream work queue that `correlator "
                            "serve --nats` fills, runs each in a process of its own (as the server does) and "
                            "writes the results into the shared store. Settings as for serve: these options, then "
                            "CORRELATOR_* environment variables, then the TOML file of --config.")
    parser.add_argument("--nats", metavar="URL", help="the NATS servers, comma-separated "
                        "(nats://host1:4222,nats://host2:4222); or CORRELATOR_NATS")
    parser.add_argument("--database", metavar="URL", help="the store the API nodes use: postgresql://user@host:port/"
                        "dbname (the password: PGPASSWORD or ~/.pgpass), or sqlite: (the file in --state-dir, for "
                        "workers on the API node's own machine)")
    parser.add_argument("--state-dir", type=Path, help="where the SQLite store is (default $XDG_STATE_HOME/"
                        "correlator); fetched bundles wait in a temporary folder either way")
    parser.add_argument("--config", type=Path, help="TOML file with the settings (as for serve)")
    parser.add_argument("--live", action="store_true", help="analyse the sites' live events (`correlator agent`) "
                        "instead of uploaded bundles: the sites are hashed into shards, each shard one live "
                        "worker's at a time; findings go to correlator.findings.<site> and the store")
    add_job_budget_options(parser)
    add_service_reading_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from correlator.api.private import PRIVATE_UMASK, private_dir
    from correlator.api.settings import load_settings
    from correlator.api.storage import open_store
    from correlator.fleet.live_worker import LiveWorker
    from correlator.fleet.worker_loop import FleetWorker
    from correlator.sources.archives import remove_stale_temp

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    os.umask(PRIVATE_UMASK)  # bundles and extractions are customer data, as in serve
    settings = load_settings(args.config, nats=args.nats, database=args.database, state_dir=args.state_dir,
                             workers=args.workers,
                             analysis_timeout=args.analysis_timeout, analysis_memory_mb=args.analysis_memory_mb,
                             zones=args.zones, formats_dirs=args.formats_dirs, rules_dirs=args.rules_dirs)
    if not settings.nats:
        raise CorrelatorError("a worker needs the NATS cluster: --nats nats://HOST:4222 (or CORRELATOR_NATS)")
    try:
        private_dir(settings.state_dir)
    except OSError as exc:
        raise CorrelatorError(f"cannot create the state folder: {exc.strerror}", file=settings.state_dir) from None
    remove_stale_temp()
    store = open_store(settings.database, settings.state_dir, pool_timeout=settings.pool_timeout)
    try:
        (LiveWorker(settings, store) if args.live else FleetWorker(settings, store)).run()
    finally:
        store.close()
    return 0
