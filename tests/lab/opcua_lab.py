"""A small OPC UA server and client (asyncua) that log through Python's logging, so the OPC UA
samples show what a real stack writes when a certificate is refused.

The server checks client certificates with asyncua's own CertificateValidator over a TrustStore
folder (the "trusted list" of the field's OPC UA servers); the client connects with
Basic256Sha256 SignAndEncrypt, its own certificate and the server's, and retries like a field
client. Both run as separate processes so each writes its own log file:

    python -m lab.opcua_lab server --port 4840 --cert certs/opcua-server.pem \\
        --key keys/opcua-server.key --trusted pki/server/trusted/certs --log-file server.log --duration 8
    python -m lab.opcua_lab client --url opc.tcp://127.0.0.1:4840/correlator/ \\
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
from asyncua.crypto import security_policies
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.internal_server import InternalServer
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager

SERVER_URI = "urn:correlator:lab:opcua-server"
CLIENT_URI = "urn:correlator:lab:opcua-client"
log = logging.getLogger("lab.opcua")
#: --policy: the security policies asyncua's client implements.
POLICIES = ("None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss", "Basic256", "Basic128Rsa15")


class PasswordUserManager(UserManager):
    """Users and passwords from the command line, as a plant server's user list."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(self, iserver: InternalServer, username: str | None = None, password: str | None = None,
                 certificate: object = None) -> User | None:
        if username is not None and username in self.users and self.users[username] == password:
            log.info("user %s logged in", username)
            return User(role=UserRole.User, name=username)
        log.warning("user %s refused", username)
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--cert", required=True)
    server.add_argument("--key", required=True)
    server.add_argument("--trusted", required=True, help="folder of trusted client or CA certificates")
    server.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                        help="a user the server knows; with any, only user name tokens are accepted")
    server.add_argument("--ready-file", help="written once the server listens")
    server.add_argument("--stop-file", help="the server stops soon after this file appears")
    client = sub.add_parser("client")
    client.add_argument("--url", required=True)
    client.add_argument("--cert", required=True)
    client.add_argument("--key", required=True)
    client.add_argument("--server-cert",
                        help="the server's certificate (pinned); when absent, asyncua reads it from the "
                             "server's endpoint list (GetEndpoints over an unsecured channel)")
    client.add_argument("--policy", choices=POLICIES, default="Basic256Sha256",
                        help="the security policy the client asks for (None: no security)")
    client.add_argument("--mode", choices=("Sign", "SignAndEncrypt"), default="SignAndEncrypt")
    client.add_argument("--user", help="user name token (anonymous when absent)")
    client.add_argument("--password")
    client.add_argument("--attempts", type=int, default=2)
    client.add_argument("--retry-delay", type=float, default=1.0)
    for p in (server, client):
        p.add_argument("--log-file", required=True)
        p.add_argument("--duration", type=float, default=6.0)
    return parser.parse_args(argv)


async def run_server(args: argparse.Namespace) -> int:
    users = dict(entry.split(":", 1) for entry in args.user)
    server = Server(user_manager=PasswordUserManager(users) if users else None)
    await server.init()
    endpoint = f"opc.tcp://{args.host}:{args.port}/correlator/"
    server.set_endpoint(endpoint)
    server.set_server_name("correlator lab OPC UA server")
    await server.set_application_uri(SERVER_URI)
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    if users:
        server.set_identity_tokens([ua.UserNameIdentityToken])
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
    log.info("asyncua %s server starting at %s, trusted list %s%s", version("asyncua"), endpoint, args.trusted,
             f", users {', '.join(sorted(users))} (user name tokens only)" if users else "")
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
    security = "None" if args.policy == "None" else f"{args.policy} {args.mode}"
    log.info("asyncua %s client starting: %s, policy %s, certificate %s, user %s", version("asyncua"), args.url,
             security, args.cert, args.user or "anonymous")
    for attempt in range(1, args.attempts + 1):
        if time.monotonic() > deadline:
            break
        client = Client(url=args.url, timeout=4)
        client.application_uri = CLIENT_URI
        if args.user is not None:
            client.set_user(args.user)
            client.set_password(args.password or "")
        log.info("connecting to %s (attempt %d of %d)", args.url, attempt, args.attempts)
        try:
            if args.policy != "None":
                # without a pinned server certificate this already talks to the server: it reads the
                # endpoint list and picks the endpoint of this policy and mode
                await client.set_security(getattr(security_policies, f"SecurityPolicy{args.policy}"), args.cert,
                                          args.key, server_certificate=args.server_cert,
                                          mode=getattr(ua.MessageSecurityMode, args.mode))
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
