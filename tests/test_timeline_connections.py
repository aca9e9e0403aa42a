"""Connection stitching over real broker logs: the captured incidents in sample_logs/, and a real
broker in tmp_path with clients that fail TLS, are refused, and succeed, whose own logs (Python
logging, local port included) are linked to the broker's lines by port."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from correlator.formats.registry import Registry, load_registry
from correlator.model import Event
from correlator.sources.files import LogFile
from correlator.timeline.connections import (
    CLOSED,
    CONNECTED,
    REFUSED,
    TLS_FAILED,
    Connection,
    Stitcher,
    stitch,
)
from correlator.timeline.merge import merge
from lab import pki
from lab.broker import Mosquitto

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"

#: A small field-like client: Python logging (in a layout of its own, so the built-in
#: python_logging format does not claim it and the test's format below applies), one connection per attempt,
#: the local socket address logged once the TCP connection is up (that port is what the broker's
#: `New connection from ip:port` carries).
CLIENT = r'''
import logging, sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

host, port, cid, cafile, attempts, logfile, user = sys.argv[1:8]
port, attempts = int(port), int(attempts)
logging.basicConfig(filename=logfile, level=logging.DEBUG, format="%(asctime)s [%(levelname)s] %(name)s | %(message)s")
log = logging.getLogger("field.client")
for attempt in range(1, attempts + 1):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid)
    client.enable_logger(logging.getLogger("paho.mqtt.client"))
    if user:
        client.username_pw_set(user, "wrong-password")
    if cafile != "-":
        client.tls_set(ca_certs=cafile)
    log.info("connecting to %s:%d (attempt %d)", host, port, attempt)
    try:
        client.connect(host, port, keepalive=30)
    except Exception as exc:
        log.error("connect failed: %s", exc)
        time.sleep(0.3)
        continue
    local = client.socket().getsockname()
    log.info("socket open: local %s:%d", local[0], local[1])
    done = time.monotonic() + 1.5
    while time.monotonic() < done and not client.is_connected() and client.socket() is not None:
        client.loop(0.05)
    if client.is_connected():
        log.info("connected as %s", cid)
        client.disconnect()
        client.loop(0.05)
    else:
        log.error("no session")
    time.sleep(0.3)
'''

#: The format a user would drop in a folder for that client's log (it is not a built-in one).
CLIENT_FORMAT = r"""
[format]
name = "timeline_test_client"
title = "the timeline tests' paho client"
role = "client"
priority = 60

[[format.line]]
name = "pylog"
regex = '^(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) \[(?P<level>[A-Z]+)\] (?P<_logger>\S+) \| (?P<body>.*)$'
time = "iso"
[[format.line.sample]]
line = '2026-11-23 14:32:24,424 [INFO] field.client | connecting to 127.0.0.1:1883 (attempt 1)'
kind = "net.connecting"
fields = { remote_addr = "127.0.0.1", remote_port = "1883" }

[[message]]
name = "connecting"
kind = "net.connecting"
regex = '^connecting to (?P<remote_addr>\S+):(?P<remote_port>\d+) \(attempt \d+\)$'

[[message]]
name = "socket_open"
kind = "net.connected"
regex = '^socket open: local (?P<local_addr>\S+):(?P<local_port>\d+)$'
[[message.samples]]
line = '2026-11-23 14:32:24,431 [INFO] field.client | socket open: local 127.0.0.1:52547'
fields = { local_addr = "127.0.0.1", local_port = 52547 }

[[message]]
name = "sending_connect"
kind = "mqtt.connect"
regex = "^Sending CONNECT \\(.*\\) client_id=b'(?P<client_id>[^']*)'$"
[[message.samples]]
line = "2026-11-23 14:32:24,432 [DEBUG] paho.mqtt.client | Sending CONNECT (u1, p1, c1, k30) client_id=b'edge-10'"
fields = { client_id = "edge-10" }

