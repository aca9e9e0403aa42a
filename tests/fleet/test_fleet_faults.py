"""Faults with real servers: a worker killed mid-job (SIGKILL), and a NATS node killed while
jobs flow. Each job still ends with exactly one result."""

from __future__ import annotations

import asyncio
import json
import re
import tarfile
import time
from pathlib import Path

import httpx
import nats
import psutil
import pytest
from api_helpers import HTTP_TIMEOUT, SAMPLES, RunningServer
from fleet.fleet_nodes import WorkerProcess, api_node, finding_ids, incident_zip, stop_all, wait_status
from fleet.nats_cluster import NatsCluster
from hostile.storms import repeated_error, write
from nats.js.api import StreamInfo

from correlator.fleet.layout import JOBS_STREAM

#: Incidents whose bundles flow while a node dies: each a different cause.
INCIDENTS = ("server_cert_expired", "bad_credentials", "client_cert_expired", "publish_denied",
             "server_hostname_mismatch", "anonymous_denied", "client_id_takeover", "subscribe_denied",
             "tls_version_mismatch", "connection_refused", "server_chain_incomplete", "mixed")


def _metric(node: RunningServer, name: str, expected: float, timeout: float = 10) -> None:
    """Until /metrics says `name` is `expected` (the node reads the queue's numbers every second)."""
    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(node.url + "/metrics", timeout=HTTP_TIMEOUT).text
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        if found and float(found.group(1)) == expected:
            return
        assert time.monotonic() < deadline, found.group(0) if found else f"{name} not in /metrics"
        time.sleep(0.2)


#: Seconds a held analysis runs between two looks at its row (held_mid_job).
SLICE = 0.2


def _analysis_process(worker: WorkerProcess, analysis_id: str, timeout: float = 60) -> psutil.Process:
    """The process the worker started for the analysis (its scheduler logs the pid)."""
    started = re.compile(rf"analysis {analysis_id} started \(\w+ lane, pid (\d+)\)")
    deadline = time.monotonic() + timeout
    while not (found := started.search(worker.log())):
        assert worker.process.poll() is None, f"the worker exited: {worker.log()[-3000:]}"
        assert time.monotonic() < deadline, f"the analysis did not start: {worker.log()[-3000:]}"
        time.sleep(0.02)
    return psutil.Process(int(found.group(1)))


def _held_mid_job(worker: WorkerProcess, client: httpx.Client, analysis_id: str, lines: int,
                  timeout: float = 120) -> psutil.Process:
    """The job's analysis process, stopped (SIGSTOP) once it has stored part of the timeline and
    not all of it: a run cut in the middle. It runs in slices of SLICE seconds and is stopped
    while the row is read between them, so it is caught mid-job however fast or loaded the
    machine is, and a storm of a few blocks is enough."""
    analysis = _analysis_process(worker, analysis_id)
    analysis.suspend()
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/analyses/{analysis_id}").json()
        if body["status"] == "running" and 0 < body["events"] < lines:
            return analysis
        assert body["status"] in ("queued", "running"), body
        assert time.monotonic() < deadline, body
        analysis.resume()
        time.sleep(SLICE)
        analysis.suspend()


