"""`correlator serve [PATH...]`: the HTTP API (FastAPI on uvicorn). Upload bundles, read findings
and timelines; with paths, also tail them and stream live findings.

fastapi and uvicorn are imported inside `run`, so `correlator --help` does not pay for them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from correlator.cli.options import add_job_budget_options, add_service_reading_options
from correlator.errors import CorrelatorError

ORDER = 60


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="HTTP API: upload bundles, findings, timeline, live findings (SSE)",
                            description="Serves the API under /api/v1 (documentation at /docs). Settings come "
                            "from these options, then CORRELATOR_* environment variables (CORRELATOR_TOKEN, "
                            "CORRELATOR_STATE_DIR, ...), then the TOML file of --config / CORRELATOR_CONFIG.")
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="files or folders to tail while serving (live findings)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; any other needs a token)")
    parser.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--token", help="bearer token every route but health requires (prefer CORRELATOR_TOKEN: "
                        "a command line is visible to other users)")
    parser.add_argument("--state-dir", type=Path, help="where analyses are kept (default "
                        "$XDG_STATE_HOME/correlator)")
    parser.add_argument("--database", metavar="URL", help="where analyses are kept: sqlite: (default, a file in the "
                        "state folder) or postgresql://user@host:port/dbname, shared by several servers (the "
                        "password: PGPASSWORD or ~/.pgpass, not the command line)")
    parser.add_argument("--nats", metavar="URL", help="keep uploads on this NATS JetStream cluster and leave their "
                        "analysis to `correlator worker`s (servers comma-separated: nats://h1:4222,nats://h2:4222); "
                        "default: analysed by this server's own processes")
    parser.add_argument("--config", type=Path, help="TOML file with the settings (keys as the option names, "
                        "with underscores)")
    parser.add_argument("--max-upload-mb", type=float, help="largest upload accepted (default 512)")
    parser.add_argument("--max-analyses", type=int, help="analyses kept, oldest deleted first (default 100)")
    parser.add_argument("--max-age-days", type=float, help="analyses older than this are deleted (default 30)")
    add_job_budget_options(parser)
    parser.add_argument("--cors-origin", action="append", dest="cors_origins", metavar="ORIGIN",
                        help="allow browser pages from ORIGIN (repeatable; default: CORS off)")
    parser.add_argument("--allowed-host", action="append", dest="allowed_hosts", metavar="NAME",
                        help="a host name clients reach the server by, besides its address, localhost and the "
                        "machine's name (repeatable; '*': any, behind a proxy that checks it)")
    parser.add_argument("--probe", action=argparse.BooleanOptionalAction, default=None,
                        help="let POST /probe connect to brokers (default: on with a token, off without)")
    parser.add_argument("--probe-network", action="append", dest="probe_networks", metavar="CIDR",
                        help="a network /probe may connect to, e.g. 10.20.0.0/16 (repeatable; default: any)")
    parser.add_argument("--stitch-window", type=float, metavar="SECONDS",
                        help="live: how long an event waits for the other side of its connection (default 0.01)")
    add_service_reading_options(parser)
    parser.add_argument("--log-format", default="json", choices=("json", "text"),
                        help="log lines as JSON objects (default: time, level, logger, message, request_id and "
                        "the record's fields) or as text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from correlator.api import create_app, load_settings
    from correlator.api.observability import log_config
    from correlator.api.private import PRIVATE_UMASK, private_dir
    from correlator.api.server import uvicorn_options
    from correlator.sources.archives import remove_stale_temp

    # what the server writes (state, uploads, extractions, SQLite's files) is for its user only
    os.umask(PRIVATE_UMASK)
    max_upload = None if args.max_upload_mb is None else int(args.max_upload_mb * 1024**2)
    settings = load_settings(args.config, host=args.host, port=args.port, token=args.token,
                             state_dir=args.state_dir, database=args.database, max_upload_bytes=max_upload,
                             max_analyses=args.max_analyses,
                             max_age_days=args.max_age_days, workers=args.workers,
                             analysis_timeout=args.analysis_timeout, analysis_memory_mb=args.analysis_memory_mb,
                             cors_origins=args.cors_origins, zones=args.zones,
                             allowed_hosts=args.allowed_hosts, probe=args.probe, probe_networks=args.probe_networks,
                             formats_dirs=args.formats_dirs, rules_dirs=args.rules_dirs,
                             live_paths=args.paths or None, nats=args.nats, live_stitch_window=args.stitch_window)
    settings.check_exposure()
    try:
        private_dir(settings.state_dir)
    except OSError as exc:
        raise CorrelatorError(f"cannot create the state folder: {exc.strerror}", file=settings.state_dir) from None
    # extraction folders a crashed or killed server left behind
    remove_stale_temp()
    app = create_app(settings)
    # open SSE streams would hold a shutdown forever: give them a moment, then close them
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level,
                log_config=log_config(args.log_level, args.log_format),
                timeout_graceful_shutdown=2, proxy_headers=False, **uvicorn_options())
    return 0
