"""The server's state holds customer logs: private to its user (folders 700, files 600) whatever
the umask, and never named in a message. Errors name bundle members and the upload by its upload
name, not where the server keeps or unpacks them."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import SAMPLES, ServerFactory

LOG = (SAMPLES / "mixed" / "broker" / "mosquitto.log").read_bytes()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022), which makes files world-readable unless the server says otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _no_log_tar() -> bytes:
    """A .tar.gz reading 4 MB (past the small lane) with no log or artifact in it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = bytes(range(256)) * 16384
        member = tarfile.TarInfo("scans/scan.bin")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_state_folders_are_700_and_files_600(start_server: ServerFactory, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)  # as an older version left it
    server = start_server(state_dir=state)
    with server.client() as client:
        done = client.post("/analyses", content=LOG, params={"name": "mosquitto.log"})
        # a large bundle with nothing to analyse in it fails in the background, and keeps its upload
        # (a small one is refused at once, 422, and keeps nothing)
        failed = client.post("/analyses", content=_no_log_tar(), params={"name": "scans.tar.gz"})
        assert failed.status_code == 202
        deadline = time.monotonic() + 30
        while client.get(f"/analyses/{failed.json()['id']}").json()["status"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert done.json()["status"] == "done"
    folders = [state, *(p for p in state.rglob("*") if p.is_dir())]
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.parent.parent.name == "uploads" for p in files), "the failed analysis's upload is there"
    assert {p.name for p in files} >= {"correlator.sqlite3", "correlator.sqlite3-wal"}
    assert {str(p): oct(_mode(p)) for p in folders if _mode(p) != 0o700} == {}
    assert {str(p): oct(_mode(p)) for p in files if _mode(p) != 0o600} == {}


def _bundle() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("plant/broker/mosquitto.log", LOG)
        archive.writestr("plant/certs/ca.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        archive.writestr("plant/inner.tar.gz", b"\x1f\x8b" + os.urandom(100))
    return buffer.getvalue()


def test_no_message_names_a_server_path(start_server: ServerFactory, tmp_path: Path) -> None:
    server = start_server()
    state = str(server.settings.state_dir)
    with server.client() as client:
        bundle = client.post("/analyses", content=_bundle(), params={"name": "plant.zip"}).json()
        refused = client.post("/analyses", content=b"\x1f\x8b" + os.urandom(3000), params={"name": "x.log.gz"})
        broken = refused.json()
        single = client.post("/analyses", content=LOG, params={"name": "mosquitto.log"}).json()
        answers = [client.get(f"/analyses/{a['id']}{route}").text for a in (bundle, single)
                   for route in ("", "/sources", "/findings", "/timeline")]
    # a small upload with nothing to analyse is refused, named as the client named it
    assert refused.status_code == 422 and "nothing to analyse: x.log.gz:" in broken["message"], broken
    assert any(e.startswith("plant.zip!plant/certs/ca.pem:") for e in bundle["errors"]), bundle["errors"]
    assert any(e.startswith("plant.zip!plant/inner.tar.gz:") for e in bundle["errors"]), bundle["errors"]
    for text in [str(broken), str(bundle), str(single), *answers]:
        assert state not in text and tempfile.gettempdir() + os.sep not in text and "/uploads/" not in text, text
    assert '"path":"mosquitto.log"' in answers[5]  # the single log's source, by its upload name
