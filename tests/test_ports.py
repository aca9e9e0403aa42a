"""The tests' free ports: outside the kernel's ephemeral range (where outgoing connections take
ports at any moment), never handed out twice in one process, and disjoint between xdist
workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lab.ports import LOWEST, ephemeral_low, free_port

TESTS = Path(__file__).resolve().parent


def test_ports_are_below_the_ephemeral_range_and_never_repeat() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(LOWEST <= port < ephemeral_low() for port in ports)


def _worker_ports(worker: str) -> set[int]:
    code = "from lab.ports import free_port; print(*(free_port() for _ in range(200)))"
    env = {**os.environ, "PYTEST_XDIST_WORKER": worker, "PYTEST_XDIST_WORKER_COUNT": "2",
           "PYTHONPATH": str(TESTS)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return {int(port) for port in done.stdout.split()}


def test_two_xdist_workers_never_hand_out_the_same_port() -> None:
    first, second = _worker_ports("gw0"), _worker_ports("gw1")
    assert len(first) == len(second) == 200
    assert not first & second
