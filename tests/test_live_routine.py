"""Live reading counts routine lines as the batch reader does: the lines of a real broker log
appended in pieces of every size give the live analysis (with `every_line=False`, as the edge agent
reads) the batch reader's events and its counts per kind and second."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from live_plant import busy_mixed, follow_in_pieces, follow_second_half, thinned_batch

from correlator.engine.evaluate import Engine
from correlator.engine.facts import Artifacts
from correlator.engine.rules import load_rules
from correlator.formats.registry import default_registry
from correlator.live_analysis import LiveUpdate, RoutineBatch
from correlator.sources.files import LogFile
from correlator.sources.lines import iter_lines

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
REGISTRY = default_registry()


def _broker_lines() -> list[bytes]:
    """Every line of the real broker logs in sample_logs/ written with epoch prefixes."""
    return [raw for path in sorted(SAMPLES.glob("*/broker/mosquitto.log"))
            for _, raw in iter_lines(path) if raw[:10].isdigit()]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_live_reading_gives_the_batch_reader_s_events_and_counts(tmp_path: Path, ending: bytes) -> None:
    """Also with the real lines ended in CRLF, as a log written on Windows is: both readers strip
    the carriage return, so a routine line is counted in either and the counts are those of the
    same lines ended in LF."""
    rng = random.Random(19)
    pool = _broker_lines()
    lines = sorted((rng.choice(pool) for _ in range(6000)), key=lambda raw: raw[:10])
    path = tmp_path / "mosquitto.log"
    path.write_bytes(ending.join(lines[:2500]) + ending)

    events: dict[int, str] = {}
    kinds: dict[str, int] = {}
    seconds: dict[int, int] = {}
    clients: set[str] = set()
    lock = threading.Lock()

    def updated(update: LiveUpdate) -> None:
        with lock:
            for event in update.events:
                if event.offset >= 0:
                    events[event.offset] = event.kind

    def counted(batch: RoutineBatch) -> None:
        with lock:
            for line in batch.lines:
                kinds[line.kind] = kinds.get(line.kind, 0) + 1
                seconds[line.second] = seconds.get(line.second, 0) + 1
                clients.add(line.client)

    follow_in_pieces(path, lines, ending, rng, 2500, on_update=updated, on_routine=counted)

    batch = LogFile(path, REGISTRY)
    rules, _ = load_rules([])
    batch.count_routine(Engine(rules, Artifacts()).needs())
    assert batch.routine_spec is not None
    expected = {e.offset: e.kind for e in batch.events()}
    assert 0 < len(expected) < len(lines) // 2 < batch.routine.lines
    assert events == expected
    assert kinds == batch.routine.kinds
    assert seconds == batch.routine.seconds
    assert "" not in clients and len(clients) > 3  # each counted line names its client
    plain = tmp_path / "lf.log"
    plain.write_bytes(b"\n".join(lines) + b"\n")
    lf = LogFile(plain, REGISTRY)
    lf.count_routine(Engine(rules, Artifacts()).needs())
    assert [e.kind for e in lf.events()] == [expected[offset] for offset in sorted(expected)]
    assert lf.routine.kinds == batch.routine.kinds and lf.routine.seconds == batch.routine.seconds


def test_live_reading_thins_a_client_s_publishes_as_the_batch_reader_does(tmp_path: Path) -> None:
    """With an ACL file, acl.publish_denied reads a client's first `Received PUBLISH` after its
    CONNECT: live reading parses that one and counts the rest, as `analyze` does (a real incident,
    its publishes repeated as a busy broker repeats them, the second half appended while followed)."""
    folder, log, lines = busy_mixed(tmp_path)
    events: dict[int, str] = {}
    kinds: dict[str, int] = {}
    lock = threading.Lock()

    def updated(update: LiveUpdate) -> None:
        with lock:
            events.update((e.offset, e.kind) for e in update.events if e.file == str(log))

    def counted(batch: RoutineBatch) -> None:
        with lock:
            for line in batch.lines:
                kinds[line.kind] = kinds.get(line.kind, 0) + 1

    found = follow_second_half(folder, log, lines, on_update=updated, on_routine=counted)
    batch, expected = thinned_batch(folder, log, lines)
    assert events == expected
    assert kinds == batch.routine.kinds
    assert "acl.publish_denied" in found
