"""Pathological logs made of real mosquitto 2.0.11 line shapes, at any size: the inputs that must
stay linear in time and flat in memory (issue 16). `benchmarks/hostile.py` times them at two
sizes; `tests/hostile/test_bounded_state.py` runs them small and checks what the report says;
`hostile_lines` makes the long lines `benchmarks/hostile.py --patterns` times the built-in formats on.

Every line shape here is copied from a log a real broker wrote (sample_logs/*/broker/mosquitto.log);
only the counts, ports, client ids and times vary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent.parent / "sample_logs"
#: The real broker logs a busy broker log replays.
BUSY_SOURCES = [SAMPLES / "healthy_noisy" / "broker" / "mosquitto.log", SAMPLES / "mixed" / "broker" / "mosquitto.log"]
_EPOCH_PREFIX = re.compile(r"^(\d{9,11}): ")

#: The epoch the samples' brokers wrote (2026-11-23 14:42:31 UTC).
EPOCH = 1795444951
_HEADER = f"{EPOCH - 1}: mosquitto version 2.0.11 starting\n"


def reconnect_storm(n: int) -> Iterator[str]:
    """n accepts of the same address and port, all in one second: a client stuck in a reconnect
    loop (or a scanner), the stitcher's hotspot before."""
    yield _HEADER
    line = f"{EPOCH}: New connection from 127.0.0.1:40000 on port 33741.\n"
    for _ in range(n):
        yield line


def repeated_error(n: int) -> Iterator[str]:
    """One failure repeated: refused logins (CONNACK 5, three lines each), 300 a second, ports
    cycling: one finding whose count is n / 3."""
    yield _HEADER
    for i in range(n // 3):
        ts = EPOCH + i // 100
        port = 1024 + i % 60000
        yield (f"{ts}: New connection from 127.0.0.1:{port} on port 1883.\n"
               f"{ts}: Sending CONNACK to 127.0.0.1 (0, 5)\n"
               f"{ts}: Client <unknown> disconnected, not authorised.\n")


def distinct_clients(n: int) -> Iterator[str]:
    """n / 3 clients, each with its own id, connecting and publishing where the ACL denies it, and
    staying connected: per-client state and per-group findings for every one of them."""
    yield _HEADER
    for i in range(n // 3):
        ts = EPOCH + i // 100
        port = 1024 + i % 60000
        cid = f"dev-{i:08d}"
        yield (f"{ts}: New connection from 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:{port} on port 1883.\n"
               f"{ts}: New client connected from 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:{port} as {cid} "
               f"(p2, c1, k60, u'fleet').\n"
               f"{ts}: Denied PUBLISH from {cid} (d0, q1, r0, m1, 'spBv1.0/Plant3/NDATA/{cid}', ... (12 bytes))\n")


def busy_broker(n: int) -> Iterator[str]:
    """n lines of a busy real broker: every line of BUSY_SOURCES (written by a real mosquitto
    2.0.11), replayed in order again and again with the epoch prefix advanced so time keeps
    moving. So the mix of messages (publishes, pings, connects, TLS errors, denials) is a real one."""
    shapes: list[tuple[int, str]] = []
    for source in BUSY_SOURCES:
        for line in source.read_text().splitlines():
            match = _EPOCH_PREFIX.match(line)
            if match:
                shapes.append((int(match.group(1)), line[match.end():]))
    base = shapes[0][0]
    span = max(t for t, _ in shapes) - base + 1
    written, round_ = 0, 0
    while True:
        for stamp, text in shapes:
            if written >= n:
                return
            yield f"{stamp + round_ * span}: {text}\n"
            written += 1
        round_ += 1


STORMS: dict[str, Callable[[int], Iterator[str]]] = {
    "reconnect_storm": reconnect_storm,
    "repeated_error": repeated_error,
    "distinct_clients": distinct_clients,
}


def write(path: Path, lines: Iterator[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 10_000:
                out.write("".join(batch))
                batch = []
        out.write("".join(batch))
    return path


#: Characters whose long runs make a backtracking pattern's repeats fight over a line.
RUNS = ["a", "1", " ", ".", ":", "-", "/", "\t", ",", '"', "[", "(", "=", "_"]


def hostile_lines(sample: str, length: int) -> list[str]:
    """`sample` (a format's sample line) cut at a few of its word boundaries, each followed by a
    long run of one character and a byte no pattern expects: a pattern has read a real head and
    then meets the run, where a backtracking one takes time that grows faster than the line."""
    cuts = sorted({0} | {i + 1 for i, char in enumerate(sample) if not char.isalnum()})
    chosen = cuts[::max(1, len(cuts) // 4)]
    return [sample[:cut] + char * length + "\x00" for cut in chosen for char in RUNS]
