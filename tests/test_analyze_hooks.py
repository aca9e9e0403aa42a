"""analyze()'s progress and cancellation hooks, and the TUI reading a bundle through them: progress
is the bytes of the logs read against their size, a cancelled analysis stops at the next batch and
leaves no extracted folder behind, and the TUI extracts an archive once."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import pytest

from correlator import analysis
from correlator.analysis import Progress, analyze
from correlator.cancel import Cancelled, CancelToken
from correlator.model import Event
from correlator.sources import bundle as bundle_module
from correlator.sources.archives import Budget
from correlator.sources.bundle import open_bundle
from correlator.tui.sources import analyse_with_events

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
MIXED = SAMPLES / "mixed"


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, Path(folder.name) / file.relative_to(folder))
    return target


def test_progress_counts_the_bytes_of_the_logs_and_ends_finishing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "PROGRESS_EVERY", 0.0)  # every block reports
    seen: list[Progress] = []
    result = analyze([MIXED], on_progress=seen.append)
    with open_bundle([MIXED]) as bundle:
        size = sum(path.stat().st_size for path in bundle.logs)
    reading = [p for p in seen if p.phase == "reading"]
    assert reading, "a report per block read"
    assert all(p.total == size for p in seen)
    assert [p.read for p in reading] == sorted(p.read for p in reading)
    assert reading[-1].read == size and reading[-1].share == 1.0
    assert seen[-1].phase == "finishing" and seen[-1].share == 1.0
    assert seen[-1].events == result.events
    assert [p for p in seen if p.phase == "finishing"] == [seen[-1]]


def test_a_cancelled_analysis_stops_at_the_next_batch_and_removes_what_it_extracted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _zip(MIXED, tmp_path / "mixed.zip")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    token = CancelToken()
    batches: list[list[Event]] = []

    def take(events: list[Event]) -> None:
        batches.append(events)
        token.cancel()  # asked from the hook; the hook itself raises nothing

    with pytest.raises(Cancelled):
        analyze([archive], on_events=take, cancel=token)
    assert len(batches) == 1
    assert not list(scratch.iterdir()), "the extracted bundle is removed"


def test_a_token_cancelled_before_the_start_reads_nothing() -> None:
    token = CancelToken()
    token.cancel()
    batches: list[list[Event]] = []
    with pytest.raises(Cancelled):
        analyze([MIXED], on_events=batches.append, cancel=token)
    assert batches == []


def test_the_tui_extracts_an_archive_once_and_shows_the_cli_findings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _zip(MIXED, tmp_path / "mixed.zip")
    expanded: list[Path] = []
    expand = bundle_module._expand

    def counting(bundle: bundle_module.Bundle, budget: Budget, path: Path, *rest: object,
                 **named: object) -> None:
        expanded.append(path)
        expand(bundle, budget, path, *rest, **named)  # type: ignore[arg-type]

    monkeypatch.setattr(bundle_module, "_expand", counting)
    source = analyse_with_events([archive])
    try:
        assert expanded == [archive]
        cli = analyze([archive])
        assert [(f.id, f.group) for f in source.findings()] == [(f.id, f.group) for f in cli.findings]
        assert len(source.store) > 0
    finally:
        source.stop()
