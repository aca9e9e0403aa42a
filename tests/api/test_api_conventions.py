"""The HTTP conventions a support team's tooling expects, against a real server: Allow on 405,
HEAD and OPTIONS, Location and Retry-After, totals after filters, 422 for unknown parameters and
bad values, ETag/304 and gzip, and /docs that works offline."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import HTTP_TIMEOUT, SAMPLES, RunningServer, ServerFactory

LOG = (SAMPLES / "mixed" / "broker" / "mosquitto.log").read_bytes()


@pytest.fixture(scope="module")
def done(shared: RunningServer, mixed_zip: Path) -> dict[str, Any]:
    with shared.client() as client:
        created = client.post("/analyses", content=mixed_zip.read_bytes(), params={"name": "mixed.zip"})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    body["location"] = created.headers["location"]
    return body


def test_405_names_every_method_of_the_path_and_options_answers_them(shared: RunningServer) -> None:
    with shared.client() as client:
        for path, methods in (("/analyses", "GET, HEAD, POST, OPTIONS"), ("/analyses/x", "GET, HEAD, DELETE, OPTIONS"),
                              ("/health", "GET, HEAD, OPTIONS"), ("/probe", "POST, OPTIONS")):
            refused = client.put(path)
            assert refused.status_code == 405 and refused.headers["allow"] == methods, (path, refused.headers)
            options = client.options(path)
            assert options.status_code == 204 and options.headers["allow"] == methods, path
        assert client.options("/no/such/route").status_code == 404


def test_head_answers_as_get_without_a_body(shared: RunningServer, done: dict[str, Any]) -> None:
    with shared.client() as client:
        for path in ("/version", "/analyses", f"/analyses/{done['id']}/findings", "/analyses/nope"):
            got, head = client.get(path), client.head(path)
            assert head.status_code == got.status_code and head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"]
            assert head.headers.get("etag") == got.headers.get("etag")


def test_every_get_route_answers_head_and_every_path_names_its_methods(start_server: ServerFactory,
                                                                        mixed_zip: Path, tmp_path: Path) -> None:
    """Every GET route, the live ones and the server-sent-event stream among them:
    HEAD answers as GET without a body (the stream's HEAD at once, ending the stream), and a
    method the path lacks is 405 with an `Allow` naming exactly the methods its routes have."""
    log = tmp_path / "mosquitto.log"
    log.write_bytes(LOG)
    server = start_server(live_paths=[log])
    with server.client() as client:
        schema = client.get("/openapi.json").json()
        # every route of the schema, and the schema's and the docs' own (left out of it)
        methods_at = {path: {m.upper() for m in ops} for path, ops in schema["paths"].items()}
        methods_at |= {"/api/v1/openapi.json": {"GET"}, "/docs": {"GET"}}
        created = client.post("/analyses", content=mixed_zip.read_bytes(), params={"name": "mixed.zip"}).json()
        key = client.get(f"/analyses/{created['id']}/findings").json()["items"][0]["key"]
    values = {"analysis_id": created["id"], "key": key}
    assert "/api/v1/live/stream" in methods_at
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for template, methods in methods_at.items():
            path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m[1], "x"), template)
            if "GET" in methods:
                with client.stream("GET", path) as got:  # a stream's headers, without waiting for its end
                    status, content_type = got.status_code, got.headers.get("content-type")
                head = client.head(path)
                assert (head.status_code, head.headers.get("content-type"), head.content) == \
                    (status, content_type, b""), path
            allowed = methods | ({"HEAD"} if "GET" in methods else set())
            lacking = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m not in allowed)
            refused = client.request(lacking, path)
            expected = [m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE") if m in allowed]
            assert refused.status_code == 405, (lacking, path)
            assert refused.headers["allow"] == ", ".join([*expected, "OPTIONS"]), (path, refused.headers)
    deadline = time.monotonic() + 5
    while server.app.state.live.subscriber_count:  # the streams HEAD and GET opened have ended
        assert time.monotonic() < deadline, "a stream outlived its request"
        time.sleep(0.02)


def test_created_and_accepted_analyses_have_a_location(start_server: ServerFactory, done: dict[str, Any]) -> None:
    assert re.fullmatch(rf"/api/v1/analyses/{done['id']}", done["location"])
    server = start_server(background_bytes=1)
    with server.client() as client:
        accepted = client.post("/analyses", content=LOG, params={"name": "mosquitto.log"})
        assert accepted.status_code == 202, accepted.text
        assert accepted.headers["location"] == f"/api/v1/analyses/{accepted.json()['id']}"
        assert 1 <= int(accepted.headers["retry-after"]) <= 30
        assert client.get(accepted.headers["location"].removeprefix("/api/v1")).status_code == 200


def test_total_counts_what_the_filters_keep(shared: RunningServer, done: dict[str, Any]) -> None:
    with shared.client() as client:
        everything = client.get(f"/analyses/{done['id']}/findings").json()
        one = client.get(f"/analyses/{done['id']}/findings", params={"id": everything["items"][0]["id"]}).json()
        none = client.get(f"/analyses/{done['id']}/findings", params={"client": "nobody-at-all"}).json()
    assert everything["total"] == len(everything["items"]) == 3
    assert one["total"] == len(one["items"]) == 1
    assert none["total"] == 0 and none["items"] == []


@pytest.mark.parametrize(("path", "params", "where"), [
    ("/analyses", {"serverity": "high"}, ["query", "serverity"]),
    ("/analyses/{id}/findings", {"severity": "high", "sevrity": "low"}, ["query", "sevrity"]),
    ("/analyses/{id}/timeline", {"level": "bogus"}, ["query", "level", 0]),
    ("/analyses/{id}/timeline", {"lvl": "error"}, ["query", "lvl"]),
    ("/analyses", {"status": "finished"}, ["query", "status"]),
    ("/version", {"verbose": "1"}, ["query", "verbose"]),
])
def test_unknown_parameters_and_bad_values_are_422(shared: RunningServer, done: dict[str, Any], path: str,
                                                   params: dict[str, str], where: list[Any]) -> None:
    with shared.client() as client:
        answer = client.get(path.format(id=done["id"]), params=params)
    assert answer.status_code == 422, answer.text
    assert where in [d["loc"] for d in answer.json()["details"]], answer.json()


def test_finished_analyses_answer_304_to_their_etag_and_gzip(shared: RunningServer, done: dict[str, Any]) -> None:
    with shared.client() as client:
        url = f"/analyses/{done['id']}/timeline"
        first = client.get(url, params={"limit": 1000})
        etag = first.headers["etag"]
        again = client.get(url, params={"limit": 1000}, headers={"If-None-Match": etag})
        other = client.get(url, params={"limit": 10}, headers={"If-None-Match": etag})  # another page
        raw = httpx.get(f"{shared.url}/api/v1{url}", params={"limit": 1000}, headers={"Accept-Encoding": "gzip"},
                        timeout=HTTP_TIMEOUT)
    assert first.status_code == 200 and etag.startswith('W/"')
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert other.status_code == 200
    assert raw.headers["content-encoding"] == "gzip" and raw.headers["vary"] == "Accept-Encoding"
    assert raw.content == first.content and raw.num_bytes_downloaded < len(first.content) / 4  # bytes on the wire


def test_docs_come_from_the_server_itself(shared: RunningServer) -> None:
    page = httpx.get(f"{shared.url}/docs", timeout=HTTP_TIMEOUT)
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/") for a in assets), assets  # nothing from a CDN
    for asset in assets:
        got = httpx.get(shared.url + asset, timeout=HTTP_TIMEOUT)
        assert got.status_code == 200 and len(got.content) > 1000, asset
    assert "cdn" not in page.text.lower()


def test_schema_describes_times_levels_and_confidence(shared: RunningServer) -> None:
    with shared.client() as client:
        schema = client.get("/openapi.json").json()
    parts = schema["components"]["schemas"]
    assert parts["EventOut"]["properties"]["time"]["format"] == "date-time"
    assert parts["AnalysisOut"]["properties"]["created"]["format"] == "date-time"
    assert parts["EventOut"]["properties"]["level"]["enum"] == ["debug", "info", "notice", "warning", "error",
                                                               "critical"]
    assert set(parts["FindingOut"]["properties"]["confidence"]["enum"]) == {"high", "medium", "low"}
    assert parts["EventOut"]["properties"]["raw"]["description"]
    assert parts["ErrorOut"]["properties"]["status"]["examples"] == [404]
    # every model (the report's own schema, the analyses and timeline, certificates, the probe,
    # rules, formats, live status, sites, forms): every property says what it holds
    undescribed = {name: [p for p, v in part.get("properties", {}).items() if not v.get("description")]
                   for name, part in parts.items()}
    assert {name: props for name, props in undescribed.items() if props} == {}
    certificate = parts["CertificateOut"]["properties"]
    assert certificate["not_after"]["format"] == parts["ProbeOut"]["properties"]["at"]["format"] == "date-time"
    assert parts["CheckOut"]["properties"]["status"]["enum"] == ["ok", "problem", "not_run"]
    assert parts["KeyOut"]["properties"]["state"]["enum"] == ["loaded", "encrypted_no_password", "wrong_password"]
    assert parts["ProbeOut"]["properties"]["tcp"]["enum"] == ["ok", "failed", "not_run"]
    finding, evidence = parts["FindingOut"]["properties"], parts["EvidenceDict"]["properties"]
    assert finding["first_seen"]["format"] == finding["last_seen"]["format"] == "date-time"
    assert {"type": "string", "format": "date-time"}.items() <= evidence["time"]["anyOf"][0].items()
    assert parts["SummaryDict"]["properties"]["first_event"]["anyOf"][0]["format"] == "date-time"
    assert evidence["side"]["enum"] == ["broker", "server", "client", "artifact"]
    assert parts["FixStepDict"]["properties"]["kind"]["enum"] == ["shell", "config"]
    assert finding["id"]["examples"] == ["tls.server_cert_expired"]
