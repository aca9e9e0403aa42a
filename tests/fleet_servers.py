"""Real servers of a fleet, started by the tests on loopback: PostgreSQL (Debian's `postgresql`:
`initdb` in a temporary folder, then `postgres` on a free port). Locally a test that needs one
skips when it cannot start; under CI (CI=true or CORRELATOR_REQUIRE_FLEET=1) it fails, so a
machine that cannot run them never passes silently.

PostgreSQL refuses to run as root, which CI is: as root the server runs as the `postgres` user
(`runuser -u postgres --` for initdb), in a folder that user owns. The server is a child of the
test process, which the kernel stops when that process dies, even killed (PR_SET_PDEATHSIG), so
no test run leaves a PostgreSQL behind. (A module of its own, not conftest, so
other fleet helpers can import it: tests/conftest.py is also a module named `conftest`.)"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from lab.ports import free_port

REQUIRE_FLEET = os.environ.get("CI", "").lower() in {"1", "true", "yes"} or bool(
    os.environ.get("CORRELATOR_REQUIRE_FLEET"))

#: The unprivileged user servers run as when the tests run as root.
SERVICE_USER = "postgres"


class ServerUnavailable(Exception):
    """A fleet server cannot be started on this machine (with the reason)."""


def unavailable(what: str, why: str) -> None:
    """Skip the test here, fail it under CI."""
    if REQUIRE_FLEET:
        pytest.fail(f"{what} is required in CI but cannot start: {why}", pytrace=False)
    pytest.skip(f"{what} cannot start: {why}")


def as_service_user(command: list[str]) -> list[str]:
    """`command`, run as SERVICE_USER when we are root (the servers refuse root)."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", SERVICE_USER, "--", *command]


def service_folder(prefix: str) -> Path:
    """A new folder under the system's temp folder that the servers' user owns (pytest's own
    temp folders are private to root, where that user cannot reach)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(folder, SERVICE_USER, SERVICE_USER)
    return folder


def die_with_parent() -> None:
    """In a server's process, before exec: SIGQUIT (PostgreSQL's immediate shutdown; nats-server
    and mosquitto stop at it too) when the test process dies. Set after the switch to the
    servers' user, which would clear it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGQUIT)  # 1: PR_SET_PDEATHSIG


def postgres_bin() -> Path:
    """The newest PostgreSQL's binaries folder (Debian: /usr/lib/postgresql/VERSION/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise ServerUnavailable("PostgreSQL is not installed (Debian: apt-get install postgresql)")


#: PostgreSQL's shutdown modes and the signal that asks for each.
_SHUTDOWN = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


class PostgresServer:
    """One PostgreSQL cluster on 127.0.0.1:`port`, trusting loopback connections (test data only),
    its files in a folder of its own."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        if os.geteuid() == 0:
            try:
                import pwd

                pwd.getpwnam(SERVICE_USER)
            except KeyError:
                raise ServerUnavailable(f"no user {SERVICE_USER!r} to run PostgreSQL as (root cannot)") from None
        self.folder = service_folder("correlator-pg-")
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = free_port()
        self.user = "postgres"
        self.process: subprocess.Popen[bytes] | None = None
        self._run(["initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-locale",
                   "--no-sync"], timeout=120)

    def _run(self, command: list[str], timeout: float = 60) -> None:
        done = subprocess.run(as_service_user([str(self.bin / command[0]), *command[1:]]), capture_output=True,
                              text=True, timeout=timeout, cwd=self.folder, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise ServerUnavailable(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n{log}")

    def start(self, timeout: float = 60) -> PostgresServer:
        """Start the server (again, on the same port and data) and wait until it takes connections."""
        # fsync off: the data is the test's own and goes away with it
        command = [str(self.bin / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                   "-k", str(self.folder), "-c", "fsync=off", "-c", "synchronous_commit=off",
                   "-c", "full_page_writes=off", "-c", "max_connections=200"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
                                            user=SERVICE_USER if os.geteuid() == 0 else None,
                                            preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop("immediate")
                raise ServerUnavailable(f"postgres did not start: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """Shut the server down: `fast` (clients disconnected, a clean stop), `immediate` (as a
        crash) or `smart` (after the clients leave)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(_SHUTDOWN[mode])
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
