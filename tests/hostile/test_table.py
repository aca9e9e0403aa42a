"""One test per row of issue 16's table (the storms' caps are also in test_bounded_state.py, the
HTTP rows and a non-UTF-8 name through the API in tests/api/test_api_hostile.py, rotation in
tests/test_tail.py, a user's catastrophic pattern in test_patterns.py): each builds its case with
corpus.py, asserts the exact error, and that the healthy incident packed beside it is still found.
Sizes are smaller than the issue's where the limit under test is lowered to match; the storms run
at the issue's sizes in benchmarks/hostile.py. (The storm's API row, cancelling a running analysis,
is the API's: tests/api.)"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from hostile import corpus

from correlator.analysis import analyze
from correlator.cli import main
from correlator.report_model import Analysis
from correlator.sources import archives
from correlator.sources.archives import remove_stale_temp


@pytest.fixture(autouse=True)
def own_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Extraction folders go to the test's own temp, so a test can see what is left behind."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    return temp


def healthy(analysis: Analysis) -> None:
    assert corpus.HEALTHY_CAUSE in {f.id for f in analysis.findings}


def test_a_reconnect_storm_is_folded_and_said_and_the_incident_beside_it_found(tmp_path: Path) -> None:
    analysis = analyze([corpus.reconnect_storm(tmp_path, lines=30_000)])
    healthy(analysis)
    assert analysis.errors == [] and analysis.events > 30_000
    # each accept ends the one before on its port; those let go beyond the caps are counted and said
    assert any(re.match(r"[\d,]+ connections were let go before they ended \([\d,]+ from 127\.0\.0\.1\)", note)
               for note in analysis.notes)


def test_a_storm_packed_small_is_refused_as_a_bomb_and_the_incident_beside_it_found(tmp_path: Path) -> None:
    bundle = corpus.storm_tar_xz(tmp_path, lines=30_000)
    assert bundle.stat().st_size < 20_000  # 30,000 lines in a few KB
    analysis = analyze([bundle])
    healthy(analysis)
    (error,) = analysis.errors
    assert re.fullmatch(r".*storm\.tar\.xz: refused archive member 'storm/mosquitto\.log': compression ratio "
                        r"[\d,]+:1 looks like a decompression bomb", error)


def test_the_mixed_sample_beside_a_busy_broker_keeps_its_causes(tmp_path: Path) -> None:
    expected = json.loads((corpus.SAMPLES / "mixed" / "expected.json").read_text())
    analysis = analyze([corpus.mixed_plus_busy(tmp_path, lines=20_000)])
    assert analysis.errors == []
    assert {cause["id"] for cause in expected["root_causes"]} <= {f.id for f in analysis.findings}


def test_tar_xz_of_zeros_is_refused_member_by_member_before_it_reaches_the_disk(tmp_path: Path) -> None:
    analysis = analyze([corpus.tar_xz_zeros(tmp_path, member_mb=64)])
    bombs = [e for e in analysis.errors if "looks like a decompression bomb" in e]
    assert len(bombs) == 4 and all("zeros.tar.xz: refused archive member 'dump/zeros-" in e for e in bombs)
    healthy(analysis)


def test_nesting_does_not_multiply_the_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archives, "MAX_FILES", 500)
    analysis = analyze([corpus.nested_archives(tmp_path, inner=3, files=200)])
    (error,) = analysis.errors
    assert error.startswith("nested.zip!inner-2.zip: refused: more than 500 files in the input (at member")
    healthy(analysis)


def test_small_members_are_ratio_checked_too(tmp_path: Path) -> None:
    analysis = analyze([corpus.small_members(tmp_path, members=20)])
    assert len(analysis.errors) == 20
    assert all("looks like a decompression bomb" in e for e in analysis.errors)
    healthy(analysis)


def test_a_deep_tree_is_one_error_and_leaves_no_temp(tmp_path: Path, own_temp: Path) -> None:
    analysis = analyze([corpus.deep_folders(tmp_path)])
    (error,) = analysis.errors
    assert error.endswith(": 1,201 folders deep (at most 64)") and "deep.zip: refused archive member 'd/d/" in error
    healthy(analysis)
    assert list(own_temp.iterdir()) == []


def test_a_long_first_name_is_extracted_under_a_short_one_and_shown_as_it_was(tmp_path: Path) -> None:
    analysis = analyze([corpus.long_first_name(tmp_path)])
    assert analysis.errors == []
    healthy(analysis)
    assert f"long-name.zip!{corpus.LONG_NAME}" in {s.info.path for s in analysis.sources}


def test_a_file_folder_name_clash_loses_nothing(tmp_path: Path) -> None:
    analysis = analyze([corpus.name_clash(tmp_path)])
    assert analysis.errors == []
    healthy(analysis)
    assert "clash.zip!healthy/clients" in {s.info.path for s in analysis.sources}


def test_a_lying_size_header_is_one_member_error(tmp_path: Path) -> None:
    analysis = analyze([corpus.lying_size(tmp_path)])
    (error,) = analysis.errors
    assert error.endswith("lying.zip: archive member 'liar.log' is damaged: Bad CRC-32 for file 'liar.log'")
    healthy(analysis)


def test_a_truncated_zip_gives_its_complete_members(tmp_path: Path) -> None:
    analysis = analyze([corpus.truncated_zip(tmp_path)])
    assert [e.split(": ", 1)[1] for e in analysis.errors] == [
        "the zip has no central directory (cut off?): its members are read by their local headers",
        "cannot read archive after 7 members: the zip ends inside member 'tail/big.log'"]
    healthy(analysis)


def test_utf16_logs_are_decoded(tmp_path: Path) -> None:
    analysis = analyze([corpus.utf16_logs(tmp_path)])
    assert analysis.skipped == [] and analysis.errors == []
    healthy(analysis)
    assert all(s.info.unparsed == 0 for s in analysis.sources)


@pytest.mark.parametrize("output", ["text", "md", "html", "json"])
def test_a_member_name_that_is_not_utf8_is_reported_escaped(tmp_path: Path, output: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / f"report.{output}"
    code = main(["analyze", str(corpus.non_utf8_name(tmp_path)), "--format", output, "-o", str(report)])
    assert code == 5  # tls.server_cert_expired is critical
    text = report.read_text(encoding="utf-8")
    if output == "json":
        text = " ".join(source["path"] for source in json.loads(text)["sources"])
    assert "healthy/broker/mosquitto-caf\\xe9.log" in text


def test_binary_garbage_is_sorted_out_in_its_first_block(tmp_path: Path) -> None:
    start = time.monotonic()
    analysis = analyze([corpus.binary_garbage(tmp_path)])
    assert time.monotonic() - start < 10
    assert sorted(analysis.skipped)[:5] == [f"garbage-{i}.log (binary)" for i in range(5)]
    healthy(analysis)


def test_lost_members_never_read_as_no_root_cause_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "only-bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../escape.log", "1795444795: x\n")
        zf.writestr("broker/mosquitto.log", "1795444795: mosquitto version 2.0.11 running\n")
    assert main(["analyze", str(path)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "No root cause found in what could be read: 1 error kept part of the input from being read" in out


def test_sigterm_removes_the_extraction_folders(tmp_path: Path, own_temp: Path) -> None:
    # 16 GB of zeros (4.6 MB packed, written in a second): minutes to read through, killed long before
    bundle = corpus.tar_xz_zeros(tmp_path, member_mb=4096)
    env = dict(os.environ, TMPDIR=str(own_temp))
    process = subprocess.Popen([sys.executable, "-m", "correlator", "analyze", str(bundle)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not list(own_temp.glob("correlator-bundle-*/healthy")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(own_temp.glob("correlator-bundle-*")), "extraction never began"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM
    assert b"Traceback" not in err
    assert list(own_temp.iterdir()) == []


def test_a_server_start_removes_what_a_killed_process_left(own_temp: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = own_temp / f"{archives.TEMP_PREFIX}{dead.pid}-abc123"
    (left / "healthy").mkdir(parents=True)
    mine = archives.make_temp()
    assert remove_stale_temp() == [left]
    assert not left.exists() and mine.exists()