[[message]]
name = "connack"
kind = "mqtt.connack"
regex = '^Received CONNACK \((?P<session_present>\d), (?P<connack_code>\d+)\)$'
extract = true
[[message.samples]]
line = '2026-11-23 14:32:24,432 [DEBUG] paho.mqtt.client | Received CONNACK (0, 5)'
fields = { session_present = "0", connack_code = 5 }
"""


def client_registry(folder: Path) -> Registry:
    """Built-in formats plus the test client's; formats others are still writing and that do not
    load yet are skipped rather than failing these tests."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timeline_test_client.toml").write_text(CLIENT_FORMAT)
    registry = load_registry([folder], collect=True)
    assert "timeline_test_client" in registry.formats, registry.errors
    return registry


def run_client(workdir: Path, port: int, client_id: str, *, cafile: str = "-", attempts: int = 1,
               user: str = "", faketime: str | None = None) -> Path:
    log = workdir / "clients" / f"{client_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    script = workdir / "field_client.py"
    script.write_text(CLIENT)
    command = [sys.executable, str(script), "127.0.0.1", str(port), client_id, cafile, str(attempts), str(log), user]
    if faketime is not None:
        command = ["faketime", "-f", faketime, *command]
    subprocess.run(command, check=True, timeout=60, cwd=workdir)
    return log


def conns_of(connections: list[Connection], **want: object) -> list[Connection]:
    return [c for c in connections if all(getattr(c, k) == v for k, v in want.items())]


@pytest.fixture(scope="module")
def samples_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return client_registry(tmp_path_factory.mktemp("formats"))


def broker_log(name: str) -> Path:
    path = SAMPLES / name / "broker" / "mosquitto.log"
    if not path.exists():
        pytest.skip(f"sample_logs/{name} not captured yet")
    return path


def test_bad_credentials_sample(samples_registry: Registry) -> None:
    events, connections = stitch(LogFile(broker_log("bad_credentials"), samples_registry).events())
    refused = conns_of(connections, outcome=REFUSED)
    assert len(refused) == 4
    for conn in refused:
        assert [e.kind for e in conn.broker_events] == ["net.accept", "mqtt.connack_refused", "mqtt.disconnect"]
        assert conn.connack_code == 5 and conn.close_reason == "not_authorised" and conn.peer_port is not None
        assert all(e.connection == conn.id for e in conn.broker_events)
    (hmi,) = conns_of(connections, client_id="hmi-01")
    assert (hmi.outcome, hmi.username, hmi.close_reason) == (CONNECTED, "HMI", "clean")
    assert hmi.broker_events[0].kind == "net.accept" and hmi.broker_events[-1].kind == "mqtt.disconnect"
    # the subscription's tab-indented topic line has no client id: it follows its SUBSCRIBE
    assert "mqtt.subscribe_topic" in [e.kind for e in hmi.broker_events]
    # start-up lines belong to no connection
    assert [e.connection for e in events[:4]] == [None] * 4


def test_plain_to_tls_port_sample(samples_registry: Registry) -> None:
    _, connections = stitch(LogFile(broker_log("plain_to_tls_port"), samples_registry).events())
    failed = conns_of(connections, outcome=TLS_FAILED)
    assert len(failed) == len(connections) >= 3
    one_line = [c for c in failed if len(c.broker_events) == 1]
    stitched = [c for c in failed if len(c.broker_events) == 3]
    assert one_line and stitched
    for conn in one_line:  # `Client connection from ip failed: reason` has no accept before it
        assert conn.broker_events[0].kind == "tls.error" and conn.peer_port is None
    for conn in stitched:
        assert [e.kind for e in conn.broker_events] == ["net.accept", "tls.error", "mqtt.disconnect"]
        assert any("wrong version number" in error for error in conn.errors)


