"""Analyses of uploaded bundles: upload, status, list, delete, and what an analysis found:
findings, one finding, the timeline, the sources."""

from __future__ import annotations

import asyncio
import hashlib
import re
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from starlette.datastructures import UploadFile

from correlator import time_input
from correlator.api import idempotency
from correlator.api.deps import AnalyserDep, AnalysisDep, FinishedDep, SettingsDep, StoreDep, off_loop
from correlator.api.jobs import JobRunner
from correlator.api.models import (
    AnalysisBrief,
    AnalysisList,
    AnalysisOut,
    ErrorOut,
    EventOut,
    FindingList,
    FindingOut,
    SourceList,
    Status,
    TimelinePage,
)
from correlator.api.private import open_private
from correlator.api.storage import AnalysisRow, KeyTaken, Store, TimelineQuery, iso
from correlator.api.upload_check import check_upload, nothing_to_analyse
from correlator.errors import TimeInputError
from correlator.model import Level, Severity, severity_rank
from correlator.sources.bundle import is_archive

router = APIRouter(tags=["analyses"])

CHUNK = 1024 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A bundle: .zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz, or one log or certificate file. "
                       "Send it as the raw body (any content type but multipart) or as the multipart field "
                       "`file`.",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary", "minLength": 1}},
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary", "minLength": 1}}}},
        },
    },
}

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Bad input"},
    404: {"model": ErrorOut, "description": "No such analysis or finding"},
    409: {"model": ErrorOut, "description": "The analysis is not finished (or failed)"},
    422: {"model": ErrorOut, "description": "Invalid parameters"},
}


def _sniffed_suffix(path: Path) -> str:
    """Name a raw upload by its content, so the bundle reader treats an archive as one."""
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return ".zip"
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        try:
            with tarfile.open(path, "r:*") as archive:
                archive.next()
            return {b"\x1f\x8b": ".tar.gz", b"BZ": ".tar.bz2"}.get(head[:2], ".tar.xz")
        except (tarfile.TarError, OSError, EOFError):
            return {b"\x1f\x8b": ".log.gz", b"BZ": ".log.bz2"}.get(head[:2], ".log.xz")
    if head[257:262] == b"ustar":
        return ".tar"
    return ".log"


def _upload_name(given: str | None, path: Path) -> str:
    name = _SAFE_NAME.sub("_", Path(given or "").name).strip("._") if given else ""
    if not name or not (is_archive(Path(name)) or "." in name):
        name = (name or "upload") + _sniffed_suffix(path)
    return name[:200]


async def _receive_upload(request: Request, target: Path) -> tuple[str | None, str]:
    """Stream the body (raw or the multipart `file` field) into `target`; the name the client
    gave, if any, and the SHA-256 of the bytes. The body limit is the middleware's
    (correlator.api.limits): it stops reading at the limit, so a client that lies about its size or
    sends chunked data cannot fill the disk."""
    digest = hashlib.sha256()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(status.HTTP_400_BAD_REQUEST, "multipart upload without a `file` field")
            with open_private(target) as out:
                while chunk := await upload.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
            return upload.filename, digest.hexdigest()
    with open_private(target) as out:
        async for chunk in request.stream():
            out.write(chunk)
            digest.update(chunk)
    return None, digest.hexdigest()


def analysis_out(row: AnalysisRow, queue_position: int | None = None) -> AnalysisOut:
    report = row.report or {}
    summary = report.get("summary")
    return AnalysisOut(id=row.id, name=row.name, status=_status(row.status), phase=row.phase,
                       queue_position=queue_position, progress=row.progress, events=row.events, size=row.size,
                       created=iso(row.created),
                       updated=iso(row.updated), message=row.message,
                       summary=summary or None,
                       artifacts=report.get("artifacts", {}), errors=report.get("errors", []),
                       skipped=report.get("skipped", []), notes=report.get("notes", []),
                       hosts=report.get("hosts", []))


def _status(value: str) -> Status:
    if value in ("queued", "running", "done", "failed"):
        return value  # type: ignore[return-value]
    return "failed"


@router.post("/analyses", status_code=status.HTTP_201_CREATED, openapi_extra=_UPLOAD_BODY,
             summary="Upload a bundle and analyse it",
             responses={**ERRORS, 202: {"model": AnalysisOut, "description": "Accepted: analysed in the "
                                        "background; poll the analysis until its status is done"},
                        200: {"model": AnalysisOut, "description": "The same bundle (by its bytes, or by its "
                              "Idempotency-Key) was uploaded before: its analysis"},
                        409: {"model": ErrorOut, "description": "The Idempotency-Key was used for another upload"},
                        413: {"model": ErrorOut, "description": "Upload larger than the server's limit"},
                        415: {"model": ErrorOut, "description": "The upload is binary data (a PDF, an image, "
                              "random bytes), not a log, certificate or configuration"},
                        422: {"model": ErrorOut, "description": "Nothing in the upload is a log line or an "
                              "artifact (or invalid parameters)"}})
