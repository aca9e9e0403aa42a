"""Retries that do not duplicate work, against a real server: the same Idempotency-Key, or the
same bundle bytes without one, answer the analysis the first upload made."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from api_helpers import SAMPLES, ServerFactory


def analyses_in(state: Path) -> int:
    with sqlite3.connect(state / "correlator.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM analyses").fetchone()[0])


def test_the_same_key_twice_is_one_analysis(start_server: ServerFactory, mixed_zip: Path, tmp_path: Path) -> None:
    server = start_server()
    body = mixed_zip.read_bytes()
    with server.client() as client:
        first = client.post("/analyses", content=body, headers={"Idempotency-Key": "ticket-4711-upload-1"})
        assert first.status_code == 201, first.text
        retry = client.post("/analyses", content=body, headers={"Idempotency-Key": "ticket-4711-upload-1"})
        assert retry.status_code == 200, retry.text
        assert retry.json()["id"] == first.json()["id"] and retry.json()["status"] == "done"
        assert retry.headers["location"] == f"/api/v1/analyses/{first.json()['id']}"
        # the same key with other bytes is the client's mistake, said as such
        log = (SAMPLES / "bad_credentials" / "broker" / "mosquitto.log").read_bytes()
        other = client.post("/analyses", content=log, params={"name": "mosquitto.log"},
                            headers={"Idempotency-Key": "ticket-4711-upload-1"})
        assert other.status_code == 409
        assert "was sent before with another upload" in other.json()["message"]
        bad = client.post("/analyses", content=body, headers={"Idempotency-Key": "a key with spaces"})
        assert bad.status_code == 422
    assert analyses_in(tmp_path / "state") == 1
    # nothing left of the refused ones; the analysis keeps only the log its routine lines are read from
    kept = tmp_path / "state" / "uploads"
    assert [p.relative_to(kept).parts[:2] for p in kept.rglob("*") if p.is_file()] == [(first.json()["id"], "text")]


def test_the_same_bytes_without_a_key_are_recognised(start_server: ServerFactory, mixed_zip: Path,
                                                     tmp_path: Path) -> None:
    server = start_server()
    body = mixed_zip.read_bytes()
    with server.client() as client:
        first = client.post("/analyses", content=body)
        again = client.post("/analyses", content=body, params={"name": "renamed.zip"})
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        # once deleted, the bytes make a new analysis
        assert client.delete(f"/analyses/{first.json()['id']}").status_code == 204
        third = client.post("/analyses", content=body)
        assert third.status_code == 201 and third.json()["id"] != first.json()["id"]
    assert analyses_in(tmp_path / "state") == 1
