"""A mosquitto release the distribution does not ship yet, built from its own source.

mosquitto 2.1.1 and 2.1.2 reworded every client-disconnect line (`Client ID [ADDR:PORT]
disconnected: REASON.`); Debian 12 ships 2.0.11. So a sample of the new wording needs the real
2.1.2 broker and its clients, built here once into ~/.cache/correlator-lab/mosquitto-VERSION
(the way the lab installs Node-RED) and reused after:

    PYTHONPATH=tests python -m lab.mosquitto_build            # 2.1.2, from GitHub
    PYTHONPATH=tests python -m lab.mosquitto_build --source /path/to/mosquitto.git

The source is the release tag (`vVERSION`) of a git repository: `--source` (or
$CORRELATOR_MOSQUITTO_GIT) names a local clone or mirror, else the tag is cloned from GitHub.
Build needs: cmake, a C compiler, libssl-dev, libcjson-dev (Debian: apt-get install cmake
build-essential libssl-dev libcjson-dev). Websockets, the documentation, the tests, plugins and
mosquitto_ctrl's shell are left out: none of them writes the lines a sample is about.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: The release whose disconnect lines the samples show.
MOSQUITTO_21 = "2.1.2"
UPSTREAM = "https://github.com/eclipse-mosquitto/mosquitto.git"
CACHE = Path.home() / ".cache" / "correlator-lab"

# Options that keep the build small and free of dependencies the distribution lacks.
CMAKE_OPTIONS = ("-DCMAKE_BUILD_TYPE=Release", "-DWITH_DOCS=OFF", "-DWITH_TESTS=OFF", "-DWITH_WEBSOCKETS=OFF",
                 "-DWITH_CTRL_SHELL=OFF", "-DWITH_LTO=OFF", "-DWITH_PLUGINS=OFF")


class BuildUnavailable(RuntimeError):
    """The tools or the source to build mosquitto are missing here; nothing was installed."""


@dataclass(frozen=True)
class Built:
    """An installed mosquitto: the broker in sbin/, the clients in bin/ (they find their
    libmosquitto through the rpath set at build time)."""

    version: str
    prefix: Path

    @property
    def broker(self) -> Path:
        return self.prefix / "sbin" / "mosquitto"

    def tool(self, name: str) -> Path:
        """A client program: mosquitto_pub, mosquitto_sub, mosquitto_passwd."""
        return self.prefix / "bin" / name

    def ready(self) -> bool:
        return all(p.is_file() for p in (self.broker, self.tool("mosquitto_pub"), self.tool("mosquitto_passwd")))


def built_mosquitto(version: str = MOSQUITTO_21, *, source: str | None = None) -> Built:
    """The installed release, built first when it is not there yet."""
    built = Built(version, CACHE / f"mosquitto-{version}")
    if built.ready():
        return built
    build(built, source or os.environ.get("CORRELATOR_MOSQUITTO_GIT") or UPSTREAM)
    return built


def build(built: Built, source: str) -> None:
    """Export the tag from `source` (a git repository, local or remote), configure with cmake and
    install into `built.prefix`. A failed step raises with the tool's own last words."""
    for tool in ("git", "cmake", "make", "cc"):
        if shutil.which(tool) is None:
            raise BuildUnavailable(f"{tool} is not installed (Debian: apt-get install git cmake build-essential "
                                   "libssl-dev libcjson-dev)")
    tag = f"v{built.version}"
    with tempfile.TemporaryDirectory(prefix="mosquitto-build-") as tmp:
        work = Path(tmp)
        src = work / "src"
        if Path(source).exists():
            src.mkdir()
            archive = subprocess.run(["git", "-C", source, "archive", tag], capture_output=True, check=False)
            if archive.returncode != 0:
                raise BuildUnavailable(f"{source} has no tag {tag}: {archive.stderr.decode(errors='replace').strip()}")
            _run(["tar", "-x", "-C", str(src)], work, stdin=archive.stdout)
        else:
            _run(["git", "clone", "--quiet", "--depth", "1", "--branch", tag, source, str(src)], work)
        build_dir = work / "build"
        build_dir.mkdir()
        _run(["cmake", str(src), f"-DCMAKE_INSTALL_PREFIX={built.prefix}",
              f"-DCMAKE_INSTALL_RPATH={built.prefix / 'lib'}", *CMAKE_OPTIONS], build_dir)
        _run(["make", f"-j{os.cpu_count() or 2}"], build_dir)
        _run(["make", "install"], build_dir)
    if not built.ready():
        raise BuildUnavailable(f"the build of mosquitto {built.version} installed no broker in {built.prefix}")


def _run(cmd: list[str], cwd: Path, *, stdin: bytes | None = None) -> None:
    done = subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True, timeout=1800, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace").strip()[-2000:]
        raise BuildUnavailable(f"{' '.join(cmd[:3])} failed ({done.returncode}):\n{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", default=MOSQUITTO_21, help=f"release to build (default {MOSQUITTO_21})")
    parser.add_argument("--source", help="git repository holding the tag v<version> (default: $CORRELATOR_MOSQUITTO_"
                                         f"GIT, else {UPSTREAM})")
    args = parser.parse_args(argv)
    built = built_mosquitto(args.version, source=args.source)
    print(built.prefix)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
