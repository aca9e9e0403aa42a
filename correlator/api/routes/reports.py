"""An analysis's report as a file: the text, Markdown, HTML or JSON that `correlator analyze -o`
writes for the same bundle, byte for byte (titled with the upload's name). Rendered once when the
analysis finishes (api/worker.py) and kept with it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Response, status

from correlator.api.deps import FinishedDep, StoreDep, off_loop
from correlator.api.models import ErrorOut
from correlator.api.routes.analyses import ERRORS
from correlator.reports.files import FORMATS, ReportFormat

router = APIRouter(tags=["analyses"])

MEDIA_TYPES: dict[ReportFormat, str] = {"text": "text/plain", "md": "text/markdown", "html": "text/html",
                                        "json": "application/json"}
SUFFIXES: dict[ReportFormat, str] = {"text": "txt", "md": "md", "html": "html", "json": "json"}


def negotiate(accept: str | None) -> ReportFormat | None:
    """The format an Accept header asks for first (by q, then order), JSON for */* or none;
    None when it names no type we have."""
    if not accept:
        return "json"
    choices: list[tuple[float, int, ReportFormat]] = []
    for order, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        media = media.lower()
        if media in ("*/*", "application/*"):
            choices.append((quality, order, "json"))
        elif media == "text/*":
            choices.append((quality, order, "text"))
        for fmt, known in MEDIA_TYPES.items():
            if media == known:
                choices.append((quality, order, fmt))
    if not choices:
        return None
    return sorted(choices, key=lambda c: (-c[0], c[1]))[0][2]


@router.get("/analyses/{analysis_id}/report", summary="The report as `correlator analyze -o` writes it",
            response_class=Response,
            responses={**ERRORS, 406: {"model": ErrorOut, "description": "Accept names no report format"},
                       200: {"description": "The report", "content": {
                           "text/plain": {"schema": {"type": "string"}},
                           "text/markdown": {"schema": {"type": "string"}},
                           "text/html": {"schema": {"type": "string"}},
                           "application/json": {"schema": {"type": "object"}}}}})
async def get_report(row: FinishedDep, store: StoreDep,
                     format: Annotated[ReportFormat | None, Query(
                         description="text, md, html or json; without it, the Accept header chooses "
                         "(text/plain, text/markdown, text/html, application/json), JSON for */*")] = None,
                     accept: Annotated[str | None, Header(include_in_schema=False)] = None) -> Response:
    fmt = format or negotiate(accept)
    if fmt is None:
        raise HTTPException(status.HTTP_406_NOT_ACCEPTABLE, "Accept names no report format: ask for "
                            + ", ".join(MEDIA_TYPES[f] for f in FORMATS) + " (or use ?format=)")
    body = await off_loop(store, store.report, row.num, fmt)
    if body is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"analysis {row.id} was made before reports were kept: "
                            "upload the bundle again")
    stem = row.name.rsplit(".", 1)[0] if "." in row.name else row.name
    charset = "" if fmt == "json" else "; charset=utf-8"
    return Response(body.encode("utf-8"), media_type=MEDIA_TYPES[fmt] + charset, headers={
        "Content-Disposition": f'inline; filename="{stem}-report.{SUFFIXES[fmt]}"', "Vary": "Accept"})
