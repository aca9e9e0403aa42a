"""The HTTP API (FastAPI): bundles in, analyses, findings and timeline out, live findings as a
server-sent event stream. Only this package and `correlator/cli/cmd_serve.py` import fastapi; the
core stays importable without it.

Build the app with `create_app(settings)`: there is no module-level app, so tests and the
`serve` command each make their own with their own state directory.
"""

from __future__ import annotations

from correlator.api.http_app import create_app
from correlator.api.settings import Settings, load_settings

__all__ = ["Settings", "create_app", "load_settings"]
