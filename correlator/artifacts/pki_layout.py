"""Which OPC UA PKI layout a folder is, by its sub-folders alone (the layouts are described in
opcua_pki.py). Apart from the certificates' loading, so that finding the PKI folders of every
bundle needs no cryptography (which only the bundles that hold one then import)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Role = Literal["trusted", "issuer", "rejected", "own"]
Layout = Literal["ua-netstandard", "open62541", "plain"]

ROLES: tuple[Role, ...] = ("trusted", "issuer", "rejected", "own")
OPEN62541_GROUPS = ("ApplCerts", "HttpCerts", "UserTokenCerts")


def detect_layout(path: Path) -> Layout | None:
    """Which layout a folder is, or None when it is not a PKI folder."""
    try:
        children = {p.name for p in path.iterdir() if p.is_dir()}
    except OSError:
        return None
    if path.name in OPEN62541_GROUPS and _roles_present(children) >= 2:
        return "open62541"
    if _roles_present(children) >= 2:
        if any((path / role / "certs").is_dir() for role in ROLES):
            return "ua-netstandard"
        if "trusted" in children:
            return "plain"
    return None


def _roles_present(children: set[str]) -> int:
    return sum(1 for role in ROLES if role in children)
