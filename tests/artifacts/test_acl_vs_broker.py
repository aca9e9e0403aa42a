"""Our ACL answers against a real mosquitto 2.0 broker on the same ACL file.

One broker serves the whole table. Publish: each user publishes with QoS 1 and an observer with
full rights reports what arrived. Read: each user subscribes to exact topics and a privileged
user publishes to them. A message not seen within a short wait counts as denied; a message that
was allowed arrives in milliseconds on loopback.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from correlator.artifacts.acl import AclFile, parse_acl
from lab.broker import Mosquitto

pytestmark = pytest.mark.broker

ACL = """\
# anonymous section: only for clients without a username
topic read public/#
topic write anon/in

user alice
topic readwrite sensors/#
topic deny sensors/secret
topic read cmd/+

user bob
topic write sensors/bob
topic read STATE/+
topic readwrite spBv1.0/#
topic readwrite $custom/bob

user dave
topic readwrite #

user e+vil
topic readwrite evil/#

user admin
topic readwrite #
topic readwrite $custom/#
topic read $SYS/#

pattern readwrite clients/%c/#
pattern write users/%u/out
pattern readwrite sensors/%u/#
pattern deny sensors/%u/blocked
pattern read sentinel/%c
"""

USERS = ("alice", "bob", "carol", "dave", "e+vil", "site/a", "admin")
PASSWORD = "pw-secret"
#: Only a failure waits this long: an allowed message arrives in milliseconds.
SENTINEL_TIMEOUT = 10.0


@dataclass(frozen=True)
class Case:
    user: str | None
    client_id: str
    topic: str
    expected: bool
    """What we expect; the test asserts both that the broker and the parser agree with it."""


WRITE_CASES = [
    Case("alice", "a-1", "sensors/a", True),
    Case("alice", "a-2", "sensors", True),  # 'sensors/#' matches its parent
    Case("alice", "a-3", "sensors/secret", False),  # deny wins though it comes after the grant
    Case("alice", "a-4", "cmd/x", False),  # read-only entry
    Case("alice", "a-5", "public/x", False),  # the anonymous section is not alice's
    Case("alice", "a-6", "sensors/alice/blocked", True),  # own section beats a pattern deny
    Case("alice", "a-7", "$SYS/broker/x", False),  # $SYS writes are always refused
    Case("bob", "b-1", "sensors/bob", True),
    Case("bob", "b-2", "sensors/a", False),
    Case("bob", "b-3", "STATE/host1", False),
    Case("bob", "b-4", "spBv1.0/G/NBIRTH/n1", True),
    Case("bob", "b-5", "$custom/bob", True),
    Case("carol", "carol-c", "clients/carol-c/x", True),  # %c pattern; carol has no section
    Case("carol", "carol-d", "clients/carol-c/x", False),
    Case("carol", "carol-e", "users/carol/out", True),  # %u pattern
    Case("carol", "carol-f", "sensors/carol/x", True),
    Case("carol", "carol-g", "sensors/carol/blocked", False),  # pattern deny before pattern grant
    Case("dave", "d-1", "x/y", True),
    Case("dave", "d-2", "$custom/a", False),  # '#' does not reach $ topics
    Case("e+vil", "e-1", "evil/x", True),  # own section is checked before the username test
    Case("e+vil", "e-2", "clients/e-2/x", False),  # patterns refuse a username with '+'
    Case("site/a", "s-1", "users/site/a/out", True),  # '/' in a username is not refused in 2.0
    Case(None, "anon-1", "anon/in", True),
    Case(None, "anon-2", "public/x", False),
    Case(None, "anon-3", "clients/anon-3/a", True),  # %c patterns apply to anonymous clients
    Case(None, "anon-4", "users/anon-4/out", False),  # %u patterns are skipped without a username
]

READ_CASES = [
    Case("alice", "ra-1", "sensors/a", True),
    Case("alice", "ra-2", "sensors/secret", False),
    Case("alice", "ra-3", "cmd/x", True),
    Case("alice", "ra-4", "other/x", False),
    Case("bob", "rb-1", "STATE/host1", True),
    # bob's own 'write sensors/bob' does not grant read, so the check goes on to the patterns,
    # where 'sensors/%u/#' grants it (a matching entry without the access is not a denial).
    Case("bob", "rb-2", "sensors/bob", True),
    Case("bob", "rb-4", "spBv1.0/G/NDATA/n1", True),
    Case("bob", "rb-5", "sensors/a", False),
    Case("bob", "rb-3", "$custom/bob", True),
    Case("carol", "rc-1", "clients/rc-1/x", True),
    Case("carol", "rc-2", "users/carol/out", False),
    Case("dave", "rd-1", "$custom/a", False),
    Case("dave", "rd-2", "any/thing", True),
    Case(None, "rn-1", "public/news", True),
    Case(None, "rn-2", "anon/in", False),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, mosquitto_available: str) -> Iterator[tuple[Mosquitto, AclFile]]:
    work = tmp_path_factory.mktemp("acl-broker")
    acl_path = work / "acl"
    acl_path.write_text(ACL)
    pw_path = work / "passwd"
    for i, user in enumerate(USERS):
        flags = ["-b", "-c"] if i == 0 else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(pw_path), user, PASSWORD], check=True,
                       capture_output=True, timeout=10)
    config = (f"listener {{port0}} 127.0.0.1\nallow_anonymous true\npassword_file {pw_path}\n"
              f"acl_file {acl_path}\nlog_type all\n")
    parsed = parse_acl(acl_path)
    assert parsed.problems == []
    with Mosquitto(work, config) as broker:
        yield broker, parsed


def _auth(user: str | None) -> list[str]:
    return ["-u", user, "-P", PASSWORD] if user is not None else []


class Subscriber:
    """A mosquitto_sub whose lines are read as they come (it flushes each message), so a test
    waits for a sentinel instead of sleeping: the broker processes a QoS 1 PUBLISH before its
    PUBACK and delivers to a subscriber in order, so once the sentinel (published after every
    test message was acknowledged) arrives, everything allowed has arrived too."""

    def __init__(self, broker: Mosquitto, user: str | None, client_id: str, topics: list[str]) -> None:
        self.client_id = client_id
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-i", client_id, "-v", "-q", "1"]
        for topic in [*topics, f"sentinel/{client_id}"]:
            args += ["-t", topic]
        self.proc = subprocess.Popen([*args, *_auth(user)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self.done = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(f"sentinel/{self.client_id} "):
                self.done.set()

    def finish(self, broker: Mosquitto) -> set[str]:
        """Publish the sentinel, wait for it, stop, and return the payloads received."""
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t",
                        f"sentinel/{self.client_id}", "-m", "END", *_auth("admin")], check=True, timeout=10)
        assert self.done.wait(SENTINEL_TIMEOUT), f"{self.client_id}: no sentinel; got {self.lines}"
        self.proc.terminate()
        self.proc.wait(timeout=5)
        self.reader.join(timeout=5)
        return {line.rsplit(" ", 1)[-1] for line in self.lines if " " in line} - {"END"}


def _publish(broker: Mosquitto, user: str | None, client_id: str, topic: str,
             payload: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-i", client_id,
                             "-q", "1", "-t", topic, "-m", payload, *_auth(user)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _publish_all(pubs: list[subprocess.Popen[str]]) -> None:
    for pub in pubs:
        pub.communicate(timeout=10)
        assert pub.returncode == 0, "publishing itself never fails: MQTT 3.1.1 gets a normal PUBACK"


def test_publish_table_matches_broker(lab: tuple[Mosquitto, AclFile]) -> None:
    broker, acl = lab
    observer = Subscriber(broker, "admin", "observer", ["#", "$custom/#", "$SYS/broker/x"])
    broker.wait_for_log(r"Sending SUBACK to observer\b", timeout=5)
    _publish_all([_publish(broker, case.user, case.client_id, case.topic, f"w{i}")
                  for i, case in enumerate(WRITE_CASES)])
    arrived = observer.finish(broker)

    mismatches = []
    for i, case in enumerate(WRITE_CASES):
        broker_says = f"w{i}" in arrived
        ours = acl.check(case.user, case.client_id, case.topic, "write")
        if not (broker_says == ours.allowed == case.expected):
            mismatches.append(f"{case}: broker={broker_says} ours={ours.allowed} ({ours.reason})")
    assert mismatches == []


def test_read_table_matches_broker(lab: tuple[Mosquitto, AclFile]) -> None:
    broker, acl = lab
    by_client: dict[tuple[str | None, str], list[str]] = {}
    for case in READ_CASES:
        by_client.setdefault((case.user, case.client_id), []).append(case.topic)
    subs = {key: Subscriber(broker, key[0], key[1], topics) for key, topics in by_client.items()}
    for _user, client_id in subs:
        broker.wait_for_log(rf"Sending SUBACK to {re.escape(client_id)}\b", timeout=5)
    _publish_all([_publish(broker, "admin", f"admin-{i}", case.topic, f"r{i}") for i, case in enumerate(READ_CASES)])
    received = {key: sub.finish(broker) for key, sub in subs.items()}

    mismatches = []
    for i, case in enumerate(READ_CASES):
        sub = subs[(case.user, case.client_id)]
        assert not any("denied" in line.lower() for line in sub.lines), "mosquitto 2.0 grants every SUBSCRIBE"
        broker_says = f"r{i}" in received[(case.user, case.client_id)]
        ours = acl.check(case.user, case.client_id, case.topic, "read")
        if not (broker_says == ours.allowed == case.expected):
            mismatches.append(f"{case}: broker={broker_says} ours={ours.allowed} ({ours.reason})")
    assert mismatches == []


def test_wildcard_subscription_delivers_only_readable_topics(lab: tuple[Mosquitto, AclFile]) -> None:
    """alice subscribes to 'sensors/#': the SUBSCRIBE succeeds, sensors/a arrives, sensors/secret
    is dropped without a word; check_subscription calls that 'some'."""
    broker, acl = lab
    sub = Subscriber(broker, "alice", "alice-wild", ["sensors/#"])
    broker.wait_for_log(r"Sending SUBACK to alice-wild\b", timeout=5)
    _publish_all([_publish(broker, "admin", "admin-w1", "sensors/a", "ok"),
                  _publish(broker, "admin", "admin-w2", "sensors/secret", "hidden")])
    assert sub.finish(broker) == {"ok"}
    decision = acl.check_subscription("alice", "alice-wild", "sensors/#")
    assert decision.subscribe_granted and decision.delivery == "some"
    assert [d.line for d in decision.denying] == [7]


def test_denied_publish_is_logged_only_at_debug_level(lab: tuple[Mosquitto, AclFile]) -> None:
    """The broker line our rules look for, with our decision's file:line beside it."""
    broker, acl = lab
    pub = _publish(broker, "bob", "bob-denied", "sensors/a", "x")
    pub.communicate(timeout=10)
    lines = broker.wait_for_log(r"Denied PUBLISH from bob-denied", timeout=5)
    assert "sensors/a" in lines[0]
    decision = acl.check("bob", "bob-denied", "sensors/a", "write")
    assert not decision.allowed
    assert decision.fix == "topic write sensors/a" and decision.fix_section == "user bob"


BAD_ACL_LINES = {
    "bad access": ("topic sometimes sensors/#", "Invalid topic access type"),
    "tab separator": ("topic\tread sensors/#", "Invalid line"),
    "indented comment": ("  # read-only users below", "Invalid line"),
    "invalid topic": ("topic read sensors/#/x", "Invalid ACL topic"),
    "user without name": ("user", "Missing username"),
}


@pytest.mark.parametrize("case", sorted(BAD_ACL_LINES))
def test_acl_file_with_bad_line_stops_broker(case: str, tmp_path: Path, mosquitto_available: str) -> None:
    """A line our parser flags is one mosquitto refuses too: it exits at start-up."""
    line, broker_says = BAD_ACL_LINES[case]
    acl_path = tmp_path / "acl"
    acl_path.write_text(f"user alice\ntopic read ok/#\n{line}\n")
    parsed = parse_acl(acl_path)
    assert [p.line for p in parsed.problems] == [3]
    broker = Mosquitto(tmp_path, f"listener {{port0}} 127.0.0.1\nallow_anonymous true\nacl_file {acl_path}\n")
    broker.start(expect_failure=True)
    assert broker.returncode not in (None, 0)
    assert broker_says in broker.log_text()