@pytest.mark.broker
def test_real_broker_tls_failures_refusals_and_sessions_link_to_client_logs(
        mosquitto_available: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca = pki.make_ca(not_before=now - timedelta(days=1))
    other_ca = pki.make_ca("some other CA", not_before=now - timedelta(days=1))
    server = pki.make_leaf("127.0.0.1", ca, sans=["127.0.0.1"], not_before=now - timedelta(days=1))
    ca.write(tmp_path / "ca.pem")
    other_ca.write(tmp_path / "other-ca.pem")
    server.write(tmp_path / "server.pem", tmp_path / "server.key")
    (tmp_path / "passwd").write_text("")
    config = (f"per_listener_settings true\n"
              f"listener {{port0}} 127.0.0.1\nallow_anonymous true\n"
              f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'server.pem'}\nkeyfile {tmp_path / 'server.key'}\n"
              f"listener {{port1}} 127.0.0.1\nallow_anonymous false\npassword_file {tmp_path / 'passwd'}\n"
              "log_type all\nlog_timestamp true\n")
    registry = client_registry(tmp_path / "formats")
    with Mosquitto(tmp_path / "broker", config, listeners=2) as broker:
        tls_port, plain_port = broker.ports
        bad_ca = run_client(tmp_path, tls_port, "edge-31", cafile=str(tmp_path / "other-ca.pem"), attempts=2)
        good = run_client(tmp_path, tls_port, "hmi-31", cafile=str(tmp_path / "ca.pem"))
        refused = run_client(tmp_path, plain_port, "edge-32", user="MyEACM", attempts=2)
        broker.wait_for_log(r"Client (hmi-31|<unknown>) disconnected", count=3)
    files = [broker.log_path, bad_ca, good, refused]
    events, connections = stitch(merge(LogFile(p, registry).chunks() for p in files))
    assert len(events) == sum(len(list(LogFile(p, registry).events())) for p in files)

    # TLS failures: the broker stitched its lines (one of mosquitto's two shapes).
    broker_tls = [c for c in conns_of(connections, outcome=TLS_FAILED) if c.broker_source]
    assert len(broker_tls) == 2
    for conn in broker_tls:
        assert conn.listener_port in (tls_port, None)
        assert any("unknown ca" in e or "certificate verify failed" in e for e in conn.errors), conn.errors
    # The client's failures log no port; with no other client near them they pair up by time, in order.
    assert [c.link for c in broker_tls] == ["time", "time"]
    for conn in broker_tls:
        assert conn.client_source == "client:edge-31"
        assert [e.kind for e in conn.client_events] == ["net.connecting", "tls.error"]
        assert {e.connection for e in conn.broker_events + conn.client_events} == {conn.id}
    assert broker_tls[0].client_events[0].line < broker_tls[1].client_events[0].line

    # The successful session: both sides, linked by the client's local port.
    (session,) = conns_of(connections, client_id="hmi-31", outcome=CONNECTED)
    # paho logs `Sending CONNECT` (with the id) inside connect(), before the app can log its port
    assert session.link in ("port", "client_id") and session.client_source == "client:hmi-31"
    local_ports = [e.fields["local_port"] for e in session.client_events if "local_port" in e.fields]
    assert local_ports == [session.peer_port]
    assert session.listener_port == tls_port and session.close_reason == "clean"
    assert [e.kind for e in session.client_events][:3] == ["net.connecting", "mqtt.connect", "net.connected"]
    assert session.broker_events[0].kind == "net.accept"
    assert {e.connection for e in session.client_events + session.broker_events} == {session.id}

    # Refused logins: every attempt is its own connection, both sides, linked by port.
    logins = conns_of(connections, client_source="client:edge-32")
    assert len(logins) == 2
    for conn in logins:
        assert (conn.outcome, conn.link, conn.connack_code, conn.listener_port) == (REFUSED, "port", 5, plain_port)
        assert conn.broker_source == "broker" and conn.client_id == "edge-32"
        kinds = [e.kind for e in conn.client_events]
        assert kinds[:4] == ["net.connecting", "mqtt.connect", "net.connected", "mqtt.connack"]
    assert logins[0].id != logins[1].id


def ev(source: str, line: int, ts: float, kind: str, **fields: str | int) -> Event:
    return Event(ts=ts, time_text="", source=source, file=f"{source}.log", line=line, kind=kind, raw="",
                 fields=dict(fields))


