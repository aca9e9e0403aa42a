"""One contract, two backends: every test here runs against the embedded SQLite store and a real
PostgreSQL (started on loopback by the session, tests/fleet_servers.py), through `open_store`,
and both must give the same answers: rows, finding keys, timeline pages and their cursors, and
one result for an analysis written twice."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import SAMPLES, zip_folder
from fleet_servers import PostgresServer

from correlator.analysis import Options
from correlator.api.settings import load_settings
from correlator.api.storage import KeyTaken, SiteStep, StaleRun, Store, TimelineQuery, open_store
from correlator.api.worker import run_analysis
from correlator.engine.rules import Rule, load_rules
from correlator.errors import CorrelatorError
from correlator.formats.registry import Registry, default_registry
from correlator.model import Event, severity_rank
from lab.ports import free_port

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    opened = open_store(url, tmp_path / "state")
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def engine() -> tuple[Registry, list[Rule]]:
    rules, _ = load_rules([])
    return default_registry(), list(rules)


@pytest.fixture(scope="module")
def mixed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return zip_folder(SAMPLES / "mixed", tmp_path_factory.mktemp("bundle") / "mixed.zip")


def queue(store: Store, bundle: Path, **kwargs: Any) -> str:
    """An uploaded bundle, queued (as the upload route leaves it)."""
    analysis_id, folder = store.new_upload_dir()
    upload = folder / bundle.name
    shutil.copy(bundle, upload)
    store.create(analysis_id, upload.name, upload, upload.stat().st_size, **kwargs)
    return analysis_id


def analyse(store: Store, bundle: Path, engine: tuple[Registry, list[Rule]]) -> str:
    analysis_id = queue(store, bundle)
    run_analysis(store, Options(), *engine, analysis_id)
    return analysis_id


def whole_timeline(store: Store, num: int, query: TimelineQuery) -> list[dict[str, Any]]:
    """Every event the query matches, page by page, following the cursors."""
    items: list[dict[str, Any]] = []
    cursor: int | None = query.after
    while cursor is not None:
        page, cursor = store.timeline(num, TimelineQuery(**{**query.__dict__, "after": cursor}))
        assert len(page) <= query.limit
        if cursor is not None:
            assert page and cursor == page[-1]["seq"], "the cursor is the last event's seq"
        items.extend(page)
    return items


def test_analyses_rows(store: Store, mixed_bundle: Path) -> None:
    first = queue(store, mixed_bundle, digest="d1", idem_key="key-1", webhook="http://127.0.0.1:9/hook")
    second = queue(store, mixed_bundle, digest="d2")
    row = store.get(first)
    assert row is not None and row.status == "queued" and row.phase == "queued" and row.progress == 0
    assert row.name == "mixed.zip" and row.size == mixed_bundle.stat().st_size and row.upload
    assert row.webhook == "http://127.0.0.1:9/hook" and row.report is None
    assert store.get("nope") is None
    by_key = store.by_idempotency_key("key-1")
    assert by_key is not None and by_key.id == first
    assert store.by_idempotency_key("key-2") is None
    with pytest.raises(KeyTaken):
        queue(store, mixed_bundle, idem_key="key-1")
    store.update(first, status="running", phase="analysing", progress=0.5, events=12,
                 report={"summary": {"findings": 2}}, message="half way")
    row = store.get(first)
    assert row is not None and (row.status, row.progress, row.events, row.message) == ("running", 0.5, 12, "half way")
    assert row.report == {"summary": {"findings": 2}} and row.updated >= row.created
    assert [r.id for r in store.unfinished()] == [first, second]
    assert store.status_counts() == {"running": 1, "queued": 1}
    total, rows = store.page(1, 0)
    assert total == 2 and [r.id for r in rows] == [second]  # newest first
    total, rows = store.page(10, 0, "running")
    assert total == 1 and [r.id for r in rows] == [first]
    by_digest = store.by_digest("d2")
    assert by_digest is not None and by_digest.id == second
    store.update(second, status="failed", phase="failed")
    assert store.by_digest("d2") is None, "a failed analysis is worth a retry"
    assert store.expired(10, 30) == [], "a running analysis is never swept"
    assert store.expired(0, 30) == [second]
    assert [r.id for r in store.stale_failed_uploads(-1)] == [second]
    store.drop_upload(second)
    dropped = store.get(second)
    assert dropped is not None and dropped.upload is None and not (store.uploads / second).exists()
    assert store.delete(first) and not store.delete(first)
    assert store.get(first) is None and not (store.uploads / first).exists()


@pytest.fixture(scope="module")
def noisy_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A healthy plant's logs: 3,254 of its broker lines are routine traffic (PUBLISH, PUBACK)."""
    return zip_folder(SAMPLES / "healthy_noisy", tmp_path_factory.mktemp("bundle") / "noisy.zip")


