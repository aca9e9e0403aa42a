"""The default report: findings first, worst first, each with its evidence as file:line and its
fix; then the sources (zones, offsets, lines read and unparsed) and anything that went wrong.
Readable in an 80-column terminal, coloured when stdout is one."""

from __future__ import annotations

import textwrap

from rich.console import Console
from rich.markup import escape as markup_escape

from correlator import __version__
from correlator.printable import printable, printable_lines
from correlator.report_model import Analysis
from correlator.reports import evidence_time, host_heading, host_lines, span, times, when


def escape(text: str) -> str:
    """Bundle text as the console may print it: control characters shown, not obeyed (a topic's
    `ESC ] 52` would write the reader's clipboard), markup characters taken literally."""
    return markup_escape(printable(text))


def block(text: str) -> str:
    """`escape` for a paragraph we wrapped: its own line breaks stay (textwrap already turned the
    value's newlines and tabs into blanks)."""
    return markup_escape(printable_lines(text))


SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan",
                  "info": "dim"}

#: Skipped files listed by name; a bundle with a whole tree of binaries should not bury the report.
SKIPPED_SHOWN = 20

#: The report's words for the artifact counts' keys (singular, plural).
ARTIFACT_WORDS = {"certificates": ("certificate", "certificates"), "keys": ("private key", "private keys"),
                  "configs": ("mosquitto.conf", "mosquitto.conf files"), "acl_files": ("ACL file", "ACL files"),
                  "password_files": ("password file", "password files"),
                  "opcua_pki_folders": ("OPC UA PKI folder", "OPC UA PKI folders"),
                  "client_configs": ("client configuration", "client configurations")}


