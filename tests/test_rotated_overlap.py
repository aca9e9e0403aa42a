"""Rotated logs that share a stretch of lines are read once (correlator.sources.overlap), proved on
rotated_overlap: logrotate's `copy` snapshot (mosquitto.log.1) and the live log as a support script
collected it (its last lines, from before the rotation on), sharing edge-76's refusal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from correlator.analysis import analyze
from correlator.sources.overlap import find_overlaps

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs" / "rotated_overlap"


def _refusals(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if "not authorised" in line]


@pytest.mark.parametrize("every_line", [False, True])
def test_a_shared_stretch_counts_once(every_line: bool) -> None:
    broker = SAMPLE / "broker"
    logged = set(_refusals(broker / "mosquitto.log.1")) | set(_refusals(broker / "mosquitto.log"))
    lines = len(_refusals(broker / "mosquitto.log.1")) + len(_refusals(broker / "mosquitto.log"))
    assert len(logged) == 3 and lines == 4
    analysis = analyze([SAMPLE], every_line=every_line)
    assert [(f.id, f.count) for f in analysis.findings] == [("auth.bad_credentials", 3)]
    found = analysis.findings[0]
    assert found.clients == {"edge-75", "edge-76", "edge-77"}
    texts = [e.text for e in found.evidence if e.side == "broker"]
    assert len(texts) == len(set(texts))  # no line of the shared stretch twice
    assert any(s.startswith("broker/mosquitto.log.1 (lines 16 to its end are the first lines of broker/mosquitto.log")
               for s in analysis.skipped)
    sources = {s.info.path: s.info.lines_read for s in analysis.sources}
    assert sources["broker/mosquitto.log.1"] == 15


def test_a_rotated_copy_wholly_inside_the_live_log_is_not_read(tmp_path: Path) -> None:
    """logrotate's `copy` with the live log collected whole: every line of mosquitto.log.1 is the
    head of mosquitto.log."""
    folder = tmp_path / "rotated"
    shutil.copytree(SAMPLE, folder)
    rotated = (folder / "broker" / "mosquitto.log.1").read_text()
    tail = (folder / "broker" / "mosquitto.log").read_text().splitlines(keepends=True)
    shared = len(rotated.splitlines()) - 15
    (folder / "broker" / "mosquitto.log").write_text(rotated + "".join(tail[shared:]))
    analysis = analyze([folder])
    assert [(f.id, f.count) for f in analysis.findings] == [("auth.bad_credentials", 3)]
    assert "broker/mosquitto.log.1 (every line of it is in broker/mosquitto.log: read there)" in analysis.skipped
    assert [s.info.path for s in analysis.sources if s.info.source == "broker"] == ["broker/mosquitto.log"]


def test_files_that_share_a_line_but_no_stretch_are_left_whole(tmp_path: Path) -> None:
    """A line of one file equal to the other's first line ties nothing when the lines after it differ."""
    lines = (SAMPLE / "broker" / "mosquitto.log.1").read_text().splitlines(keepends=True)
    later = (SAMPLE / "broker" / "mosquitto.log").read_text().splitlines(keepends=True)
    (tmp_path / "mosquitto.log.1").write_text("".join(lines))
    (tmp_path / "mosquitto.log").write_text(lines[4] + "".join(later[3:]))
    found = find_overlaps([tmp_path / "mosquitto.log.1", tmp_path / "mosquitto.log"])
    assert not found.read_to and not found.inside
