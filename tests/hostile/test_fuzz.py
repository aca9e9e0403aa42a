"""Property tests over the parts that read what a customer sends (issue 16, item 10): whatever
the bytes, the format loader, the line parser, the line reader and the archive extractor give a
result or a one-line CorrelatorError, never another exception. (The mosquitto.conf, ACL and
password parsers have theirs in tests/artifacts/.) fuzz_lines.py is the coverage-guided (atheris)
target for the line reader."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import zipfile
from datetime import UTC
from pathlib import Path

import pytest
from hostile import corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.errors import CorrelatorError
from correlator.formats.definition import load_format
from correlator.formats.parse import SourceParser
from correlator.formats.registry import default_registry
from correlator.resources import builtin_dir
from correlator.sources.bundle import open_bundle
from correlator.sources.lines import compression_of, iter_lines, text_encoding

FORMATS = sorted(builtin_dir("parsers").glob("*.toml"))
SEED_FORMAT = (builtin_dir("parsers") / "mosquitto.toml").read_text()
REGISTRY = default_registry()
FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(max_examples=120, **FUZZ)  # type: ignore[arg-type]
@given(st.integers(min_value=0, max_value=len(SEED_FORMAT) - 1), st.integers(min_value=0, max_value=40),
       st.text(max_size=12))
def test_the_format_loader_refuses_a_mutated_format_with_a_one_line_error(
        tmp_path: Path, position: int, cut: int, insert: str) -> None:
    path = tmp_path / "mutant.toml"
    path.write_text(SEED_FORMAT[:position] + insert + SEED_FORMAT[position + cut:], encoding="utf-8")
    try:
        load_format(path)
    except CorrelatorError as exc:
        assert "\n" not in str(exc).strip() or "mutant.toml" in str(exc)


@settings(max_examples=150, **FUZZ)  # type: ignore[arg-type]
@given(st.sampled_from(sorted(REGISTRY.formats)),
       st.lists(st.text(max_size=120) | st.sampled_from(
           ["1795444951: New connection from 127.0.0.1:40000 on port 33741.", "\t", "", "  at x.y(Z.java:1)",
            "2026-11-23 14:42:31,758 ERROR x: [SSL: CERTIFICATE_VERIFY_FAILED] ..."]), max_size=30))
def test_the_line_parser_makes_an_event_of_any_line(name: str, lines: list[str]) -> None:
    fmt = REGISTRY.get(name)
    parser = SourceParser(fmt, REGISTRY.evidence, source="client:fuzz", file="fuzz.log", tz=UTC,
                          fallback=REGISTRY.fallback, fallback_time=1795444951.0)
    numbered = [(i + 1, i * 100, line) for i, line in enumerate(lines)]
    events = parser.feed(numbered) + parser.finish()
    # every line is read; blank ones make no event, continuation lines join the record before
    assert parser.lines_read == len(lines)
    assert sum(e.line_count for e in events) <= len(lines)
    assert all(1 <= e.line <= len(lines) for e in events)
    assert [e.line for e in events] == sorted(e.line for e in events)


@settings(max_examples=150, **FUZZ)  # type: ignore[arg-type]
@given(st.binary(max_size=2000), st.sampled_from([b"", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x1f\x8b"]))
def test_the_line_reader_reads_any_bytes(tmp_path: Path, data: bytes, prefix: bytes) -> None:
    path = tmp_path / "any.log"
    path.write_bytes(prefix + data)
    text_encoding(prefix + data)
    try:
        lines = list(iter_lines(path))
    except CorrelatorError:
        # a gzip, bzip2 or xz header over random bytes: damaged data, named
        assert compression_of(prefix + data) is not None
        return
    assert all(b"\n" not in line for _, line in lines)


def _archives() -> list[bytes]:
    out = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, file in corpus.healthy_files():
            zf.write(file, name)
    out.append(buffer.getvalue())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, file in corpus.healthy_files():
            tf.add(file, arcname=name)
    out.append(buffer.getvalue())
    return out


ARCHIVES = _archives()


@settings(max_examples=120, **FUZZ)  # type: ignore[arg-type]
@given(st.sampled_from([0, 1]), st.integers(min_value=0, max_value=10**6), st.binary(min_size=1, max_size=8),
       st.booleans())
def test_a_damaged_archive_gives_errors_never_a_traceback(tmp_path: Path, which: int, where: int, junk: bytes,
                                                          cut: bool) -> None:
    data = bytearray(ARCHIVES[which])
    where %= len(data)
    data = data[:where] if cut else data[:where] + junk + data[where + len(junk):]
    path = tmp_path / ("fuzz.zip" if which == 0 else "fuzz.tar.gz")
    path.write_bytes(bytes(data))
    with open_bundle([path]) as bundle:
        assert all(isinstance(e, CorrelatorError) and "\n" not in str(e) for e in bundle.errors)
        for log in bundle.logs:
            list(iter_lines(log))


@pytest.mark.slow
def test_the_atheris_target_runs(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    target = Path(__file__).with_name("fuzz_lines.py")
    result = subprocess.run([sys.executable, str(target), "-runs=3000", f"-artifact_prefix={tmp_path}/"],
                            capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Done 3000 runs" in result.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)
