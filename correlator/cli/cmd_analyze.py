"""`correlator analyze PATH...`: the batch analysis of files, folders and bundles."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from correlator.cli.options import add_analysis_options, options_from
from correlator.model import severity_rank

ORDER = 10

#: Exit codes: 0 nothing found (or only info), then one per severity band.
EXIT_BY_SEVERITY = {"info": 0, "low": 0, "medium": 3, "high": 4, "critical": 5}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "analyze", help="diagnose a log bundle: files, folders, .zip/.tar/.tar.gz",
        description="Read broker and client logs, certificates, mosquitto.conf, ACL, password files and OPC UA "
                    "PKI folders (found by content, in any sub-folder or archive), line the logs up on one "
                    "timeline and name the root causes with evidence and fixes. Exit code: 0 no finding of "
                    "medium or worse, 3 medium, 4 high, 5 critical, 2 usage error.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="log files, folders, or bundles (.zip, .tar.gz)")
    parser.add_argument("--format", dest="output", choices=("text", "json", "md", "html"), default="text")
    parser.add_argument("-o", "--output", dest="out", type=Path, metavar="FILE", help="write the report here")
    add_analysis_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from correlator.analysis import analyze

    analysis = analyze(args.paths, options_from(args))
    title = ", ".join(str(p) for p in args.paths)
    if args.output == "text" and args.out is None:
        from rich.console import Console

        from correlator.reports.text import render as render_text

        render_text(analysis, Console(highlight=False, soft_wrap=False), title=title)
    else:
        if args.output == "json":
            text = json.dumps(analysis.to_dict(), indent=2)
        elif args.output == "md":
            from correlator.reports.markdown import render as render_md

            text = render_md(analysis, title=title)
        elif args.output == "html":
            from correlator.reports.html import render as render_html

            text = render_html(analysis, title=title)
        else:
            import io

            from rich.console import Console

            from correlator.reports.text import render as render_text

            buffer = io.StringIO()
            render_text(analysis, Console(file=buffer, width=100, highlight=False, no_color=True), title=title)
            text = buffer.getvalue()
        if args.out is not None:
            args.out.write_text(text, encoding="utf-8")
            print(f"report written to {args.out}", file=sys.stderr)
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    worst = analysis.worst
    return EXIT_BY_SEVERITY.get(worst, 0) if worst and severity_rank(worst) >= 0 else 0
