"""`correlator analyze PATH...`: the batch analysis of files, folders and bundles."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from correlator.cli.options import add_analysis_options, options_from
from correlator.model import severity_rank

if TYPE_CHECKING:
    from correlator.analysis import Progress  # imported when analysing: `correlator --help` stays quick
    from correlator.reports.files import ReportFormat

ORDER = 10

#: Exit codes: 0 nothing found (or only info), then one per severity band.
EXIT_BY_SEVERITY = {"info": 0, "low": 0, "medium": 3, "high": 4, "critical": 5}
#: Nothing of medium or worse was found, and part of the input could not be read.
EXIT_INPUT = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "analyze", help="diagnose a log bundle: files, folders, .zip/.tar/.tar.gz",
        description="Read broker and client logs, certificates, mosquitto.conf, ACL, password files and OPC UA "
                    "PKI folders (found by content, in any sub-folder or archive), line the logs up on one "
                    "timeline and name the root causes with evidence and fixes. Exit code: 0 no finding of "
                    "medium or worse, 3 medium, 4 high, 5 critical, 2 usage error.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="log files, folders, or bundles (.zip, .tar.gz); - reads a pasted excerpt from stdin")
    parser.add_argument("--format", dest="output", choices=("text", "json", "md", "html"), default=None,
                        help="the report's format (default: from the -o file's suffix, .html .htm .md .json; "
                             "else text)")
    parser.add_argument("-o", "--output", dest="out", type=Path, metavar="FILE", help="write the report here")
    add_analysis_options(parser)
    # a batch: nothing of the process is needed once the report is out (cli.exit_now)
    parser.set_defaults(func=run, exit_when_done=True)


#: The report format a -o file's suffix asks for when --format does not say.
FORMAT_BY_SUFFIX: dict[str, ReportFormat] = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md",
                                             ".json": "json"}


def report_format(chosen: ReportFormat | None, out: Path | None) -> ReportFormat:
    """--format when given; else what the output file's name says (`-o report.html` is a page,
    not the terminal text in a file named .html); else text."""
    if chosen is not None:
        return chosen
    return FORMAT_BY_SUFFIX.get(out.suffix.lower(), "text") if out is not None else "text"


#: Logs smaller than this finish before a progress bar would be read.
PROGRESS_BYTES = 50 * 1024 * 1024


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[Progress], None] | None]:
    """A progress bar on stderr when stderr is a terminal and the logs are large: analyze()'s own
    progress (bytes of the logs read against their size), drawn by rich and gone when done."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    bar: Bar | None = None

    def on_progress(progress: Progress) -> None:
        nonlocal bar
        if bar is None:
            if progress.total < PROGRESS_BYTES or progress.phase != "reading":
                return
            bar = Bar(TextColumn("reading"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            bar.add_task("logs", total=progress.total)
            bar.start()
        bar.update(bar.task_ids[0], completed=progress.share * progress.total)

    try:
        yield on_progress
    finally:
        if bar is not None:
            bar.stop()


@contextlib.contextmanager
def _stdin_paste(paths: list[str]) -> Iterator[list[str]]:
    """`-` is a paste read from standard input (`xclip -o | correlator analyze -`): kept in a
    temporary file named stdin.log while it is analysed, like any log (its artifacts unwrapped)."""
    if "-" not in paths:
        yield paths
        return
    with tempfile.TemporaryDirectory(prefix="correlator-stdin-") as folder:
        target = Path(folder) / "stdin.log"
        with target.open("wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out)
        yield [str(target) if path == "-" else path for path in paths]


def run(args: argparse.Namespace) -> int:
    from correlator.sources.early import EarlyReads

    with _stdin_paste(args.paths) as paths, \
            EarlyReads(paths, forced=args.source_format or (), formats_dirs=args.formats_dir or ()), \
            _progress_bar() as on_progress:
        # a big log's scan runs from here on beside the start: imports, rules, artifacts, engine
        from correlator.analysis import analyze

        analysis = analyze(paths, options_from(args), on_progress=on_progress)
    title = ", ".join(str(p) for p in args.paths)
    output = report_format(args.output, args.out)
    if output == "text" and args.out is None:
        from rich.console import Console

        from correlator.reports.text import render as render_text

        render_text(analysis, Console(highlight=False, soft_wrap=False), title=title)
    else:
        from correlator.reports.files import render_file

        text = render_file(analysis, output, title)
        if args.out is not None:
            args.out.write_text(text, encoding="utf-8")
            print(f"report written to {args.out}", file=sys.stderr)
        else:
            sys.stdout.write(text)
    worst = analysis.worst
    code = EXIT_BY_SEVERITY.get(worst, 0) if worst and severity_rank(worst) >= 0 else 0
    # a part of the input that could not be read is an input error unless a finding says more
    return EXIT_INPUT if code == 0 and analysis.errors else code
