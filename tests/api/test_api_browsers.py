"""A web page the user happens to visit must not drive the server: not by a cross-site POST (no
preflight for text/plain or multipart), not by DNS rebinding (its own name resolving to
127.0.0.1), not through the probe. And a token, where there is one, is a real secret that guards
the documentation too."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from api_helpers import HTTP_TIMEOUT, SAMPLES, ServerFactory
from pydantic import ValidationError

from correlator.api import Settings, load_settings
from correlator.errors import CorrelatorError
from lab.ports import free_port

TOKEN = "0123456789abcdef-token"
EVIL = "http://evil.example"
PASTE = (SAMPLES / "mixed" / "broker" / "mosquitto.log").read_bytes()


def _writes(client: httpx.Client, headers: dict[str, str]) -> list[httpx.Response]:
    """The requests a page can send without a preflight, and a DELETE."""
    return [client.post("/analyses", content=PASTE, headers={**headers, "Content-Type": "text/plain"}),
            client.post("/analyses", files={"file": ("mosquitto.log", PASTE)}, headers=headers),
            client.post("/analyses", content=PASTE, params={"name": "mosquitto.log"},
                        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}),
            client.delete("/analyses/0123456789abcdef", headers=headers)]


def test_a_page_elsewhere_cannot_create_or_delete_an_analysis(start_server: ServerFactory) -> None:
    server = start_server()  # loopback, no token: the case a page in the user's browser can reach
    with server.client() as client:
        for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}):
            for answer in _writes(client, headers):
                assert answer.status_code == 403, (headers, answer.request.method, answer.text)
                assert "web page" in answer.json()["message"]
        assert client.get("/analyses").json()["total"] == 0
        # the server's own pages (the docs' "try it out"), scripts and curl may
        same = client.post("/analyses", content=PASTE, headers={"Content-Type": "text/plain", "Origin": server.url,
                                                                "Sec-Fetch-Site": "same-origin"})
        plain = client.post("/analyses", content=PASTE + b"\n", headers={"Content-Type": "text/plain"})
        assert same.status_code == 201 and plain.status_code == 201, (same.text, plain.text)
        assert client.get("/analyses", headers={"Origin": EVIL}).status_code == 200  # reading: CORS's business


def test_an_origin_given_with_cors_origin_may_write(start_server: ServerFactory) -> None:
    server = start_server(cors_origins=["http://dash.example"])
    with server.client() as client:
        allowed = client.post("/analyses", content=PASTE, headers={"Content-Type": "text/plain",
                                                                   "Origin": "http://dash.example"})
        assert allowed.status_code == 201, allowed.text
        assert allowed.headers["access-control-allow-origin"] == "http://dash.example"
        assert client.post("/analyses", content=PASTE, headers={"Origin": EVIL}).status_code == 403


def test_a_rebound_host_name_is_refused(start_server: ServerFactory) -> None:
    server = start_server(allowed_hosts=["correlator.plant.example"])
    port = server.url.rsplit(":", 1)[1]
    with server.client() as client:
        for host in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}"):
            answer = client.get("/analyses", headers={"Host": host})
            assert answer.status_code == 400, (host, answer.text)
            assert "evil.example" in answer.json()["message"] and "items" not in answer.json()
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST.", f"[::1]:{port}",
                     f"correlator.plant.example:{port}"):
            assert client.get("/analyses", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize("token", ["", " ", " " * 20, "short-token", "0123456789abcde", "0123456789 abcdef",
                                   "0123456789abcdef\n"])
def test_a_token_is_at_least_16_characters_and_no_blank(tmp_path: Path, token: str) -> None:
    with pytest.raises(CorrelatorError, match="at least 16 characters") as caught:
        load_settings(token=token, state_dir=tmp_path)
    assert token.strip() not in str(caught.value) or not token.strip(), "a refused token is never echoed"
    with pytest.raises(ValidationError):
        Settings.model_validate({"token": token, "state_dir": tmp_path})
    assert load_settings(token=TOKEN, state_dir=tmp_path).token is not None


def test_docs_and_schema_want_the_token(start_server: ServerFactory) -> None:
    server = start_server(token=TOKEN)
    for path in ("/docs", "/api/v1/openapi.json"):
        assert httpx.get(server.url + path, timeout=HTTP_TIMEOUT).status_code == 401, path
        assert httpx.get(server.url + path, headers={"Authorization": "Bearer wrong-token-wrong-token"},
                         timeout=HTTP_TIMEOUT).status_code == 401
        assert httpx.get(server.url + path, headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=HTTP_TIMEOUT).status_code == 200
    assert httpx.get(server.url + "/api/v1/health", timeout=HTTP_TIMEOUT).status_code == 200
    open_server = start_server(state_dir=server.settings.state_dir.parent / "open")
    # no token: nothing to protect them with
    assert httpx.get(open_server.url + "/docs", timeout=HTTP_TIMEOUT).status_code == 200


def _closed_port() -> int:
    port = free_port()
    with socket.socket() as sock:  # nothing listens there: the probe's TCP step is refused at once
        sock.bind(("127.0.0.1", port))
    return port


def test_the_probe_is_off_without_a_token_and_never_for_web_pages(start_server: ServerFactory) -> None:
    body = {"host": "127.0.0.1", "port": _closed_port(), "tls": False, "mqtt": False, "timeout": 2}
    off = start_server()
    with off.client() as client:
        answer = client.post("/probe", json=body)
        assert answer.status_code == 403 and "the probe is off" in answer.json()["message"]
    state = off.settings.state_dir.parent
    for server, token in ((start_server(state_dir=state / "t", token=TOKEN), TOKEN),
                          (start_server(state_dir=state / "p", probe=True), None)):
        with server.client(token) as client:
            answer = client.post("/probe", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["host"] == "127.0.0.1" and answer.json()["causes"] == ["net.connection_refused"]
            for headers in ({"Origin": server.url}, {"Origin": EVIL}, {"Sec-Fetch-Mode": "cors"}):
                refused = client.post("/probe", json=body, headers=headers)
                assert refused.status_code == 403 and "web page" in refused.json()["message"], headers


def test_the_probe_reaches_only_the_allowed_networks(start_server: ServerFactory) -> None:
    port = _closed_port()
    fenced = start_server(token=TOKEN, probe_networks=["10.20.0.0/16", "fd00::/8"])
    with fenced.client(TOKEN) as client:
        for host in ("127.0.0.1", "localhost", "::1"):
            answer = client.post("/probe", json={"host": host, "port": port, "tls": False})
            assert answer.status_code == 403 and "outside the networks" in answer.json()["message"], answer.text
    inside = start_server(token=TOKEN, probe_networks=["127.0.0.0/8"],
                          state_dir=fenced.settings.state_dir.parent / "inside")
    with inside.client(TOKEN) as client:
        answer = client.post("/probe", json={"host": "127.0.0.1", "port": port, "tls": False, "timeout": 2})
        assert answer.status_code == 200 and answer.json()["causes"] == ["net.connection_refused"], answer.text
