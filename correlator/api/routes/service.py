"""Health (no token), version, and what the server knows: formats and rules."""

from __future__ import annotations

from fastapi import APIRouter, Request

from correlator import __version__
from correlator.api.models import FormatOut, HealthOut, RuleOut, VersionOut
from correlator.engine.rules import Rule
from correlator.formats.registry import Registry
from correlator.report_model import REPORT_SCHEMA

health_router = APIRouter(tags=["service"])
router = APIRouter(tags=["service"])


@health_router.get("/health", summary="Is the server up (no token needed)")
async def health() -> HealthOut:
    return HealthOut()


@router.get("/version", summary="Version of the server and of the report schema it serves")
async def get_version() -> VersionOut:
    return VersionOut(name="correlator", version=__version__, api="v1", report_schema=REPORT_SCHEMA)


@router.get("/formats", summary="The log formats loaded (built-in and the configured folders)")
async def list_formats(request: Request) -> list[FormatOut]:
    registry: Registry = request.app.state.registry
    return [FormatOut(name=f.name, title=f.title, role=f.role, file=f.file, multiline=f.multiline,
                      messages=len(f.messages), fallback=f.fallback) for f in registry.formats.values()]


@router.get("/rules", summary="The root-cause rules loaded")
async def list_rules(request: Request) -> list[RuleOut]:
    rules: list[Rule] = request.app.state.rules
    return [RuleOut.model_validate({"id": r.id, "title": r.title, "severity": r.severity, "file": r.file,
                                    "look_alike": list(r.look_alike), "explains": list(r.explains)})
            for r in rules]
