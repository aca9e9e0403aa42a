"""Renderings of an Analysis: text for a terminal, JSON (the schema the API serves), Markdown for
a ticket and a single self-contained HTML page. Each is a pure function of the Analysis."""

from __future__ import annotations

from datetime import UTC, datetime

from correlator.report_model import Analysis, EvidenceRef, Finding


def when(ts: float | None, *, date: bool = True) -> str:
    if ts is None:
        return "-"
    value = datetime.fromtimestamp(ts, UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC" if date else "%H:%M:%S")


def evidence_time(ref: EvidenceRef) -> str:
    """An evidence line's time of day; '≈' marks one the line did not carry (taken from its
    neighbours or its file), which may be seconds or minutes off."""
    if ref.time is None:
        return ""
    return ("≈" if ref.estimated else "") + when(ref.time, date=False)


def span(finding: Finding) -> str:
    start = when(finding.first_seen)
    if finding.last_seen - finding.first_seen < 1:
        return start
    same_day = int(finding.first_seen // 86400) == int(finding.last_seen // 86400)
    return f"{start} → {when(finding.last_seen, date=not same_day)}"


def host_heading(analysis: Analysis, finding: Finding, previous: str | None) -> str | None:
    """The heading over a host's findings when a bundle holds several hosts (findings come
    grouped by host): None when the host did not change or the bundle is one host."""
    if len(analysis.hosts) < 2 or finding.host == previous:
        return None
    count = sum(1 for f in analysis.findings if f.host == finding.host)
    return f"Host {finding.host or '(none)'}: {count} finding{'s' if count != 1 else ''}"


def host_lines(analysis: Analysis) -> list[str]:
    """One line per host of a bundle with several: what it holds and what was found on it."""
    if len(analysis.hosts) < 2:
        return []
    out = []
    for host in analysis.hosts:
        found = sorted({f.id for f in analysis.findings if f.host == host.name})
        held = "; ".join(f"{label}: {', '.join(names)}" for names, label in (
            (host.logs, "logs"), (host.configs, "config"), (host.acl_files, "ACL"),
            (host.password_files, "password file")) if names)
        ports = f"; ports {', '.join(str(p) for p in host.ports)}" if host.ports else ""
        out.append(f"{host.name} ({host.how}{' ' + host.root if host.root else ''}): {held or 'no logs'}{ports}; "
                   f"findings: {', '.join(found) or 'none'}")
    return out


def times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
