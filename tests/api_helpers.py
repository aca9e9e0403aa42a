"""A real server for the API tests: uvicorn on a free loopback port in a thread, spoken to with
httpx over TCP, the way a support tool or a dashboard talks to it. (A module of its own, not
conftest: tests/conftest.py is also a module named `conftest`.)"""

from __future__ import annotations

import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from correlator.api import Settings, create_app
from correlator.api.server import uvicorn_options
from correlator.api.storage import open_store
from lab.ports import free_port

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
#: Seconds a test's HTTP request may take: generous, as a server sharing a busy machine (the suite
#: runs on every core) answers late; httpx's own 5 s is not a property of the server under test.
HTTP_TIMEOUT = 30.0


class RunningServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.app = create_app(settings)
        # served as `correlator serve` serves it: with its header and body deadlines and caps
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=1, lifespan="on", **uvicorn_options())
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "uvicorn did not stop"

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, **kwargs)


ServerFactory = Callable[..., RunningServer]


@contextmanager
def started_servers(state_of: Callable[[int], Path]) -> Iterator[ServerFactory]:
    """Start servers with settings of the test's choosing, the n-th in the state folder
    `state_of(n)` unless given; each is stopped at the end."""
    started: list[RunningServer] = []

    def start(**overrides: Any) -> RunningServer:
        overrides.setdefault("state_dir", state_of(len(started)))
        server = RunningServer(Settings(**overrides)).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in reversed(started):
            if server.thread.is_alive():
                server.stop()


def wait_done(client: httpx.Client, analysis_id: str, seen: list[dict[str, Any]] | None = None,
              timeout: float = 60) -> dict[str, Any]:
    """The analysis once done or failed (each status read on the way appended to `seen`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/analyses/{analysis_id}").json()
        if seen is not None:
            seen.append(body)
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"analysis {analysis_id} did not finish in {timeout:g} s")


def interrupted_analysis(database: str | None, state: Path) -> tuple[str, Path, Path]:
    """What a server killed mid-analysis leaves in `state` (and the store at `database`): a row
    marked running, 40 % through, and its upload (a real broker log with an expired server
    certificate). Returns the analysis id, the upload and its folder."""
    store = open_store(database, state)
    analysis_id, folder = store.new_upload_dir()
    upload = folder / "mosquitto.log"
    shutil.copy(SAMPLES / "server_cert_expired" / "broker" / "mosquitto.log", upload)
    store.create(analysis_id, upload.name, upload, upload.stat().st_size)
    store.update(analysis_id, status="running", phase="analysing", progress=0.4)
    store.close()
    return analysis_id, upload, folder


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, Path(folder.name) / file.relative_to(folder))
    return target


def every_response(client: httpx.Client, analysis_id: str) -> Iterator[httpx.Response]:
    """Every read route of one analysis: the list, the analysis, its findings one by one, its
    sources and every page of its timeline."""
    yield client.get("/analyses")
    yield client.get(f"/analyses/{analysis_id}")
    findings = client.get(f"/analyses/{analysis_id}/findings")
    yield findings
    for finding in findings.json()["items"]:
        yield client.get(f"/analyses/{analysis_id}/findings/{finding['key']}")
    yield client.get(f"/analyses/{analysis_id}/sources")
    cursor: int | None = 0
    while cursor is not None:
        page = client.get(f"/analyses/{analysis_id}/timeline", params={"after": cursor, "limit": 1000})
        yield page
        cursor = page.json()["next_cursor"]
