"""What an operator watches, against a real server: Prometheus metrics, readiness, and JSON log
lines that carry the request id, from the access line to the analysis's lifecycle."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from api_helpers import HTTP_TIMEOUT, ServerFactory
from prometheus_client.parser import text_string_to_metric_families

from lab.ports import free_port

TOKEN = "observer-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_queue_analyses_and_requests(start_server: ServerFactory, mixed_zip: Path) -> None:
    server = start_server(token=TOKEN)
    with server.client(token=TOKEN) as client:
        assert client.post("/analyses", content=mixed_zip.read_bytes()).status_code == 201
    posted = ("correlator_http_request_duration_seconds_count",
              (("method", "POST"), ("route", "/api/v1/analyses"), ("status", "201")))
    deadline = time.monotonic() + 5
    while True:  # a request is counted once its answer is sent: moments after the client has it
        scraped = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=HTTP_TIMEOUT)
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        found = samples(scraped.text)
        if posted in found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert found[("correlator_analyses", (("status", "done"),))] == 1
    assert found[("correlator_analyses", (("status", "failed"),))] == 0
    assert found[("correlator_queue_depth", (("lane", "small"),))] == 0
    assert found[("correlator_queue_depth", (("lane", "large"),))] == 0
    assert found[("correlator_analyses_running", ())] == 0
    assert found[("correlator_analysis_seconds_count", (("status", "done"),))] == 1
    assert found[posted] == 1, sorted(k for k in found if k[0].endswith("_count"))
    # the token guards the metrics; readiness, like health, is for the platform and needs none
    assert httpx.get(f"{server.url}/metrics", timeout=HTTP_TIMEOUT).status_code == 401
    ready = httpx.get(f"{server.url}/api/v1/ready", timeout=HTTP_TIMEOUT)
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "problems": []}


def test_json_logs_carry_the_request_id_through_the_analysis(tmp_path: Path, mixed_zip: Path) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "correlator", "serve", "--port", str(port), "--state-dir",
                               str(tmp_path / "state")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=HTTP_TIMEOUT)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        created = httpx.post(f"http://127.0.0.1:{port}/api/v1/analyses", content=mixed_zip.read_bytes(),
                             headers={"X-Request-ID": "ticket-4711"}, timeout=60)
        assert created.status_code == 201 and created.headers["x-request-id"] == "ticket-4711"
        other = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=HTTP_TIMEOUT)
        assert len(other.headers["x-request-id"]) == 32  # a new id when the client sends none
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    records: list[dict[str, Any]] = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert records and len(records) == len([line for line in output.splitlines() if line.strip()]), output
    mine = [r for r in records if r.get("request_id") == "ticket-4711"]
    events = [r.get("event") for r in mine if r.get("analysis_id") == created.json()["id"]]
    assert events == ["queued", "started", "done"], mine
    access = [r for r in mine if r["logger"] == "correlator.api.access"]
    assert [(r["method"], r["path"], r["status"]) for r in access] == [("POST", "/api/v1/analyses", 201)]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