@pytest.mark.parametrize("sample", ["mixed", "healthy_noisy"])
def test_results_and_timeline_pages(store: Store, sample: str, request: pytest.FixtureRequest,
                                    engine: tuple[Registry, list[Rule]]) -> None:
    bundle = request.getfixturevalue("mixed_bundle" if sample == "mixed" else "noisy_bundle")
    analysis_id = analyse(store, bundle, engine)
    row = store.get(analysis_id)
    assert row is not None and row.status == "done" and row.progress == 1.0 and row.upload is None
    assert row.report is not None and row.report["summary"]["findings"] == len(store.findings(row.num))
    assert row.events == row.report["summary"]["events"], "every line is on the timeline"
    found = store.findings(row.num)
    if sample == "mixed":
        assert {f["id"] for _, f in found} >= {"tls.client_cert_expired", "auth.bad_credentials",
                                                "acl.publish_denied"}
        key, first = found[0]
        assert store.finding(row.num, key) == first
    assert store.finding(row.num, "nope") is None
    assert store.report(row.num, "md") is not None and bundle.stem in (store.report(row.num, "text") or "")
    assert store.report(row.num, "nope") is None

    everything = whole_timeline(store, row.num, TimelineQuery(limit=1000))
    assert [e["seq"] for e in everything] == list(range(1, row.events + 1))
    assert whole_timeline(store, row.num, TimelineQuery(limit=7)) == everything
    times = sorted({e["time"] for e in everything})
    middle = everything[len(everything) // 2]
    if sample == "healthy_noisy":  # the routine lines are kept as places in the log, read back
        kept = store.routine.get(row.num)
        assert kept is not None and len(kept) >= 3_000
        assert sum(1 for e in everything if e["kind"] == "mqtt.packet" and "PUBACK" in e["raw"]) >= 3_000
    client = next(e["client"] for e in everything if e["client"])
    queries: list[tuple[TimelineQuery, Any]] = [
        (TimelineQuery(sources=["broker"]), lambda e: e["source"] == "broker"),
        (TimelineQuery(clients=[client]), lambda e: e["client"] == client),
        (TimelineQuery(kinds=["tls."]), lambda e: e["kind"].startswith("tls.")),
        (TimelineQuery(kinds=["tls.*", middle["kind"]]), lambda e: e["kind"].startswith("tls.")
         or e["kind"] == middle["kind"]),
        (TimelineQuery(levels=["error", "warning"]), lambda e: e["level"] in ("error", "warning")),
        (TimelineQuery(text="CERTIFICATE"), lambda e: "certificate" in e["raw"].lower()),
        (TimelineQuery(text="ok"), lambda e: "ok" in e["raw"].lower()),
        (TimelineQuery(text="100%"), lambda e: "100%" in e["raw"]),
        (TimelineQuery(after=middle["seq"]), lambda e: e["seq"] > middle["seq"]),
    ]
    if sample == "healthy_noisy":  # filters over routine lines: a client their text names, their kind, text
        routine_client = next(e["client"] for e in everything if e["client"] and "PUBACK" in e["raw"])
        queries += [
            (TimelineQuery(clients=[routine_client]), lambda e: e["client"] == routine_client),
            (TimelineQuery(clients=[""]), lambda e: e["client"] == ""),  # no client is named ""
            (TimelineQuery(clients=["", routine_client]), lambda e: e["client"] == routine_client),
            (TimelineQuery(kinds=["mqtt.packet"], levels=["debug"]), lambda e: e["kind"] == "mqtt.packet"
             and e["level"] == "debug"),
            (TimelineQuery(text="puback", after=middle["seq"]), lambda e: "puback" in e["raw"].lower()
             and e["seq"] > middle["seq"]),
        ]
    for query, wanted in queries:
        expected = [e for e in everything if wanted(e)]
        assert expected or query.text == "100%" or sample != "mixed", query
        assert whole_timeline(store, row.num, TimelineQuery(**{**query.__dict__, "limit": 5})) == expected, query
    since, until = _epoch(times[len(times) // 3]), _epoch(times[2 * len(times) // 3])
    page = whole_timeline(store, row.num, TimelineQuery(since=since, until=until, limit=3))
    assert page == [e for e in everything if since <= _epoch(e["time"]) <= until] and page
    assert store.timeline(row.num, TimelineQuery(since=_epoch(times[-1]) + 1)) == ([], None)
    assert store.timeline(row.num, TimelineQuery(after=2**62)) == ([], None)


def _epoch(iso_time: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()


def test_an_analysis_written_twice_leaves_one_result(store: Store, mixed_bundle: Path,
                                                     engine: tuple[Registry, list[Rule]]) -> None:
    """A job redelivered after its worker was presumed dead runs again: same findings, same
    timeline, no duplicate."""
    analysis_id = queue(store, mixed_bundle)
    row = store.get(analysis_id)
    assert row is not None and row.upload is not None
    kept = Path(row.upload).read_bytes()
    run_analysis(store, Options(), *engine, analysis_id)
    once = store.get(analysis_id)
    assert once is not None
    findings = store.findings(once.num)
    timeline = whole_timeline(store, once.num, TimelineQuery(limit=1000))
    # the redelivered job: its upload is where it was, the row says running again
    Path(row.upload).parent.mkdir(parents=True, exist_ok=True)
    Path(row.upload).write_bytes(kept)
    store.update(analysis_id, status="running", upload=row.upload)
    run_analysis(store, Options(), *engine, analysis_id)
    twice = store.get(analysis_id)
    assert twice is not None and twice.status == "done" and twice.events == once.events
    assert store.findings(once.num) == findings
    assert whole_timeline(store, once.num, TimelineQuery(limit=1000)) == timeline
    # and the same results saved twice, concurrently, are one result too
    report = {"text": "report"}
    errors: list[BaseException] = []

    def save() -> None:
        try:
            store.save_results(analysis_id, [f for _, f in findings], report, status="done")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert store.findings(once.num) == findings and store.report(once.num, "text") == "report"


def test_a_stale_run_s_writes_are_refused(store: Store, mixed_bundle: Path,
                                          engine: tuple[Registry, list[Rule]]) -> None:
    """Fencing: once a newer run (a greater token) holds the analysis, every write of the older
    run is refused (row, timeline, results), and an older token cannot take it back."""
    analysis_id = queue(store, mixed_bundle)
    row = store.get(analysis_id)
    assert row is not None
    assert store.fence_run(analysis_id, 5)
    old = store.writer(row.num, 5)
    old.add([Event(ts=1.0, time_text="1", source="broker", file="m.log", line=1, kind="mqtt.connect", raw="x")])
    old.flush()
    assert store.fence_run(analysis_id, 9)  # the job was taken over
    assert not store.fence_run(analysis_id, 7)  # an older run cannot take it back
    run_analysis(store, Options(), *engine, analysis_id, fence=9)
    done = store.get(analysis_id)
    assert done is not None and done.status == "done"
    findings = store.findings(row.num)
    timeline = whole_timeline(store, row.num, TimelineQuery(limit=1000))
    assert findings and len(timeline) == done.events
    with pytest.raises(StaleRun):
        store.update(analysis_id, fence=5, status="failed", message="stale")
    with pytest.raises(StaleRun):
        store.save_results(analysis_id, [], {}, fence=5, status="done")
    old.add([Event(ts=2.0, time_text="2", source="broker", file="m.log", line=2, kind="mqtt.connect", raw="y")])
    with pytest.raises(StaleRun):
        old.flush()
    with pytest.raises(StaleRun):
        old.discard()
    run_analysis(store, Options(), *engine, analysis_id, fence=5)  # a woken stale run ends, writing nothing
    after = store.get(analysis_id)
    assert after is not None and (after.status, after.events, after.message) == ("done", done.events, done.message)
    assert store.findings(row.num) == findings
    assert whole_timeline(store, row.num, TimelineQuery(limit=1000)) == timeline


def test_timeline_writer(store: Store, mixed_bundle: Path) -> None:
    """Batches, rows written twice, the clients of stitched connections, odd characters, discard."""
    analysis_id = queue(store, mixed_bundle)
    row = store.get(analysis_id)
    assert row is not None
    writer = store.writer(row.num)
    events = [Event(ts=1_700_000_000.0 + i, time_text=str(i), source="broker", file="m.log", line=i + 1,
                    kind="mqtt.connect",
                    raw=f"line {i} 'quote', \"dq\", \\ back, ünï, 100%_, nul \x00 (SQLite's LIKE ends there)",
                    connection="c1" if i < 3 else None, fields={"n": i, "nul": "\x00"}) for i in range(5)]
    events.append(Event(ts=1_699_999_999.0, time_text="", source="client:edge-01", file="c.log", line=1,
                        kind="mqtt.connect", raw="client line", connection="c1", estimated=True))
    writer.add(events[:2])
    writer.flush()
    writer.add(events[2:])
    writer.finish()
    page, cursor = store.timeline(row.num, TimelineQuery(limit=100))
    assert cursor is None and [e["seq"] for e in page] == [1, 2, 3, 4, 5, 6]
    assert page[0]["raw"] == events[0].raw and page[0]["fields"] == {"n": 0, "nul": "\x00"}
    assert [e["client"] for e in page] == ["edge-01"] * 3 + [None, None, "edge-01"]
    assert page[5]["estimated"] is True and page[0]["estimated"] is False
    assert page[5]["time"] == "2023-11-14T22:13:19Z"
    since = store.timeline(row.num, TimelineQuery(since=1_700_000_002.0))[0]
    assert [e["seq"] for e in since] == [3, 4, 5]
    assert [e["seq"] for e in store.timeline(row.num, TimelineQuery(text="100%_"))[0]] == [1, 2, 3, 4, 5]
    assert [e["seq"] for e in store.timeline(row.num, TimelineQuery(text="ÜNÏ"))[0]] in ([], [1, 2, 3, 4, 5])
    writer.discard()
    assert store.timeline(row.num, TimelineQuery())[0] == []
    writer.add(events[:1])
    writer.finish()
    assert [e["seq"] for e in store.timeline(row.num, TimelineQuery())[0]] == [1]
    store.drop_events(row.num)
    assert store.timeline(row.num, TimelineQuery())[0] == []


def test_live_sites(store: Store, mixed_bundle: Path, engine: tuple[Registry, list[Rule]]) -> None:
    """A site's live findings: upserted by key, removed by key, worst first; the site's position
    only moves on, and a write behind it (an owner that lost the site) changes nothing, nor does
    the rest of its batch."""
    row = store.get(analyse(store, mixed_bundle, engine))
    assert row is not None
    real = store.findings(row.num)
    assert len(real) >= 3
    assert store.sites() == [] and store.site("plant-1") is None and store.site_findings("plant-1") == []
    assert store.save_sites([
        SiteStep("plant-2", position=3, events=3, hosts=["gw-1"], last_event=None),
        SiteStep("plant-1", position=10, events=10, hosts=["gw-2", "gw-1"], last_event=1.5e9, findings=real[:2],
                 lines=2500)])
    site = store.site("plant-1")
    assert site is not None and (site.hosts, site.events, site.lines, site.position, site.last_event) == (
        ["gw-1", "gw-2"], 10, 2500, 10, 1.5e9)
    assert site.findings == 2 and site.worst == max((f["severity"] for _, f in real[:2]), key=severity_rank)
    assert [s.site for s in store.sites()] == ["plant-1", "plant-2"]
    assert store.sites()[1].findings == 0 and store.sites()[1].worst is None
    assert {key for key, _ in store.site_findings("plant-1")} == {key for key, _ in real[:2]}
    # the next step updates one finding (a new revision), adds one and removes one
    updated = {**real[0][1], "revision": 99, "count": 1234}
    step = SiteStep("plant-1", position=20, events=20, hosts=["gw-1", "gw-2"], last_event=1.6e9,
                    findings=[(real[0][0], updated), real[2]], removed=[real[1][0]])
    assert store.save_sites([step])
    found = dict(store.site_findings("plant-1"))
    assert found.keys() == {real[0][0], real[2][0]} and found[real[0][0]] == updated
    ranks = [severity_rank(f["severity"]) for _, f in store.site_findings("plant-1")]
    assert ranks == sorted(ranks, reverse=True), "worst first"
    # the same step again (a new owner analysing events the last one had not acknowledged): one result
    assert store.save_sites([step])
    assert dict(store.site_findings("plant-1")) == found
    # a batch with a write from behind the stored position is refused whole
    assert not store.save_sites([
        SiteStep("plant-2", position=30, events=4, hosts=["gw-1"], last_event=None, findings=[real[1]]),
        SiteStep("plant-1", position=15, events=15, hosts=["gw-1"], last_event=1.55e9, findings=[real[1]],
                 removed=[real[0][0]])])
    assert dict(store.site_findings("plant-1")) == found
    kept = store.site("plant-1")
    assert kept is not None and (kept.position, kept.events, kept.hosts) == (20, 20, ["gw-1", "gw-2"])
    other = store.site("plant-2")
    assert other is not None and other.position == 3 and store.site_findings("plant-2") == []
    assert store.save_sites([])
    # one site twice in a call: its steps in turn, the later one standing
    assert store.save_sites([
        SiteStep("plant-3", position=1, events=1, hosts=["gw-1"], last_event=None, findings=[real[0]]),
        SiteStep("plant-3", position=2, events=2, hosts=["gw-1"], last_event=None, findings=[real[1]],
                 removed=[real[0][0]])])
    third = store.site("plant-3")
    assert third is not None and third.position == 2
    assert [key for key, _ in store.site_findings("plant-3")] == [real[1][0]]


def test_both_backends_answer_alike(postgres_url: str, tmp_path: Path, mixed_bundle: Path,
                                    engine: tuple[Registry, list[Rule]]) -> None:
    """The same bundle analysed into each: the same findings with the same keys, the same pages."""
    answers = []
    for url, folder in ((None, "sqlite"), (postgres_url, "postgresql")):
        store = open_store(url, tmp_path / folder)
        try:
            row = store.get(analyse(store, mixed_bundle, engine))
            assert row is not None
            pages = [store.timeline(row.num, TimelineQuery(after=after, limit=50, kinds=kinds))
                     for after in (0, 50, 10_000) for kinds in ((), ("tls.",))]
            report = json.loads(store.report(row.num, "json") or "{}")
            report.pop("made_at")
            answers.append((store.findings(row.num), pages, report, row.events,
                            {k: v for k, v in (row.report or {}).items() if k != "made_at"}))
        finally:
            store.close()
    assert answers[0] == answers[1]


def test_the_database_setting_names_a_backend(postgres_server: PostgresServer, tmp_path: Path) -> None:
    """A bad URL, an unreachable server or a missing database is a clear error at start, naming
    the place, never the password."""
    with pytest.raises(CorrelatorError, match=r"sqlite: .* postgresql://"):
        load_settings(None, database="mysql://db.example/correlator")
    assert load_settings(None, database="sqlite:").database is None
    port = free_port()
    where = re.escape(f"cannot reach the PostgreSQL database at 127.0.0.1:{port}/x: ")
    with pytest.raises(CorrelatorError, match=where) as refused:
        open_store(f"postgresql://u:s3cret@127.0.0.1:{port}/x", tmp_path)
    missing = postgres_server.url("no_such_database")
    with pytest.raises(CorrelatorError, match=r"no_such_database.*does not exist") as absent:
        open_store(missing, tmp_path)
    assert "s3cret" not in str(refused.value) + str(absent.value)


def test_routine_lines_read_back_as_the_events_they_were(tmp_path: Path, noisy_bundle: Path,
                                                         engine: tuple[Registry, list[Rule]],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The timeline of a bundle whose routine lines are kept as places equals the one of the same
    bundle with every line stored as an event (the bulk reader off): the same lines in the same
    order, with the same cursors, times, kinds, levels, redacted text, time texts and clients.
    Only what the timeline's stitcher adds to a line is missing: its connection and the fields
    the connection lends it."""
    fast = open_store(None, tmp_path / "fast")
    kept = fast.get(analyse(fast, noisy_bundle, engine))
    monkeypatch.setenv("CORRELATOR_SCAN", "off")
    slow = open_store(None, tmp_path / "slow")
    every = slow.get(analyse(slow, noisy_bundle, engine))
    assert kept is not None and every is not None and kept.events == every.events
    assert fast.routine.get(kept.num) is not None and slow.routine.get(every.num) is None
    ours = whole_timeline(fast, kept.num, TimelineQuery(limit=500))
    theirs = whole_timeline(slow, every.num, TimelineQuery(limit=500))
    routine = 0
    for a, b in zip(ours, theirs, strict=True):
        if a["connection"] is None and b["connection"] is not None:  # a routine line
            routine += 1
            assert a["fields"].items() <= b["fields"].items()
            a, b = {**a, "fields": {}, "connection": None}, {**b, "fields": {}, "connection": None}
        assert a == b
    assert routine >= 3_000
    fast.close()
    slow.close()
