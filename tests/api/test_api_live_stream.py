"""The live stream as a dashboard relies on it, against a real server tailing real logs: a
finding that a more specific cause comes to explain is retracted (`removed`), and a client that
reconnects with Last-Event-ID gets what it missed, in order."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from api.test_api_live import FAILURE, START, append
from api_helpers import SAMPLES, ServerFactory

INCIDENT = SAMPLES / "broker_tls_config_error"


def sse_events(response: httpx.Response) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, event, data) of each event (its fields come in any order; a blank line ends it)."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                yield fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def test_a_finding_another_cause_explains_is_removed_from_the_stream(start_server: ServerFactory,
                                                                     tmp_path: Path) -> None:
    folder = tmp_path / "plant"
    (folder / "clients").mkdir(parents=True)
    shutil.copy(INCIDENT / "clients" / "edge-02.log", folder / "clients" / "edge-02.log")
    server = start_server(live_paths=[folder])
    with server.client(timeout=httpx.Timeout(20)) as client, client.stream("GET", "/live/stream") as response:
        events = sse_events(response)
        refused = next(data for _, kind, data in events if kind == "finding")
        assert refused["id"] == "net.connection_refused"
        assert "<unknown" not in json.dumps(refused)  # no unfilled placeholder in a live text
        # the broker's log arrives: it never started its TLS listener, which explains the refusals
        threading.Timer(0.2, shutil.copy, (INCIDENT / "broker" / "mosquitto.log", folder / "mosquitto.log")).start()
        seen = []
        for ident, kind, data in events:
            seen.append((kind, data["id"]))
            if kind == "removed":
                assert data == {"key": refused["key"], "id": "net.connection_refused"}
                assert int(ident) > 0
                break
        assert ("finding", "broker.tls_config_error") in seen


def test_a_reconnecting_client_resumes_after_its_last_event(start_server: ServerFactory, tmp_path: Path) -> None:
    log = tmp_path / "mosquitto.log"
    log.write_text("".join(line + "\n" for line in START + FAILURE))
    server = start_server(live_paths=[log])
    with server.client(timeout=httpx.Timeout(20)) as client:
        with client.stream("GET", "/live/stream") as response:
            last, _, first = next(sse_events(response))
        assert first["id"] == "tls.server_cert_expired"
        append(log, FAILURE)  # missed while away
        with client.stream("GET", "/live/stream", headers={"Last-Event-ID": last}) as response:
            ident, kind, missed = next(sse_events(response))
        assert kind == "finding" and int(ident) == int(last) + 1
        assert missed["key"] == first["key"] and missed["count"] > first["count"]
        # an id the server no longer keeps (or never gave): the current findings, as for a new client
        with client.stream("GET", "/live/stream", headers={"Last-Event-ID": "999999"}) as response:
            _, kind, current = next(sse_events(response))
        assert kind == "finding" and current["count"] == missed["count"]
