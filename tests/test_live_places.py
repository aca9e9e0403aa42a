"""Appended lines classified by the batch reader's own classifier (`AppendedLines.places`, what
`watch`, the TUI's live mode and `serve PATH` read appended lines with): the lines of real broker
logs appended in pieces of every size, ended in LF and in CRLF, give the live analysis the batch
reader's events, and the routine lines' places (offsets, line numbers, kinds, seconds) are exactly
the other lines, counted per second as the batch reader counts them. With an ACL file, a client's
first `Received PUBLISH` after its CONNECT is parsed and the rest are places, as `analyze` thins."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from live_plant import busy_mixed, follow_in_pieces, follow_second_half, thinned_batch

from correlator.analysis import RoutineBlock
from correlator.engine.evaluate import Engine
from correlator.engine.facts import Artifacts
from correlator.engine.rules import load_rules
from correlator.formats.registry import default_registry
from correlator.formats.scan import keeps_lines, scan_engine
from correlator.live_analysis import LiveUpdate
from correlator.sources.files import LogFile
from correlator.sources.lines import iter_lines

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
REGISTRY = default_registry()

pytestmark = pytest.mark.skipif(not keeps_lines() or scan_engine() == "off",
                                reason="only the Hyperscan classifier says where routine lines are")


def _broker_lines() -> list[bytes]:
    """Every line of the real broker logs in sample_logs/ written with epoch prefixes."""
    return [raw for path in sorted(SAMPLES.glob("*/broker/mosquitto.log"))
            for _, raw in iter_lines(path) if raw[:10].isdigit()]


class _Heard:
    """What a live analysis told: events by offset, and the routine lines' places."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.events: dict[int, str] = {}
        self.places: dict[int, tuple[int, str, int]] = {}
        """offset -> (line number, kind, second)"""
        self.lock = threading.Lock()

    def updated(self, update: LiveUpdate) -> None:
        with self.lock:
            self.events.update((e.offset, e.kind) for e in update.events if e.file == self.file)

    def block(self, block: RoutineBlock) -> None:
        where = block.lines
        assert block.base == 0 and block.file == self.file
        with self.lock:
            for offset, number, second, message in zip(where.starts.tolist(), where.numbers.tolist(),
                                                       where.seconds.tolist(), where.messages.tolist(), strict=True):
                assert offset not in self.places
                self.places[offset] = (block.before + number + 1, where.kinds[message], second)


def _starts(data: bytes) -> list[int]:
    return [0] + [i + 1 for i in range(len(data) - 1) if data[i] == 10]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_appended_places_are_the_batch_reader_s_routine_lines(tmp_path: Path, ending: bytes) -> None:
    rng = random.Random(23)
    pool = _broker_lines()
    lines = sorted((rng.choice(pool) for _ in range(6000)), key=lambda raw: raw[:10])
    path = tmp_path / "mosquitto.log"
    path.write_bytes(ending.join(lines[:2500]) + ending)
    heard = _Heard(str(path))
    live = follow_in_pieces(path, lines, ending, rng, 2500, on_update=heard.updated, on_routine_block=heard.block)

    batch = LogFile(path, REGISTRY)
    rules, _ = load_rules([])
    batch.count_routine(Engine(rules, Artifacts()).needs())
    expected = {e.offset: e.kind for e in batch.events()}
    assert 0 < len(expected) < len(lines) // 2 < batch.routine.lines
    assert heard.events == expected
    data = path.read_bytes()
    starts = _starts(data)
    assert sorted([*heard.places, *heard.events]) == starts  # every line once: an event or a place
    numbers = {offset: number + 1 for number, offset in enumerate(starts)}
    assert all(numbers[offset] == number for offset, (number, _, _) in heard.places.items())
    kinds: dict[str, int] = {}
    seconds: dict[int, int] = {}
    for offset, (_, kind, second) in heard.places.items():
        kinds[kind] = kinds.get(kind, 0) + 1
        seconds[second] = seconds.get(second, 0) + 1
        assert data[offset:offset + 10] == str(second).encode()
    assert kinds == batch.routine.kinds
    assert seconds == batch.routine.seconds
    counted = {second: cell[0] for second, cell in live.session.histogram.get("broker", {}).items()}
    assert sum(counted.values()) == len(lines)  # the picture counts events and places alike


def test_appended_places_thin_a_client_s_publishes_as_the_batch_reader_does(tmp_path: Path) -> None:
    folder, log, lines = busy_mixed(tmp_path)
    heard = _Heard(str(log))
    found = follow_second_half(folder, log, lines, on_update=heard.updated, on_routine_block=heard.block)
    batch, expected = thinned_batch(folder, log, lines)
    assert heard.events == expected
    assert sorted([*heard.places, *heard.events]) == _starts(log.read_bytes())
    kinds: dict[str, int] = {}
    for _, kind, _ in heard.places.values():
        kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds == batch.routine.kinds
    assert "acl.publish_denied" in found
