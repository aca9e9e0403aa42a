"""Expected input faults and bugs are told apart (issue 11 item 7): a file that breaks half-way is
reported with its file and line while the rest is analysed; a bug is an exception that fails the
analysis (and the test), never a line in the report."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from correlator.analysis import analyze
from correlator.errors import InputError
from correlator.formats.registry import default_registry
from correlator.model import Event
from correlator.sources.files import LogFile
from correlator.sources.lines import CHUNK_SIZE
from correlator.timeline.pipeline import BatchTimeline

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"


def _cut_off_gzip(sample: Path, target: Path) -> int:
    """The sample's broker log, repeated past one read chunk, gzipped and cut off: the reader
    gets the first chunk whole, then the damage. Returns the lines in one copy of the log."""
    log = (sample / "broker" / "mosquitto.log").read_bytes()
    copies = 2 * CHUNK_SIZE // len(log) + 1
    packed = gzip.compress(log * copies)
    target.write_bytes(packed[: len(packed) * 3 // 4])
    return log.count(b"\n")


def test_a_log_cut_off_half_way_is_reported_with_file_and_line_and_the_rest_analysed(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(SAMPLES / "server_cert_expired", bundle, ignore=shutil.ignore_patterns("mosquitto.log"))
    _cut_off_gzip(SAMPLES / "server_cert_expired", bundle / "broker" / "mosquitto.log.gz")
    analysis = analyze([bundle])
    errors = [e for e in analysis.errors if "mosquitto.log.gz" in e]
    assert len(errors) == 1, analysis.errors
    where, _, message = errors[0].partition(": ")
    path, _, line = where.rpartition(":")
    assert path == "broker/mosquitto.log.gz"  # as the report names it, not a temporary path
    assert line.isdigit() and int(line) > 1000  # the lines before the damage were read
    assert message.startswith("unreadable data after byte")
    assert "tls.server_cert_expired" in {f.id for f in analysis.findings}


def _breaking(log: LogFile, error: Exception) -> None:
    """Make `log`'s real pass (not the look-ahead, which reads through its own LogFile) yield its
    first chunk and then raise `error`, as a reader does when it fails half-way."""
    real = log.chunks

    def chunks() -> Iterator[list[Event]]:
        for chunk in real():
            yield chunk
            raise error

    log.chunks = chunks  # type: ignore[method-assign]


def _logs(name: str) -> list[LogFile]:
    registry = default_registry()
    folder = SAMPLES / name
    return [LogFile(p, registry) for p in (folder / "broker" / "mosquitto.log", *sorted(
        (folder / "clients").glob("*.log")))]


def test_an_input_error_half_way_is_reported_and_the_other_files_go_on() -> None:
    logs = _logs("mixed")
    _breaking(logs[0], InputError("unreadable data after byte 10", file="broker/mosquitto.log", line=7))
    reported: list[tuple[str, str]] = []
    line = BatchTimeline(logs, on_error=lambda log, exc: reported.append((log.info.source, str(exc))))
    events = list(line.events())
    assert reported == [("broker", "broker/mosquitto.log:7: unreadable data after byte 10")]
    assert {e.source for e in events} > {"broker"}  # the clients were read to their end


def test_a_bug_while_reading_is_not_turned_into_a_report_line() -> None:
    logs = _logs("mixed")
    _breaking(logs[0], ZeroDivisionError("a bug"))
    reported: list[str] = []
    line = BatchTimeline(logs, on_error=lambda log, exc: reported.append(str(exc)))
    with pytest.raises(ZeroDivisionError):
        list(line.events())
    assert reported == []
