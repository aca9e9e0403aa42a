"""Runs a real mosquitto broker with its own config on free loopback ports.

The config is given as text with `{port0}`, `{port1}`, ... placeholders (one per listener the
caller wants) and `{dir}` for the broker's working folder; the harness fills them, points the log
at a file unless the config chooses its own `log_dest`, and waits for mosquitto's own
"running" line rather than poking the ports, so the log holds only what the scenario caused.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from lab.ports import free_port

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerUnavailable(RuntimeError):
    """mosquitto is not installed here."""


class BrokerStartFailed(RuntimeError):
    """mosquitto exited during start-up (often what a scenario wants: its log says why)."""


def mosquitto_binary() -> str:
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise BrokerUnavailable("mosquitto is not installed (Debian: apt-get install mosquitto)")


def listening_ports() -> set[int]:
    """Ports in LISTEN state on this host, read from /proc so that checking does not open a
    connection (which the broker would log)."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Mosquitto:
    """A mosquitto process. Use as a context manager; `start()` raises BrokerStartFailed when the
    broker exits before it is running, unless `expect_failure=True` (then it waits for the exit)."""

    def __init__(self, workdir: Path, config: str, *, listeners: int = 1, log_name: str = "mosquitto.log",
                 env: dict[str, str] | None = None, capture_stdout: bool = False,
                 log_path: Path | None = None, ports: list[int] | None = None,
                 prefix: list[str] | None = None, binary: Path | None = None) -> None:
        """`capture_stdout` sends mosquitto's stdout and stderr to `log_name` (as `> log 2>&1` would),
        for configs with `log_dest stdout`; `log_path` names the file where the log appears when
        something else writes it (a syslog daemon); `ports` fixes the listener ports; `prefix` runs
        mosquitto under another command (`ip netns exec NS`: a machine of its own); `binary` is
        another mosquitto than the installed one (a release built by lab.mosquitto_build)."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ports = list(ports) if ports is not None else [free_port() for _ in range(listeners)]
        self.capture_stdout = capture_stdout
        self.stdout_path = self.workdir / log_name
        self.log_path = Path(log_path) if log_path is not None else self.workdir / log_name
        self.conf_path = self.workdir / "mosquitto.conf"
        fill: dict[str, object] = {f"port{i}": p for i, p in enumerate(self.ports)}
        fill["dir"] = str(self.workdir)
        text = config.format(**fill)
        if not re.search(r"^\s*log_dest\b", text, re.M):
            text += f"\nlog_dest file {self.log_path}\n"
        if not re.search(r"^\s*user\b", text, re.M):
            # As root mosquitto would drop to the 'mosquitto' user, which cannot read a test's
            # private folders; scenarios about dropped privileges set `user` themselves.
            text += "user root\n"
        self.conf_path.write_text(text)
        self.env = env
        self.prefix = list(prefix or [])
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    @property
    def port(self) -> int:
        return self.ports[0]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, *, timeout: float = 10.0, expect_failure: bool = False) -> Mosquitto:
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        binary = str(self.binary) if self.binary is not None else mosquitto_binary()
        cmd = [*self.prefix, binary, "-c", str(self.conf_path)]
        if self.capture_stdout:
            with self.stdout_path.open("ab") as sink:
                self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=sink, stderr=subprocess.STDOUT, env=env)
        else:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                output = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                if expect_failure:
                    return self
                raise BrokerStartFailed(f"mosquitto exited with {self.returncode}: {output.strip()}\n"
                                        f"log:\n{self.log_text()}")
            if not expect_failure and re.search(r"mosquitto version \S+ running", self.log_text()):
                return self
            # stdout redirected to a file is block-buffered: the "running" line shows only at exit.
            if not expect_failure and self.capture_stdout and set(self.ports) <= listening_ports():
                return self
            time.sleep(0.02)
        if expect_failure:
            self.stop()
            raise BrokerStartFailed("mosquitto did not exit although the scenario expected it to fail")
        self.stop()
        raise BrokerStartFailed(f"mosquitto did not report running within {timeout}s:\n{self.log_text()}")

    def wait_for_log(self, pattern: str, *, timeout: float = 10.0, count: int = 1) -> list[str]:
        """Wait until `count` log lines match `pattern` (a regex); return the matching lines."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            hits = [line for line in self.log_text().splitlines() if regex.search(line)]
            if len(hits) >= count:
                return hits
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {count} log lines matching {pattern!r} within {timeout}s:\n"
                                   f"{self.log_text()}")
            time.sleep(0.02)

    def reopen_log(self) -> None:
        """SIGHUP: mosquitto reloads its config and reopens its log file (log rotation)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.returncode = self.proc.returncode
            if self.proc.stdout:
                self.proc.stdout.close()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
