"""A single self-contained HTML page (no external files, no network): a timeline picture (events
per source over time, warnings in red, findings marked), then the findings with evidence and
fixes ready to copy, then the sources. Meant to be attached to a ticket and opened anywhere."""

from __future__ import annotations

from html import escape

from correlator import __version__
from correlator.printable import printable_lines
from correlator.report_model import Analysis, Finding
from correlator.reports import evidence_time, host_heading, host_lines, span, times, when

COLUMNS = 120
SEVERITY_COLOUR = {"critical": "#b00020", "high": "#d9480f", "medium": "#e0a800", "low": "#1c7ed6", "info": "#868e96"}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#212529;background:#f8f9fa}
header{background:#212529;color:#fff;padding:16px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#ced4da}main{padding:16px 24px;max-width:1200px}
.chip{display:inline-block;border-radius:10px;padding:1px 9px;color:#fff;font-size:12px;font-weight:600;
margin-right:6px}
section.finding{background:#fff;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.12);margin:16px 0;padding:14px 18px;
border-left:6px solid var(--sev)}
section.finding h2{font-size:17px;margin:0 0 4px}.meta{color:#495057;font-size:13px}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f1f3f5;padding:8px 10px;border-radius:4px;overflow-x:auto;white-space:pre-wrap;margin:4px 0}
table{border-collapse:collapse;width:100%;font-size:13px;background:#fff}td,th{border-bottom:1px solid #dee2e6;
padding:4px 8px;text-align:left;vertical-align:top}th{background:#e9ecef}
.ev td:first-child{white-space:nowrap;color:#1864ab}.artifact td:first-child{color:#862e9c}
ol.fix li{margin:6px 0}p.warning{color:#e8590c}button.copy{float:right;font-size:11px;margin-left:8px;cursor:pointer}
.timeline{background:#fff;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:10px}
.none{color:#2b8a3e;font-weight:600}
"""

_JS = """
document.querySelectorAll('button.copy').forEach(function(b){b.addEventListener('click',function(){
var t=b.parentElement.querySelector('pre').innerText;if(navigator.clipboard){navigator.clipboard.writeText(t);}
b.textContent='copied';setTimeout(function(){b.textContent='copy'},1200);});});
"""


def _timeline_svg(analysis: Analysis) -> str:
    if analysis.first_event is None or analysis.last_event is None or not analysis.histogram:
        return "<p>No timed events.</p>"
    start, end = analysis.first_event, max(analysis.last_event, analysis.first_event + 1)
    label_w, width, row_h = 190, 900, 34
    sources = sorted(analysis.histogram, key=lambda s: (s != "broker", s))
    height = row_h * len(sources) + 46
    step = (end - start) / COLUMNS
    col_w = width / COLUMNS
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {label_w + width + 10} {height}" '
             f'width="100%" role="img" aria-label="events per source over time">']
    for row, source in enumerate(sources):
        bins = [[0, 0] for _ in range(COLUMNS)]
        for second, (total, alarming) in analysis.histogram[source].items():
            col = min(COLUMNS - 1, max(0, int((second - start) / step))) if step > 0 else 0
            bins[col][0] += total
            bins[col][1] += alarming
        peak = max((b[0] for b in bins), default=1) or 1
        y = row * row_h + 8
        parts.append(f'<text x="4" y="{y + 19}" font-size="12" fill="#343a40">{escape(source[:28])}</text>')
        parts.append(f'<line x1="{label_w}" y1="{y + row_h - 6}" x2="{label_w + width}" y2="{y + row_h - 6}" '
                     'stroke="#dee2e6"/>')
        for col, (total, alarming) in enumerate(bins):
            if not total:
                continue
            h = max(2.0, (row_h - 10) * total / peak)
            x = label_w + col * col_w
            parts.append(f'<rect x="{x:.1f}" y="{y + row_h - 6 - h:.1f}" width="{max(col_w - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="#adb5bd"><title>{total} events</title></rect>')
            if alarming:
                ha = max(2.0, h * alarming / total)
                parts.append(f'<rect x="{x:.1f}" y="{y + row_h - 6 - ha:.1f}" width="{max(col_w - 1, 1):.1f}" '
                             f'height="{ha:.1f}" fill="#e03131"><title>{alarming} warnings or errors</title></rect>')
    axis_y = row_h * len(sources) + 14
    for number, finding in enumerate(analysis.findings, 1):
        x1 = label_w + (finding.first_seen - start) / (end - start) * width
        x2 = max(x1 + 2, label_w + (finding.last_seen - start) / (end - start) * width)
        colour = SEVERITY_COLOUR.get(finding.severity, "#495057")
        parts.append(f'<rect x="{x1:.1f}" y="2" width="{x2 - x1:.1f}" height="{axis_y - 8}" fill="{colour}" '
                     f'opacity="0.18"><title>{escape(finding.id)}: {escape(span(finding))}</title></rect>')
        parts.append(f'<text x="{x1 + 2:.1f}" y="{axis_y + 2}" font-size="11" font-weight="bold" '
                     f'fill="{colour}">{number}</text>')
    parts.append(f'<text x="{label_w}" y="{height - 4}" font-size="11" fill="#495057">{escape(when(start))}</text>')
    parts.append(f'<text x="{label_w + width}" y="{height - 4}" font-size="11" fill="#495057" '
                 f'text-anchor="end">{escape(when(end))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _finding(number: int, f: Finding) -> str:
    colour = SEVERITY_COLOUR.get(f.severity, "#495057")
    rows = []
    for ref in f.evidence:
        where = f"{ref.file}:{ref.line}" if ref.line else ref.file
        rows.append(f'<tr class="ev"><td>{escape(where)}</td><td>{escape(evidence_time(ref) or "-")}</td>'
                    f"<td><code>{escape(ref.text)}</code></td></tr>")
    for fact in f.facts:
        where = f"{fact.file}:{fact.line}" if fact.line else fact.file
        rows.append(f'<tr class="artifact"><td>{escape(where)}</td><td>artifact</td><td>{escape(fact.text)}</td></tr>')
    fixes = ""
    for step in f.remediation:
        warning = f'<p class="warning">{escape(step.warning)}</p>' if step.warning else ""
        fixes += (f'<li>{escape(step.text)}<div><button class="copy">copy</button><pre>{escape(step.command)}</pre>'
                  f"</div></li>" if step.command else f"<li>{escape(step.text)}{warning}</li>")
    alt = ""
    if f.alternatives:
        alt = (f"<p><b>Also possible:</b> {escape(', '.join(f.alternatives))}. {escape(f.tell_apart)}</p>")
    confirm = (f"<p><i>Would confirm it:</i> {escape(f.confirm_with)}</p>"
               if f.confidence != "high" and f.confirm_with else "")
    return (f'<section class="finding" style="--sev:{colour}" id="f{number}">'
            f'<h2><span class="chip" style="background:{colour}">{escape(f.severity.upper())}</span>'
            f"{number}. {escape(f.title)} <code>{escape(f.id)}</code></h2>"
            f'<div class="meta">{escape(times(f.count))}, {escape(span(f))}; clients: '
            f"{escape(', '.join(sorted(f.clients)) or '-')}; confidence <b>{escape(f.confidence)}</b> "
            f"({escape(f.confidence_reason)})</div>"
            f"<p>{escape(' '.join(f.explanation.split()))}</p>{alt}{confirm}"
            f"<h3>Evidence</h3><table>{''.join(rows)}</table>"
            f'<h3>Fix</h3><ol class="fix">{fixes}</ol></section>')


def render(analysis: Analysis, *, title: str = "") -> str:
    counts: dict[str, int] = {}
    for f in analysis.findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    chips = "".join(f'<span class="chip" style="background:{SEVERITY_COLOUR[s]}">{n} {s}</span>'
                    for s, n in counts.items())
    parts: list[str] = []
    previous: str | None = None
    for number, f in enumerate(analysis.findings, 1):
        heading = host_heading(analysis, f, previous)
        previous = f.host
        if heading:
            parts.append(f'<h2 class="host">{escape(heading)}</h2>')
        parts.append(_finding(number, f))
    findings = "".join(parts) or f'<p class="none">{escape(analysis.none_found)}</p>'
    sources = "".join(
        f"<tr><td>{escape(s.info.path)}</td><td>{escape(s.info.format)}</td><td>{escape(s.info.source)}</td>"
        f"<td>{escape(s.info.zone)} ({escape(s.zone_how)})</td><td>{s.offset:+.1f}s ({escape(s.offset_how)})</td>"
        f"<td>{s.info.lines_read}</td><td>{s.info.unparsed}</td></tr>" for s in analysis.sources)
    hosts = host_lines(analysis)
    lists = "".join(
        f"<h2>{heading}</h2><ul>{''.join(f'<li>{escape(item)}</li>' for item in items)}</ul>"
        for heading, items in (("Hosts", hosts), ("Errors", analysis.errors), ("Notes", analysis.notes),
                               ("Not read (neither logs nor artifacts)", analysis.skipped)) if items)
    # one pass over the page: no value from the bundle reaches a browser or a `cat` with its control
    # characters (the page's own text has none but its newlines)
    return printable_lines(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>correlator: '
            f"{escape(title or 'report')}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>correlator report{': ' + escape(title) if title else ''}</h1>"
            f"<p>{chips}{len(analysis.findings)} finding(s) · {len(analysis.sources)} log(s) · "
            f"{analysis.events:,} events · {escape(when(analysis.first_event))} → {escape(when(analysis.last_event))}"
            f" · correlator {escape(__version__)}</p></header><main>"
            f'<h2>Timeline</h2><div class="timeline">{_timeline_svg(analysis)}</div>'
            f"<h2>Findings</h2>{findings}"
            f"<h2>Sources</h2><table><tr><th>file</th><th>format</th><th>source</th><th>zone</th><th>offset</th>"
            f"<th>lines</th><th>unparsed</th></tr>{sources}</table>"
            + lists + f"</main><script>{_JS}</script></body></html>")
