"""The HTTP API (FastAPI): bundles in, analyses, findings and timeline out, live findings as a
server-sent event stream. Only this package and `correlator/cli/cmd_serve.py` import fastapi; the
core stays importable without it.

Build the app with `create_app(settings)`: there is no module-level app, so tests and the
`serve` command each make their own with their own state directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from correlator.api.settings import Settings, load_settings

if TYPE_CHECKING:
    from correlator.api.http_app import create_app

__all__ = ["Settings", "create_app", "load_settings"]


def __getattr__(name: str) -> Any:
    """`create_app` is imported when asked for: `correlator worker` uses the store, the settings
    and the analysis jobs of this package without loading the web stack."""
    if name == "create_app":
        from correlator.api.http_app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
