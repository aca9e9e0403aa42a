"""Certificate inspection of uploaded files and the live probe of a broker: the `certs` and
`probe` commands over HTTP, with the same checks and root-cause ids."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile, status

from correlator.api.browsers import is_browser
from correlator.api.deps import SettingsDep
from correlator.api.models import ErrorOut, InspectOut, ProbeOut, ProbeRequest
from correlator.api.routes.analyses import ERRORS, parse_time
from correlator.api.settings import Settings
from correlator.artifacts.cert_checks import EXPIRY_WINDOW, inspect
from correlator.artifacts.certs import LoadResult, load_bytes
from correlator.artifacts.probe import probe

router = APIRouter(tags=["artifacts"])

#: Certificate files are small; a bigger one is a mistake (or a log sent to the wrong route).
MAX_CERT_FILE = 1024 * 1024


async def _load(files: list[UploadFile], password: str | None, what: str) -> LoadResult:
    loaded = LoadResult()
    for upload in files:
        data = await upload.read(MAX_CERT_FILE + 1)
        if len(data) > MAX_CERT_FILE:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"{what} file {upload.filename!r} is larger than {MAX_CERT_FILE} bytes")
        name = Path(upload.filename or what).name
        loaded.extend(load_bytes(data, path=name, password=password))
    return loaded


@router.post("/certificates/inspect", responses=ERRORS,
             summary="Facts and checks of uploaded certificates (expiry, host name, chain, key match, strength)")
async def inspect_certificates(
        files: Annotated[list[UploadFile], File(min_length=1, description="certificate files: PEM, DER or PKCS#12; "
                                                "keys may be included (only their public half is reported)")],
        ca: Annotated[list[UploadFile], File(default_factory=list, description="CA files the peer trusts")],
        host: Annotated[str | None, Form(max_length=253, description="the host name or IP clients dial")] = None,
        role: Annotated[Literal["server", "client"], Form(description="the role the leaf certificates are "
                                                          "checked for")] = "server",
        at: Annotated[str | None, Form(description="check validity at this time (ISO 8601 or epoch seconds; default "
                                       "now)",
                                       json_schema_extra={"format": "date-time"})] = None,
        window: Annotated[int, Form(ge=0, le=3650, description="warn when expiring within DAYS")] = EXPIRY_WINDOW.days,
        password: Annotated[str | None, Form(description="password of encrypted keys and PKCS#12 files")] = None,
) -> InspectOut:
    # a multipart form cannot say null: an empty field, or one saying 'null', means now
    when = parse_time("now" if at in (None, "", "null") else at, "at")
    assert when is not None
    loaded = await _load(files, password, "certificate")
    trust = await _load(ca, None, "CA")
    errors = [str(e) for e in (*loaded.errors, *trust.errors)]
    if not loaded.certs and not loaded.keys and not errors:
        errors.append("no certificate or key found in the files")
    try:
        found = inspect(loaded.certs, when, role=role, host=host or None, trust=trust.certs, keys=loaded.keys,
                        window=timedelta(days=window), errors=errors)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"cannot check at {when}: {exc}") from None
    return InspectOut.model_validate(found.to_dict())


async def allow_probe(request: Request, settings: SettingsDep) -> None:
    """The probe connects where its caller says: never for a web page (whatever its origin), and
    only when the server allows it (by default with a token)."""
    if is_browser(request.headers):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the probe does not answer web pages: call it from a script "
                            "or the command line")
    if not settings.probe_enabled:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the probe is off on this server: start it with a token, "
                            "or with --probe (and --probe-network to bound where it may connect)")


def _reachable_address(host: str, port: int, settings: Settings) -> str:
    """The address to probe, when `--probe-network` bounds where the probe may connect: every
    address the name resolves to must lie in an allowed network (a name that resolves to one
    allowed and one forbidden address is refused), and the probe dials the address checked, so a
    second resolution cannot lead it elsewhere."""
    if not settings.probe_networks:
        return host
    try:
        found = {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"cannot resolve {host!r}: {exc}") from None
    addresses = sorted(ipaddress.ip_address(a.partition("%")[0]) for a in found)
    outside = [a for a in addresses if not any(a in net for net in settings.probe_networks)]
    if outside or not addresses:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{host} ({', '.join(map(str, outside))}) is outside the "
                            "networks this server may probe (--probe-network)")
    return str(addresses[0])


@router.post("/probe", responses={**ERRORS, 403: {"model": ErrorOut, "description": "The probe is off, the caller "
                                                  "is a web page, or the host is outside the allowed networks"}},
             dependencies=[Depends(allow_probe)],
             summary="Connect to a broker as a client would: TCP, TLS handshake, the chain it presents, MQTT CONNECT")
async def probe_broker(body: ProbeRequest, settings: SettingsDep) -> ProbeOut:
    def run() -> ProbeOut:
        address = _reachable_address(body.host, body.port, settings)
        with tempfile.TemporaryDirectory(prefix="correlator-probe-") as temp:
            files: dict[str, Path | None] = {}
            for name, text in (("ca", body.ca_pem), ("cert", body.cert_pem), ("key", body.key_pem)):
                files[name] = None
                if text:
                    path = Path(temp) / f"{name}.pem"
                    path.touch(mode=0o600)
                    path.write_text(text)
                    files[name] = path
            if files["key"] is not None and files["cert"] is None:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, "key_pem needs cert_pem")
            mqtt = body.mqtt or not body.tls or body.username is not None or body.password is not None
            result = probe(address, body.port, tls=body.tls, ca=files["ca"], cert=files["cert"], key=files["key"],
                           key_password=body.key_password, servername=body.servername or body.host, mqtt=mqtt,
                           username=body.username, password=body.password, client_id=body.client_id,
                           timeout=body.timeout)
        return ProbeOut.model_validate({**result.to_dict(), "host": body.host})

    return await asyncio.to_thread(run)
