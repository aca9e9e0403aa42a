"""A small laboratory of real parts: certificates made with `cryptography` and a real mosquitto
broker on free loopback ports. The sample-incident generator, the integration tests and the
benchmarks all use it, so every log line the project learns from comes from running software.

It lives beside the tests, outside the wheel: it imports paho-mqtt and asyncua, which only the dev
extras install, and nothing in the analysis path needs it. Import it as `lab` with `tests/` on the
path (pytest's `pythonpath` setting does so; scripts insert it themselves).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: The folder that holds this package: what a child Python process needs on its path to run
#: `python -m lab.paho_client` and the like.
LAB_PARENT = Path(__file__).resolve().parent.parent
#: The committed sample incidents.
SAMPLES = LAB_PARENT.parent / "sample_logs"


def copy_sample(name: str, into: Path) -> Path:
    """A sample incident copied for a test to change: file times kept (untimed lines are dated by
    them), expected.json left out (a bundle from the field has none)."""
    target = into / name
    shutil.copytree(SAMPLES / name, target, ignore=shutil.ignore_patterns("expected.json"))
    return target


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child Python process that runs a lab module (`python -m lab.X`)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(LAB_PARENT), env.get("PYTHONPATH", "")) if p)
    return env
