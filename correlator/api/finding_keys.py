"""The one key a finding has on every surface of the API: batch findings
(`/analyses/{id}/findings/{key}`) and live ones (`/live/findings`, the SSE stream) alike.

A finding is one rule for one affected group on one host, so the key is the rule id, and for a
grouped or host-bound finding a short hash of the host and group ("client_id=hmi-32,
topic=plant/#" holds characters a URL path segment cannot): `tls.ca_mismatch`,
`auth.bad_credentials~3f9a2c1b`. The same finding gets the same key in every analysis of the same
logs, and live as in batch."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from correlator.report_model import Finding

#: Between the rule id and the group's hash: not in any rule id, and safe in a URL.
SEPARATOR = "~"


def finding_key(finding_id: str, group: str | None, host: str | None = None) -> str:
    """A finding is one rule for one group on one host (findings are per host): both go into the
    hash, so the same rule and group on two hosts are two keys."""
    if not group and not host:
        return finding_id
    scope = f"{host}\n{group or ''}" if host else (group or "")
    return f"{finding_id}{SEPARATOR}{hashlib.blake2s(scope.encode('utf-8'), digest_size=4).hexdigest()}"


def keys_of(findings: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each finding dict's key, made unique in the list (a second finding with the same rule and
    group, which the engine does not make today, would get `-2`)."""
    seen: dict[str, int] = {}
    keys = []
    for finding in findings:
        key = finding_key(finding["id"], finding.get("group"), finding.get("host"))
        seen[key] = seen.get(key, 0) + 1
        keys.append(key if seen[key] == 1 else f"{key}-{seen[key]}")
    return keys


def finding_dict(finding: Finding) -> dict[str, Any]:
    """A live finding as the API and the fleet give it: the report's Finding object with its key."""
    # redacted already: the live sources are redacted as they are read (correlator.redaction)
    return {"key": finding_key(finding.id, finding.group, finding.host), **finding.to_dict()}


class ShownFindings:
    """What a live stream has shown: each step gives the findings new or updated since the last
    one and the keys of those no longer current (a more specific cause now explains them, or they
    fell below the severity floor), so a dashboard, the fleet's findings subject and its store see
    the same changes (api/live_hub.py, fleet/live_worker.py)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def step(self, current: Iterable[Finding], changed: Iterable[Finding]) -> tuple[list[dict[str, Any]], list[str]]:
        """(finding dicts new or updated, by key; keys removed) given the current findings and
        those the last step changed."""
        now = {finding_key(f.id, f.group, f.host): f for f in current}
        touched = {finding_key(f.id, f.group, f.host) for f in changed} & now.keys()
        self.keys |= touched
        gone = sorted(self.keys - now.keys())
        self.keys -= set(gone)
        return [finding_dict(now[key]) for key in sorted(touched)], gone
