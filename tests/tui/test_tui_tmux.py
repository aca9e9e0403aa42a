"""End to end, as a user sees it: `correlator watch` runs in a real terminal (tmux, 120x40) on the
folder of a real mosquitto whose certificate has expired; mosquitto_pub is refused, and the
finding's id is read back from the screen."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lab import pki
from lab.broker import Mosquitto

REPO = Path(__file__).resolve().parents[2]
#: A TLS listener on the incident's own certificates, logging everything to its folder.
CONFIG = ("listener {port0} 127.0.0.1\ncafile ../certs/ca.pem\ncertfile ../certs/server.pem\n"
          "keyfile ../keys/server.key\nallow_anonymous true\nlog_dest file mosquitto.log\nlog_type all\n")
#: A timeline row on the screen: ≈ (dated by arrival), its time, its source and its text.
ROW = re.compile(r"▌(≈?)(\d\d:\d\d:\d\d)\S*\s+(broker|edge-\d+)\s+(.*)")
#: This test process's own tmux server: a pane runs with the environment of the process that
#: started its server, so a server shared with another test run (another checkout, another pytest
#: worker) would run that one's PYTHONPATH.
TMUX_SERVER = f"correlator-tests-{os.getpid()}"


def _tmux(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", "-L", TMUX_SERVER, *args], capture_output=True, text=True, check=check, env=env,
                          cwd=REPO)


def _pane_env() -> dict[str, str]:
    """The environment of a program in a pane: this one's, without COLUMNS and LINES (a pytest-xdist
    worker has them, 80 and 24, and Textual takes them over the terminal's own size, so the app
    would draw 80x24 in a 160x60 window)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return {**env, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}


def _screen(session: str) -> str:
    return _tmux("capture-pane", "-p", "-t", session).stdout


def _wait_until(session: str, holds: Callable[[str], bool], what: str, timeout: float) -> str:
    """The screen once `holds` is true of it (polled, so a loaded machine only makes it later)."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _screen(session)
        if holds(screen):
            return screen
        time.sleep(0.05)
    raise AssertionError(f"{what} never appeared on the screen:\n{screen}")


def _wait_screen(session: str, pattern: str, timeout: float) -> str:
    return _wait_until(session, lambda screen: re.search(pattern, screen) is not None, repr(pattern), timeout)


def _incident(root: Path, ca_name: str, not_before: datetime, not_after: datetime) -> None:
    """A CA and the broker's certificate, signed by it, valid from `not_before` to `not_after`."""
    ca = pki.make_ca(ca_name, not_before=not_before - timedelta(days=30), days=3650)
    ca.write(root / "certs" / "ca.pem")
    server = pki.make_leaf("broker.lab", ca, sans=("localhost", "127.0.0.1"), usage=("server",),
                           not_before=not_before, not_after=not_after)
    server.write(root / "certs" / "server.pem", root / "keys" / "server.key")


@pytest.fixture
def watch(tmux_available: str) -> Iterator[Callable[[Path, int, int], str]]:
    """Starts `correlator watch FOLDER` in a tmux session of the given width and height and gives
    its name; every session started is killed after the test, whatever happened."""
    sessions: list[str] = []
    env = _pane_env()

    def start(folder: Path, width: int, height: int) -> str:
        session = f"correlator-e2e-{os.getpid()}-{len(sessions)}"
        command = f"{sys.executable} -m correlator watch {folder}"
        _tmux("new-session", "-d", "-s", session, "-x", str(width), "-y", str(height), command, env=env)
        sessions.append(session)
        _wait_screen(session, r"LIVE", timeout=60)
        return session

    yield start
    for session in sessions:
        _tmux("kill-session", "-t", session, check=False)


@pytest.mark.broker
def test_watch_in_tmux_names_the_expired_broker_certificate(
        tmp_path: Path, mosquitto_available: str, watch: Callable[[Path, int, int], str]) -> None:
    now = datetime.now(UTC)
    root = tmp_path / "incident"
    _incident(root, "e2e CA", not_before=now - timedelta(days=377), not_after=now - timedelta(days=12))
    with Mosquitto(root / "broker", CONFIG) as broker:
        session = watch(root, 120, 40)
        assert "no finding yet" in _screen(session)
        refused = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "--cafile",
                                  str(root / "certs" / "ca.pem"), "-i", "edge-01", "-t", "plant/edge-01",
                                  "-m", "21.5"], capture_output=True, text=True, timeout=20)
        assert refused.returncode != 0
        started = time.monotonic()
        screen = _wait_screen(session, r"CRIT\s+tls\.\w+", timeout=20)
        took = time.monotonic() - started
        found = re.search(r"CRIT\s+(tls\.[a-z_.]+)", screen)
        assert found is not None and found.group(1) == "tls.server_cert_expired", screen
        _wait_screen(session, r"expired 12 days ago", timeout=12)  # cert facts (a toast may cover them)
        assert took < 10, f"the finding took {took:.1f}s to reach the screen"
        _tmux("send-keys", "-t", session, "enter")
        _wait_screen(session, r"◆", timeout=5)  # its evidence marked in the timeline
        _tmux("send-keys", "-t", session, "q")


def _wait_client_rows(session: str, count: int, timeout: float) -> None:
    """Until the screen's timeline holds `count` rows of the client edge-07."""
    _wait_until(session, lambda screen: sum(source == "edge-07" for _, _, source, _ in ROW.findall(screen)) == count,
                f"{count} rows of edge-07", timeout)


