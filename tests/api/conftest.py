"""Fixtures of the API tests; the server itself is in api_helpers.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import SAMPLES, RunningServer, ServerFactory, started_servers, zip_folder

from correlator.api import Settings


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers with settings of the test's choosing (state in the test's folder unless
    given); each is stopped at the end of the test."""
    with started_servers(lambda _: tmp_path / "state") as start:
        yield start


@pytest.fixture(scope="session")
def mixed_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `mixed` incident (three causes, keys and a password file) as a customer would zip it."""
    return zip_folder(SAMPLES / "mixed", tmp_path_factory.mktemp("bundles") / "mixed.zip")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the read-mostly tests of a module."""
    state = tmp_path_factory.mktemp("state")
    server = RunningServer(Settings(state_dir=state)).start()
    yield server
    server.stop()
    shutil.rmtree(state, ignore_errors=True)