def _wait_ended(process: psutil.Process, timeout: float = 60) -> None:
    """Until the process has exited (a zombie its stopped parent has not reaped yet counts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        assert time.monotonic() < deadline, f"process {process.pid} still runs"
        time.sleep(0.05)


#: Lines of the storm a worker is killed in the middle of: a few blocks of the line reader (still
#: read while the first events are stored), one finding.
STORM_LINES = 60_000


def _storm_bundle(tmp_path: Path) -> tuple[Path, int]:
    """A bundle of STORM_LINES refused logins: seconds of work for a worker, one finding."""
    log = write(tmp_path / "storm" / "broker" / "mosquitto.log", repeated_error(STORM_LINES))
    lines = len(log.read_bytes().splitlines())
    bundle = tmp_path / "storm.tar.gz"
    with tarfile.open(bundle, "w:gz") as archive:
        archive.add(log, "storm/broker/mosquitto.log")
    return bundle, lines


@pytest.mark.timeout(600)
def test_a_worker_killed_mid_job_gives_it_to_another_which_stores_one_result(
        nats_cluster: NatsCluster, fleet_database: str | None, tmp_path: Path) -> None:
    """On SQLite in a shared state folder and on PostgreSQL alike."""
    bundle, lines = _storm_bundle(tmp_path)
    state = tmp_path / "shared"
    node = api_node(nats_cluster.url, state, background_bytes=0, database=fleet_database)
    try:
        with node.client() as client, WorkerProcess(nats_cluster.url, state, tmp_path / "first.log",
                                                    database=fleet_database) as first:
            first.wait_taking_jobs()
            created = client.post("/analyses", params={"name": "storm.tar.gz"}, content=bundle.read_bytes())
            assert created.status_code == 202, created.text
            analysis_id = created.json()["id"]
            analysis = _held_mid_job(first, client, analysis_id, lines)
            first.kill()
            analysis.resume()  # as if the kill had come in the middle of its run: it finds its worker gone
            assert "delivered again" not in first.log()
            with WorkerProcess(nats_cluster.url, state, tmp_path / "second.log", database=fleet_database) as second:
                done = wait_status(client, analysis_id, timeout=400)
                assert done["status"] == "done", done
                assert f"analysis {analysis_id} delivered again (delivery 2)" in second.log()
                # one result: one timeline (not the first run's lines and the second's), the storm's
                # one finding counted once
                assert done["events"] == lines
                findings = client.get(f"/analyses/{analysis_id}/findings").json()["items"]
                assert [(f["id"], f["count"]) for f in findings] == [("auth.bad_credentials", STORM_LINES // 3)]
                assert client.get("/analyses").json()["total"] == 1
                _metric(node, "correlator_jobs_redelivered_total", 1.0)
    finally:
        node.stop()


@pytest.mark.timeout(600)
def test_a_frozen_worker_that_wakes_after_its_job_was_rerun_cannot_overwrite_the_result(
        nats_cluster: NatsCluster, postgres_url: str, tmp_path: Path) -> None:
    """SIGSTOP a worker (and its analysis process) mid-job: the job goes to another worker, which
    stores the result. SIGCONT: the woken run's next write carries a stale fencing token, the store
    refuses and logs it, and the one result stands. The analysis process wakes first: its write
    is tried before its woken worker, which finds its lease gone, stops it."""
    bundle, lines = _storm_bundle(tmp_path)
    state = tmp_path / "shared"
    node = api_node(nats_cluster.url, state, background_bytes=0, database=postgres_url)
    try:
        with node.client() as client, WorkerProcess(nats_cluster.url, state, tmp_path / "first.log",
                                                    database=postgres_url) as first:
            first.wait_taking_jobs()
            created = client.post("/analyses", params={"name": "storm.tar.gz"}, content=bundle.read_bytes())
            assert created.status_code == 202, created.text
            analysis_id = created.json()["id"]
            analysis = _held_mid_job(first, client, analysis_id, lines)
            first.freeze()
            try:
                with WorkerProcess(nats_cluster.url, state, tmp_path / "second.log", database=postgres_url) as second:
                    done = wait_status(client, analysis_id, timeout=400)
                    assert done["status"] == "done", done
                    assert f"analysis {analysis_id} delivered again (delivery 2)" in second.log()
                analysis.resume()
                deadline = time.monotonic() + 60
                while "a write of run" not in first.log():  # the store's refusal, logged by the woken run
                    assert time.monotonic() < deadline, first.log()[-3000:]
                    time.sleep(0.05)
                _wait_ended(analysis)  # a refused run ends
            finally:
                first.freeze(False)
            # its worker sees the run end; whatever it still writes, it has written then
            ended = re.compile(rf"analysis {analysis_id} (done in|failed in|stopped)")
            deadline = time.monotonic() + 60
            while not ended.search(first.log()):
                assert time.monotonic() < deadline, first.log()[-3000:]
                time.sleep(0.05)
            after = client.get(f"/analyses/{analysis_id}").json()
            assert after["status"] == "done" and after["events"] == lines, after
            findings = client.get(f"/analyses/{analysis_id}/findings").json()["items"]
            assert [(f["id"], f["count"]) for f in findings] == [("auth.bad_credentials", STORM_LINES // 3)]
    finally:
        node.stop()


async def _jobs_stream(cluster: NatsCluster) -> StreamInfo:
    client = await nats.connect(servers=cluster.urls)
    try:
        return await client.jetstream().stream_info(JOBS_STREAM)
    finally:
        await client.close()


def _jobs_leader(cluster: NatsCluster) -> str:
    info = asyncio.run(_jobs_stream(cluster))
    assert info.cluster is not None and info.cluster.leader
    return info.cluster.leader


def _wait_jobs_acknowledged(cluster: NatsCluster, timeout: float = 60) -> None:
    """Until the job queue is empty: every job acknowledged (work-queue retention removes it then),
    so none can be delivered, and run, again."""
    deadline = time.monotonic() + timeout
    while (left := asyncio.run(_jobs_stream(cluster)).state.messages) > 0:
        assert time.monotonic() < deadline, f"{left} jobs never acknowledged"
        time.sleep(0.2)


def test_a_nats_node_killed_while_jobs_flow_loses_and_repeats_none(nats_cluster: NatsCluster,
                                                                  tmp_path: Path) -> None:
    bundles = {name: incident_zip(name, tmp_path / "bundles") for name in INCIDENTS}
    state = tmp_path / "shared"
    node = api_node(nats_cluster.url, state, background_bytes=0)
    workers = [WorkerProcess(nats_cluster.url, state, tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        for worker in workers:
            worker.wait_taking_jobs()
        ids: dict[str, str] = {}
        with node.client(timeout=120) as client:
            names = list(bundles)
            for name in names[:6]:
                answer = client.post("/analyses", params={"name": f"{name}.zip"}, content=bundles[name].read_bytes())
                assert answer.status_code == 202, answer.text
                ids[name] = answer.json()["id"]
            leader = _jobs_leader(nats_cluster)
            nats_cluster.kill(next(i for i, n in enumerate(nats_cluster.nodes) if n.name == leader))
            for name in names[6:]:  # uploads keep being taken while the stream elects a new leader
                answer = client.post("/analyses", params={"name": f"{name}.zip"}, content=bundles[name].read_bytes())
                assert answer.status_code == 202, answer.text
                ids[name] = answer.json()["id"]
            for name, analysis_id in ids.items():
                done = wait_status(client, analysis_id, timeout=180)
                assert done["status"] == "done", (name, done)
                expected = json.loads((SAMPLES / name / "expected.json").read_text())["root_causes"]
                found = finding_ids(client, analysis_id)
                assert {cause["id"] for cause in expected} <= set(found), (name, found)
            assert client.get("/analyses").json()["total"] == len(INCIDENTS)
        # a worker writes "done in" just after the store says done: wait for every job's line
        deadline = time.monotonic() + 30
        logs = "".join(worker.log() for worker in workers)
        while time.monotonic() < deadline and any(f"analysis {a} done in" not in logs for a in ids.values()):
            time.sleep(0.1)
            logs = "".join(worker.log() for worker in workers)
        _wait_jobs_acknowledged(nats_cluster)  # a job runs until its worker acknowledges it
        logs = "".join(worker.log() for worker in workers)
        for name, analysis_id in ids.items():  # analysed once: one run ended per job, over both workers
            assert logs.count(f"analysis {analysis_id} done in") == 1, name
    finally:
        stop_all(workers)
        node.stop()