def test_state_stays_bounded_and_idle_connections_drop_out() -> None:
    closed: list[Connection] = []
    stitcher = Stitcher(on_close=closed.append, pending_timeout=30.0, idle_timeout=600.0)
    line = 0
    peak = 0
    for n in range(5000):
        t = n * 1.0
        line += 1
        stitcher.push(ev("broker", line, t, "net.accept", peer_addr="10.0.0.5", peer_port=40000 + n % 20000,
                         listener_port=8883))
        if n % 3 == 0:  # a third never say anything more: dropped after pending_timeout
            continue
        line += 1
        stitcher.push(ev("broker", line, t + 0.1, "tls.error", error="sslv3 alert certificate expired"))
        line += 1
        stitcher.push(ev("broker", line, t + 0.1, "mqtt.disconnect", client_id="<unknown>", reason="error"))
        peak = max(peak, len(stitcher.open_connections()))
    stitcher.flush()
    assert peak <= 40  # the silent ones within pending_timeout, not all 5000
    assert len(closed) == 5000
    silent = [c for c in closed if len(c.broker_events) == 1]
    assert len(silent) == 1667 and all(c.close_reason == "idle" and c.outcome == "unknown" for c in silent)
    assert all(c.outcome == TLS_FAILED for c in closed if len(c.broker_events) == 3)


def test_takeover_restart_and_unnamed_lines() -> None:
    events = [
        ev("broker", 1, 1.0, "net.accept", peer_addr="10.0.0.1", peer_port=1001, listener_port=1883),
        ev("broker", 2, 1.0, "mqtt.connect", peer_addr="10.0.0.1", peer_port=1001, client_id="plc", username="u"),
        ev("broker", 3, 2.0, "net.accept", peer_addr="10.0.0.2", peer_port=2002, listener_port=1883),
        ev("broker", 4, 2.0, "mqtt.publish", client_id="plc"),  # an established client's line in between
        ev("broker", 5, 2.0, "mqtt.takeover", client_id="plc"),
        ev("broker", 6, 2.0, "mqtt.connect", peer_addr="10.0.0.2", peer_port=2002, client_id="plc"),
        ev("broker", 7, 3.0, "net.accept", peer_addr="10.0.0.3", peer_port=3003, listener_port=1883),
        ev("broker", 8, 4.0, "broker.start"),
        ev("broker", 9, 5.0, "mqtt.disconnect", client_id="ghost", reason="clean"),
    ]
    out, connections = stitch(events)
    by_line = {e.line: e.connection for e in out}
    first, second, third, ghost = connections
    assert by_line[1] == by_line[2] == by_line[4] == by_line[5] == first.id
    assert first.close_reason == "takeover" and first.outcome == CONNECTED
    assert by_line[3] == by_line[6] == second.id and second.close_reason == "broker restart"
    assert third.close_reason == "broker restart" and third.outcome == "unknown"
    assert by_line[8] is None
    # a session from before the log began still groups its lines
    assert (ghost.client_id, ghost.close_reason, by_line[9]) == ("ghost", "clean", ghost.id)
    assert CLOSED not in {c.outcome for c in connections}


def test_live_ticks_release_held_events_of_a_quiet_log() -> None:
    stitcher = Stitcher(window=1.0)
    assert stitcher.advance(5.0) == []  # no event yet: nothing to move
    held = [ev("broker", 1, 100.0, "net.accept", peer_addr="10.0.0.9", peer_port=5555, listener_port=8883),
            ev("broker", 2, 100.0, "tls.error", error="tlsv1 alert unknown ca"),
            ev("broker", 3, 100.0, "mqtt.disconnect", client_id="<unknown>", reason="error")]
    out = [e for event in held for e in stitcher.push(event)]
    assert out == []  # waiting for a client side that might still show up
    assert stitcher.advance(1.0) == []
    released = stitcher.advance_to(102.5)
    assert [e.line for e in released] == [1, 2, 3]
    assert len({e.connection for e in released}) == 1 and released[0].connection is not None
    assert stitcher.advance_to(50.0) == []  # the clock never goes back
    (conn,) = stitcher.pop_closed()  # finished one window after its end
    assert conn.outcome == TLS_FAILED and conn.closed


