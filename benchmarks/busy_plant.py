"""A busy plant made with real software, for benchmarks/analyze.py: a real mosquitto with
`log_type all` and about fifty live paho clients, run until its log holds the lines asked for.

Forty publishers (QoS 1, a few QoS 2) feed ten subscribers whose wildcards overlap, so each
publish is fanned out and the log is the routine PUBLISH/PUBACK/PUBREC/PUBREL/PUBCOMP flood a
plant broker writes. Busy clients log at WARNING, as field devices in production do. Buried in
the flood, once about a third and again two thirds of the lines are written, four failures run
with DEBUG logs as in sample_logs/mixed: a wrong password (mosquitto_pub), an expired client
certificate (paho), a read-only user publishing node commands, and a client whose certificate
is from an unknown CA. The folder (broker log, mosquitto.conf, passwd, ACL, certificates and
client logs) is kept in a cache outside the repository, keyed by the line count, because making
two million lines takes minutes.

    .venv/bin/python benchmarks/busy_plant.py [--lines 2000000] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from lab import pki  # noqa: E402
from lab.incidents import (  # noqa: E402
    HOST,
    LOG_ALL,
    SPARKPLUG_ACL,
    USERS,
    Scene,
    tls_listener,
    usual_pki,
)

#: Bumped when the scene changes, so a cached plant made by an older scene is made again.
SCENE_VERSION = 1
PUBLISHERS = 40
SUBSCRIBERS = 10
BYTES_PER_LINE = 80  # a little under the real mean, so the size check errs towards more lines


def cache_dir(lines: int, base: Path | None = None) -> Path:
    root = base or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "correlator-bench"
    return root / f"busy-plant-v{SCENE_VERSION}-{lines}"


def line_count(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            count += block.count(b"\n")
    return count


def _wait_for_lines(log: Path, target: int, started: float) -> None:
    while True:
        size = log.stat().st_size if log.exists() else 0
        if size >= target * BYTES_PER_LINE:
            lines = line_count(log)
            print(f"  {lines:,} lines after {time.monotonic() - started:.0f} s", file=sys.stderr)
            if lines >= target:
                return
        time.sleep(2)


def _failures(scene: Scene, plain: int, tls: int, round_: int, lab_other: bool) -> None:
    """The buried failures, each with a DEBUG client log as in the samples."""
    eacm = ("MyEACM", USERS["MyEACM"])
    scene.mosquitto_client(f"hmi-9{round_}-pub", "mosquitto_pub", plain,
                           ["-t", f"STATE/hmi-9{round_}", "-m", "ONLINE", "-q", "1"], client_id=f"hmi-9{round_}",
                           username="HMI", password="hmi-secret-OLD")
    scene.paho(f"edge-9{round_}", tls, ["--tls", "--cafile", "certs/ca.pem", "--cert", "certs/edge-expired.pem",
                                        "--key", "keys/edge-expired.key", "--publish",
                                        f"spBv1.0/PlantB/NDATA/edge-9{round_}", "--attempts", "3",
                                        "--retry-delay", "1"],
               client_id=f"edge-9{round_}", duration=5, username=eacm[0], password=eacm[1])
    scene.paho(f"viewer-9{round_}", plain, ["--publish", "spBv1.0/PlantB/NCMD/edge-00", "--interval", "1",
                                            "--attempts", "1"], client_id=f"viewer-9{round_}",
               username="SparkplugViewer", password=USERS["SparkplugViewer"], duration=4)
    if lab_other:
        scene.paho(f"edge-8{round_}", tls, ["--tls", "--cafile", "certs/ca.pem", "--cert", "certs/edge-other.pem",
                                            "--key", "keys/edge-other.key", "--publish",
                                            f"spBv1.0/PlantB/NDATA/edge-8{round_}", "--attempts", "2"],
                   client_id=f"edge-8{round_}", duration=4, username=eacm[0], password=eacm[1])


def make(out: Path, lines: int) -> Path:
    """Run the plant until the broker log holds `lines` lines; return the folder."""
    scene = Scene.create(out.parent, out.name,
                         f"A busy plant: {PUBLISHERS} publishers and {SUBSCRIBERS} subscribers over a real "
                         f"mosquitto with log_type all, about {lines:,} lines, with failures buried in it.")
    lab = usual_pki(scene)
    scene.save_cert(lab.client("edge-ok"), "edge-ok")
    scene.save_cert(lab.client("edge-expired", not_before=lab.now - timedelta(days=367),
                               not_after=lab.now - timedelta(days=2)), "edge-expired")
    other_ca = pki.make_ca("another CA", not_before=lab.now - timedelta(days=10), days=365)
    scene.save_cert(lab.client("edge-other", issuer=other_ca), "edge-other")
    scene.passwd(USERS)
    scene.acl(SPARKPLUG_ACL)
    config = (f"per_listener_settings false\nallow_anonymous false\npassword_file passwd\nacl_file acl\n"
              f"max_queued_messages 100000\nlistener {{port0}} {HOST}\n"
              + tls_listener("{port1}", require_certificate=True) + LOG_ALL)
    eacm = ("MyEACM", USERS["MyEACM"])
    started = time.monotonic()
    with scene.broker(config, listeners=2) as broker:
        plain, tls = broker.ports
        for i in range(SUBSCRIBERS):
            # each subscriber hears a quarter of the plant, overlapping its neighbours
            topics = [f"spBv1.0/PlantB/NDATA/edge-{j:02d}" for j in range(PUBLISHERS) if (j + i) % 5 < 2]
            scene.paho(f"hmi-{i:02d}", plain, [arg for t in topics for arg in ("--subscribe", t)]
                       + ["--attempts", "1000", "--log-level", "WARNING", "--keepalive", "60"],
                       client_id=f"hmi-{i:02d}", username="HMI", password=USERS["HMI"], duration=100_000)
        time.sleep(1)
        for j in range(PUBLISHERS):
            tls_args = (["--tls", "--cafile", "certs/ca.pem", "--cert", "certs/edge-ok.pem", "--key",
                         "keys/edge-ok.key"] if j % 10 == 0 else [])
            scene.paho(f"edge-{j:02d}", tls if tls_args else plain,
                       [*tls_args, "--publish", f"spBv1.0/PlantB/NDATA/edge-{j:02d}", "--interval", "0.02",
                        "--qos", "2" if j % 8 == 7 else "1", "--attempts", "1000", "--log-level", "WARNING",
                        "--keepalive", "60"],
                       client_id=f"edge-{j:02d}", duration=100_000, username=eacm[0], password=eacm[1])
        _wait_for_lines(broker.log_path, lines // 3, started)
        _failures(scene, plain, tls, 1, lab_other=True)
        _wait_for_lines(broker.log_path, 2 * lines // 3, started)
        _failures(scene, plain, tls, 2, lab_other=False)
        _wait_for_lines(broker.log_path, lines, started)
        for client in scene.clients.values():
            if client.proc is not None and client.proc.poll() is None:
                client.proc.send_signal(signal.SIGINT)
        scene.wait(timeout=20)
        time.sleep(0.5)
        broker.stop()
    scene.finish([("auth.bad_credentials", ["hmi-91-pub", "hmi-92-pub"]),
                  ("tls.client_cert_expired", ["edge-91", "edge-92"]),
                  ("acl.publish_denied", ["viewer-91", "viewer-92"]),
                  ("tls.client_cert_untrusted", ["edge-81"])], broker=broker)
    (out / "READY").write_text(f"{line_count(broker.log_path)}\n")
    return out


def ensure(lines: int, base: Path | None = None) -> Path:
    """The cached plant of `lines` lines, made first when it is missing."""
    out = cache_dir(lines, base)
    if not (out / "READY").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"making a busy plant of {lines:,} broker lines in {out} (real mosquitto and paho; minutes)",
              file=sys.stderr)
        make(out, lines)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args()
    print(ensure(args.lines, args.cache))


if __name__ == "__main__":
    main()
