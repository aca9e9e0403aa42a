"""A support tool's path through a real server: upload a customer's bundle, read the findings
(the same objects the CLI's JSON report holds), open one, page through the timeline."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, get_type_hints

import httpx
import pytest
from api_helpers import HTTP_TIMEOUT, SAMPLES, RunningServer

from correlator.api.models import FindingOut


def when(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00"))


def upload(client: httpx.Client, bundle: Path) -> dict[str, Any]:
    response = client.post("/analyses", content=bundle.read_bytes())
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "done", body
    return body


@pytest.fixture(scope="module")
def analysis(shared: RunningServer, mixed_zip: Path) -> dict[str, Any]:
    with shared.client() as client:
        return upload(client, mixed_zip)


@pytest.fixture(scope="module")
def cli_report() -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "correlator", "analyze", str(SAMPLES / "mixed"), "--format", "json"],
                         capture_output=True, text=True, check=False)
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def test_upload_answers_the_finished_analysis_with_its_summary(analysis: dict[str, Any]) -> None:
    assert analysis["name"] == "upload.zip"
    assert analysis["progress"] == 1.0
    assert analysis["summary"]["findings"] == 3
    assert analysis["summary"]["worst_severity"] == "high"
    assert analysis["events"] == analysis["summary"]["events"] > 200
    assert analysis["artifacts"]["keys"] == 3 and analysis["artifacts"]["password_files"] == 1


def test_findings_are_the_cli_report_findings(shared: RunningServer, analysis: dict[str, Any],
                                              cli_report: dict[str, Any]) -> None:
    with shared.client() as client:
        body = client.get(f"/analyses/{analysis['id']}/findings").json()
    assert body["total"] == len(body["items"]) == 3
    served = {f["id"]: f for f in body["items"]}
    expected = {f["id"]: f for f in cli_report["findings"]}
    assert served.keys() == expected.keys()
    volatile = {"key", "first_seen", "last_seen", "evidence", "explanation", "remediation", "facts"}
    for finding_id, finding in served.items():
        assert set(finding) - {"key"} == set(expected[finding_id]), "the API serves the report's Finding schema"
        for name in set(finding) - volatile:
            assert finding[name] == expected[finding_id][name], (finding_id, name)
        # evidence names files inside the upload: same lines, the archive's name in front
        assert [(e["line"], e["text"]) for e in finding["evidence"]] == [
            (e["line"], e["text"]) for e in expected[finding_id]["evidence"]]
    assert set(get_type_hints(FindingOut)) - {"key"} == set(cli_report["findings"][0])
    with shared.client() as client:
        served_hosts = client.get(f"/analyses/{analysis['id']}").json()["hosts"]
    assert [(h["name"], h["findings"]) for h in served_hosts] == [
        (h["name"], h["findings"]) for h in cli_report["hosts"]], "the API lists the report's hosts"


def test_findings_filters(shared: RunningServer, analysis: dict[str, Any]) -> None:
    path = f"/analyses/{analysis['id']}/findings"
    with shared.client() as client:
        def ids(**params: Any) -> list[str]:
            response = client.get(path, params=params)
            assert response.status_code == 200, response.text
            return [f["id"] for f in response.json()["items"]]

        assert ids(client="viewer-33") == ["acl.publish_denied"]
        assert ids(id="tls.client_cert_expired") == ["tls.client_cert_expired"]
        assert ids(id="tls.") == ["tls.client_cert_expired"]
        # both high: the one that happened more often first (5 denied publishes, 2 refused logins)
        assert ids(id=["auth.bad_credentials", "acl.publish_denied"]) == ["acl.publish_denied",
                                                                           "auth.bad_credentials"]
        every = client.get(path).json()["items"]
        assert ids(min_severity="medium") == [f["id"] for f in every if f["severity"] in ("medium", "high")]
        assert ids(severity="medium") == [f["id"] for f in every if f["severity"] == "medium"]
        assert ids(severity="critical") == []
        assert client.get(path, params={"severity": "bad"}).status_code == 422


def test_one_finding_with_evidence_and_remediation(shared: RunningServer, analysis: dict[str, Any]) -> None:
    with shared.client() as client:
        listed = client.get(f"/analyses/{analysis['id']}/findings", params={"id": "tls.client_cert_expired"}).json()
        key = listed["items"][0]["key"]
        finding = client.get(f"/analyses/{analysis['id']}/findings/{key}").json()
        missing = client.get(f"/analyses/{analysis['id']}/findings/99")
    assert finding["id"] == "tls.client_cert_expired" and finding["key"] == key
    assert any(e["file"].endswith("broker/mosquitto.log") and e["line"] for e in finding["evidence"])
    assert any("edge-31" in step["command"] + step["text"] for step in finding["remediation"])
    assert missing.status_code == 404 and missing.json()["message"]


def test_timeline_pages_cover_every_event_once(shared: RunningServer, analysis: dict[str, Any]) -> None:
    seen: list[int] = []
    cursor: int | None = 0
    with shared.client() as client:
        while cursor is not None:
            page = client.get(f"/analyses/{analysis['id']}/timeline", params={"after": cursor, "limit": 50}).json()
            assert len(page["items"]) <= 50
            seen.extend(e["seq"] for e in page["items"])
            cursor = page["next_cursor"]
    assert seen == list(range(1, analysis["events"] + 1))


def test_timeline_filters(shared: RunningServer, analysis: dict[str, Any]) -> None:
    path = f"/analyses/{analysis['id']}/timeline"
    with shared.client() as client:
        def events(**params: Any) -> list[dict[str, Any]]:
            response = client.get(path, params={"limit": 1000, **params})
            assert response.status_code == 200, response.text
            items: list[dict[str, Any]] = response.json()["items"]
            return items

        everything = events()
        broker = events(source="broker")
        assert broker and all(e["source"] == "broker" for e in broker)
        assert {e["source"] for e in events(source=["client:edge-31", "client:viewer-33"])} == {
            "client:edge-31", "client:viewer-33"}
        tls = events(kind="tls.")
        assert tls and all(e["kind"].startswith("tls.") for e in tls)
        assert events(kind="tls.*") == tls
        denied = events(q="Denied PUBLISH")
        assert denied and all("Denied PUBLISH" in e["raw"] for e in denied)
        viewer = events(client="viewer-33")
        assert {e["source"] for e in viewer} >= {"broker", "client:viewer-33"}
        assert all(e["client"] == "viewer-33" for e in viewer)
        # a broker line that names no client ('<unknown>') is tied to one through its connection
        assert any(e["source"] == "broker" and "<unknown>" in e["raw"] for e in events(client="edge-31"))
        middle = everything[len(everything) // 2]["time"]
        later = events(since=middle)
        assert later and all(when(e) >= when(everything[len(everything) // 2]) for e in later)
        earlier = events(until=middle)
        assert earlier and all(when(e) <= when(everything[len(everything) // 2]) for e in earlier)
        assert len(earlier) + len(later) >= len(everything)
        # the one time grammar (correlator.time_input): any case, epoch seconds, the same events
        moment = when(everything[len(everything) // 2])
        assert events(since=middle.lower()) == later
        assert events(since=str(moment.timestamp())) == later
        bad = client.get(path, params={"since": "23.11.2026"})
        assert bad.status_code == 422
        assert bad.json()["message"].startswith("since: '23.11.2026' is not an ISO 8601 time or epoch seconds")
        assert events(q="100%_not_there") == []


def test_sources_with_zones_offsets_and_line_counts(shared: RunningServer, analysis: dict[str, Any],
                                                    cli_report: dict[str, Any]) -> None:
    with shared.client() as client:
        sources = client.get(f"/analyses/{analysis['id']}/sources").json()["items"]
    by_name = {s["source"]: s for s in sources}
    for expected in cli_report["sources"]:
        got = by_name[expected["source"]]
        assert got["path"].endswith(expected["path"])
        for name in ("format", "zone", "zone_how", "offset", "offset_how", "lines_read", "unparsed"):
            assert got[name] == expected[name], name


def test_multipart_upload_keeps_the_file_name(shared: RunningServer) -> None:
    log = SAMPLES / "server_cert_expired" / "broker" / "mosquitto.log"
    with shared.client() as client:
        response = client.post("/analyses", files={"file": ("broker.log", log.read_bytes(), "text/plain")})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["name"] == "broker.log"
        found = client.get(f"/analyses/{body['id']}/findings").json()["items"]
    assert "tls.server_cert_expired" in {f["id"] for f in found}


def test_list_and_delete(shared: RunningServer) -> None:
    log = SAMPLES / "bad_credentials" / "broker" / "mosquitto.log"
    with shared.client() as client:
        created = client.post("/analyses", content=log.read_bytes(), params={"name": "b.log"}).json()
        listed = client.get("/analyses").json()
        assert listed["items"][0]["id"] == created["id"]
        assert listed["total"] >= 1
        assert client.get("/analyses", params={"status": "failed"}).json()["items"] == []
        assert client.delete(f"/analyses/{created['id']}").status_code == 204
        for path in ("", "/findings", "/timeline", "/sources"):
            gone = client.get(f"/analyses/{created['id']}{path}")
            assert gone.status_code == 404, path
            assert gone.json()["message"] == f"no analysis '{created['id']}'"
        assert client.delete(f"/analyses/{created['id']}").status_code == 404


def test_service_routes(shared: RunningServer) -> None:
    with shared.client() as client:
        assert client.get("/health").json() == {"status": "ok"}
        version = client.get("/version").json()
        formats = {f["name"] for f in client.get("/formats").json()}
        rules = {r["id"] for r in client.get("/rules").json()}
        docs = httpx.get(shared.url + "/docs", timeout=HTTP_TIMEOUT)
        schema = client.get("/openapi.json").json()
    assert version["report_schema"] == "correlator.analysis/2"
    assert {"mosquitto", "python_logging"} <= formats
    assert {"tls.server_cert_expired", "acl.publish_denied"} <= rules
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    operations = {op["operationId"] for ops in schema["paths"].values() for op in ops.values()}
    assert {"create_analysis", "list_findings", "get_finding", "get_timeline", "stream_live_findings"} <= operations
    assert all("__" not in op for op in operations), "operation ids are clean names"