async def create_analysis(request: Request, response: Response, settings: SettingsDep, store: StoreDep,
                          analyser: AnalyserDep,
                          name: Annotated[str | None, Query(max_length=200, description="File name of a raw upload "
                                                            "(its suffix says the archive type; sniffed if absent)")
                                          ] = None,
                          webhook: Annotated[str | None, Query(
                              max_length=2000, pattern=r"^https?://",
                              description="URL to POST to when the analysis finishes (signed with the "
                              "server's webhook_secret; see the README)")] = None,
                          idempotency_key: Annotated[str | None, Header(
                              alias=idempotency.HEADER, pattern=idempotency.PATTERN,
                              description="Any unique string (a UUID): a retry with the same key and bytes gets "
                              "the first request's analysis instead of a second one")] = None) -> AnalysisOut:
    """Answers 201 with the finished analysis for a small bundle, 202 with a queued one for a
    large bundle (larger than the server's `background_bytes`)."""
    key = idempotency_key
    analysis_id, folder = store.new_upload_dir()
    part = folder / "upload.part"
    try:
        given, digest = await _receive_upload(request, part)
        size = part.stat().st_size
        if size == 0:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "the upload is empty")
    except BaseException:
        _remove(folder)
        raise
    filename = _upload_name(given or name or ("paste.log" if _is_text(request) else None), part)
    upload = part.rename(folder / filename)
    try:
        await asyncio.to_thread(check_upload, upload, filename, request.app.state.registry,
                                paste=_is_text(request))
        known = await off_loop(store, idempotency.earlier, store, key, digest)
    except BaseException:  # refused, or the database does not answer: no upload left behind
        _remove(folder)
        raise
    if known is not None:
        _remove(folder)
        return await _known(known, request, response, analyser, store)
    try:
        row = await off_loop(store, store.create, analysis_id, filename, upload, size, digest=digest, idem_key=key,
                             webhook=webhook)
    except KeyTaken:  # the same key in two requests at once: the first one made it
        _remove(folder)
        raced = await off_loop(store, store.by_idempotency_key, key or "")
        if raced is None:
            raise
        return await _known(raced, request, response, analyser, store)
    except BaseException:
        _remove(folder)
        raise
    lane = await asyncio.to_thread(analyser.lane, upload)
    future = await asyncio.to_thread(analyser.submit, analysis_id, lane)  # the fleet's stores the bundle
    response.headers["Location"] = f"{request.url.path}/{analysis_id}"
    if lane == "small":
        await asyncio.wrap_future(future)
        done = await off_loop(store, store.get, analysis_id)
        if done is not None and done.status == "failed" and nothing_to_analyse(done.message):
            # an archive with no log or artifact in it: refused, not kept
            await off_loop(store, store.delete, analysis_id)
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{filename}: {done.message}")
        return analysis_out(done or row)
    response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Retry-After"] = str(retry_after(size))
    return analysis_out(row, analyser.position(analysis_id))


async def _known(row: AnalysisRow, request: Request, response: Response, analyser: JobRunner,
                 store: Store) -> AnalysisOut:
    """The answer to a retry or a bundle sent again: its analysis (200), awaited when it is a
    small one still running, as the first request would have been."""
    waiting = analyser.future(row.id, lane="small")
    if waiting is not None:
        await asyncio.wrap_future(waiting)
        again = await off_loop(store, store.get, row.id)
        row = again or row
    response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"{request.url.path}/{row.id}"
    return analysis_out(row, analyser.position(row.id) if row.status == "queued" else None)


#: Bytes of bundle a worker analyses in a second, roughly (benchmarks/api.py): for Retry-After.
ANALYSED_PER_SECOND = 20 * 1024**2


def retry_after(size: int) -> int:
    """Seconds a client should wait before it polls an analysis of `size` bytes: about the time
    it takes, from 1 to 30."""
    return max(1, min(30, round(size / ANALYSED_PER_SECOND)))


