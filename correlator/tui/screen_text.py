"""How findings, times and certificates read on screen. Rich Text only (no textual), so the words
are tested apart from the widgets and match the text report's vocabulary."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from correlator.artifacts.cert_checks import EXPIRY_WINDOW
from correlator.model import severity_rank
from correlator.printable import printable
from correlator.report_model import Finding

SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold white on dark_orange3",
                  "medium": "bold black on yellow", "low": "black on cyan", "info": "black on grey50"}
SEVERITY_LABEL = {"critical": "CRIT", "high": "HIGH", "medium": "MED", "low": "LOW", "info": "INFO"}
#: One colour per source, in the order sources appear; chosen to stay apart on dark and light themes.
SOURCE_COLOURS = ("dodger_blue1", "green3", "orange1", "medium_purple1", "deep_pink2", "cyan3", "gold3",
                  "spring_green2", "salmon1", "sky_blue1", "plum2", "chartreuse3")
LEVEL_STYLE = {"critical": "bold red", "error": "red", "warning": "yellow", "notice": "", "info": "",
               "debug": "dim"}
SPARK = " ▁▂▃▄▅▆▇█"


def badge(severity: str) -> Text:
    return Text(f" {SEVERITY_LABEL.get(severity, severity.upper()[:4]):<4} ", style=SEVERITY_STYLE.get(severity, ""))


def ago(seconds: float) -> str:
    """'now', '42s', '5m', '3h', '2d': short enough for a column, exact enough under pressure."""
    seconds = max(0.0, seconds)
    if seconds < 2:
        return "now"
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400 * 2:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def clock_time(ts: float, *, date: bool = False, estimated: bool = False) -> str:
    """'14:42:29.310'; an estimated time (the line had none of its own) reads '≈14:42:29', as
    wide: its milliseconds would claim a precision it does not have."""
    moment = datetime.fromtimestamp(ts, UTC)
    if date:
        return ("≈" if estimated else "") + moment.strftime("%Y-%m-%d %H:%M:%S")
    if estimated:
        return "≈" + moment.strftime("%H:%M:%S") + "   "
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def order(findings: list[Finding]) -> list[Finding]:
    """Worst first, then the most recently seen, then by id (stable for the eye and for snapshots)."""
    return sorted(findings, key=lambda f: (-severity_rank(f.severity), -f.last_seen, f.id, f.group))


def sparkline(counts: list[int]) -> str:
    peak = max(counts, default=0)
    if peak <= 0:
        return " " * len(counts)
    return "".join(SPARK[0] if n == 0 else SPARK[max(1, round(n / peak * (len(SPARK) - 1)))] for n in counts)


def fix_commands(finding: Finding) -> str:
    """What `c` puts on the clipboard: the fix's commands, one a line (steps without a command as
    comments, so the paste is still a runnable script)."""
    lines = []
    for number, step in enumerate(finding.remediation, 1):
        if step.command and step.kind == "shell":
            lines.append(step.command)
        else:  # words, a config line, or a command withheld: never something the shell would run
            lines += [f"# {number}. {printable(step.text)}"] + [f"#    {printable(part)}" for part in
                                                                 (step.command, step.warning) if part]
    return "\n".join(lines) + ("\n" if lines else "")


def _days(not_after: str, now: float) -> str:
    try:
        moment = datetime.strptime(not_after.replace(" UTC", ""), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return ""
    days = (moment.timestamp() - now) / 86400
    if days < 0:
        return f"expired {int(-days)} day{'s' if int(-days) != 1 else ''} ago"
    return f"{int(days)} day{'s' if int(days) != 1 else ''} left"


def certificate(finding: Finding, now: float) -> list[tuple[str, Text]]:
    """The certificate facts the finding's checks found (cert_* in its context)."""
    ctx = finding.context
    if not any(k.startswith("cert_") for k in ctx):
        return []
    rows: list[tuple[str, Text]] = []
    for key, label in (("cert_file", "file"), ("cert_subject", "subject"), ("cert_san", "SANs"),
                       ("cert_issuer", "issuer"), ("cert_not_before", "valid from")):
        if ctx.get(key):
            rows.append((label, Text(printable(str(ctx[key])))))
    if ctx.get("cert_not_after"):
        until = str(ctx["cert_not_after"])
        left = _days(until, now)
        soon = left[:1].isdigit() and int(left.split()[0]) < EXPIRY_WINDOW.days
        style = "bold red" if left.startswith("expired") else ("yellow" if soon else "green")
        rows.append(("valid until", Text.assemble(until, "  ", (left, style))))
    return rows