def untimed(source: str, line: int, file_time: float, kind: str, **fields: str | int) -> Event:
    """A line of a log with no times of its own (mosquitto_pub -d), dated by its file's time."""
    event = ev(source, line, file_time, kind, **fields)
    event.estimated = True
    return event


def failed_tls(line: int, ts: float, port: int) -> list[Event]:
    """mosquitto's three lines of a TLS handshake that failed: no client id, `<unknown>`."""
    return [ev("broker", line, ts, "net.accept", peer_addr="127.0.0.1", peer_port=port, listener_port=8883),
            ev("broker", line + 1, ts, "tls.error", error="tlsv1 alert unknown ca"),
            ev("broker", line + 2, ts, "mqtt.disconnect", client_id="<unknown>", reason="error")]


def pub_tls_failure(source: str, file_time: float, client_id: str) -> list[Event]:
    """mosquitto_pub -d giving up on a TLS handshake: stderr first, its buffered stdout after."""
    return [untimed(source, 1, file_time, "tls.error", error="certificate verify failed"),
            untimed(source, 2, file_time, "mqtt.connect", client_id=client_id)]


def test_untimed_client_is_paired_with_the_unclaimed_connection_before_its_file_time() -> None:
    stitcher = Stitcher(window=2.0)
    closed: list[Connection] = []
    out: list[Event] = []
    # two failed handshakes; the paho client's log names the port of the first one
    for event in [*failed_tls(1, 100.0, 40001), *failed_tls(4, 100.0, 40002),
                  ev("client:edge-02", 1, 100.2, "net.connected", local_port=40001),
                  ev("client:edge-02", 2, 100.3, "tls.error", tls_reason="unknown_ca")]:
        out += stitcher.push(event)
    # both connections are finished and handed out (the one with no client side once it has
    # waited two windows for an attempt that began up to a window after it)
    out += stitcher.advance_to(104.5)
    closed += stitcher.pop_closed()
    claimed = {c.peer_port: c for c in closed if c.broker_source}
    assert claimed[40001].client_source == "client:edge-02" and claimed[40002].client_source is None
    # mosquitto_pub's lines arrive at its file's time, 5 s after the broker's connection
    for event in pub_tls_failure("client:edge-01-pub", 105.0, "edge-01"):
        out += stitcher.push(event)
    out += stitcher.flush()
    closed += stitcher.pop_closed()
    paired = claimed[40002]
    assert (paired.client_source, paired.link, paired.client_id, paired.reissued) == (
        "client:edge-01-pub", "file_time", "edge-01", True)
    assert (paired.start, paired.end) == (100.0, 100.0)  # the file's time does not stretch it
    assert [c.id for c in closed].count(paired.id) == 2  # out again, now with its client
    assert {c.id for c in closed} == {claimed[40001].id, paired.id}  # no client-only connection
    assert {e.connection for e in out if e.source == "client:edge-01-pub"} == {paired.id}
    assert claimed[40001].link == "port" and not claimed[40001].reissued


def test_untimed_client_far_from_any_connection_is_left_alone() -> None:
    events = [*failed_tls(1, 100.0, 40002), *pub_tls_failure("client:edge-01-pub", 100.0 + 600, "edge-01")]
    out, connections = stitch(events, window=2.0)
    broker, = [c for c in connections if c.broker_source]
    client, = [c for c in connections if c.client_source]
    assert broker.client_source is None and broker.link is None
    assert (client.broker_source, client.client_id, client.outcome) == (None, "edge-01", TLS_FAILED)
    assert {e.connection for e in out if e.source == "client:edge-01-pub"} == {client.id}
    assert client.id != broker.id


