"""Finds the built-in `parsers/` and `rules/` folders, installed or in a checkout.

A wheel carries them inside the package as `correlator/_builtin/...` (hatch force-include); an
editable install or a plain checkout does not, so we fall back to the folders beside the package.
Users add their own folders through options or environment variables; built-ins come first so a
user's file with the same name overrides a built-in one.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent

PARSERS_ENV = "CORRELATOR_PARSERS"
RULES_ENV = "CORRELATOR_RULES"


def builtin_dir(name: str) -> Path:
    """The built-in data folder `name` ('parsers' or 'rules')."""
    packaged = _PACKAGE_DIR / "_builtin" / name
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"built-in folder {name!r} not found beside {_PACKAGE_DIR}")


def search_path(name: str, extra: list[str | Path] | None = None, env: str | None = None) -> list[Path]:
    """Built-in folder first, then folders from the environment variable (os.pathsep separated),
    then those given explicitly: later folders override earlier ones file name by file name."""
    dirs = [builtin_dir(name)]
    env_value = os.environ.get(env or (PARSERS_ENV if name == "parsers" else RULES_ENV), "")
    dirs.extend(Path(p) for p in env_value.split(os.pathsep) if p)
    dirs.extend(Path(p) for p in extra or [])
    return dirs
