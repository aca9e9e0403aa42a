"""The complement scan `analyze` starts ahead of its reader (correlator/sources/early.py): the reader
takes the ends of the blocks it scanned and gives the classification its own scan gives, and where
the file changed or the reader got there first, it scans itself.

The logs are the real broker lines of sample_logs/ (and the real incidents themselves).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from correlator.analysis import analyze
from correlator.formats.registry import default_registry
from correlator.formats.scan import BlockScan, RoutineCounts, RoutineSpec, classifier, hyperscan_available
from correlator.sources import early
from correlator.sources.blocks import iter_blocks
from correlator.sources.early import EarlyPass, EarlyReads
from correlator.sources.lines import MAX_LINE, iter_lines

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
INCIDENTS = sorted(p for p in SAMPLES.iterdir() if (p / "expected.json").is_file())
BLOCK = 8192

pytestmark = pytest.mark.skipif(not hyperscan_available(), reason="the early pass is Hyperscan's (the fast extra)")


def _spec() -> RoutineSpec:
    spec = default_registry().formats["mosquitto"].routine
    assert spec is not None
    return spec


def _busy_log(tmp_path: Path, lines: int = 6000) -> Path:
    """Real broker lines of the samples, shuffled into a log of many blocks (a tenth not routine)."""
    real = [raw for path in sorted(SAMPLES.glob("*/broker/mosquitto.log")) for _, raw in iter_lines(path)
            if raw[:10].isdigit()]
    rng = random.Random(5)
    path = tmp_path / "mosquitto.log"
    path.write_bytes(b"\n".join(rng.choice(real) for _ in range(lines)) + b"\n")
    return path


def _scans(path: Path, known: EarlyPass | None) -> tuple[list[tuple[int, list[tuple[int, int]], list[int], int]],
                                                          RoutineCounts]:
    counts = RoutineCounts()
    scanner = classifier(_spec(), MAX_LINE, "hyperscan")
    out = []
    for base, _, scan in scanner.scan_blocks(iter_blocks(path, block_size=BLOCK), counts, known):
        assert isinstance(scan, BlockScan)
        out.append((base, scan.found, scan.rows, scan.lines))
    return out, counts


def test_the_reader_takes_the_ends_found_ahead_and_classifies_as_its_own_scan_does(tmp_path: Path) -> None:
    path = _busy_log(tmp_path)
    own, own_counts = _scans(path, None)
    assert len(own) > 20 and sum(len(found) for _, found, _, _ in own) > 100
    ahead = EarlyPass(path, _spec(), BLOCK).start()
    ahead.join(timeout=30)  # scanned to the end before the reader starts (fewer blocks than MAX_AHEAD)
    taken, taken_counts = _scans(path, ahead)
    assert taken == own
    assert (taken_counts.lines, taken_counts.kinds, taken_counts.seconds) == (
        own_counts.lines, own_counts.kinds, own_counts.seconds)
    assert ahead.served == len(own)


def test_a_block_that_changed_since_it_was_scanned_is_scanned_again(tmp_path: Path) -> None:
    """The file grew after the pass read its end (the last block's newline was the pass's own):
    that block is scanned by the reader, and the pass stops."""
    path = _busy_log(tmp_path)
    with path.open("rb+") as handle:  # the last line without its newline, as a writer leaves it
        handle.truncate(path.stat().st_size - 1)
    ahead = EarlyPass(path, _spec(), BLOCK).start()
    ahead.join(timeout=30)
    with path.open("ab") as handle:
        handle.write(b" and more\n1795444342: Client plc-1 closed its connection.\n")
    own, _ = _scans(path, None)
    taken, _ = _scans(path, ahead)
    assert taken == own
    assert ahead.served == len(own) - 1


def test_a_reader_ahead_of_the_pass_scans_for_itself(tmp_path: Path) -> None:
    path = _busy_log(tmp_path)
    own, _ = _scans(path, None)
    idle = EarlyPass(path, _spec(), BLOCK)  # never started: the reader is ahead from the first block
    taken, _ = _scans(path, idle)
    assert taken == own and idle.served == 0


def test_a_pass_that_got_too_far_ahead_waits_for_its_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(early, "MAX_AHEAD", 3)
    path = _busy_log(tmp_path)
    ahead = EarlyPass(path, _spec(), BLOCK).start()
    own, _ = _scans(path, None)
    taken, _ = _scans(path, ahead)
    assert taken == own
    assert ahead.served >= 3


@pytest.mark.parametrize("size", [64, 100, 1000, BLOCK])
@pytest.mark.parametrize("ending", ["newline", "none", "exact"])
def test_the_pass_maps_the_blocks_the_reader_reads(tmp_path: Path, size: int, ending: str) -> None:
    """The child scans views of the file mapped into memory, cut where iter_blocks cuts its reads:
    lines longer than a block, a last line without its newline, a file ending at a block's end."""
    path = _busy_log(tmp_path, 300)
    data = path.read_bytes()
    if ending == "none":
        data = data[:-1]
    elif ending == "exact":
        data = data[:len(data) - len(data) % size] or data
    long = data.index(b"\n") + 1
    data = data[:long] + data[long:long + 5 * size].replace(b"\n", b" ") + data[long + 5 * size:]
    path.write_bytes(data)
    mapped = [(base, bytes(block)) for base, block in early._mapped_blocks(path, size)]
    assert mapped == [(base, bytes(block)) for base, block in iter_blocks(path, block_size=size)]
    assert len(mapped) >= 2


@pytest.mark.parametrize("incident", INCIDENTS, ids=[p.name for p in INCIDENTS])
def test_every_sample_gives_the_same_report_with_its_logs_scanned_ahead(incident: Path) -> None:
    def report() -> str:
        found = dict(analyze([incident]).to_dict())
        found.pop("made_at")
        return json.dumps(found, sort_keys=True)

    plain = report()
    with EarlyReads([incident], min_bytes=0) as reads:
        ahead = report()
    assert ahead == plain
    brokers = [p for p in incident.rglob("*.log") if p.read_bytes()[:10].isdigit()]
    if brokers:  # a pass was started for a mosquitto log with epoch times (its reader takes it unless a
        # rule reads its routine messages, or it is read up to a rotated log's shared stretch)
        assert reads.taken or reads.passes


def test_no_pass_with_a_forced_format_or_the_python_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _busy_log(tmp_path)
    assert EarlyReads([tmp_path], min_bytes=0).passes  # found in the folder
    assert not EarlyReads([path], min_bytes=0, forced=["*.log=mosquitto"]).passes
    assert not EarlyReads([path]).passes  # smaller than EARLY_BYTES
    monkeypatch.setenv("CORRELATOR_SCAN", "python")
    assert not EarlyReads([path], min_bytes=0).passes


def test_a_pass_that_cannot_fork_leaves_the_scan_to_the_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No process to spare (a limit, a sandbox): the pass starts nothing and the reader scans."""
    path = _busy_log(tmp_path)
    own, _ = _scans(path, None)

    def refused() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr("os.fork", refused)
    ahead = EarlyPass(path, _spec(), BLOCK).start()
    monkeypatch.undo()
    taken, _ = _scans(path, ahead)
    assert taken == own and ahead.served == 0
