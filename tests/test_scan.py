"""The bulk reader: routine lines are counted, everything else is parsed, on both engines alike.

The lines come from real mosquitto runs (sample_logs/); the non-routine ones spliced into the
flood are random text, real non-routine lines, and routine lines broken in random places, so a
new wording is never taken for traffic.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.analysis import analyze
from correlator.engine.evaluate import Engine
from correlator.engine.facts import Artifacts
from correlator.engine.rules import load_rules
from correlator.errors import InputError
from correlator.formats.parse import match_line
from correlator.formats.registry import default_registry
from correlator.formats.scan import (
    Classifier,
    RoutineCounts,
    RoutineSpec,
    ScanPatternError,
    classifier,
    compile_automaton,
    complement,
    hyperscan_available,
)
from correlator.report_model import SourceInfoDict
from correlator.sources.blocks import iter_blocks, read_ahead
from correlator.sources.files import LogFile
from correlator.sources.lines import MAX_LINE, iter_lines
from correlator.sources.thinning import key_place

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
REGISTRY = default_registry()
MOSQUITTO = REGISTRY.formats["mosquitto"]


def _routine_spec() -> RoutineSpec:
    spec = MOSQUITTO.routine
    assert spec is not None
    return spec


SPEC = _routine_spec()
ENGINES = ["python", "hyperscan"]


def _engine(name: str) -> None:
    if name == "hyperscan" and not hyperscan_available():
        if os.environ.get("CI"):
            pytest.fail("CI runs both paths: install the fast extra (hyperscan, numpy)")
        pytest.skip("hyperscan and numpy are not installed")


def broker_lines() -> list[bytes]:
    """Every line of every real broker log in sample_logs/ written with epoch prefixes."""
    lines = []
    for path in sorted(SAMPLES.glob("*/broker/mosquitto.log")):
        lines += [raw for _, raw in iter_lines(path) if raw[:10].isdigit()]
    return lines


LINES = broker_lines()
ROUTINE = [line for line in LINES if SPEC.automaton.run(line) >= 0]
OTHER = [line for line in LINES if SPEC.automaton.run(line) < 0]


def scan_all(engine: str, data: bytes) -> tuple[list[bytes], RoutineCounts]:
    counts = RoutineCounts()
    found = []
    for _, block in iter_blocks_of(data):
        found += [block[a:b] for a, b in classifier(SPEC, MAX_LINE, engine).scan(block, counts)]
    return found, counts


def iter_blocks_of(data: bytes, size: int = 1 << 16) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at < len(data):
        end = data.rfind(b"\n", at, at + size) + 1 if at + size < len(data) else len(data)
        if end <= at:
            end = data.index(b"\n", at) + 1
        out.append((at, data[at:end]))
        at = end
    return out


def test_the_samples_hold_both_kinds_of_line() -> None:
    assert len(ROUTINE) > 1000
    assert len(OTHER) > 200


def test_every_line_counted_as_routine_parses_as_that_message() -> None:
    """Soundness on real lines: what the bulk reader counts, the full parser reads as the same
    message (the kinds and levels the counts stand for)."""
    for line in ROUTINE:
        index = SPEC.automaton.run(line)
        found = match_line(MOSQUITTO, line.decode(), REGISTRY.evidence)
        assert found is not None and found.message is not None, line
        assert found.message.name == SPEC.names[index], line
        assert found.kind == SPEC.kinds[index]


@pytest.mark.parametrize("engine", ENGINES)
def test_random_lines_spliced_into_a_routine_flood_are_all_found(engine: str) -> None:
    _engine(engine)
    rng = random.Random(15)
    flood = [rng.choice(ROUTINE) for _ in range(30_000)]
    odd: list[bytes] = []
    for _ in range(400):
        what = rng.random()
        if what < 0.3:
            line = rng.choice(OTHER)
        elif what < 0.6:
            # a routine line broken at a random place: new wording, a cut line, a stray byte
            base = bytearray(rng.choice(ROUTINE))
            at = rng.randrange(len(base))
            op = rng.randrange(3)
            if op == 0:
                del base[at:]
            elif op == 1:
                base[at:at] = bytes([rng.choice(b" ()'\t\r,:xZ9\x00\xff")])
            else:
                base[at] = rng.choice(b" ()'\t,:xZ9\xff")
            line = bytes(base)
        else:
            line = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 :'()[],.-_\t") for _ in
                         range(rng.randrange(0, 120)))
        if b"\n" in line or SPEC.automaton.run(line) >= 0:
            continue  # a mutation that is still a routine line is not a new wording
        at = rng.randrange(len(flood) + 1)
        flood.insert(at, line)
        odd.append(line)
    data = b"\n".join(flood) + b"\n"
    found, counts = scan_all(engine, data)
    assert sorted(found) == sorted(odd)
    assert counts.lines == len(flood) - len(odd)
    assert sum(counts.seconds.values()) == counts.lines


_LINE = st.one_of(
    st.sampled_from(ROUTINE[:2000] or [b""]),
    st.sampled_from(OTHER[:500] or [b""]),
    st.binary(max_size=90).map(lambda b: b.replace(b"\n", b" ")),
    st.tuples(st.sampled_from(ROUTINE[:500] or [b"x"]), st.integers(0, 200), st.binary(min_size=1, max_size=2))
    .map(lambda t: (t[0][:t[1]] + t[2] + t[0][t[1]:]).replace(b"\n", b"")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE, min_size=1, max_size=300), st.integers(64, 4096))
def test_both_engines_and_the_automaton_agree_on_random_blocks(lines: list[bytes], size: int) -> None:
    if not hyperscan_available():
        pytest.skip("hyperscan and numpy are not installed")
    data = b"\n".join(lines) + b"\n"
    expected = sorted(line for line in lines if SPEC.automaton.run(line) < 0)
    results = []
    for engine in ENGINES:
        counts = RoutineCounts()
        found = []
        for _, block in iter_blocks_of(data, size):
            found += [block[a:b] for a, b in classifier(SPEC, MAX_LINE, engine).scan(block, counts)]
        results.append((found, counts.kinds, counts.seconds))
        assert sorted(found) == expected
    assert results[0] == results[1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_LINE)
def test_the_merged_automaton_reads_a_line_as_the_declared_regexes_do(line: bytes) -> None:
    """The automaton's equivalent states are merged (`_minimal`): a line is still the message
    whose whole-line regex matches it (a carriage return at its end aside), and no other."""
    text = line.decode("latin-1").removesuffix("\r")
    matching = [i for i, pattern in enumerate(SPEC.lines) if re.fullmatch(pattern, text, re.DOTALL)]
    assert SPEC.automaton.run(line) == (matching[0] if matching else -1)
    assert len(matching) <= 1


def test_merging_keeps_one_state_per_behaviour() -> None:
    """A repeated class makes twin states (its first character's and its loop's); merged, the
    complement of the mosquitto format fits one Hyperscan pattern."""
    automaton = SPEC.automaton
    rows = {(tuple(row), automaton.accepts[state]) for state, row in enumerate(automaton.delta)}
    assert len(rows) == len(automaton.delta)
    assert len(complement(automaton)) == 1


def test_a_routine_line_longer_than_the_cut_is_parsed_not_counted() -> None:
    base = ROUTINE[0]
    long = base.replace(b"'", b"'" + b"x" * 300, 1)
    assert SPEC.automaton.run(long) >= 0
    for engine in ENGINES:
        if engine == "hyperscan" and not hyperscan_available():
            continue
        found = classifier(SPEC, 200, engine).scan(base + b"\n" + long + b"\n", RoutineCounts())
        assert [(a, b) for a, b in found] == [(len(base) + 1, len(base) + 1 + len(long))]


def test_patterns_the_scanner_cannot_hold_are_refused() -> None:
    with pytest.raises(ScanPatternError, match="repeats a group"):
        compile_automaton(["(?:ab)+"])
    with pytest.raises(ScanPatternError, match="same line"):
        compile_automaton(["a[a-z]+", "ab+"])
    with pytest.raises(ScanPatternError, match="look-arounds"):
        compile_automaton(["a(?!b)"])
    with pytest.raises(ScanPatternError, match="carriage return"):  # is a CR the line's or its end's?
        compile_automaton(["a[^\n]*"])


def test_blocks_are_whole_lines_and_the_last_line_gets_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(b"one\ntwo\r\n" + b"z" * 50 + b"\nlast")
    blocks = list(iter_blocks(path, block_size=8))
    assert b"".join(b for _, b in blocks) == path.read_bytes() + b"\n"
    assert all(b.endswith(b"\n") for _, b in blocks)
    assert [o for o, _ in blocks] == [sum(len(b) for _, b in blocks[:i]) for i in range(len(blocks))]


def test_blocks_read_ahead_come_in_order_with_the_reader_s_error_after_them(tmp_path: Path) -> None:
    """read_ahead hands out iter_blocks' blocks unchanged, raises its error where it would have
    (after the blocks read before it), and closes the reader when its caller stops early."""
    path = tmp_path / "x.log"
    path.write_bytes(b"".join(b"%d line of the log\n" % i for i in range(2000)))
    plain = [(base, bytes(block)) for base, block in iter_blocks(path, block_size=1000)]
    assert [(base, bytes(block)) for base, block in read_ahead(iter_blocks(path, block_size=1000))] == plain

    def failing() -> Iterator[tuple[int, bytes]]:
        yield from plain[:3]
        raise InputError("unreadable data", file="x.log")

    got: list[tuple[int, bytes]] = []
    with pytest.raises(InputError):
        for item in read_ahead(failing(), depth=1):
            got.append(item)
    assert got == plain[:3]

    closed = threading.Event()

    def endless() -> Iterator[tuple[int, bytes]]:
        try:
            while True:
                yield plain[0]
        finally:
            closed.set()

    ahead = read_ahead(endless())
    assert next(ahead) == plain[0]
    assert isinstance(ahead, Generator)
    ahead.close()
    assert closed.is_set()
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]


def _events(path: Path, bulk: bool) -> tuple[list[tuple[int, int, str, str]], SourceInfoDict]:
    log = LogFile(path, REGISTRY)
    if bulk:
        log.count_routine((frozenset(), frozenset()))
        assert log.routine_spec is not None
    events = [(e.line, e.offset, e.raw, e.kind) for e in log.events()]
    return events, log.info.to_dict()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_bulk_reader_gives_the_line_reader_s_events_for_every_other_line(
        engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Line numbers, byte offsets, CRLF, blank and over-long lines and a missing last newline
    come out as the line reader gives them; the report's line and kind counts are the same."""
    _engine(engine)
    monkeypatch.setenv("CORRELATOR_SCAN", engine)
    rng = random.Random(7)
    lines = [rng.choice(LINES) for _ in range(5000)]
    lines[100] += b"\r"
    lines[200] = b""
    lines[300] = OTHER[0] + b" " + b"y" * (MAX_LINE + 10)
    path = tmp_path / "mosquitto.log"
    path.write_bytes(b"\n".join(lines))
    bulk, bulk_info = _events(path, True)
    plain, plain_info = _events(path, False)
    counted = {number for number, line in enumerate(lines, 1) if SPEC.automaton.run(line) >= 0}
    assert 0 < len(counted) < 5000
    assert bulk == [e for e in plain if e[0] not in counted]
    assert bulk_info == plain_info


