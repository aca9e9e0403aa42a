"""Regenerate the sample incidents in this folder from real runs.

    .venv/bin/python sample_logs/make_samples.py [--out sample_logs] [NAME ...]

Each named incident (all when none is named) is made again from scratch by
lab.incidents (tests/lab/): real mosquitto, real clients, fresh certificates dated relative to now.
The folder of an incident is replaced; the others are left alone. Logs are never edited after.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (HERE.parent, HERE.parent / "tests"):  # run from a checkout: correlator, and the lab beside the tests
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from lab import incidents  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=HERE, help="where the incident folders go")
    parser.add_argument("--list", action="store_true", help="list the incidents and exit")
    parser.add_argument("names", nargs="*", metavar="NAME", help="incidents to make (default: all)")
    args = parser.parse_args(argv)
    if args.list:
        for name, incident in incidents.REGISTRY.items():
            print(f"{name:28} {incident.summary}")
        return 0
    unknown = [n for n in args.names if n not in incidents.REGISTRY]
    if unknown:
        parser.error(f"unknown incident(s): {', '.join(unknown)}; known: {', '.join(incidents.REGISTRY)}")
    names = args.names or list(incidents.REGISTRY)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    failed = 0
    for name in names:
        t0 = time.monotonic()
        try:
            for made, seconds, problem in incidents.make([name], args.out):
                if problem:
                    print(f"{made:28} {problem}")
                else:
                    folder = args.out / made
                    files = [p for p in folder.rglob("*") if p.is_file()]
                    size = sum(p.stat().st_size for p in files)
                    print(f"{made:28} made in {seconds:5.1f} s: {len(files)} files, {size / 1024:.0f} KiB "
                          f"in {folder}")
        except incidents.IncidentFailed as exc:
            failed += 1
            print(f"{name:28} FAILED after {time.monotonic() - t0:.1f} s: {exc}", file=sys.stderr)
    print(f"{len(names) - failed} of {len(names)} incidents made in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
