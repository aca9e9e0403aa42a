"""A small paho-mqtt application that behaves like a field client, so sample logs show what a real
Python client writes when it fails.

It logs through Python's logging, by default in the common `asctime levelname name: message`
layout (`--log-format` and `--date-format` choose another, as applications in the field do), with
paho's own logger enabled, retries like an edge device would, and writes every failure with the
exception text, because that text is the client-side evidence the correlator must read. It also
logs its local socket address once connected: that port is what the broker's `New connection
from ip:port` line carries, and a real application that logs it lets the two sides be stitched.

    python -m lab.paho_client --host 127.0.0.1 --port 8883 --tls --cafile ca.pem \\
        --client-id edge-07 --publish spBv1.0/Plant1/NDATA/edge-07 --log-file edge-07.log --duration 5
"""

from __future__ import annotations

import argparse
import configparser
import logging
import ssl
import sys
import time
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger("lab.client")

#: --tls-version: paho's fixed-version protocols, as an old device's TLS stack offers one version.
TLS_VERSIONS = {"1.2": ssl.PROTOCOL_TLSv1_2, "1.1": ssl.PROTOCOL_TLSv1_1}


@dataclass
class State:
    """What the callbacks learned, read by the main loop between `loop()` calls."""

    connected: bool = False
    refused: bool = False
    published: int = 0
    received: int = 0
    pending: dict[int, str] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--cafile", help="CA certificates to verify the broker with (system store if absent)")
    parser.add_argument("--cert", help="client certificate (PEM)")
    parser.add_argument("--key", help="client private key (PEM)")
    parser.add_argument("--insecure", action="store_true", help="do not check the broker's host name")
    parser.add_argument("--tls-version", choices=sorted(TLS_VERSIONS),
                        help="speak only this TLS version (an old device's stack)")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--client-id")
    parser.add_argument("--config", help="an INI file whose [mqtt] section gives host, port, client_id, username and "
                                         "password, as a field application keeps its settings (the command line "
                                         "wins where it names one)")
    parser.add_argument("--mqtt-version", choices=("3.1.1", "5"), default="3.1.1")
    parser.add_argument("--publish", action="append", default=[], metavar="TOPIC")
    parser.add_argument("--subscribe", action="append", default=[], metavar="TOPIC")
    parser.add_argument("--qos", type=int, choices=(0, 1, 2), default=1)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between publishes")
    parser.add_argument("--keepalive", type=int, default=30)
    parser.add_argument("--connect-timeout", type=float,
                        help="seconds for the TCP connect and the TLS handshake (paho's connect_timeout; "
                             "paho's default 5 s when absent)")
    parser.add_argument("--attempts", type=int, default=3,
                        help="connection attempts in all, reconnects included")
    parser.add_argument("--retry-delay", type=float, default=1.0)
    parser.add_argument("--session-length", type=float, default=0.0,
                        help="disconnect cleanly after this many connected seconds, then reconnect (0: never)")
    parser.add_argument("--log-file", required=True)
    parser.add_argument("--log-level", default="DEBUG")
    parser.add_argument("--log-format", default="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        help="the logging layout (a logging.Formatter format string)")
    parser.add_argument("--date-format", default=None, help="the logging datefmt (default: ISO with ms)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to run in all")
    args = parser.parse_args(argv)
    apply_config(args, parser)
    return args


def apply_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """The settings of `--config` where the command line named none (the host and port count as
    named when they differ from their defaults)."""
    if args.config:
        settings = configparser.ConfigParser()
        settings.read(args.config, encoding="utf-8")
        mqtt_section = settings["mqtt"] if settings.has_section("mqtt") else {}
        for name in ("host", "port", "client_id", "username", "password"):
            value = mqtt_section.get(name)
            if value is not None and getattr(args, name) in (None, parser.get_default(name)):
                setattr(args, name, int(value) if name == "port" else value)
    if not args.client_id:
        parser.error("a client id is needed: --client-id, or client_id in the --config file's [mqtt] section")


def make_client(args: argparse.Namespace, state: State) -> mqtt.Client:
    protocol = mqtt.MQTTv5 if args.mqtt_version == "5" else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=protocol)
    client.enable_logger(logging.getLogger("paho.mqtt.client"))
    if args.connect_timeout is not None:
        # as an application bounds a hanging connect: paho applies it to the socket's connect and
        # to the TLS handshake
        client.connect_timeout = args.connect_timeout
    if args.username is not None:
        client.username_pw_set(args.username, args.password)
    if args.tls:
        with warnings.catch_warnings():  # the fixed-version protocols are deprecated, not gone
            warnings.simplefilter("ignore", DeprecationWarning)
            client.tls_set(ca_certs=args.cafile, certfile=args.cert, keyfile=args.key,
                           cert_reqs=ssl.CERT_REQUIRED,
                           tls_version=TLS_VERSIONS[args.tls_version] if args.tls_version else None)
        if args.insecure:
            client.tls_insecure_set(True)

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Properties | None) -> None:
        if reason.is_failure:
            state.refused = True
            log.error("broker refused the connection: %s (reason code %d)", reason, reason.value)
            return
        state.connected = True
        log.info("connected to %s:%d as %s", args.host, args.port, args.client_id)
        for topic in args.subscribe:
            result, mid = client.subscribe(topic, qos=args.qos)
            log.info("subscribing to %s (mid %d, %s)", topic, mid, mqtt.error_string(result))

    def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Properties | None) -> None:
        was = state.connected
        state.connected = False
        if reason.is_failure:
            log.error("disconnected from %s:%d: %s", args.host, args.port, reason)
        else:
            log.info("disconnected from %s:%d (%s)%s", args.host, args.port, reason,
                     "" if was else " before the session was up")

    def on_subscribe(_c: mqtt.Client, _u: Any, mid: int, reasons: list[ReasonCode],
                     _p: Properties | None) -> None:
        for reason in reasons:
            if reason.is_failure:
                log.error("subscription mid %d refused by the broker: %s", mid, reason)
            else:
                log.info("subscription mid %d granted: %s", mid, reason)

    def on_publish(_c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Properties | None) -> None:
        topic = state.pending.pop(mid, "?")
        if reason.is_failure:
            log.error("publish mid %d to %s refused by the broker: %s", mid, topic, reason)
        else:
            log.debug("publish mid %d to %s acknowledged", mid, topic)

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        state.received += 1
        log.info("received on %s: %s", message.topic, message.payload.decode(errors="replace"))

    def on_socket_open(_c: mqtt.Client, _u: Any, sock: Any) -> None:
        try:
            local, peer = sock.getsockname(), sock.getpeername()
        except OSError as exc:
            log.info("socket open, address unknown: %s", exc)
            return
        log.info("socket open: local %s:%d -> %s:%d", local[0], local[1], peer[0], peer[1])

    client.on_socket_open = on_socket_open
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message
    return client


