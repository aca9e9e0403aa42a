"""One body limit for every route, enforced while the body arrives: a declared oversize body is
refused before it is read, a chunked one at the first chunk past the limit, so neither memory nor
disk grows with what a client sends."""

from __future__ import annotations

import select
import socket

import pytest
from api_helpers import ServerFactory

from correlator.api.limits import SMALL_BODY

MB = 1024**2
LIMIT = 2 * MB


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    try:
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            more = sock.recv(65536)
            if not more:
                break
            data += more
    except ConnectionResetError:
        pass
    return data


def _head(port: int, path: str, content_type: str, framing: str) -> bytes:
    return (f"POST /api/v1{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
            f"{framing}\r\n\r\n").encode()


ROUTES = [("/certificates/inspect", "multipart/form-data; boundary=b0und"), ("/probe", "application/json"),
          ("/analyses", "application/octet-stream")]


@pytest.mark.parametrize(("path", "content_type"), ROUTES)
def test_a_declared_oversize_body_is_refused_before_it_is_read(start_server: ServerFactory, path: str,
                                                                content_type: str) -> None:
    server = start_server(max_upload_bytes=LIMIT)
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_head(port, path, content_type, f"Content-Length: {1024 * MB}"))  # 1 GB announced, none sent
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"status":413' in answer and b"larger than the limit" in answer


@pytest.mark.parametrize(("path", "content_type"), ROUTES)
def test_a_chunked_body_is_cut_off_at_the_limit(start_server: ServerFactory, path: str, content_type: str) -> None:
    server = start_server(max_upload_bytes=LIMIT)
    port = int(server.url.rsplit(":", 1)[1])
    chunk = b"a" * 65536
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_head(port, path, content_type, "Transfer-Encoding: chunked"))
        if path == "/probe":
            sock.sendall(b'5\r\n{"a":\r\n')
        elif path == "/certificates/inspect":
            part = b'--b0und\r\nContent-Disposition: form-data; name="files"; filename="a.pem"\r\n\r\n'
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        while sent < 64 * MB and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    limit = LIMIT if path == "/analyses" else min(LIMIT, SMALL_BODY if path == "/probe" else LIMIT)
    assert sent < limit + 8 * MB, f"{sent} bytes were taken in before the refusal"
    with server.client() as client:
        assert client.get("/analyses").json()["total"] == 0
    assert not list((server.settings.state_dir / "uploads").iterdir())
