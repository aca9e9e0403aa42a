"""A small OPC UA server and client (asyncua) that log through Python's logging, so the OPC UA
samples show what a real stack writes when a certificate is refused.

The server checks client certificates with asyncua's own CertificateValidator over a TrustStore
folder (the "trusted list" of the field's OPC UA servers); the client connects with
Basic256Sha256 SignAndEncrypt, its own certificate and the server's, and retries like a field
client. Both run as separate processes so each writes its own log file:

    python -m correlator.lab.opcua_lab server --port 4840 --cert certs/opcua-server.pem \\
        --key keys/opcua-server.key --trusted pki/server/trusted/certs --log-file server.log --duration 8
    python -m correlator.lab.opcua_lab client --url opc.tcp://127.0.0.1:4840/correlator/ \\
        --cert certs/opcua-client.pem --key keys/opcua-client.key --server-cert certs/opcua-server.pem \\
        --log-file client.log
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from importlib.metadata import version
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.server import Server

SERVER_URI = "urn:correlator:lab:opcua-server"
CLIENT_URI = "urn:correlator:lab:opcua-client"
log = logging.getLogger("lab.opcua")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--cert", required=True)
    server.add_argument("--key", required=True)
    server.add_argument("--trusted", required=True, help="folder of trusted client or CA certificates")
    server.add_argument("--ready-file", help="written once the server listens")
    server.add_argument("--stop-file", help="the server stops soon after this file appears")
    client = sub.add_parser("client")
    client.add_argument("--url", required=True)
    client.add_argument("--cert", required=True)
    client.add_argument("--key", required=True)
    client.add_argument("--server-cert", required=True)
    client.add_argument("--attempts", type=int, default=2)
    client.add_argument("--retry-delay", type=float, default=1.0)
    for p in (server, client):
        p.add_argument("--log-file", required=True)
        p.add_argument("--duration", type=float, default=6.0)
    return parser.parse_args(argv)


async def run_server(args: argparse.Namespace) -> int:
    server = Server()
    await server.init()
    endpoint = f"opc.tcp://{args.host}:{args.port}/correlator/"
    server.set_endpoint(endpoint)
    server.set_server_name("correlator lab OPC UA server")
    await server.set_application_uri(SERVER_URI)
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    await server.load_certificate(args.cert)
    await server.load_private_key(args.key)
    trust_store = TrustStore([Path(args.trusted)], [])
    await trust_store.load()
    options = (CertificateValidatorOptions.TIME_RANGE | CertificateValidatorOptions.URI
               | CertificateValidatorOptions.EXT_KEY_USAGE | CertificateValidatorOptions.TRUSTED
               | CertificateValidatorOptions.PEER_CLIENT)
    server.set_certificate_validator(CertificateValidator(options, trust_store))
    namespace = await server.register_namespace("urn:correlator:lab:plant")
    tank = await server.nodes.objects.add_object(namespace, "Tank1")
    level = await tank.add_variable(namespace, "Level", 42.0)
    log.info("asyncua %s server starting at %s, trusted list %s", version("asyncua"), endpoint, args.trusted)
    async with server:
        log.info("server listening at %s", endpoint)
        if args.ready_file:
            Path(args.ready_file).write_text(endpoint)
        deadline = time.monotonic() + args.duration
        value = 42.0
        while time.monotonic() < deadline:
            if args.stop_file and Path(args.stop_file).exists():
                break
            value += 0.5
            await level.write_value(value)
            await asyncio.sleep(0.2)
    log.info("server stopped")
    return 0


async def run_client(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.duration
    log.info("asyncua %s client starting: %s, policy Basic256Sha256 SignAndEncrypt, certificate %s",
             version("asyncua"), args.url, args.cert)
    for attempt in range(1, args.attempts + 1):
        if time.monotonic() > deadline:
            break
        client = Client(url=args.url, timeout=4)
        client.application_uri = CLIENT_URI
        await client.set_security(SecurityPolicyBasic256Sha256, args.cert, args.key,
                                  server_certificate=args.server_cert,
                                  mode=ua.MessageSecurityMode.SignAndEncrypt)
        log.info("connecting to %s (attempt %d of %d)", args.url, attempt, args.attempts)
        try:
            async with client:
                node = client.get_node("ns=2;i=2")
                value = await node.read_value()
                log.info("connected; read %s = %s", node, value)
                return 0
        except Exception as exc:  # every failure is evidence: log it with its text and go on
            log.error("connection to %s failed: %s: %s", args.url, type(exc).__name__, exc)
        await asyncio.sleep(args.retry_delay)
    log.error("giving up after %d attempts", args.attempts)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(filename=args.log_file, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Building the standard address space logs thousands of INFO lines about its own nodes; a
    # field server's log is not made of those, and they would drown the evidence.
    logging.getLogger("asyncua.server.address_space").setLevel(logging.WARNING)
    runner = run_server if args.role == "server" else run_client
    return asyncio.run(runner(args))


if __name__ == "__main__":
    sys.exit(main())
