"""A topic holding `ESC ] 52 ; c ; ... BEL ESC [ 2J` (write the clipboard, clear the screen) never
reaches a terminal raw: the text, Markdown and HTML reports show control characters as their
pictures, and the JSON report escapes them as JSON does (the data itself is kept)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_text import CONTROL, TOPIC, plant

from correlator.printable import printable, printable_lines


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plant(tmp_path_factory.mktemp("escapes"))


def test_printable_shows_what_a_terminal_would_obey() -> None:
    assert printable("a\x1b]52;c;QQ==\x07b") == "a␛]52;c;QQ==␇b"
    assert printable("\x9b31m\u202eevil") == "\ufffd31m\ufffdevil"
    assert printable_lines("one\x1b[2J\ntwo\r") == "one␛[2J\ntwo␍"


@pytest.mark.parametrize("fmt", ["text", "md", "html"])
def test_text_reports_show_control_characters_never_send_them(bundle: Path, fmt: str) -> None:
    result = subprocess.run([sys.executable, "-m", "correlator", "analyze", str(bundle), "--format", fmt],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 4, result.stderr
    assert not CONTROL.search(result.stdout), repr(CONTROL.findall(result.stdout)[:5])
    assert "␛]52;c;Y3VybCBldmlsIHwgc2g=␇␛[2J" in result.stdout  # the evidence is shown, made harmless


def test_json_escapes_them_and_keeps_the_data(bundle: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "correlator", "analyze", str(bundle), "--format", "json"],
                            capture_output=True, text=True, timeout=120)
    assert not CONTROL.search(result.stdout)
    report = json.loads(result.stdout)
    texts = [ref["text"] for f in report["findings"] for ref in f["evidence"]]
    assert any(TOPIC in text for text in texts)
