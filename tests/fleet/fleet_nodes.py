"""The fleet's other parts for tests: `correlator worker` as a real process (it is killed with
SIGKILL by the fault tests, so it cannot be a thread of the test), API nodes as the API tests run
them (uvicorn in a thread, api_helpers.RunningServer) with `nats` set, and the bundles they
analyse: real sample incidents, zipped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psutil
from api_helpers import SAMPLES, RunningServer, zip_folder

from correlator.api import Settings

#: The ack deadline the tests give the cluster: a killed worker's job goes to another after it.
TEST_ACK_WAIT = 3.0


def api_node(nats: str, state_dir: Path, **overrides: Any) -> RunningServer:
    """A started API node of the fleet; a single replica is enough for tests that kill no node."""
    overrides.setdefault("job_ack_wait", TEST_ACK_WAIT)
    return RunningServer(Settings(nats=nats, state_dir=state_dir, **overrides)).start()


class WorkerProcess:
    """`python -m correlator worker --nats URL --state-dir DIR` with its log in `log_path`."""

    def __init__(self, nats: str, state_dir: Path, log_path: Path, *extra: str,
                 env: dict[str, str] | None = None, database: str | None = None) -> None:
        self.log_path = log_path
        environment = {**os.environ, "CORRELATOR_JOB_ACK_WAIT": str(TEST_ACK_WAIT), **(env or {})}
        if database:
            extra = ("--database", database, *extra)
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "correlator", "worker", "--nats", nats, "--state-dir", str(state_dir),
                 "--log-level", "debug", *extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_taking_jobs(self, timeout: float = 60) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while "taking jobs" not in self.log():
            assert self.process.poll() is None, f"the worker exited: {self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"the worker did not start: {self.log()[-3000:]}"
            time.sleep(0.05)
        return self

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT) the worker and every process it started (the fork server, its
        analyses), as a paused VM or a machine that stops answering for a while freezes them."""
        processes = [psutil.Process(self.pid)]
        processes += processes[0].children(recursive=True)
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a lost machine or the OOM killer ends it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_all([self])

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def stop_all(workers: list[WorkerProcess]) -> None:
    """SIGTERM every worker at once, then wait for each (each gives its jobs back and closes its
    connection: seconds that run side by side); SIGKILL one that has not ended in 30 s."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.terminate()
    for worker in workers:
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def incident_zip(name: str, target_dir: Path) -> Path:
    """A sample incident zipped as a customer sends it."""
    target_dir.mkdir(parents=True, exist_ok=True)
    return zip_folder(SAMPLES / name, target_dir / f"{name}.zip")


def wait_status(client: httpx.Client, analysis_id: str, timeout: float = 120) -> dict[str, Any]:
    """The analysis once it is done or failed."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/analyses/{analysis_id}").json()
        if body["status"] in ("done", "failed"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def finding_ids(client: httpx.Client, analysis_id: str) -> list[str]:
    answer = client.get(f"/analyses/{analysis_id}/findings")
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]