def _fail_publish(log: Path, port: int, cafile: Path, client_id: str) -> int:
    """One mosquitto_pub -d run that fails the handshake, its output appended to `log` as a user's
    shell redirect would (no times, no ports: the lines say only the client id and the error).
    Returns the lines the log holds after it: a run writes the error and OpenSSL's reason, and
    `sending CONNECT` before them or not, as its network thread happens to run."""
    with log.open("ab") as out:
        done = subprocess.run(["mosquitto_pub", "-d", "-h", "127.0.0.1", "-p", str(port), "--cafile", str(cafile),
                               "-i", client_id, "-t", f"plant/{client_id}", "-m", "21.5"], stdout=out,
                              stderr=subprocess.STDOUT, timeout=20)
    assert done.returncode != 0
    return len([line for line in log.read_text().splitlines() if line.strip()])


@pytest.mark.broker
def test_watch_dates_live_untimed_client_lines_and_ties_them_to_the_broker(
        tmp_path: Path, mosquitto_available: str, watch: Callable[[Path, int, int], str]) -> None:
    """Issue 18 item 3: mosquitto_pub -d output appended to a followed file while the watch runs
    is dated by its arrival (marked ≈), sits in time order among the broker's lines, and is stitched
    to the broker's connection, so the finding names the client id only the client's log knows."""
    now = datetime.now(UTC)
    root = tmp_path / "incident"
    _incident(root, "plant CA", not_before=now - timedelta(days=30), not_after=now + timedelta(days=300))
    other_ca = tmp_path / "other-ca.pem"
    pki.make_ca("other CA", not_before=now - timedelta(days=30), days=3650).write(other_ca)
    client_log = root / "clients" / "edge-07.log"
    client_log.parent.mkdir(parents=True)
    with Mosquitto(root / "broker", CONFIG) as broker:
        # a run before the watch: the file the watch opens already holds lines, dated its mtime
        before = _fail_publish(client_log, broker.port, other_ca, "edge-07")
        session = watch(root, 160, 60)
        _wait_client_rows(session, before, timeout=60)  # the watch has read what the file held
        time.sleep(2)  # the file's time when the watch opened it is well before the new lines
        started = datetime.now(UTC).strftime("%H:%M:%S")
        second = _fail_publish(client_log, broker.port, other_ca, "edge-07")
        # each live run is read (and dated) before the next begins: a watch slowed by a busy machine
        # would otherwise read two runs at once and date both by the later one
        _wait_client_rows(session, second, timeout=60)
        time.sleep(1.5)  # the two live runs a second apart
        written = _fail_publish(client_log, broker.port, other_ca, "edge-07")
        # stitched: the finding names the id only the client's own log says
        _wait_screen(session, r"CRIT\s+tls\.server_cert_untrusted\s+\d+\s+edge-07", timeout=60)

        def all_read(screen: str) -> bool:
            """Every line the client's log holds is a timeline row, and the broker's three connections."""
            rows: list[tuple[str, str, str, str]] = ROW.findall(screen)
            return (sum(source == "edge-07" for _, _, source, _ in rows) == written
                    and sum(source == "broker" and "New connection" in text for _, _, source, text in rows) == 3)

        screen = _wait_until(session, all_read, f"{written} client rows and 3 broker connections", timeout=60)
        rows: list[tuple[str, str, str, str]] = ROW.findall(screen)
        client = [(mark, at) for mark, at, source, _ in rows if source == "edge-07"]
        assert all(mark == "≈" for mark, _ in client), screen
        assert all(mark == "" for mark, _, source, _ in rows if source == "broker"), screen
        live = [at for _, at in client if at >= started]
        assert len(live) == written - before, f"the new lines are dated before they were written ({started}):\n{screen}"
        times = [at for _, at, _, _ in rows]
        assert times == sorted(times), f"the timeline is out of order:\n{screen}"
        _tmux("send-keys", "-t", session, "q")


def test_tui_in_tmux_searches_the_routine_lines_of_a_busy_broker(tmp_path: Path, tmux_available: str) -> None:
    """`correlator tui` on a healthy busy broker's bundle, in a real 80x24 terminal: its PUBACK
    traffic is counted by the fast reader, not parsed, yet every such line is a timeline row the
    search finds and counts, and the histogram and its jump answer."""
    bundle = REPO / "sample_logs" / "healthy_noisy"
    wanted = sum(1 for log in bundle.rglob("*.log") for line in log.read_text().splitlines()
                 if "puback" in line.lower())
    assert wanted > 1000
    session = f"correlator-tui-{os.getpid()}"
    env = _pane_env()
    _tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", f"{sys.executable} -m correlator tui {bundle}",
          env=env)
    try:
        _wait_screen(session, r"■ BUNDLE", timeout=30)
        for key in ("t", "/"):
            _tmux("send-keys", "-t", session, "-l", key)
        _wait_screen(session, r"search the timeline", timeout=10)
        _tmux("send-keys", "-t", session, "-l", "puback")
        screen = _wait_screen(session, rf"1/{wanted:,} 'puback'|1/{wanted} 'puback'", timeout=20)
        rows = [text for _, _, source, text in ROW.findall(screen) if source == "broker"]
        assert any("PUBACK" in text for text in rows), screen
        _tmux("send-keys", "-t", session, "Enter")  # keeps the search
        _wait_until(session, lambda s: not re.search(r"^\s*puback\s", s, re.M), "the search bar closing", timeout=10)
        _tmux("send-keys", "-t", session, "-l", "i")
        _wait_screen(session, r"messages per \d+ (s|min)", timeout=10)
        _tmux("send-keys", "-t", session, "-l", "G")
        _tmux("send-keys", "-t", session, "Enter")
        # back on the timeline, at the last bucket's first line
        _wait_until(session, lambda s: "messages per" not in s and bool(ROW.search(s)), "the timeline", timeout=10)
        _tmux("send-keys", "-t", session, "-l", "q")
    finally:
        _tmux("kill-session", "-t", session, check=False)
