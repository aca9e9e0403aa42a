"""The HTTP rows of issue 16's table, against a real server: odd characters in a query or a path
are a 4xx, never a 500 and a reset; half-open connections and stalled bodies are closed on time."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from api_helpers import ServerFactory

from correlator.api import server as api_server


@pytest.fixture
def analysis_url(start_server: ServerFactory, mixed_zip: Path) -> tuple[str, str]:
    server = start_server()
    with server.client() as client:
        created = client.post("/analyses", params={"name": "mixed.zip"}, content=mixed_zip.read_bytes())
        assert created.status_code == 201, created.text
        return server.url, created.json()["id"]


@pytest.mark.parametrize(("path", "status"), [
    ("timeline?q=a%00b", 422),
    ("findings/%C2%B9", 404),   # a superscript one is a digit to str.isdigit, not to int()
    ("findings/%EF%BC%91", 404),  # a fullwidth one
])
def test_odd_characters_are_a_client_error_not_a_500(analysis_url: tuple[str, str], path: str, status: int) -> None:
    import httpx

    url, analysis = analysis_url
    response = httpx.get(f"{url}/api/v1/analyses/{analysis}/{path}", timeout=10)
    assert response.status_code == status, response.text
    assert response.json()["status"] == status


def test_half_open_connections_and_stalled_bodies_are_closed_on_time(
        start_server: ServerFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_server, "HEADER_TIMEOUT", 0.5)
    monkeypatch.setattr(api_server, "BODY_TIMEOUT", 0.5)
    server = start_server()
    port = int(server.url.rsplit(":", 1)[1])
    half_open = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    for sock in half_open[:10]:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
    stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
    for sock in stalled:
        sock.sendall(b"POST /api/v1/analyses?name=a.zip HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Length: 1000000\r\n\r\nPK")
    start = time.monotonic()
    for sock in half_open + stalled:
        sock.settimeout(10)
        closed = sock.recv(65536)
        while closed and b"HTTP/1.1 4" not in closed:  # a stalled upload may be answered before the close
            more = sock.recv(65536)
            if not more:
                break
            closed += more
        sock.close()
    assert time.monotonic() - start < 5  # every one closed within its deadline, not held
    with server.client() as client:  # and the server still answers
        assert client.get("/health").status_code == 200


def test_a_member_name_that_is_not_utf8_is_analysed_not_failed(start_server: ServerFactory, tmp_path: Path) -> None:
    """The API used to mark such an analysis failed (its reports ended in UnicodeEncodeError)."""
    from hostile import corpus

    bundle = corpus.non_utf8_name(tmp_path)
    server = start_server()
    with server.client() as client:
        created = client.post("/analyses", params={"name": bundle.name}, content=bundle.read_bytes())
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "done", created.json()
        findings = client.get(f"/analyses/{created.json()['id']}/findings").json()["items"]
    assert corpus.HEALTHY_CAUSE in {f["id"] for f in findings}