def test_rules_that_read_received_publishes_get_them_when_the_acl_file_is_there(tmp_path: Path) -> None:
    rules, _ = load_rules([])
    without = Engine(rules, Artifacts()).needs()
    assert without is not None and "mqtt.publish" not in without[0]
    (tmp_path / "acl").write_text("user MyEACM\ntopic readwrite spBv1.0/#\n")
    from correlator.sources.bundle import open_bundle

    with open_bundle([tmp_path]) as bundle:
        needs = Engine(rules, Artifacts.from_bundle(bundle)).needs()
    assert needs is not None and "mqtt.publish" in needs[0]
    restricted = SPEC.restricted(*needs)
    assert restricted is not None
    assert "received_publish" not in restricted.names
    assert "sending_publish" in restricted.names


def _report(incident: Path, engine: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setenv("CORRELATOR_SCAN", engine)
    report: dict[str, object] = dict(analyze([incident]).to_dict())
    report.pop("made_at")
    return report


INCIDENTS = sorted(p for p in SAMPLES.iterdir() if (p / "expected.json").is_file())


@pytest.mark.parametrize("incident", INCIDENTS, ids=[p.name for p in INCIDENTS])
def test_every_sample_gives_the_same_report_on_both_paths(incident: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Byte for byte between the engines; and the findings, sources and summary (connections
    included: the stitcher decides by the events' times, never by how many lines came between)
    of the reader that parses every line."""
    _engine("hyperscan")
    python = json.dumps(_report(incident, "python", monkeypatch), sort_keys=True)
    assert json.dumps(_report(incident, "hyperscan", monkeypatch), sort_keys=True) == python
    every = _report(incident, "off", monkeypatch)
    ours = json.loads(python)
    for key in ("findings", "sources", "errors", "notes", "summary"):
        assert ours[key] == every[key], key


def test_a_python_classifier_is_always_there() -> None:
    spec = RoutineSpec("x", "epoch", "[0-9]{2}: ", 2, ["a"], ["mqtt.packet"], ["ping"], ["debug"], [frozenset()])
    found = Classifier(spec, 100).scan(b"12: ping\n12: pong\n", counts := RoutineCounts())
    assert found == [(9, 17)]
    assert counts.kinds == {"mqtt.packet": 1} and counts.seconds == {12: 1}


def _thinned_copy(tmp_path: Path, repeat: int) -> Path:
    """sample_logs/mixed (a real incident with an ACL file) with every `Received PUBLISH` line of
    its broker written `repeat` times, as a busy broker repeats them."""
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(SAMPLES / "mixed", folder)
    log = folder / "broker" / "mosquitto.log"
    lines = log.read_bytes().splitlines(keepends=True)
    stat = log.stat()
    log.write_bytes(b"".join(line * (repeat if b" Received PUBLISH from " in line else 1) for line in lines))
    os.utime(log, (stat.st_atime, stat.st_mtime))
    return folder


@pytest.mark.parametrize("engine", ENGINES)
def test_a_rule_that_reads_a_client_s_first_publish_gets_it_and_the_rest_are_counted(
        engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """acl.publish_denied completes on a client's first PUBLISH after its CONNECT: the bulk reader
    parses that one and counts the rest, and the report is the one of the reader that parses
    every line."""
    _engine(engine)
    folder = _thinned_copy(tmp_path, 25)
    ours = _report(folder, engine, monkeypatch)
    every = _report(folder, "off", monkeypatch)
    assert json.dumps(ours, sort_keys=True) == json.dumps(every, sort_keys=True)
    assert "acl.publish_denied" in {f["id"] for f in ours["findings"]}  # type: ignore[attr-defined]
    from correlator.sources.bundle import open_bundle

    rules, _ = load_rules([])
    with open_bundle([folder]) as bundle:
        engine_ = Engine(rules, Artifacts.from_bundle(bundle))
    monkeypatch.setenv("CORRELATOR_SCAN", engine)
    log = LogFile(folder / "broker" / "mosquitto.log", REGISTRY)
    log.count_routine(engine_.needs(), engine_.first_lines())
    assert log.thinner is not None
    parsed = sum(1 for e in log.events() if e.kind == "mqtt.publish")
    publishes = (folder / "broker" / "mosquitto.log").read_bytes().count(b" Received PUBLISH from ")
    assert publishes == 12 * 25 and 0 < parsed <= 12
    assert log.info.kinds["mqtt.publish"] == publishes


@pytest.mark.parametrize("mix", ["hashed", "every-hash-equal"])
@pytest.mark.parametrize("engine", ENGINES)
def test_the_marks_keys_are_read_whole_however_long(engine: str, mix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The classifier lists each client's `Received PUBLISH` lines for the thinning: ids longer
    than the 32 bytes read at once, ids one is the start of the other, and the shortest ids are
    each told apart exactly, also when their hashes are equal (the bytes decide)."""
    _engine(engine)
    if mix != "hashed":
        monkeypatch.setattr("correlator.formats.scan._MIX", (0, 0, 0, 0))
    index = SPEC.names.index("received_publish")
    place = key_place(compile_automaton([SPEC.prefix + SPEC.bodies[index]]))
    assert place is not None
    publish = [line for line in ROUTINE if b" Received PUBLISH from " in line][:40]
    ids = [b"a", b"ab", b"x" * 31, b"x" * 32, b"x" * 40, b"x" * 40 + b"y", b"x" * 300, b"plc-7"]
    rng = random.Random(3)
    lines: list[bytes] = []
    where: dict[bytes, list[int]] = {}
    at = 0
    for n in range(400):
        line = rng.choice(publish)
        head, rest = line.split(b" Received PUBLISH from ", 1)
        client = ids[n % len(ids)] if n < 390 else ids[-1]
        line = head + b" Received PUBLISH from " + client + rest[rest.index(b" ("):]
        assert SPEC.automaton.run(line) == index
        where.setdefault(client, []).append(at)
        lines.append(line)
        at += len(line) + 1
    block = b"\n".join(lines) + b"\n"
    scan = classifier(SPEC, MAX_LINE, engine, marked=frozenset({index}), key=place).scan_block(block, RoutineCounts())
    assert scan.marks == sorted(start for starts in where.values() for start in starts)
    got = {scan.keys[key]: [scan.marks[mark] for mark in marks] for key, marks in enumerate(scan.key_marks)}
    assert got == where
