"""The state folder stays small and the server stops cleanly, against a real server: deleted
analyses give their space back, failed analyses' uploads go after their retention period, and a
shutdown with an open event stream ends the stream at once."""

from __future__ import annotations

import io
import logging
import sqlite3
import tarfile
import threading
import time
from pathlib import Path

import httpx
from api.test_api_live import START, sse_findings
from api_helpers import SAMPLES, ServerFactory


def database_bytes(state: Path) -> int:
    return sum(p.stat().st_size for p in state.glob("correlator.sqlite3*"))


def test_deleted_analyses_give_their_space_back(start_server: ServerFactory, tmp_path: Path) -> None:
    log = (SAMPLES / "mixed" / "broker" / "mosquitto.log").read_bytes()
    server = start_server()
    state = tmp_path / "state"
    with server.client() as client:
        ids = [client.post("/analyses", content=log + b"\n" * i, params={"name": "m.log"}).json()["id"]
               for i in range(8)]
        full = database_bytes(state)
        for analysis_id in ids:
            assert client.delete(f"/analyses/{analysis_id}").status_code == 204
    emptied = database_bytes(state)
    with sqlite3.connect(state / "correlator.sqlite3") as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert emptied < full / 2, (full, emptied)


def test_a_failed_analysis_loses_its_upload_after_the_retention_period(start_server: ServerFactory,
                                                                      tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:  # a large bundle with no log in it
        data = bytes(range(256)) * 16384
        member = tarfile.TarInfo("scans/scan.bin")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    server = start_server(background_bytes=1024, failed_upload_days=1e-9)
    with server.client() as client:
        created = client.post("/analyses", content=buffer.getvalue(), params={"name": "scans.tar.gz"})
        assert created.status_code == 202
        deadline = time.monotonic() + 30
        while (body := client.get(f"/analyses/{created.json()['id']}").json())["status"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert body["message"].startswith("nothing to analyse")
        deadline = time.monotonic() + 10
        while (tmp_path / "state" / "uploads" / created.json()["id"]).exists():
            assert time.monotonic() < deadline, "the failed analysis's upload was kept"
            time.sleep(0.05)
        assert client.get(f"/analyses/{created.json()['id']}").json()["status"] == "failed"  # the row stays


def test_shutdown_ends_open_streams_at_once(start_server: ServerFactory, tmp_path: Path) -> None:
    log = tmp_path / "mosquitto.log"
    log.write_text("".join(line + "\n" for line in START))
    server = start_server(live_paths=[log])
    ended = threading.Event()

    def follow() -> None:
        with httpx.Client(base_url=server.url + "/api/v1", timeout=30) as client, \
                client.stream("GET", "/live/stream") as response:
            assert response.status_code == 200
            try:
                for _ in sse_findings(response):
                    pass
            except httpx.HTTPError:
                pass
        ended.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while server.app.state.live.subscriber_count == 0:  # the stream is open: the server has subscribed it
        assert reader.is_alive() and time.monotonic() < deadline, "the stream did not open"
        time.sleep(0.01)
    said: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    uvicorn_log = logging.getLogger("uvicorn.error")
    level = uvicorn_log.level
    uvicorn_log.addHandler(handler)
    uvicorn_log.setLevel(logging.INFO)
    try:
        server.stop()
    finally:
        uvicorn_log.removeHandler(handler)
        uvicorn_log.setLevel(level)
    assert ended.wait(5)
    # uvicorn says so when it had to wait out its graceful timeout and cancel a stream
    assert "Shutting down" in said
    assert not [line for line in said if "graceful shutdown exceeded" in line or "Cancel" in line], said
