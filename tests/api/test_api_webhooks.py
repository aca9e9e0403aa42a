"""Completion webhooks, against a real server and a real receiver (an HTTP server in the test):
signed with HMAC-SHA256 over the exact body, retried with backoff on failure, and bounded."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from api_helpers import ServerFactory


class Receiver:
    """A ticket system's endpoint: answers the first `failures` deliveries with 503."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[float, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((time.monotonic(), dict(self.headers.items()), body))
                self.send_response(503 if len(receiver.received) <= receiver.failures else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hooks/correlator"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, self.received
            time.sleep(0.02)


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    made = Receiver(getattr(request, "param", 0))
    yield made
    made.http.shutdown()


@pytest.mark.parametrize("receiver", [2], indirect=True)
def test_a_signed_webhook_is_retried_with_backoff_until_delivered(start_server: ServerFactory, mixed_zip: Path,
                                                                  receiver: Receiver) -> None:
    server = start_server(webhook_secret="s3cret", webhook_backoff=0.2)
    with server.client() as client:
        created = client.post("/analyses", content=mixed_zip.read_bytes(), params={"webhook": receiver.url})
        assert created.status_code == 201
    receiver.wait(3)
    time.sleep(0.5)
    assert len(receiver.received) == 3, "delivered on the third try, and not again"
    times = [t for t, _, _ in receiver.received]
    assert times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4  # backoff doubles
    _, headers, body = receiver.received[-1]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Correlator-Signature-256"], expected)
    assert headers["X-Correlator-Event"] == "analysis.finished"
    assert len({h["X-Correlator-Delivery"] for _, h, _ in receiver.received}) == 1  # one delivery, retried
    sent = json.loads(body)
    assert sent["analysis"]["id"] == created.json()["id"] and sent["analysis"]["status"] == "done"
    assert sent["analysis"]["summary"]["findings"] == 3
    assert sent["links"]["report"] == f"/api/v1/analyses/{created.json()['id']}/report?format=md"


@pytest.mark.parametrize("receiver", [100], indirect=True)
def test_retries_are_bounded(start_server: ServerFactory, mixed_zip: Path, receiver: Receiver) -> None:
    server = start_server(webhook_url=receiver.url, webhook_attempts=3, webhook_backoff=0.05)
    with server.client() as client:
        assert client.post("/analyses", content=mixed_zip.read_bytes()).status_code == 201
    receiver.wait(3)
    time.sleep(0.6)
    assert len(receiver.received) == 3
    assert "X-Correlator-Signature-256" not in receiver.received[0][1]  # no secret, no signature


def test_a_webhook_must_be_http(start_server: ServerFactory, mixed_zip: Path) -> None:
    server = start_server()
    with server.client() as client:
        refused = client.post("/analyses", content=mixed_zip.read_bytes(), params={"webhook": "file:///etc/passwd"})
        assert refused.status_code == 422 and "webhook" in refused.json()["message"]
