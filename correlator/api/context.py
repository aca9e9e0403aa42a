"""The id of the request being served, for log records (api/observability.py sets it); an
analysis keeps the id of the request that made it, so its lifecycle lines join that request."""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("correlator_request_id", default=None)