def run(args: argparse.Namespace) -> int:
    """Connect, publish and subscribe until `duration` is over; return 0 when a session came up."""
    state = State()
    log.info("paho-mqtt %s client %s starting: broker %s:%d, tls=%s, user=%s, mqtt %s",
             version("paho-mqtt"), args.client_id, args.host, args.port, args.tls, args.username,
             args.mqtt_version)
    try:
        client = make_client(args, state)
    except (ssl.SSLError, OSError, ValueError) as exc:
        # as an application does: its TLS settings (key, certificate, CA file) cannot be loaded
        log.error("cannot set up the client: %s: %s", type(exc).__name__, exc)
        return 2
    deadline = time.monotonic() + args.duration
    attempts = 0
    sessions = 0
    while time.monotonic() < deadline:
        if attempts >= args.attempts:
            log.error("giving up after %d connection attempts", attempts)
            break
        attempts += 1
        state.refused = False
        log.info("connecting to %s:%d (attempt %d of %d)", args.host, args.port, attempts, args.attempts)
        try:
            client.connect(args.host, args.port, keepalive=args.keepalive)
        except Exception as exc:  # every failure is evidence: log it with its text and go on
            log.error("connection to %s:%d failed: %s: %s", args.host, args.port, type(exc).__name__, exc)
            time.sleep(args.retry_delay)
            continue
        sessions += session(client, args, state, deadline)
        if time.monotonic() < deadline:
            time.sleep(args.retry_delay)
    log.info("summary for %s: %d connection attempts, %d sessions, %d published, %d received",
             args.client_id, attempts, sessions, state.published, state.received)
    return 0 if sessions else 1


def session(client: mqtt.Client, args: argparse.Namespace, state: State, deadline: float) -> int:
    """Drive one connection until it ends; 1 if the broker accepted it."""
    accepted = 0
    started = time.monotonic()
    next_publish = started
    if client.socket() is None:  # paho already read the failure inside connect() (TLS 1.3 alerts)
        log.error("connection to %s:%d closed before CONNACK", args.host, args.port)
        return accepted
    while True:
        rc = client.loop(timeout=0.05)
        now = time.monotonic()
        if state.connected:
            accepted = 1
        if rc != mqtt.MQTT_ERR_SUCCESS:
            log.error("connection lost: %s", mqtt.error_string(rc))
            state.connected = False
            return accepted
        if state.refused:
            client.disconnect()
            return accepted
        if not state.connected and now - started > 10:
            log.error("no CONNACK from %s:%d within 10 s", args.host, args.port)
            client.disconnect()
            return accepted
        if state.connected and args.publish and now >= next_publish:
            next_publish = now + args.interval
            for topic in args.publish:
                state.published += 1
                info = client.publish(topic, f"{args.client_id} #{state.published}", qos=args.qos)
                state.pending[info.mid] = topic
                log.info("published #%d to %s (mid %d)", state.published, topic, info.mid)
        ended = now >= deadline or (args.session_length and state.connected
                                     and now - started >= args.session_length)
        if ended:
            if state.connected:
                client.disconnect()
                # A naive application keeps calling loop() after disconnecting; paho answers with an
                # ERROR line that is no failure at all, and that is the trap healthy logs must hold.
                client.loop(timeout=0.1)
            return accepted


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(filename=args.log_file, level=getattr(logging, args.log_level.upper()),
                        format=args.log_format, datefmt=args.date_format)
    try:
        return run(args)
    except KeyboardInterrupt:
        log.warning("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
