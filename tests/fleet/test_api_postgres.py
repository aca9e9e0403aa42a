"""The API over a real PostgreSQL, end to end (uvicorn and httpx over TCP): two servers sharing one
database answer for each other's analyses, a background analysis's process writes through the
same store, and a PostgreSQL restart is answered 503 meanwhile, then recovered from without
restarting the server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import (
    HTTP_TIMEOUT,
    SAMPLES,
    ServerFactory,
    interrupted_analysis,
    started_servers,
    wait_done,
    zip_folder,
)
from fleet_servers import PostgresServer


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Servers each with a state folder of its own (they share only the database)."""
    with started_servers(lambda n: tmp_path / f"state{n}") as start:
        yield start


@pytest.fixture(scope="module")
def mixed_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return zip_folder(SAMPLES / "mixed", tmp_path_factory.mktemp("bundles") / "mixed.zip")


def test_two_servers_share_one_database(start_server: ServerFactory, postgres_url: str, mixed_zip: Path) -> None:
    first = start_server(database=postgres_url)
    second = start_server(database=postgres_url)
    with first.client() as one, second.client() as two:
        created = one.post("/analyses", content=mixed_zip.read_bytes(), headers={"Idempotency-Key": "k-1"})
        assert created.status_code == 201, created.text
        analysis = created.json()
        assert analysis["status"] == "done"
        assert two.get(f"/analyses/{analysis['id']}").json() == analysis
        findings = one.get(f"/analyses/{analysis['id']}/findings").json()
        assert two.get(f"/analyses/{analysis['id']}/findings").json() == findings
        assert {f["id"] for f in findings["items"]} >= {"tls.client_cert_expired", "acl.publish_denied"}
        key = findings["items"][0]["key"]
        assert two.get(f"/analyses/{analysis['id']}/findings/{key}").json() == findings["items"][0]
        pages: list[dict[str, Any]] = []
        cursor: int | None = 0
        while cursor is not None:  # page through on alternate servers: one cursor for both
            page = (one, two)[len(pages) % 2].get(f"/analyses/{analysis['id']}/timeline",
                                                 params={"after": cursor, "limit": 40}).json()
            pages.append(page)
            cursor = page["next_cursor"]
        seqs = [e["seq"] for page in pages for e in page["items"]]
        assert seqs == list(range(1, analysis["events"] + 1))
        report = two.get(f"/analyses/{analysis['id']}/report", params={"format": "md"})
        assert report.status_code == 200 and "acl.publish_denied" in report.text
        # the same key again, at the other server: the first request's analysis
        again = two.post("/analyses", content=mixed_zip.read_bytes(), headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 200 and again.json()["id"] == analysis["id"]
        assert two.get("/analyses").json()["total"] == 1
        assert two.delete(f"/analyses/{analysis['id']}").status_code == 204
        assert one.get(f"/analyses/{analysis['id']}").status_code == 404


def test_background_analysis_writes_through_postgresql(start_server: ServerFactory, postgres_url: str,
                                                       mixed_zip: Path) -> None:
    server = start_server(database=postgres_url, background_bytes=0)
    with server.client() as client:
        accepted = client.post("/analyses", content=mixed_zip.read_bytes())
        assert accepted.status_code == 202, accepted.text
        done = wait_done(client, accepted.json()["id"])
        assert done["status"] == "done" and done["events"] > 0
        timeline = client.get(f"/analyses/{done['id']}/timeline", params={"kind": "tls.", "limit": 1000}).json()
        assert timeline["items"] and all(e["kind"].startswith("tls.") for e in timeline["items"])
        metrics = httpx.get(server.url + "/metrics", timeout=HTTP_TIMEOUT).text
        assert 'correlator_analyses{status="done"} 1.0' in metrics


def test_a_server_resumes_only_the_analyses_it_holds_the_upload_of(start_server: ServerFactory, postgres_url: str,
                                                                    tmp_path: Path) -> None:
    """Servers sharing a database each resume, at start, the analyses a restart cut short whose
    upload waits in their own state folder, and leave the others' alone."""
    mine = tmp_path / "mine"
    analysis_id, upload, _ = interrupted_analysis(postgres_url, mine)
    other = start_server(database=postgres_url, state_dir=tmp_path / "other")
    assert other.app.state.analyser.future(analysis_id) is None, "not queued by the server without its upload"
    with other.client() as client:
        untouched = client.get(f"/analyses/{analysis_id}").json()
        assert (untouched["status"], untouched["phase"], untouched["progress"]) == ("running", "analysing", 0.4)
    assert upload.exists()
    other.stop()
    own = start_server(database=postgres_url, state_dir=mine)
    with own.client() as client:
        assert wait_done(client, analysis_id)["status"] == "done"


def test_postgresql_restart_answers_503_then_recovers(start_server: ServerFactory, postgres_server: PostgresServer,
                                                      postgres_url: str, mixed_zip: Path) -> None:
    # each request while the database is down waits the pool's timeout for a connection: a short one
    server = start_server(database=postgres_url, pool_timeout=0.5)
    with server.client() as client:
        analysis = client.post("/analyses", content=mixed_zip.read_bytes()).json()
        assert client.get("/ready").status_code == 200
        postgres_server.stop("fast")
        try:
            down = client.get(f"/analyses/{analysis['id']}")
            assert down.status_code == 503, down.text
            assert down.headers["retry-after"] == "5"
            assert down.json() == {"status": 503, "error": "service_unavailable", "details": [],
                                   "message": "the database does not answer; try again shortly"}
            assert client.get(f"/analyses/{analysis['id']}/timeline").status_code == 503
            assert client.post("/analyses", content=b"1795444795: mosquitto version 2.0.11 starting\n",
                               params={"name": "m.log"}).status_code == 503
            ready = client.get("/ready")
            assert ready.status_code == 503 and ready.headers["retry-after"] == "5"
            assert any("database does not answer" in p for p in ready.json()["problems"])
            health = client.get("/health")
            assert health.status_code == 200, "the event loop is not stalled by the database"
        finally:
            postgres_server.start()  # the same port and data: a restart
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover from the database's restart"
            time.sleep(0.2)
        assert client.get(f"/analyses/{analysis['id']}").json() == analysis
        after = client.post("/analyses", content=b"1795444795: mosquitto version 2.0.11 starting\n",
                            params={"name": "m.log"})
        assert after.status_code == 201 and after.json()["status"] == "done"
