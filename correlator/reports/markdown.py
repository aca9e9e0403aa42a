"""A Markdown report to paste into a ticket: the same content as the text report, with the
commands in code blocks so they survive the ticket system."""

from __future__ import annotations

from correlator import __version__
from correlator.printable import printable_lines
from correlator.report_model import Analysis
from correlator.reports import evidence_time, host_heading, host_lines, span, times, when


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(analysis: Analysis, *, title: str = "") -> str:
    out = [f"# correlator report{': ' + title if title else ''}", ""]
    out.append(f"correlator {__version__}; {len(analysis.findings)} finding(s) from {len(analysis.sources)} log(s), "
               f"{analysis.events:,} events, {when(analysis.first_event)} to {when(analysis.last_event)}.")
    out.append("")
    if analysis.findings:
        several = len(analysis.hosts) > 1
        out += [f"|{' host |' if several else ''} severity | id | title | count | clients | confidence |",
                f"|{'---|' if several else ''}---|---|---|---|---|---|"]
        for f in analysis.findings:
            out.append(f"|{' ' + _cell(f.host) + ' |' if several else ''} {f.severity} | `{f.id}` | {_cell(f.title)} "
                       f"| {f.count} | {_cell(', '.join(sorted(f.clients)) or '-')} | {f.confidence} |")
    else:
        out.append(f"**{analysis.none_found}**")
    previous: str | None = None
    for f in analysis.findings:
        heading = host_heading(analysis, f, previous)
        previous = f.host
        if heading:
            out += ["", f"# {heading}"]
        out += ["", f"## {f.severity.upper()}: {f.title} (`{f.id}`)", "",
                f"{times(f.count)}, {span(f)}; clients: {', '.join(sorted(f.clients)) or '-'}; "
                f"confidence **{f.confidence}** ({f.confidence_reason}).", "",
                " ".join(f.explanation.split()), "", "**Evidence**", "", "```"]
        for ref in f.evidence:
            where = f"{ref.file}:{ref.line}" if ref.line else ref.file
            stamp = evidence_time(ref)
            out.append(f"{where}  {stamp}  {ref.text}" if stamp else f"{where}  {ref.text}")
        for fact in f.facts:
            where = f"{fact.file}:{fact.line}" if fact.line else fact.file
            out.append(f"{where}  (artifact) {fact.text}")
        out.append("```")
        if f.alternatives:
            out += ["", f"**Also possible:** {', '.join(f'`{a}`' for a in f.alternatives)}. {f.tell_apart}"]
        if f.confidence != "high" and f.confirm_with:
            out += ["", f"*Would confirm it:* {f.confirm_with}"]
        if f.remediation:
            out += ["", "**Fix**", ""]
            for number, step in enumerate(f.remediation, 1):
                out.append(f"{number}. {step.text}")
                if step.command:
                    out += ["", "   ```", f"   {step.command}", "   ```"]
                if step.warning:
                    out += ["", f"   > **Warning:** {step.warning}"]
    hosts = host_lines(analysis)
    if hosts:
        out += ["", "## Hosts", ""] + [f"- {_cell(line)}" for line in hosts]
    out += ["", "## Sources", "", "| file | format | source | zone | offset | lines | unparsed |",
            "|---|---|---|---|---|---|---|"]
    for s in analysis.sources:
        out.append(f"| {_cell(s.info.path)} | {s.info.format} | {s.info.source} | {s.info.zone} ({s.zone_how}) | "
                   f"{s.offset:+.1f}s ({s.offset_how}) | {s.info.lines_read} | {s.info.unparsed} |")
    if analysis.errors:
        out += ["", "## Errors", ""] + [f"- {_cell(e)}" for e in analysis.errors]
    if analysis.notes:
        out += ["", "## Notes", ""] + [f"- {_cell(n)}" for n in analysis.notes]
    if analysis.skipped:
        out += ["", "## Not read", "", "Files that are neither logs nor artifacts:", ""]
        out += [f"- {_cell(s)}" for s in analysis.skipped]
    return printable_lines("\n".join(out)) + "\n"