def detail(finding: Finding, now: float, *, copy_hint: str = "",
           short: Callable[[str], str] = lambda path: path) -> RenderableType:
    """Everything about one finding, top to bottom in the order an engineer acts on it: what, how
    sure, why, the proof, the certificate, the fix."""
    parts: list[RenderableType] = []
    head = Text.assemble(badge(finding.severity), " ", (finding.id, "bold"), "  ", printable(finding.title))
    parts.append(head)
    who = printable(", ".join(sorted(finding.clients)) or "-")
    span = f"{clock_time(finding.first_seen, date=True)} → {clock_time(finding.last_seen, date=True)[11:]} UTC"
    # in a bundle of several machines, which one's broker (or clock) the finding is about
    where = f" · host: {printable(finding.host)}" if finding.host else ""
    parts.append(Text(f"{finding.count}× · {span} · clients: {who}{where}", style="dim"))
    parts.append(Text.assemble(("confidence ", "dim"), (finding.confidence, "bold"),
                               (printable(f": {finding.confidence_reason}") if finding.confidence_reason else "",
                                "dim")))
    parts.append(Text(""))
    for paragraph in finding.explanation.split("\n\n"):
        parts.append(Text(printable(" ".join(paragraph.split()))))
        parts.append(Text(""))
    cert = certificate(finding, now)
    if cert:
        parts.append(Text("Certificate", style="bold underline"))
        for label, value in cert:
            parts.append(Text.assemble((f"  {label:<12}", "dim"), value))
        parts.append(Text(""))
    parts.append(Text("Evidence", style="bold underline"))
    for ref in finding.evidence:
        where = f"{short(ref.file)}:{ref.line}" if ref.line else short(ref.file)
        stamp = clock_time(ref.time, estimated=ref.estimated).rstrip() if ref.time is not None else ""
        parts.append(Text.assemble("  ", (printable(where), "cyan"), "  ", (stamp, "dim"), "  ",
                                   (ref.side, "italic dim")))
        parts.append(Padding(Text(printable(ref.text)), (0, 0, 0, 4)))
    for fact in finding.facts:
        where = f"{short(fact.file)}:{fact.line}" if fact.line else short(fact.file)
        parts.append(Text.assemble("  ", (printable(where), "magenta"), (" (artifact)", "dim")))
        parts.append(Padding(Text(printable(fact.text)), (0, 0, 0, 4)))
    if finding.alternatives:
        parts.append(Text(""))
        parts.append(Text.assemble(("Also possible: ", "bold"), ", ".join(finding.alternatives)))
        if finding.tell_apart:
            parts.append(Text(printable("To tell them apart: " + finding.tell_apart)))
    if finding.confidence != "high" and finding.confirm_with:
        parts.append(Text(printable("Would confirm it: " + finding.confirm_with), style="italic"))
    if finding.remediation:
        parts.append(Text(""))
        parts.append(Text.assemble(("Fix", "bold underline"), (f"  {copy_hint}" if copy_hint else "", "dim")))
        for number, step in enumerate(finding.remediation, 1):
            parts.append(Text(f"  {number}. {printable(step.text)}"))
            if step.command:
                prompt = "$ " if step.kind == "shell" else ""
                parts.append(Padding(Text(prompt + printable(step.command), style="bold green"), (0, 0, 0, 5)))
            if step.warning:
                parts.append(Padding(Text("! " + printable(step.warning), style="yellow"), (0, 0, 0, 5)))
    return Group(*parts)


def shortener(roots: Sequence[str | Path]) -> Callable[[str], str]:
    """Paths as the user named the inputs: '/tmp/site/broker/mosquitto.log' under the followed
    folder '/tmp/site' reads 'broker/mosquitto.log' (a bundle's evidence already reads so)."""
    folders = [Path(r).resolve() for r in roots]
    folders = [f if f.is_dir() else f.parent for f in folders]

    def short(path: str) -> str:
        if not path.startswith("/"):
            return path
        for folder in folders:
            try:
                return str(Path(path).resolve().relative_to(folder))
            except ValueError:
                continue
        return path

    return short