def _is_text(request: Request) -> bool:
    """A text/plain body is a pasted excerpt (as a support ticket carries it), not a bundle."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "text/plain"


def _remove(folder: Path) -> None:
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()


@router.get("/analyses", summary="The kept analyses, newest first", responses=ERRORS)
async def list_analyses(store: StoreDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
                  state: Annotated[Status | None, Query(alias="status")] = None) -> AnalysisList:
    total, rows = await off_loop(store, store.page, limit, offset, state)
    items = []
    for row in rows:
        summary = (row.report or {}).get("summary") or {}
        items.append(AnalysisBrief(id=row.id, name=row.name, status=_status(row.status), progress=row.progress,
                                   created=iso(row.created), findings=summary.get("findings"),
                                   worst_severity=summary.get("worst_severity")))
    return AnalysisList(total=total, items=items)


@router.get("/analyses/{analysis_id}", summary="Status, progress and summary of an analysis", responses=ERRORS)
async def get_analysis(row: AnalysisDep, analyser: AnalyserDep) -> AnalysisOut:
    return analysis_out(row, analyser.position(row.id) if row.status == "queued" else None)


@router.delete("/analyses/{analysis_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS,
               summary="Delete an analysis with its timeline (a running one is stopped)")
def delete_analysis(row: AnalysisDep, store: StoreDep, analyser: AnalyserDep) -> None:
    analyser.cancel(row.id)
    store.delete(row.id)


def _finding_out(key: str, data: dict[str, Any]) -> FindingOut:
    return cast(FindingOut, {"key": key, **data})  # checked against the schema as the response


@router.get("/analyses/{analysis_id}/findings", summary="Findings of an analysis, worst first", responses=ERRORS)
async def list_findings(row: FinishedDep, store: StoreDep,
                  severity: Annotated[list[Severity] | None, Query(description="only these severities")] = None,
                  min_severity: Annotated[Severity | None, Query(description="this severity or worse")] = None,
                  id: Annotated[list[str] | None, Query(description="root-cause ids; 'tls.' matches a whole area")
                                ] = None,
                  client: Annotated[list[str] | None, Query(description="affecting one of these clients")] = None,
                  host: Annotated[list[str] | None, Query(description="on one of these hosts of the bundle")] = None,
                  ) -> FindingList:
    found = await off_loop(store, store.findings, row.num)
    items = []
    floor = severity_rank(min_severity) if min_severity else 0
    for key, data in found:
        if severity and data["severity"] not in severity:
            continue
        if severity_rank(data["severity"]) < floor:
            continue
        if id and not any(data["id"] == i or (i.endswith(".") and data["id"].startswith(i)) for i in id):
            continue
        if client and not set(client) & set(data["clients"]):
            continue
        if host and data.get("host", "") not in host:
            continue
        items.append(_finding_out(key, data))
    return FindingList(analysis_id=row.id, total=len(items), items=items)


@router.get("/analyses/{analysis_id}/findings/{key}", responses=ERRORS,
            summary="One finding with its explanation, evidence (file:line) and remediation")
async def get_finding(row: FinishedDep, store: StoreDep, key: str) -> FindingOut:
    data = await off_loop(store, store.finding, row.num, key)
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"analysis {row.id} has no finding {key!r}")
    return _finding_out(key, data)


def parse_time(value: str | None, name: str) -> datetime | None:
    """A time parameter in the one grammar of `correlator.time_input`; 422 with its message."""
    if value is None:
        return None
    try:
        return time_input.parse_time(value, name)
    except TimeInputError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


def _epoch(value: str | None, name: str) -> float | None:
    parsed = parse_time(value, name)
    return None if parsed is None else parsed.timestamp()


TimeQuery = Annotated[str | None, Query(description="ISO 8601 or epoch seconds; UTC when no zone",
                                        json_schema_extra={"format": "date-time"},
                                        examples=["2026-11-23T14:42:30Z", "1795444950"])]


# The timeline stays a plain `def` (run in the thread pool): a filtered or text query may scan
# many rows, and the event loop must keep serving meanwhile. The cheap reads above are async.
@router.get("/analyses/{analysis_id}/timeline", responses=ERRORS,
            summary="The merged timeline of an analysis, one page at a time, filtered")
def get_timeline(row: FinishedDep, store: StoreDep,
                 after: Annotated[int, Query(ge=0, le=2**62, description="cursor: the `next_cursor` of the "
                                             "previous page (0: from the start)")] = 0,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 since: TimeQuery = None,
                 until: TimeQuery = None,
                 source: Annotated[list[str] | None, Query(description="source names, e.g. broker, "
                                                           "client:edge-02")] = None,
                 client: Annotated[list[str] | None, Query(description="client ids")] = None,
                 kind: Annotated[list[str] | None, Query(description="event kinds; 'tls.' or 'tls.*' matches an "
                                                         "area")] = None,
                 level: Annotated[list[Level] | None, Query(description="event levels")] = None,
                 q: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$",
                                                description="text the raw line contains (no NUL character: "
                                                            "neither store can search for one)")] = None,
                 ) -> TimelinePage:
    query = TimelineQuery(after=after, limit=limit, since=_epoch(since, "since"), until=_epoch(until, "until"),
                          sources=source or (),
                          clients=client or (), kinds=kind or (), levels=level or (), text=q or None)
    try:
        items, cursor = store.timeline(row.num, query)
    except OverflowError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "a time or cursor is out of range") from None
    return TimelinePage(analysis_id=row.id, items=[EventOut.model_validate(i) for i in items], next_cursor=cursor)


@router.get("/analyses/{analysis_id}/sources", responses=ERRORS,
            summary="The logs of an analysis: format, zone and how it was chosen, offset, line counts")
async def list_sources(row: FinishedDep) -> SourceList:
    sources = (row.report or {}).get("sources", [])
    return SourceList(analysis_id=row.id, items=sources)