def test_timed_client_claims_the_connection_before_an_untimed_one_can() -> None:
    # The only failed handshake at 100; the untimed client's file time (100.5) comes before the
    # timed client's attempt (100.8), which pairs with it by time a window later: no theft.
    events = [*failed_tls(1, 100.0, 40002),
              *pub_tls_failure("client:edge-01-pub", 100.5, "edge-01"),
              ev("client:edge-02", 1, 100.8, "net.connecting", remote_port=8883),
              ev("client:edge-02", 2, 100.9, "tls.error", tls_reason="unknown_ca")]
    out, connections = stitch(events, window=2.0)
    broker, = [c for c in connections if c.broker_source]
    assert (broker.client_source, broker.link) == ("client:edge-02", "time")
    pub, = [c for c in connections if c.client_source == "client:edge-01-pub"]
    assert pub.broker_source is None and pub.id != broker.id
    assert {e.connection for e in out if e.source == "client:edge-01-pub"} == {pub.id}
    # Without the timed client, the connection half a second before the file's time is the pub's,
    # decided two windows after that time (the clock passing one window after it decides nothing).
    stitcher = Stitcher(window=2.0)
    out = [e for event in events[:5] for e in stitcher.push(event)]
    out += stitcher.advance_to(103.5)
    assert stitcher.pop_closed() == []  # still waiting for a timed attempt
    out += stitcher.advance_to(104.6)
    assert {e.connection for e in out} == {"c1"}
    out += stitcher.flush()
    broker, = stitcher.pop_closed()  # handed out once, with its client side
    assert (broker.id, broker.client_source, broker.link, broker.reissued) == (
        "c1", "client:edge-01-pub", "file_time", False)
    assert {e.connection for e in out} == {broker.id} and len(out) == 5


def test_untimed_pairing_needs_an_unambiguous_agreeing_candidate() -> None:
    # Two untimed clients dated alike and one unclaimed TLS failure: time cannot tell whose it was.
    ambiguous = [*failed_tls(1, 100.0, 40002), *pub_tls_failure("client:edge-01-pub", 101.0, "edge-01"),
                 *pub_tls_failure("client:edge-03-pub", 101.0, "edge-03")]
    _, connections = stitch(ambiguous, window=2.0)
    assert [c.client_source for c in connections if c.broker_source] == [None]
    # A refused login is not a TLS failure; a failure of its own is then told apart by outcome.
    refused = [untimed("client:edge-41-pub", 1, 101.0, "mqtt.refused", error="not authorised"),
               untimed("client:edge-41-pub", 2, 101.0, "mqtt.connect", client_id="edge-41")]
    _, connections = stitch([*failed_tls(1, 100.0, 40002), *refused], window=2.0)
    assert [c.client_source for c in connections if c.broker_source] == [None]
    login = [ev("broker", 4, 100.0, "net.accept", peer_addr="127.0.0.1", peer_port=40003, listener_port=1883),
             ev("broker", 5, 100.0, "mqtt.connack_refused", connack_code=5),
             ev("broker", 6, 100.0, "mqtt.disconnect", client_id="<unknown>", reason="not_authorised")]
    both = [*failed_tls(1, 100.0, 40002), *login, *refused, *pub_tls_failure("client:edge-42-pub", 101.0, "edge-42")]
    _, connections = stitch(both, window=2.0)
    by_port = {c.peer_port: c for c in connections if c.broker_source}
    assert (by_port[40003].client_source, by_port[40003].outcome) == ("client:edge-41-pub", REFUSED)
    assert (by_port[40002].client_source, by_port[40002].outcome) == ("client:edge-42-pub", TLS_FAILED)
    assert {c.link for c in by_port.values()} == {"file_time"}


def test_a_failed_handshake_waits_two_windows_for_its_attempt_however_many_lines_come_between() -> None:
    """A broker connection with no client side waits for an attempt that began up to a window
    after it; lines of other connections in between (routine traffic the bulk reader never
    turns into events) do not end that wait early, so both readers stitch alike."""
    def stitched(filler: bool) -> list[tuple[str | None, str | None]]:
        events = failed_tls(1, 100.0, 40002)
        if filler:
            events += [ev("broker", 10 + i, 100.0 + i / 100, "mqtt.packet", client_id="hmi-01") for i in range(1, 340)]
        events += [ev("client:edge-02", 1, 101.5, "tls.error", error="certificate verify failed")]
        events.sort(key=lambda e: e.ts)
        _, connections = stitch(events, window=2.0)
        return sorted((c.client_source, c.link) for c in connections if c.broker_source and c.peer_port)

    assert stitched(True) == stitched(False) == [("client:edge-02", "time")]
