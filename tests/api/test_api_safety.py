"""What a server must never do: hand out private keys or password hashes, answer a stranger
without the token, answer an error with a stack trace, fill its disk, or let any web page call it."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

from api_helpers import SAMPLES, ServerFactory, every_response

KEY_LINE = re.compile(r"^[A-Za-z0-9+/=]{40,}$")


def secrets_of(folder: Path) -> list[str]:
    """Every base64 line of the folder's private keys, and every hash of its password files."""
    found: list[str] = []
    for key in folder.rglob("*.key"):
        found += [line for line in key.read_text().splitlines() if KEY_LINE.match(line)]
    for passwd in folder.rglob("passwd"):
        for line in passwd.read_text().splitlines():
            _user, _, hashed = line.partition(":")
            if hashed:
                found += [hashed, hashed.split("$")[-1]]
    assert len(found) > 20
    return found


def test_no_response_holds_a_private_key_or_a_password_hash(start_server: ServerFactory, mixed_zip: Path) -> None:
    folder = SAMPLES / "mixed"
    secrets = secrets_of(folder)
    server = start_server()
    with server.client() as client:
        created = client.post("/analyses", content=mixed_zip.read_bytes())
        responses = [created, *every_response(client, created.json()["id"])]
        keys = sorted(folder.rglob("*.key"))
        inspected = client.post("/certificates/inspect", files=[
            *[("files", (p.name, p.read_bytes())) for p in sorted(folder.rglob("*.pem"))],
            *[("files", (p.name, p.read_bytes())) for p in keys]], data={"host": "localhost"})
        responses.append(inspected)
    assert inspected.status_code == 200, inspected.text
    assert len(inspected.json()["keys"]) == len(keys)
    assert all(r.status_code in (200, 201) for r in responses)
    for response in responses:
        for secret in secrets:
            assert secret not in response.text, f"{response.request.url} returned secret material"
        assert "PRIVATE KEY" not in response.text


def test_a_log_line_quoting_a_hash_is_redacted(start_server: ServerFactory) -> None:
    hashed = "$7$101$q5ADLvnMbrLFIHFY$Yp9o0yJ/u+ZAG7HCyXpA5nG4MZo8ycW0KPumYGz4vLTh=="
    log = (SAMPLES / "bad_credentials" / "broker" / "mosquitto.log").read_text()
    first = log.splitlines()[0].split(":")[0]
    text = log + f"{first}: Warning: password file line for hmi: hmi:{hashed}\n"
    server = start_server()
    with server.client() as client:
        created = client.post("/analyses", content=text.encode(), params={"name": "mosquitto.log"}).json()
        timeline = client.get(f"/analyses/{created['id']}/timeline", params={"q": "password file line",
                                                                               "limit": 10}).json()
    assert timeline["items"], "the line is in the timeline"
    assert hashed not in str(timeline) and "[password hash removed]" in timeline["items"][0]["raw"]


def test_token_is_checked_on_every_route_but_health_and_readiness(start_server: ServerFactory) -> None:
    token = "s3cret-token-0123456789"
    server = start_server(token=token)
    with server.client() as anonymous, server.client("wrong") as wrong, server.client(token) as right:
        assert anonymous.get("/health").status_code == 200
        schema = right.get("/openapi.json").json()
        for path, operations in schema["paths"].items():
            for method in operations:
                if path.endswith(("/health", "/ready")):  # for the platform's probes, which carry no token
                    continue
                url = server.url + path.replace("{analysis_id}", "x").replace("{key}", "1")
                for client in (anonymous, wrong):
                    response = client.request(method, url)
                    assert response.status_code == 401, (method, path)
                    assert response.headers["www-authenticate"] == "Bearer"
                    assert response.json()["message"] == "a valid bearer token is required"
        assert right.get("/version").status_code == 200
        assert right.get("/analyses/x").status_code == 404


def test_errors_are_json_with_the_right_status_and_no_trace(start_server: ServerFactory) -> None:
    server = start_server(max_upload_bytes=10_000)
    with server.client() as client:
        cases = {
            404: [client.get("/analyses/nope"), client.get("/no/such/route"), client.get("/analyses/nope/findings/1")],
            405: [client.put("/analyses")],
            422: [client.get("/analyses", params={"limit": "many"}), client.get("/analyses", params={"status": "x"})],
            400: [client.post("/analyses", content=b""),
                  client.post("/analyses", files={"other": ("a.log", b"x")})],
            413: [client.post("/analyses", content=b"x" * 20_000),
                  client.post("/analyses", content=iter([b"x" * 4096] * 5)),  # chunked: no length to trust
                  client.post("/analyses", files={"file": ("big.log", b"y" * 20_000)})],
        }
        assert client.get("/analyses").json()["total"] == 0, "refused uploads leave nothing behind"
        assert not list((server.settings.state_dir / "uploads").iterdir())
        # a real fault inside the server: its database loses a table
        with sqlite3.connect(server.settings.state_dir / "correlator.sqlite3") as db:
            db.execute("DROP TABLE analyses")
        cases[500] = [client.get("/analyses")]
    for status, responses in cases.items():
        for response in responses:
            assert response.status_code == status, (response.request.url, response.text)
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert body["status"] == status and body["message"] and body["error"]
            assert "Traceback" not in response.text and "sqlite3" not in response.text


def test_cors_is_off_unless_origins_are_given(start_server: ServerFactory) -> None:
    closed = start_server()
    opened = start_server(cors_origins=["http://dash.example"], state_dir=closed.settings.state_dir.parent / "s2")
    preflight = {"Origin": "http://dash.example", "Access-Control-Request-Method": "GET"}
    with closed.client() as client:
        assert "access-control-allow-origin" not in client.get("/version", headers={"Origin": "http://x"}).headers
        assert "access-control-allow-origin" not in client.options("/analyses", headers=preflight).headers
    with opened.client() as client:
        answer = client.options("/analyses", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "http://dash.example"
        assert "access-control-allow-origin" not in client.get("/version", headers={"Origin": "http://evil"}).headers


def test_live_events_are_redacted_too(start_server: ServerFactory, tmp_path: Path) -> None:
    hashed = "$7$101$q5ADLvnMbrLFIHFY$Yp9o0yJ/u+ZAG7HCyXpA5nG4MZo8ycW0KPumYGz4vLTh=="
    lines = (SAMPLES / "server_cert_expired" / "broker" / "mosquitto.log").read_text().splitlines()[:5]
    log = tmp_path / "mosquitto.log"
    log.write_text("\n".join([*lines, f"{lines[0].split(':')[0]}: Warning: bad line hmi:{hashed}"]) + "\n")
    server = start_server(live_paths=[log])
    with server.client() as client:
        for _ in range(100):
            events = client.get("/live/events", params={"limit": 1000}).json()["items"]
            if len(events) == 6:
                break
            time.sleep(0.1)
    assert len(events) == 6
    assert hashed not in str(events) and "[password hash removed]" in events[-1]["raw"]
