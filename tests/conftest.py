"""Shared fixtures. Real-broker tests use `mosquitto_available` (and `tmux_available`,
`faketime_available`): locally they skip when the program is missing, but under CI (CI=true or
CORRELATOR_REQUIRE_BROKER=1) they fail, so a machine that cannot run them never passes silently."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import NoReturn

import pytest
from fleet_servers import PostgresServer, ServerUnavailable, unavailable

from lab.broker import BrokerUnavailable, mosquitto_binary

REQUIRE_BROKER = os.environ.get("CI", "").lower() in {"1", "true", "yes"} or bool(
    os.environ.get("CORRELATOR_REQUIRE_BROKER"))


def _missing(what: str) -> NoReturn:
    if REQUIRE_BROKER:
        pytest.fail(f"{what} is required in CI but is not installed", pytrace=False)
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def mosquitto_available() -> str:
    """Path of the mosquitto binary, with mosquitto_pub and mosquitto_sub beside it."""
    try:
        binary = mosquitto_binary()
    except BrokerUnavailable:
        _missing("mosquitto")
        raise
    for client in ("mosquitto_pub", "mosquitto_sub"):
        if shutil.which(client) is None:
            _missing(client)
    return binary


def _tool(name: str) -> str:
    """Path of a command the real-world tests drive (missing: fails in CI, skips elsewhere)."""
    found = shutil.which(name)
    if found is None:
        _missing(name)
    return found


@pytest.fixture(scope="session")
def tmux_available() -> str:
    """Path of tmux: the terminal the end-to-end TUI tests run the app in."""
    return _tool("tmux")


@pytest.fixture(scope="session")
def java_available() -> str:
    """Path of java: the lab's JSSE client (lab/java/TlsEdge.java) runs from source."""
    return _tool("java")


@pytest.fixture(scope="session")
def faketime_available() -> str:
    """Path of faketime (libfaketime): a client run with a clock of its own."""
    return _tool("faketime")


@pytest.fixture(scope="session", autouse=True)
def sample_file_times() -> None:
    """Samples read the same in any checkout (see lab.sample_times)."""
    from pathlib import Path

    from lab.sample_times import restore_file_times

    restore_file_times(Path(__file__).resolve().parent.parent / "sample_logs")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL on loopback for the whole session (fleet_servers.py): fails in CI, skips
    elsewhere, when it cannot start."""
    try:
        server = PostgresServer()
    except (ServerUnavailable, subprocess.SubprocessError) as exc:
        unavailable("PostgreSQL", str(exc))
        raise
    try:
        server.start()
    except (ServerUnavailable, subprocess.SubprocessError) as exc:
        server.close()
        unavailable("PostgreSQL", str(exc))
        raise
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database of the session's PostgreSQL."""
    return postgres_server.new_database()


_PRIVATE_CACHE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """The suite's start-up caches (correlator/startup_cache.py) go to a folder of this test run,
    not the user's `~/.cache/correlator`: a test never reads what another checkout or version
    left there, and a run leaves nothing behind. Set before collection, since test modules load
    formats at import; processes the tests start inherit it; each xdist worker has its own."""
    folder = tempfile.mkdtemp(prefix="correlator-test-cache-")
    config.stash[_PRIVATE_CACHE] = folder
    os.environ["XDG_CACHE_HOME"] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_PRIVATE_CACHE, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
