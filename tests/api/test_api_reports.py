"""Reports over HTTP and the one finding key scheme, against a real server: the report route
serves the bytes `correlator analyze -o` writes for the same bundle, chosen by `format` or
Accept; findings are addressed by rule id and group hash in batch as in live."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from api_helpers import SAMPLES, ServerFactory

from correlator.api.finding_keys import finding_key

#: The one line that differs between two runs: when the report was made.
_MADE_AT = re.compile(r'("made_at": ")[^"]+"|(made )\d{4}-\d\d-\d\d[ T][\d:.]+( UTC|Z)?')


#: The server reads every line (its timeline pages through all of them), `analyze` counts routine
#: traffic in bulk: a connection whose only lines are routine is counted by the first alone. The
#: findings and everything else are the same.
_CONNECTIONS = re.compile(r'"connections": \d+')


def stable(text: str) -> str:
    return _CONNECTIONS.sub('"connections": <n>', _MADE_AT.sub(r"\1\2<made>", text))


@pytest.mark.parametrize("fmt", ["text", "md", "html", "json"])
def test_the_report_is_what_analyze_writes(start_server: ServerFactory, mixed_zip: Path, tmp_path: Path,
                                          fmt: str) -> None:
    server = start_server()
    with server.client() as client:
        created = client.post("/analyses", params={"name": "mixed.zip"}, content=mixed_zip.read_bytes())
        assert created.status_code == 201, created.text
        served = client.get(f"/analyses/{created.json()['id']}/report", params={"format": fmt})
    assert served.status_code == 200, served.text
    here = tmp_path / "cli"
    here.mkdir()
    shutil.copy(mixed_zip, here / "mixed.zip")
    out = subprocess.run([sys.executable, "-m", "correlator", "analyze", "mixed.zip", "--format", fmt, "-o",
                          f"report.{fmt}"], cwd=here, capture_output=True, text=True, check=False)
    assert out.returncode in (0, 3, 4, 5), out.stderr
    written = (here / f"report.{fmt}").read_text(encoding="utf-8")
    assert stable(served.text) == stable(written)
    assert str(server.settings.state_dir) not in served.text  # no server path anywhere
    assert "mixed.zip!mixed/" in served.text  # files named within the bundle


def test_accept_chooses_the_format(start_server: ServerFactory, mixed_zip: Path) -> None:
    server = start_server()
    with server.client() as client:
        analysis = client.post("/analyses", params={"name": "mixed.zip"}, content=mixed_zip.read_bytes()).json()
        url = f"/analyses/{analysis['id']}/report"
        markdown = client.get(url, headers={"Accept": "text/markdown"})
        assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
        assert markdown.text.startswith("# correlator report: mixed.zip")
        assert markdown.headers["content-disposition"] == 'inline; filename="mixed-report.md"'
        assert client.get(url, headers={"Accept": "text/html;q=0.5, text/plain"}).text.startswith("correlator")
        assert client.get(url, headers={"Accept": "*/*"}).json()["summary"]["findings"] == 3
        refused = client.get(url, headers={"Accept": "image/png"})
        assert refused.status_code == 406 and "text/markdown" in refused.json()["message"]
        assert client.get(url, params={"format": "pdf"}).status_code == 422


def test_batch_and_live_findings_share_one_key_scheme(start_server: ServerFactory, mixed_zip: Path,
                                                      tmp_path: Path) -> None:
    tarred = tmp_path / "mixed.tar.gz"
    with tarfile.open(tarred, "w:gz") as archive:
        archive.add(SAMPLES / "mixed", "mixed")
    server = start_server(live_paths=[SAMPLES / "mixed"])
    with server.client() as client:
        keys = []
        for bundle, name in ((mixed_zip, "mixed.zip"), (tarred, "mixed.tar.gz")):
            analysis = client.post("/analyses", params={"name": name}, content=bundle.read_bytes()).json()
            found = client.get(f"/analyses/{analysis['id']}/findings").json()["items"]
            assert all(f["key"] == finding_key(f["id"], f["group"], f.get("host")) for f in found)
            keys.append(sorted(f["key"] for f in found))
            for finding in found:  # every key addresses its finding
                one = client.get(f"/analyses/{analysis['id']}/findings/{finding['key']}")
                assert one.status_code == 200 and one.json()["id"] == finding["id"]
        assert keys[0] == keys[1], "the same logs give the same keys in every analysis"
        live = client.get("/live/findings").json()["items"]
        assert live and all(f["key"] == finding_key(f["id"], f["group"], f.get("host")) for f in live)
        assert {f["key"] for f in live} & set(keys[0])
