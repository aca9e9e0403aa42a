"""Fixtures of the fleet tests: a real 3-node NATS JetStream cluster (fleet/nats_cluster.py).

Locally the tests skip when `nats-server` is missing or cannot start; in CI (`CI=true`, or
`CORRELATOR_REQUIRE_FLEET=1`, which `.ci/run` exports) they fail instead, as for PostgreSQL
(fleet_servers.unavailable), so a machine that cannot run the servers never passes silently."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet.nats_cluster import NatsCluster, NatsStartFailed, NatsUnavailable, nats_binary
from fleet_servers import unavailable


@pytest.fixture(scope="session")
def nats_server() -> str:
    """Path of Debian's nats-server."""
    try:
        return nats_binary()
    except NatsUnavailable as exc:
        unavailable("nats-server", str(exc))
        raise


@pytest.fixture(params=["sqlite", "postgresql"])
def fleet_database(request: pytest.FixtureRequest) -> str | None:
    """The store the API nodes and workers of a test share: SQLite in their shared state folder
    (None), or a new database of the session's real PostgreSQL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def nats_cluster(nats_server: str, tmp_path: Path) -> Iterator[NatsCluster]:
    """A fresh 3-node cluster for one test (fault tests kill its nodes)."""
    cluster = NatsCluster(tmp_path / "nats", size=3, binary=nats_server)
    try:
        cluster.start()
    except NatsStartFailed as exc:
        cluster.stop()
        unavailable("a 3-node NATS cluster", str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()
