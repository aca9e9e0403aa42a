"""A real NATS JetStream cluster for the fleet tests: Debian's `nats-server`, three nodes on
loopback, each with its own client port, cluster (route) port, monitoring port and store folder
in a temporary folder, started as the README's commands start it.

Ready means what a client needs: every node answers its monitoring port's `/healthz` and names
the same JetStream meta leader over a cluster of the expected size, so a stream can be created at
once. Nodes can be killed (`SIGKILL`, the fault tests) and started again on the same ports and
store. A module of its own (not conftest), so the fault tests, the benchmarks and other fleet
tests import the same harness.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from lab.ports import free_port

NATS_CANDIDATES = ("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")
#: Seconds the cluster has to form and elect its JetStream meta leader.
START_TIMEOUT = 30.0
#: Starts tried when a node finds one of its ports taken by another process.
START_ATTEMPTS = 3
#: What nats-server logs when a port it was given is taken.
PORT_TAKEN = "address already in use"


class NatsUnavailable(RuntimeError):
    """nats-server is not installed here."""


class NatsStartFailed(RuntimeError):
    """A node exited, or the cluster did not form in time (the nodes' logs say why)."""


def nats_binary() -> str:
    for candidate in NATS_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise NatsUnavailable("nats-server is not installed (Debian: apt-get install nats-server)")


def node_config(name: str, port: int, cluster_port: int, monitor_port: int, store: Path, routes: list[int],
                cluster: str = "correlator", prof_port: int | None = None) -> str:
    """One node's configuration file, as the README shows it (loopback addresses); with
    `prof_port`, the node serves Go's CPU profiles there (`/debug/pprof/profile`: the benchmark's
    `--nats-profile`)."""
    route_urls = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
    return (f"server_name: {name}\n"
            + (f"prof_port: {prof_port}\n" if prof_port is not None else "")
            + f"listen: 127.0.0.1:{port}\n"
            f"http: 127.0.0.1:{monitor_port}\n"
            f'jetstream {{ store_dir: "{store}" }}\n'
            f"cluster {{ name: {cluster}, listen: 127.0.0.1:{cluster_port}, routes: [{route_urls}] }}\n")


@dataclass
class NatsNode:
    name: str
    port: int
    cluster_port: int
    monitor_port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    prof_port: int | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def monitor(self, path: str) -> dict[str, object] | None:
        """A monitoring endpoint's JSON, or None when the node does not answer (yet)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}{path}", timeout=2) as answer:
                data = json.loads(answer.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None
        return data if isinstance(data, dict) else None


@dataclass
class NatsCluster:
    """`size` nodes in `workdir`. Use as a context manager: every node is stopped at the end."""

    workdir: Path
    size: int = 3
    binary: str = field(default_factory=nats_binary)
    nodes: list[NatsNode] = field(default_factory=list)
    profiled: bool = False
    """Each node serves CPU profiles on a port of its own (NatsNode.prof_port)."""

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._configure()

    def _configure(self) -> None:
        """New ports for every node, and each node's configuration file naming them."""
        routes = [free_port() for _ in range(self.size)]
        self.nodes = [NatsNode(name=f"n{i + 1}", port=free_port(), cluster_port=routes[i],
                               monitor_port=free_port(), workdir=self.workdir,
                               prof_port=free_port() if self.profiled else None) for i in range(self.size)]
        for node in self.nodes:
            store = self.workdir / node.name / "store"
            store.mkdir(parents=True, exist_ok=True)
            (self.workdir / f"{node.name}.conf").write_text(
                node_config(node.name, node.port, node.cluster_port, node.monitor_port, store, routes,
                            prof_port=node.prof_port))

    @property
    def urls(self) -> list[str]:
        """Every node's client URL: what `--nats` is given (a client picks any and fails over)."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """The client URLs as one comma-separated `--nats` value."""
        return ",".join(self.urls)

    def start(self) -> NatsCluster:
        """Start every node and wait for the cluster. A port that another process took between
        its choice and the node's bind (the node logs "address already in use") is a race of
        the machine, not a fault of the cluster: the nodes get new ports and start again."""
        for attempt in range(1, START_ATTEMPTS + 1):
            for node in self.nodes:
                self._spawn(node)
            try:
                self.wait_ready(self.nodes)
                return self
            except NatsStartFailed:
                self.stop()
                if attempt == START_ATTEMPTS or not any(PORT_TAKEN in self.log_tail(n, 20) for n in self.nodes):
                    raise
                for node in self.nodes:
                    node.log_path.unlink(missing_ok=True)
                self._configure()
        raise AssertionError("unreachable")

    def _spawn(self, node: NatsNode) -> None:
        log = node.log_path.open("ab")
        try:
            node.process = subprocess.Popen([self.binary, "-c", str(self.workdir / f"{node.name}.conf")],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()

    def wait_ready(self, nodes: list[NatsNode], timeout: float = START_TIMEOUT) -> None:
        """Until every node in `nodes` is healthy and sees one meta leader over the whole cluster."""
        deadline = time.monotonic() + timeout
        while True:
            leaders = set()
            ready = True
            for node in nodes:
                if not node.alive:
                    raise NatsStartFailed(f"nats-server {node.name} exited: {self.log_tail(node)}")
                health = node.monitor("/healthz")
                jsz = node.monitor("/jsz")
                meta = jsz.get("meta_cluster") if jsz else None
                if (health or {}).get("status") != "ok" or not isinstance(meta, dict) or not meta.get("leader"):
                    ready = False
                    break
                leaders.add(meta["leader"])
                if meta.get("cluster_size") != self.size:
                    ready = False
            if ready and len(leaders) == 1:
                return
            if time.monotonic() > deadline:
                raise NatsStartFailed("the NATS cluster did not form in time: "
                                      + "; ".join(f"{n.name}: {self.log_tail(n)}" for n in nodes))
            time.sleep(0.1)

    def log_tail(self, node: NatsNode, lines: int = 5) -> str:
        try:
            return " | ".join(node.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self, index: int) -> NatsNode:
        """SIGKILL one node, as a power cut would: no goodbye to its peers or clients."""
        node = self.nodes[index]
        if node.process is not None and node.alive:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(timeout=10)
        return node

    def restart(self, index: int) -> NatsNode:
        """Start a killed node again on its ports and store, and wait until it has rejoined."""
        node = self.nodes[index]
        self._spawn(node)
        self.wait_ready([node])
        return node

    def restart_all(self) -> None:
        """Start every killed node again (a cluster that lost all of them, as a site whose uplink
        came back sees it) and wait until they have formed the cluster again."""
        for node in self.nodes:
            if not node.alive:
                self._spawn(node)
        self.wait_ready(self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.alive:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(timeout=10)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
