"""A small OPC UA server on open62541, through its Python binding o6, for the OPC UA samples that
need open62541's own words. open62541 logs through Python's logging here (logger `o6.server`, each
message as `<category> / <text>`), in the lab's layout, so its log sits beside asyncua's.

o6 is not a dependency of the project: the lab runs this module with an interpreter that has it
(`CORRELATOR_O6_PYTHON`, or the lab's own when it can import o6). Its start-up banner goes to
standard output, not to the log.

    python -m lab.o6_server --port 4840 --cert certs/opcua-server.pem --key keys/opcua-server.pem \\
        --trusted pki/server/trusted/certs --log-file server/opcua-server.log --duration 20
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from pathlib import Path

SERVER_URI = "urn:correlator:lab:opcua-server"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--trusted", required=True, help="folder of trusted client or CA certificates")
    parser.add_argument("--log-file", required=True)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--ready-file", help="written once the server listens")
    parser.add_argument("--stop-file", help="the server stops soon after this file appears")
    return parser.parse_args(argv)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(filename=args.log_file, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from o6.server import Server  # type: ignore[import-not-found]  # o6 is not a project dependency

    trusted = sorted(str(p) for p in Path(args.trusted).iterdir() if p.is_file())
    server = Server(port=args.port, certificate=args.cert, privateKey=args.key, trustList=trusted,
                    applicationUri=SERVER_URI, secureOnly=True)
    logging.getLogger("lab.opcua").info("open62541 (o6) server starting on port %d, trusted list %s", args.port,
                                        args.trusted)
    server.start()
    deadline = time.monotonic() + args.duration
    while not listening(args.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    logging.getLogger("lab.opcua").info("server listening on port %d", args.port)
    if args.ready_file:
        Path(args.ready_file).write_text(str(args.port))
    while time.monotonic() < deadline:
        if args.stop_file and Path(args.stop_file).exists():
            break
        time.sleep(0.2)
    server.stop()
    logging.getLogger("lab.opcua").info("server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
