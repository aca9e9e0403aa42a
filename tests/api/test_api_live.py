"""A dashboard follows the files the server tails: a line appended to a tailed broker log comes
back as a finding on the server-sent-event stream, and again, updated, with the next failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from api_helpers import SAMPLES, ServerFactory

EXPIRED = (SAMPLES / "server_cert_expired" / "broker" / "mosquitto.log").read_text().splitlines()
START, FAILURE = EXPIRED[:4], EXPIRED[4:7]  # broker start-up; one client refused: connection, alert, close


def sse_findings(response: httpx.Response) -> Iterator[dict[str, Any]]:
    event = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "finding":
            yield json.loads(line[6:])


def append(path: Path, lines: list[str]) -> None:
    with path.open("a") as out:
        out.write("".join(line + "\n" for line in lines))


def test_appended_lines_arrive_as_findings_on_the_stream(start_server: ServerFactory, tmp_path: Path) -> None:
    assert "alert certificate expired" in FAILURE[1]
    log = tmp_path / "mosquitto.log"
    log.write_text("".join(line + "\n" for line in START))
    server = start_server(live_paths=[log])
    with server.client(timeout=httpx.Timeout(15)) as client:
        assert client.get("/live/findings").json()["items"] == []
        with client.stream("GET", "/live/stream") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = sse_findings(response)
            threading.Timer(0.3, append, (log, FAILURE)).start()
            first = next(stream)
            assert first["id"] == "tls.server_cert_expired" and first["key"] == "tls.server_cert_expired"
            assert first["evidence"] and first["remediation"]
            count = first["count"]
            threading.Timer(0.1, append, (log, FAILURE)).start()
            updated = next(f for f in stream if f["count"] > count)
            assert updated["key"] == first["key"] and updated["revision"] > first["revision"]
        listed = client.get("/live/findings").json()["items"]
        assert [f["key"] for f in listed] == ["tls.server_cert_expired"]
        status = client.get("/live").json()
        assert status["sources"][0]["format"] == "mosquitto" and status["sources"][0]["lines"] == 10
        page = client.get("/live/events", params={"limit": 5}).json()
        assert [e["raw"] for e in page["items"]] == (START + FAILURE)[:5]
        rest = client.get("/live/events", params={"after": page["next_cursor"]}).json()
        assert [e["raw"] for e in rest["items"]] == (START + FAILURE + FAILURE)[5:]
        assert client.get("/live/events", params={"after": rest["next_cursor"]}).json()["items"] == []


def test_a_late_subscriber_gets_the_current_findings_first(start_server: ServerFactory, tmp_path: Path) -> None:
    log = tmp_path / "mosquitto.log"
    log.write_text("".join(line + "\n" for line in START + FAILURE))
    server = start_server(live_paths=[tmp_path])
    with server.client(timeout=httpx.Timeout(15)) as client:
        for _ in range(100):
            if client.get("/live/findings").json()["items"]:
                break
            threading.Event().wait(0.1)
        with client.stream("GET", "/live/stream") as response:
            assert next(sse_findings(response))["id"] == "tls.server_cert_expired"


def test_live_routes_say_when_nothing_is_tailed(start_server: ServerFactory) -> None:
    with start_server().client() as client:
        for path in ("/live", "/live/findings", "/live/events", "/live/stream"):
            response = client.get(path)
            assert response.status_code == 404
            assert "live tailing is off" in response.json()["message"]
