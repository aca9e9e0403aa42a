"""API nodes and workers joined by a real 3-node NATS cluster: an upload to one node is stored in
the cluster, analysed by a `correlator worker` process exactly as the embedded server analyses it,
and read from any node."""

from __future__ import annotations

from pathlib import Path

from api_helpers import RunningServer
from fleet.fleet_nodes import WorkerProcess, api_node, finding_ids, incident_zip, wait_status
from fleet.nats_cluster import NatsCluster

from correlator.api import Settings


def test_an_upload_to_one_node_is_analysed_by_a_worker_and_read_from_another(
        nats_cluster: NatsCluster, fleet_database: str | None, tmp_path: Path) -> None:
    """On SQLite in a shared state folder and on PostgreSQL alike."""
    bundle = incident_zip("mixed", tmp_path / "bundles")
    embedded = RunningServer(Settings(state_dir=tmp_path / "embedded")).start()
    try:
        with embedded.client() as client:
            alone = client.post("/analyses", params={"name": "mixed.zip"}, content=bundle.read_bytes()).json()
            expected = finding_ids(client, alone["id"])
            expected_events = alone["events"]
    finally:
        embedded.stop()
    assert expected

    state = tmp_path / "shared"
    with WorkerProcess(nats_cluster.url, state, tmp_path / "worker.log", database=fleet_database) as worker:
        one = api_node(nats_cluster.url, state, database=fleet_database)
        # every upload is a background job on the other node
        other = api_node(nats_cluster.url, state, background_bytes=0, database=fleet_database)
        try:
            worker.wait_taking_jobs()
            with one.client() as a, other.client() as b:
                # small: answered finished, as the embedded server answers it
                created = a.post("/analyses", params={"name": "mixed.zip"}, content=bundle.read_bytes())
                assert created.status_code == 201, created.text
                done = created.json()
                assert done["status"] == "done" and done["events"] == expected_events
                assert finding_ids(a, done["id"]) == expected
                assert finding_ids(b, done["id"]) == expected  # any node answers for any analysis
                assert b.get(f"/analyses/{done['id']}/report", params={"format": "md"}).text == \
                    a.get(f"/analyses/{done['id']}/report", params={"format": "md"}).text

                # large: 202 once the cluster keeps the job; polled on the other node
                queued = b.post("/analyses", params={"name": "expired.zip"},
                                content=incident_zip("server_cert_expired", tmp_path / "bundles").read_bytes())
                assert queued.status_code == 202, queued.text
                finished = wait_status(a, queued.json()["id"])
                assert finished["status"] == "done"
                assert "tls.server_cert_expired" in finding_ids(a, finished["id"])
                assert "delivered again" not in worker.log()  # no worker died: each job was delivered once
        finally:
            one.stop()
            other.stop()
    # the local copies are gone: the bundles lived in the cluster
    assert not any((state / "uploads").iterdir())
