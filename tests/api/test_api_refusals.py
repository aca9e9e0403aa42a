"""Uploads with nothing to analyse, against a real server: refused at once with the reason (415
for binary data, 422 for text without a log line), never `201 done` with no finding, and never a
path of the server in any message."""

from __future__ import annotations

import codecs
import io
import json
import random
import this  # prints its text once on import; the module holds it rot13-coded in `s`
import zipfile
import zlib
from pathlib import Path

import pytest
from api_helpers import SAMPLES, ServerFactory


def pdf_document() -> bytes:
    """A one-page PDF as PDF writers make them: binary marker comment, a deflated content stream,
    an xref table."""
    stream = zlib.compress(b"BT /F1 24 Tf 72 720 Td (Broker down since Monday) Tj ET")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


#: Prose with no log line in it: the Zen of Python, as `import this` holds it.
PROSE = codecs.decode(this.s, "rot13").encode()


@pytest.mark.parametrize(("name", "body", "status", "says"), [
    ("notes.txt", PROSE, 422, "no line of notes.txt (text) is a log line"),
    ("ticket.json", json.dumps({"ticket": 4711, "summary": "broker refuses the HMI"}).encode(), 422,
     "no line of ticket.json (JSON) is a log line"),
    ("manual.pdf", pdf_document(), 415, "manual.pdf is a PDF document, not a log"),
    (None, random.Random(415).randbytes(200_000), 415, "is binary data, not a log"),
    ("attachments.zip", zipped("manual.pdf", pdf_document()), 422, "attachments.zip: nothing to analyse"),
], ids=["prose", "json", "pdf", "random-bytes", "zipped-pdf"])  # seeded: every run collects the same tests
def test_an_upload_with_nothing_to_analyse_is_refused_with_the_reason(
        start_server: ServerFactory, tmp_path: Path, name: str | None, body: bytes, status: int, says: str) -> None:
    server = start_server()
    with server.client() as client:
        response = client.post("/analyses", content=body, params={"name": name} if name else {})
        assert response.status_code == status, response.text
        message = response.json()["message"]
        assert says in message
        assert str(tmp_path) not in message and "/uploads/" not in message
        assert client.get("/analyses").json()["total"] == 0  # nothing kept
    assert list((tmp_path / "state" / "uploads").iterdir()) == []


def test_a_lone_certificate_or_config_is_accepted(start_server: ServerFactory) -> None:
    server = start_server()
    conf = next(SAMPLES.glob("*/broker/mosquitto.conf"))
    flows = SAMPLES / "node_red_untrusted_ca" / "nodered" / "flows.json"  # a client's configuration
    with server.client() as client:
        response = client.post("/analyses", content=conf.read_bytes(), params={"name": "mosquitto.conf"})
        assert response.status_code == 201, response.text
        assert response.json()["artifacts"]["configs"] == 1
        response = client.post("/analyses", content=flows.read_bytes(), params={"name": "flows.json"})
        assert response.status_code == 201, response.text
