"""The `correlator` command line.

Each sub-command lives in its own module `correlator/cli/cmd_<name>.py` exposing
`register(subparsers)`, which adds its parser and sets `func` (taking the parsed namespace and
returning an exit code). Modules are discovered by that naming rule, so adding a command never
means editing a central list. Heavy libraries (textual, fastapi) are imported inside `func`, so
`correlator --help` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from correlator import __version__
from correlator.errors import CorrelatorError

#: Exit code for a user error (bad option, unreadable input, bad definition file).
EXIT_USAGE = 2


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `command` alone when a module of that name holds it:
    the other commands' modules import what only they need (certificates, the API, the TUI),
    which would only slow the start of this one."""
    parser = argparse.ArgumentParser(
        prog="correlator",
        description="Names the root cause of MQTT/OPC UA connection failures from logs, certificates "
        "and broker configuration.",
    )
    parser.add_argument("--version", action="version", version=f"correlator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [info.name for info in pkgutil.iter_modules(__path__) if info.name.startswith("cmd_")]
    if command is not None and f"cmd_{command}" in names:
        names = [f"cmd_{command}"]
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names]
    for module in sorted(modules, key=lambda m: (getattr(m, "ORDER", 50), m.__name__)):
        module.register(sub)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    own = argv is None  # this process's own command line, not a caller's (a test) in-process
    argv = sys.argv[1:] if argv is None else list(argv)
    # numpy (the bulk reader's counts) never calls its BLAS, whose threads only cost start-up time
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = build_parser(argv[0] if argv and not argv[0].startswith("-") else None)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    # SIGTERM ends the process as Ctrl-C does, through every `finally` and `with`: the folders
    # archives were extracted to are removed (the default action would kill it where it stands)
    with contextlib.suppress(ValueError):  # only the main thread may; an embedding caller keeps its own
        signal.signal(signal.SIGTERM, _terminate)
    try:
        code = int(func(args))
    except CorrelatorError as exc:
        print(f"correlator: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `correlator ... | head` must not print a traceback
        return 0
    except KeyboardInterrupt:
        return 130
    if own and getattr(args, "exit_when_done", False):
        exit_now(code)
    return code


def exit_now(code: int) -> NoReturn:
    """End the process once a batch command has written its output, without the interpreter's
    teardown: freeing every module, compiled pattern and rule object one by one took about 0.05 s
    after a big log's analysis, 7 % of its run. What a command leaves open is closed by the time
    it returns (its `with` blocks: extracted archives, threads); logging's exit handler, the only
    one such a run registers, is run here, and the output flushed."""
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`) or stream
            stream.flush()
    os._exit(code)
