"""The layering the design promises: the core never imports textual (the data side of the TUI
neither), and the timeline store keeps offsets, not lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tui_helpers import SAMPLES

from correlator.model import Event
from correlator.tui.event_store import EventStore, Filter


def test_core_never_imports_textual() -> None:
    code = ("import sys\n"
            "import correlator.analysis, correlator.live_analysis, correlator.engine.evaluate\n"
            "import correlator.formats.parse\n"
            "import correlator.tui.event_store, correlator.tui.sources, correlator.tui.screen_text\n"
            "from correlator.tui.sources import analyse_with_events\n"
            f"analyse_with_events([{str(SAMPLES / 'server_cert_expired')!r}])\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'fastapi'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _log(path: Path, count: int) -> list[Event]:
    """A broker log written to disk and its events with their real byte offsets."""
    events = []
    offset = 0
    with path.open("w") as out:
        for i in range(count):
            text = f"{1795444800 + i // 10}: Client edge-{i % 7:02d} line {i}"
            out.write(text + "\n")
            level = "error" if i % 100 == 0 else "info"
            events.append(Event(ts=1795444800 + i / 10, time_text="", source="broker" if i % 3 else "client:edge-02",
                                file=str(path), line=i + 1, kind="tls.error" if i % 100 == 0 else "mqtt.publish",
                                raw=text, level=level, offset=offset,
                                fields={"client_id": f"edge-{i % 7:02d}"}))
            offset += len(text) + 1
    return events


def test_store_keeps_offsets_and_reads_lines_back(tmp_path: Path) -> None:
    events = _log(tmp_path / "broker.log", 20_000)
    store = EventStore()
    store.extend(events)
    assert len(store) == 20_000
    assert store.nbytes() < 40 * len(store)  # about 30 bytes a row, never the text
    assert not store._raw  # every line can be read back from its file
    for row in (0, 1, 9_999, 19_999):
        assert store.text(row) == events[row].raw
    errors = store.matches(Filter(min_level="error"))
    assert errors is not None and list(errors) == list(range(0, 20_000, 100))
    edge = store.matches(Filter(client="edge-03", sources=frozenset({"broker"})))
    assert edge is not None and all(events[r].fields["client_id"] == "edge-03" and events[r].source == "broker"
                                    for r in edge)
    assert store.find_line(str(tmp_path / "broker.log"), 12_346, near=events[12_345].ts) == 12_345
    assert store.find_line("broker.log", 7) == 6  # evidence named relative to a bundle


def test_store_keeps_the_text_when_the_file_cannot_be_read_back(tmp_path: Path) -> None:
    event = Event(ts=1.0, time_text="", source="broker", file=str(tmp_path / "gone.log"), line=1, kind="other",
                  raw="kept in memory", offset=0)
    store = EventStore()
    store.extend([event])
    assert store.text(0) == "kept in memory"


def test_a_followed_log_missing_at_its_name_is_read_back_where_it_is(tmp_path: Path) -> None:
    """Rows of a followed log whose name is missing when the store first meets it (renamed by a
    rotation, the writer not reopened yet) are read back from the file that holds them
    (`EventStore.locate`, LiveAnalysis.read_back), not kept as unreadable."""
    name = str(tmp_path / "mosquitto.log")
    old = tmp_path / "mosquitto.log.1"
    old.write_bytes(b"first\nsecond\n")
    fd = os.open(old, os.O_RDONLY)
    try:
        store = EventStore()
        store.locate = lambda file, offset: (fd, offset) if file == name else None
        event = Event(ts=1.0, time_text="", source="broker", file=name, line=2, kind="other", raw="second", offset=6)
        store.extend([event])
        assert store.readable_files() == {0: name} and not store.kept_rows()
        assert store.text(0) == "second"
    finally:
        os.close(fd)


def test_the_command_line_loads_textual_only_when_a_tui_runs() -> None:
    code = ("import sys\n"
            "from correlator.cli import build_parser\n"
            "build_parser().parse_args(['watch', '.'])\n"
            "build_parser().parse_args(['tui', '.'])\n"
            "assert 'textual' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_watch_and_tui_refuse_a_missing_path(tmp_path: Path) -> None:
    for command in ("watch", "tui"):
        done = subprocess.run([sys.executable, "-m", "correlator", command, str(tmp_path / "nope")],
                              capture_output=True, text=True)
        assert done.returncode == 2
        assert "no such file or folder" in done.stderr
