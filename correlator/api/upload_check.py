"""Refuse an upload that holds nothing to analyse, at once and with the reason, instead of a
`201 done` with no finding that reads as "nothing wrong": a PDF or random bytes (415), a text or
JSON body without one log line (422). Archives are opened by the analysis itself; when none of
their members is a log or an artifact, a small one is refused the same way (`nothing_to_analyse`)
and a large one ends failed with the reason.

Messages name the upload as the client named it, never a path on the server."""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException, status

from correlator.artifacts.client_config import read_client_configs
from correlator.errors import ArtifactError
from correlator.formats.registry import Registry
from correlator.sources.bundle import SNIFF_BYTES, classify, is_archive
from correlator.sources.lines import compression_of, text_encoding
from correlator.sources.paste import recognisable

#: What the first bytes of common non-log uploads say they are, for the message.
_MAGIC = ((b"%PDF", "a PDF document"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"GIF8", "a GIF image"), (b"\x7fELF", "a program (ELF)"), (b"MZ", "a Windows program"),
          (b"\xd0\xcf\x11\xe0", "an Office document"), (b"Rar!", "a RAR archive"),
          (b"7z\xbc\xaf", "a 7-Zip archive"), (b"SQLite format 3", "an SQLite database"))
#: What to send instead, in every refusal.
_WHAT = ("upload broker or client logs, certificates, mosquitto.conf, ACL or password files, or a .zip/.tar.gz "
         "of them")


def _what_it_is(head: bytes) -> str:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "binary data"


def check_upload(path: Path, name: str, registry: Registry, *, paste: bool) -> None:
    """Raise 415 or 422 when the single file at `path` (named `name` by the client) is no log
    line, certificate, key or broker configuration; archives and compressed logs pass."""
    if is_archive(path):
        return
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if compression_of(head) is not None:
        return
    kind = "log" if paste else classify(path)
    if kind in ("cert", "conf", "acl", "passwd"):
        return
    if kind != "log":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"{name} is {_what_it_is(head)}, not a log or a broker artifact: {_WHAT}")
    encoding = text_encoding(head) or "utf-8"
    text = head.decode(encoding, "replace")
    if not recognisable(text, registry):
        if not paste and _client_config(path):
            return
        if paste:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                "no log line recognised in the text: paste the log lines themselves (a broker's "
                                "or a client's), with their timestamps if they have them")
        what = "JSON" if text.lstrip().startswith(("{", "[")) else "text"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"no line of {name} ({what}) is a log line a known format reads, and it is no "
                            f"certificate, key or broker configuration: {_WHAT}; with their timestamps if "
                            "they have them")


def _client_config(path: Path) -> bool:
    """A client's configuration (Node-RED flows, a .json/.yaml/.ini/.toml naming a broker or a CA):
    an artifact, read as `analyze` reads it."""
    try:
        return bool(read_client_configs(path))
    except ArtifactError:
        return False


def nothing_to_analyse(message: str | None) -> bool:
    """Whether an analysis failed because its input held no log and no artifact."""
    return bool(message) and str(message).startswith("nothing to analyse")
