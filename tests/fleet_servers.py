"""Real servers of a fleet, started by the tests on loopback: PostgreSQL (Debian's `postgresql`:
`initdb` in a temporary folder, `pg_ctl start` on a free port). Locally a test that needs one
skips when it cannot start; under CI (CI=true or CORRELATOR_REQUIRE_FLEET=1) it fails, so a
machine that cannot run them never passes silently.

PostgreSQL refuses to run as root, which CI is: as root the server runs as the `postgres` user
(`runuser -u postgres --`), in a folder that user owns. (A module of its own, not conftest, so
other fleet helpers can import it: tests/conftest.py is also a module named `conftest`.)"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        self._run(["initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-locale",
                   "--no-sync"], timeout=120)

    def _run(self, command: list[str], timeout: float = 60) -> None:
        done = subprocess.run(as_service_user([str(self.bin / command[0]), *command[1:]]), capture_output=True,
                              text=True, timeout=timeout, cwd=self.folder, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise ServerUnavailable(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n{log}")

    def start(self) -> PostgresServer:
        # fsync off: the data is the test's own and goes away with it
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start"])
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])

    def running(self) -> bool:
        done = subprocess.run(as_service_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]),
                              capture_output=True, cwd=self.folder, check=False)
        return done.returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def close(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