def render(analysis: Analysis, console: Console, *, title: str = "") -> None:
    width = min(console.width, 120)
    wrap = textwrap.TextWrapper(width=width - 4, initial_indent="    ", subsequent_indent="    ")
    logs = len(analysis.sources)
    period = (f", {when(analysis.first_event)} → {when(analysis.last_event)}"
              if analysis.first_event is not None else "")
    count = len(analysis.findings)
    name = f"correlator {__version__}"
    header = textwrap.fill(f"{name}: {count} finding{'s' if count != 1 else ''}{' in ' + title if title else ''} "
                           f"({logs} log{'s' if logs != 1 else ''}, {analysis.events:,} events{period})",
                           width=width, subsequent_indent="    ")
    console.print(f"[bold]{name}[/]" + block(header[len(name):]))
    if not analysis.findings:
        if analysis.errors:
            console.print(f"\n[yellow]{escape(analysis.none_found)}[/]")
        else:
            console.print("\n[green]No root cause found.[/] Nothing in the logs or artifacts matches a known failure.")
    previous: str | None = None
    for finding in analysis.findings:
        heading = host_heading(analysis, finding, previous)
        previous = finding.host
        if heading:
            console.print(f"\n[bold reverse] {escape(heading)} [/]")
        style = SEVERITY_STYLE.get(finding.severity, "")
        console.print()
        tag = f" {finding.severity.upper()} "
        head = textwrap.wrap(f"{tag} {finding.id}  {finding.title}", width=width, subsequent_indent="    ")
        rest = head[0][len(tag) + 1 + len(finding.id):]
        console.print(f"[{style}]{tag}[/] [bold]{escape(finding.id)}[/]{escape(rest)}")
        for line in head[1:]:
            console.print(escape(line))
        who = ", ".join(sorted(finding.clients)) or "-"
        if finding.omitted.get("clients"):
            who += f" and {finding.omitted['clients']:,} more"
        console.print(block(wrap.fill(f"{times(finding.count)}, {span(finding)}; clients: {who}")))
        console.print(block(wrap.fill(f"confidence {finding.confidence}: {finding.confidence_reason}")))
        console.print()
        for paragraph in finding.explanation.split("\n\n"):
            console.print(block(wrap.fill(" ".join(paragraph.split()))))
        console.print("\n    [bold]Evidence[/]")
        for ref in finding.evidence:
            where = f"{ref.file}:{ref.line}" if ref.line else ref.file
            stamp = evidence_time(ref)
            console.print(f"      [cyan]{escape(where)}[/]  {escape(stamp)}")
            console.print(block(textwrap.fill(ref.text, width=width - 8, initial_indent="        ",
                                               subsequent_indent="          ")))
        for fact in finding.facts:
            where = f"{fact.file}:{fact.line}" if fact.line else fact.file
            console.print(f"      [magenta]{escape(where)}[/]  (artifact)")
            console.print(block(textwrap.fill(fact.text, width=width - 8, initial_indent="        ",
                                               subsequent_indent="          ")))
        if finding.alternatives:
            also = wrap.fill("Also possible: " + ", ".join(finding.alternatives))  # indented like the rest
            console.print()
            console.print(block(also).replace("Also possible:", "[bold]Also possible:[/]", 1))
            if finding.tell_apart:
                console.print(block(wrap.fill("To tell them apart: " + finding.tell_apart)))
        if finding.confidence != "high" and finding.confirm_with:
            console.print(block(wrap.fill("Would confirm it: " + finding.confirm_with)))
        if finding.remediation:
            console.print("\n    [bold]Fix[/]")
            for number, step in enumerate(finding.remediation, 1):
                console.print(block(textwrap.fill(step.text, width=width - 4, initial_indent=f"    {number}. ",
                                                   subsequent_indent="       ")))
                if step.command:
                    # commands stay on one line, whatever the width, so they can be copied whole
                    console.print(f"         {escape(step.command)}", soft_wrap=True, overflow="ignore", crop=False)
                if step.warning:
                    console.print(block(textwrap.fill("! " + step.warning, width=width - 4, initial_indent="       ",
                                                       subsequent_indent="         ")), style="yellow")
    hosts = host_lines(analysis)
    if hosts:
        console.print("\n[bold]Hosts[/]")
        for line in hosts:
            console.print(block(wrap.fill(line)))
    console.print("\n[bold]Sources[/]")
    for source in analysis.sources:
        info = source.info
        offset = f"offset {source.offset:+.1f}s ({source.offset_how})" if source.offset else "offset 0"
        zone = source.zone_how if source.zone_how.startswith(info.zone) else f"{info.zone} ({source.zone_how})"
        estimated = f", {info.estimated:,} with no time of their own (≈ in the evidence)" if info.estimated else ""
        lines = f"{info.lines_read:,} line{'s' if info.lines_read != 1 else ''}"
        details = f"zone {zone}, {offset}; {lines}, {info.unparsed:,} unparsed{estimated}"
        console.print(f"    [cyan]{escape(info.path)}[/]: {escape(info.format)}, {escape(info.source)}")
        console.print(block(textwrap.fill(details, width=width - 4, initial_indent="        ",
                                           subsequent_indent="        ")), style="yellow" if info.unparsed else None)
    artifacts = ", ".join(f"{n} {ARTIFACT_WORDS.get(k, (k, k))[n != 1]}" for k, n in analysis.artifacts.items() if n)
    console.print("\n[bold]Artifacts[/]")
    console.print(block(wrap.fill(artifacts or "none")))
    if analysis.errors:
        console.print("\n[bold red]Errors[/] (the rest was analysed)")
        for error in analysis.errors:
            console.print(f"    {escape(error)}")
    if analysis.notes:
        console.print("\n[bold]Notes[/]")
        for note in analysis.notes:
            console.print(block(wrap.fill(note)))
    if analysis.skipped:
        console.print("\n[bold]Not read[/] (neither logs nor artifacts)")
        for name in analysis.skipped[:SKIPPED_SHOWN]:
            console.print(f"    {escape(name)}")
        if len(analysis.skipped) > SKIPPED_SHOWN:
            console.print(f"    ... and {len(analysis.skipped) - SKIPPED_SHOWN} more (all of them in --format json)")
