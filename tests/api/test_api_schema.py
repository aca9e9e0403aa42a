"""Schemathesis against the server's own OpenAPI schema, over HTTP to a real server: every
operation, with generated parameters and bodies, answers as its schema says (documented status
codes, bodies that match their models, never a 500). Bounded to a few examples per operation
so the run stays within seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_helpers import SAMPLES, RunningServer
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis import checks

from correlator.api import Settings

#: The stream never ends and the probe dials whatever host it is given: both are tested on their own.
SKIPPED = ("stream_live_findings", "probe_broker")
TOKEN = "schemathesis-token"


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    live = tmp_path_factory.mktemp("live") / "mosquitto.log"
    live.write_text((SAMPLES / "server_cert_expired" / "broker" / "mosquitto.log").read_text())
    server = RunningServer(Settings(state_dir=tmp_path_factory.mktemp("state"), max_analyses=10_000,
                                    live_paths=[live], token=SecretStr(TOKEN))).start()
    with server.client(TOKEN) as client:
        log = (SAMPLES / "mixed" / "broker" / "mosquitto.log").read_bytes()
        analysis_id = client.post("/analyses", content=log, params={"name": "mosquitto.log"}).json()["id"]
    yield server, analysis_id
    server.stop()


@pytest.fixture(scope="module")
def api_schema(schema_server: tuple[RunningServer, str]) -> Any:
    server, _ = schema_server
    # the schema is behind the token like every route but health
    return schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json",
                                         headers={"Authorization": f"Bearer {TOKEN}"})


schema = schemathesis.pytest.from_fixture("api_schema").exclude(operation_id=list(SKIPPED))


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_operations_answer_as_documented(case: Any, schema_server: tuple[RunningServer, str]) -> None:
    _, analysis_id = schema_server
    if case.path_parameters and "analysis_id" in case.path_parameters and case.method != "DELETE":
        case.path_parameters["analysis_id"] = analysis_id  # reach the handlers behind the 404 too
    # Negative cases are left to the safety and convention tests: schemathesis makes one by
    # dropping the token, which this test has to send, and times take epoch seconds too, which
    # their `date-time` format does not say.
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"},
                           excluded_checks=[checks.negative_data_rejection, checks.missing_required_header,
                                            checks.ignored_auth])


def test_the_schema_documents_every_route(schema_server: tuple[RunningServer, str]) -> None:
    server, _ = schema_server
    with server.client(TOKEN) as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert len([op for ops in paths.values() for op in ops]) == 18
    assert Path(__file__).name  # the parametrized test above covers all but SKIPPED
