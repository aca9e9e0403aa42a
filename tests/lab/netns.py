"""A machine of its own for a lab scenario: a Linux network namespace with its loopback up.

Two brokers of a site both listen on 1883 on their own machines; on one lab machine, one of them
runs in a network namespace (`ip netns exec`) with its clients, so both can bind the same port on
every address, as their configs say, without a bind address telling them apart. Needs root and
iproute2; a scenario that cannot have one is unavailable, not faked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


class NamespaceUnavailable(RuntimeError):
    """No network namespace can be made here (not root, no iproute2, no kernel support)."""


@contextmanager
def network_namespace(name: str) -> Iterator[str]:
    """A fresh namespace called `name` (removed on exit); yields its name for `ip netns exec`."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        raise NamespaceUnavailable("network namespaces need root and iproute2 (ip)")
    full = f"{name}-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", full], capture_output=True, text=True)
    if made.returncode:
        raise NamespaceUnavailable(f"ip netns add failed: {made.stderr.strip()}")
    try:
        subprocess.run(["ip", "netns", "exec", full, "ip", "link", "set", "lo", "up"], check=True,
                       capture_output=True)
        yield full
    finally:
        subprocess.run(["ip", "netns", "del", full], capture_output=True)
