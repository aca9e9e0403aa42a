"""Free loopback ports for the servers the tests start (mosquitto, nats-server, PostgreSQL,
uvicorn): the one place that picks them.

A port the kernel hands out for `bind(0)` comes from its ephemeral range, the same range it
draws from for every outgoing connection. Between our closing the probe socket and the server
binding the port, any outgoing connection on the machine (a client of another test, pip, a
fleet worker) may take it: a CI run failed on exactly that ("nats-server ... bind: address
already in use" on a route port). So ports are drawn from below the ephemeral range, where the
kernel never assigns one on its own, and each pytest-xdist worker draws from its own slice, so
two workers never hand out the same port. Within a process no port is handed out twice until
its slice wraps around (thousands of ports later)."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator
from pathlib import Path

#: The lowest port handed out: above the well-known and most registered service ports.
LOWEST = 10_000
#: Used when the kernel's ephemeral range cannot be read (Linux's default lower bound).
DEFAULT_EPHEMERAL_LOW = 32_768


def ephemeral_low() -> int:
    """The lower bound of the kernel's ephemeral port range."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_LOW


def worker_slice() -> range:
    """This process's ports: the range below the ephemeral one, split between xdist workers."""
    high = ephemeral_low()
    if high - LOWEST < 1_000:
        return range(0)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker) if worker.isdigit() else 0
    width = (high - LOWEST) // max(count, 1)
    start = LOWEST + (index % max(count, 1)) * width
    return range(start, start + width)


def _candidates() -> Iterator[int]:
    ports = worker_slice()
    if not ports:
        return iter(())
    # a different starting point per process, so runs that follow each other quickly do not
    # reuse ports whose sockets may still be in TIME_WAIT
    offset = os.getpid() * 7919 % len(ports)
    return itertools.cycle(itertools.chain(ports[offset:], ports[:offset]))


_NEXT = _candidates()


def _bindable(port: int) -> bool:
    # without SO_REUSEADDR, so a port with a socket still in TIME_WAIT is also passed over
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port no server holds now and no other test worker will be handed."""
    for port in itertools.islice(_NEXT, 2_000):
        if _bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # no room below: the kernel's pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
