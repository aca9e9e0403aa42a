"""Analyses as jobs, against a real server: a process per analysis, a lane of its own for small
bundles, queue positions, a DELETE that stops the work, and time and memory budgets."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from api_helpers import RunningServer, ServerFactory
from hostile.storms import repeated_error, write

from correlator.api.jobs import LARGE_NICENESS, Analyser


@pytest.fixture(scope="module")
def big_bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two bundles (other bytes, so not recognised as one) of a broker log of 600,000 refused
    logins (real mosquitto line shapes): 13 MB to read, under 1 MB to upload, seconds to analyse."""
    folder = tmp_path_factory.mktemp("big")
    log = write(folder / "broker" / "mosquitto.log", repeated_error(600_000))
    bundles = []
    for site in ("north", "south"):
        target = folder / f"{site}.tar.gz"
        with tarfile.open(target, "w:gz") as archive:
            archive.add(log, f"{site}/broker/mosquitto.log")
        bundles.append(target)
    return bundles


@pytest.fixture
def big_bundle(big_bundles: list[Path]) -> Path:
    return big_bundles[0]


def wait_for(client: httpx.Client, analysis_id: str, *states: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/analyses/{analysis_id}").json()
        if body["status"] in states:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def pid_of(server: RunningServer, analysis_id: str) -> int:
    analyser: Analyser = server.app.state.analyser
    deadline = time.monotonic() + 30
    while True:
        job = analyser._running.get(analysis_id)
        if job is not None and job.process is not None and job.process.pid is not None:
            return job.process.pid
        assert time.monotonic() < deadline
        time.sleep(0.02)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_small_uploads_have_their_own_lane_and_large_ones_queue_with_a_position(
        start_server: ServerFactory, big_bundles: list[Path], mixed_zip: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    server = start_server(workers=1, background_bytes=1024 * 1024)
    with server.client() as client:
        first = client.post("/analyses", params={"name": "storm.tar.gz"}, content=big_bundles[0].read_bytes())
        assert first.status_code == 202, first.text
        second = client.post("/analyses", params={"name": "storm.tar.gz"}, content=big_bundles[1].read_bytes())
        assert second.status_code == 202
        running = wait_for(client, first.json()["id"], "running")
        queued = client.get(f"/analyses/{second.json()['id']}").json()
        assert queued["status"] == "queued" and queued["queue_position"] == 1
        assert running["queue_position"] is None
        # the large lane runs below the server's CPU priority: a small analysis goes first
        assert psutil.Process(pid_of(server, first.json()["id"])).nice() == min(19, psutil.Process().nice()
                                                                                  + LARGE_NICENESS)

        # the one large slot is taken: a small bundle is analysed on its own lane meanwhile
        small = client.post("/analyses", params={"name": "mixed.zip"}, content=mixed_zip.read_bytes())
        assert small.status_code == 201 and small.json()["status"] == "done"
        assert small.json()["summary"]["findings"] == 3
        assert client.get(f"/analyses/{first.json()['id']}").json()["status"] == "running"

        # deleting the running one kills its process before the answer, and the queued one starts
        pid = pid_of(server, first.json()["id"])
        assert client.delete(f"/analyses/{first.json()['id']}").status_code == 204
        assert gone(pid)
        assert client.get(f"/analyses/{first.json()['id']}").status_code == 404
        assert wait_for(client, second.json()["id"], "running", "done")["queue_position"] is None
        # deleting a queued or running one is never a traceback in the server's log
        assert client.delete(f"/analyses/{second.json()['id']}").status_code == 204
    server.stop()
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert "no such table" not in captured.err + captured.out


def test_workers_analyse_that_many_large_bundles_at_once(start_server: ServerFactory,
                                                           big_bundles: list[Path]) -> None:
    """`--workers 2`: two large bundles run side by side, each in its own process."""
    server = start_server(workers=2, background_bytes=1024 * 1024)
    with server.client() as client:
        ids = [client.post("/analyses", params={"name": "storm.tar.gz"}, content=bundle.read_bytes()).json()["id"]
               for bundle in big_bundles]
        pids = {pid_of(server, analysis_id) for analysis_id in ids}  # both started: neither waits in the queue
        assert len(pids) == 2
        assert all(client.get(f"/analyses/{i}").json()["queue_position"] is None for i in ids)
        assert all(wait_for(client, i, "running")["status"] == "running" for i in ids)
        for analysis_id in ids:
            assert client.delete(f"/analyses/{analysis_id}").status_code == 204
    server.stop()


def test_an_analysis_over_its_time_budget_fails_with_the_reason(start_server: ServerFactory,
                                                                 big_bundle: Path) -> None:
    server = start_server(analysis_timeout=0.5, background_bytes=1024 * 1024)
    with server.client() as client:
        created = client.post("/analyses", params={"name": "storm.tar.gz"}, content=big_bundle.read_bytes())
        pid = pid_of(server, created.json()["id"])
        failed = wait_for(client, created.json()["id"], "failed", "done", timeout=30)
        assert failed["status"] == "failed"
        assert "time budget of 0.5 s (analysis_timeout)" in failed["message"]
        assert gone(pid)
        assert client.get(f"/analyses/{created.json()['id']}/timeline").status_code == 409


def test_an_analysis_over_its_memory_budget_fails_with_the_reason(start_server: ServerFactory,
                                                                   big_bundle: Path) -> None:
    server = start_server(analysis_memory_mb=64, background_bytes=1024 * 1024)
    with server.client() as client:
        created = client.post("/analyses", params={"name": "storm.tar.gz"}, content=big_bundle.read_bytes())
        failed = wait_for(client, created.json()["id"], "failed", "done", timeout=60)
        assert failed["status"] == "failed"
        assert "memory than the server's budget of 64 MB (analysis_memory_mb)" in failed["message"]
