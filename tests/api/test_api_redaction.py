"""No API route, no server-sent event and no byte of the server's SQLite file holds a secret
planted in a bundle (tests/planted_secrets.py): keys of every PEM kind dumped over many lines,
hashes of every kind, passwords in pairs and URLs, password files with CRLF endings or in plain
text. The same bundle is uploaded as a customer would and tailed live."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from api_helpers import ServerFactory, every_response, zip_folder
from planted_secrets import leaks, plant

from correlator.redaction import HASH_REMOVED, PASSWORD_REMOVED


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    return plant(tmp_path_factory.mktemp("secrets"))


def state_bytes(state: Path) -> bytes:
    """The database and its journals: everything the server keeps of an analysis."""
    return b"".join(p.read_bytes() for p in sorted(state.glob("correlator.sqlite3*")))


def read_stream(client: httpx.Client, count: int) -> str:
    """The stream's text up to its `count`th finding (the current ones come first)."""
    seen, text = 0, []
    with client.stream("GET", "/live/stream") as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            text.append(line)
            seen += line == "event: finding"
            if seen == count and line.startswith("data: "):
                break
    return "\n".join(text)


def test_no_route_and_no_stored_byte_holds_a_planted_secret(start_server: ServerFactory,
                                                            planted: tuple[Path, list[str]], tmp_path: Path) -> None:
    bundle, secrets = planted
    archive = zip_folder(bundle, tmp_path / "planted.zip")
    server = start_server()
    with server.client() as client:
        created = client.post("/analyses", content=archive.read_bytes())
        assert created.status_code == 201 and created.json()["status"] == "done", created.text
        responses = [created, *every_response(client, created.json()["id"])]
        responses += [client.get(path) for path in ("/version", "/formats", "/rules")]
        keys = [*sorted(bundle.rglob("*.pem")), *sorted(bundle.rglob("*.key")), bundle / "clients/edge-10-debug.log"]
        responses.append(client.post("/certificates/inspect", files=[("files", (p.name, p.read_bytes())) for p in keys],
                                     data={"host": "localhost"}))
    assert all(r.status_code in (200, 201) for r in responses), [(r.url, r.status_code) for r in responses]
    for response in responses:
        assert not leaks(response.text, secrets), response.request.url
    served = "".join(r.text for r in responses)
    assert PASSWORD_REMOVED in served and HASH_REMOVED in served, "the planted lines are served, redacted"
    stored = state_bytes(server.settings.state_dir).decode("utf-8", "replace")
    assert PASSWORD_REMOVED in stored and not leaks(stored, secrets)


def test_live_routes_and_the_stream_hold_no_planted_secret(start_server: ServerFactory,
                                                           planted: tuple[Path, list[str]]) -> None:
    bundle, secrets = planted
    server = start_server(live_paths=[bundle])
    with server.client(timeout=httpx.Timeout(30)) as client:
        for _ in range(200):
            findings = client.get("/live/findings").json()["items"]
            if findings and client.get("/live").json()["events"] > 60:
                break
            time.sleep(0.1)
        responses = [client.get("/live"), client.get("/live/findings")]
        cursor = 0
        while True:
            page = client.get("/live/events", params={"after": cursor, "limit": 1000})
            responses.append(page)
            if not page.json()["items"]:
                break
            cursor = page.json()["next_cursor"]
        stream = read_stream(client, len(findings))
    texts = [r.text for r in responses] + [stream]
    for text in texts:
        assert not leaks(text, secrets)
    assert PASSWORD_REMOVED in stream and HASH_REMOVED in "".join(texts)
