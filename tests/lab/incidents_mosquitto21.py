"""An incident on mosquitto 2.1.2, whose disconnect lines differ from 2.0's in every wording
(`Client ID [ADDR:PORT] disconnected: REASON.`), made with the real 2.1.2 broker and clients built
from source (lab.mosquitto_build), like the rest of lab.incidents.

It lives apart from lab/incidents.py to keep that file's size in hand; lab.incidents registers it.
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from lab.incidents import (
    HOST,
    SPARKPLUG_ACL,
    USERS,
    IncidentFailed,
    IncidentUnavailable,
    Pki,
    Scene,
    _read,
    _require,
)
from lab.mosquitto_build import MOSQUITTO_21, BuildUnavailable, Built, built_mosquitto

#: Seconds of keepalive the frozen subscriber asks for (mosquitto_sub's least): the broker gives
#: up on it after one and a half of them without a packet.
KEEPALIVE = 5
#: Seconds between the TLS clients' runs: more than the stitching window, so that a connection no
#: port ties to its client is never within the window of another client's.
STITCH_GAP = 3.5


def _built() -> Built:
    try:
        return built_mosquitto(MOSQUITTO_21)
    except BuildUnavailable as exc:
        raise IncidentUnavailable(f"mosquitto {MOSQUITTO_21} cannot be built here: {exc}") from exc


def make_mosquitto_21_disconnects(out: Path) -> None:
    """Every failure whose broker line 2.1.1 reworded, on one 2.1.2 broker with two listeners."""
    built = _built()
    bin_dir = built.prefix / "bin"
    scene = Scene.create(
        out, "mosquitto_21_disconnects",
        f"mosquitto {MOSQUITTO_21} (built from source; its own mosquitto_pub, mosquitto_sub and mosquitto_passwd) "
        "with per_listener_settings: a plain listener with a password file and the Sparkplug ACL, and a TLS "
        "listener with require_certificate true. On the plain listener edge-20 (paho) sends user MyEACM with an "
        "old password and edge-21 (paho) a user the password file does not know; edge-22 (paho) sends "
        "no user name; two devices cloned with one client id, edge-23, take the session from each other; edge-24 "
        "(mosquitto_sub, keepalive 5 s) is frozen with SIGSTOP until the broker gives up on it, then resumed and "
        "interrupted; edge-25 (paho) is killed (SIGKILL) once subscribed, so its socket closes without a DISCONNECT; "
        "edge-28 (paho) speaks TLS to the plain listener. On the TLS listener edge-26 "
        "(mosquitto_pub) sends no client certificate and edge-27 (paho) one from a vendor CA the broker does "
        "not trust. hmi-20 logs in, subscribes and disconnects cleanly.")
    scene.passwd(USERS, tool=str(bin_dir / "mosquitto_passwd"))
    scene.acl(SPARKPLUG_ACL)
    lab = Pki.create(scene.now)
    lab.ca.write(scene.root / "certs" / "ca.pem")
    scene.save_cert(lab.server(), "server")
    vendor = Pki.create(scene.now, cn="vendor factory CA")
    scene.save_cert(lab.client("edge-27", issuer=vendor.ca, not_before=scene.now - timedelta(days=20)), "edge-27")
    config = ("per_listener_settings true\n"
              f"listener {{port0}} {HOST}\nallow_anonymous false\npassword_file passwd\nacl_file acl\n"
              f"listener {{port1}} {HOST}\ncafile ../certs/ca.pem\ncertfile ../certs/server.pem\n"
              "keyfile ../keys/server.key\nrequire_certificate true\nallow_anonymous true\n"
              "log_dest file mosquitto.log\nlog_type all\n")
    spb = "spBv1.0/Plant2/NDATA/"
    with scene.broker(config, listeners=2, binary=built.broker) as broker:
        plain, tls = broker.ports
        ok = scene.hmi("hmi-20", plain, duration=17)
        frozen = scene.mosquitto_client("edge-24-sub", "mosquitto_sub", plain,
                                        ["-t", "spBv1.0/Plant2/NCMD/edge-24", "-k", str(KEEPALIVE)],
                                        client_id="edge-24", username="MyEACM", password=USERS["MyEACM"],
                                        bin_dir=bin_dir)
        # paho, whose log reaches its file line by line: a killed mosquitto_sub loses its buffered output
        killed = scene.paho("edge-25", plain, ["--subscribe", "spBv1.0/Plant2/NCMD/edge-25", "--attempts", "1"],
                            client_id="edge-25", username="MyEACM", password=USERS["MyEACM"], duration=30)
        broker.wait_for_log(r"Sending SUBACK to edge-24")
        broker.wait_for_log(r"Sending SUBACK to edge-25", timeout=20)
        assert frozen.proc is not None and killed.proc is not None
        frozen.proc.send_signal(signal.SIGSTOP)
        frozen.info["stopped_by_lab"] = "frozen with SIGSTOP once subscribed, resumed (SIGCONT) after the broker " \
                                        "gave up on it, then interrupted (SIGINT)"
        killed.proc.send_signal(signal.SIGKILL)
        killed.info["stopped_by_lab"] = "killed with SIGKILL once subscribed"

        scene.paho("edge-20", plain, ["--publish", spb + "edge-20", "--attempts", "2", "--retry-delay", "0.7"],
                   client_id="edge-20", username="MyEACM", password="eacm-secret-OLD", duration=2.5)
        time.sleep(0.4)
        scene.paho("edge-21", plain, ["--publish", spb + "edge-21", "--attempts", "2", "--retry-delay", "0.7"],
                   client_id="edge-21", username="EdgeNode21", password="edge21-secret", duration=2.5)
        time.sleep(0.4)
        scene.paho("edge-22", plain, ["--publish", spb + "edge-22", "--attempts", "2", "--retry-delay", "0.7"],
                   client_id="edge-22", duration=2.5)
        scene.wait(scene.clients["edge-20"], scene.clients["edge-21"], scene.clients["edge-22"], timeout=10)
        time.sleep(1.0)

        for suffix in ("a", "b"):
            scene.paho(f"edge-23-{suffix}", plain, ["--publish", spb + "edge-23", "--attempts", "30",
                                                    "--retry-delay", "0.7", "--interval", "0.5"],
                       client_id="edge-23", username="MyEACM", password=USERS["MyEACM"], duration=6)
            time.sleep(0.3)
        scene.wait(scene.clients["edge-23-a"], scene.clients["edge-23-b"], timeout=15)
        time.sleep(1.0)

        pub = scene.mosquitto_client("edge-26-pub", "mosquitto_pub", tls,
                                     ["--cafile", "certs/ca.pem", "-t", spb + "edge-26", "-m", "pressure=3.2",
                                      "-q", "1"],
                                     client_id="edge-26", bin_dir=bin_dir)
        scene.wait(pub, timeout=10)
        # more than the stitching window (2 s) apart: a client that loses the TLS alert in the race
        # of TLS 1.3 cannot log its port, and then only time ties its attempt to the broker's line
        time.sleep(STITCH_GAP)
        scene.paho("edge-27", tls, ["--tls", "--cafile", "certs/ca.pem", "--cert", "certs/edge-27.pem", "--key",
                                    "keys/edge-27.key", "--publish", spb + "edge-27", "--attempts", "2",
                                    "--retry-delay", "0.5"], client_id="edge-27", duration=2)
        scene.wait(scene.clients["edge-27"], timeout=10)
        time.sleep(STITCH_GAP)
        scene.paho("edge-28", plain, ["--tls", "--cafile", "certs/ca.pem", "--publish", spb + "edge-28",
                                      "--attempts", "2", "--retry-delay", "0.5"], client_id="edge-28", duration=2)
        scene.wait(scene.clients["edge-28"], timeout=10)

        try:
            broker.wait_for_log(r"Client edge-24 \[\S+\] disconnected: exceeded timeout\.", timeout=3 * KEEPALIVE)
        finally:
            frozen.proc.send_signal(signal.SIGCONT)
        time.sleep(0.5)
        frozen.proc.send_signal(signal.SIGINT)
        try:
            frozen.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            frozen.proc.kill()
        scene.end(broker, ok)
    log = broker.log_text()
    for pattern in (r"mosquitto version 2\.1\.2 running",
                    r"Client edge-20 \[\S+\] disconnected: not authorised\.",
                    r"Client edge-21 \[\S+\] disconnected: not authorised\.",
                    r"Client edge-22 \[\S+\] disconnected: not authorised\.",
                    r"Client edge-23 \[\S+\] disconnected: session taken over\.",
                    r"Client edge-24 \[\S+\] disconnected: exceeded timeout\.",
                    r"Client edge-25 \[\S+\] disconnected: connection closed by client\.",
                    r"peer did not return a certificate",
                    r"certificate verify failed",
                    r"appears to be using TLS to connect to a non-TLS listener",
                    r"Client \S+ \[\S+\] disconnected: Protocol error\.",
                    r"Client hmi-20 \[\S+\] disconnected\."):
        _require(log, pattern, "mosquitto_21_disconnects: broker log")
    if len(_takeovers(log)) < 3:
        raise IncidentFailed("mosquitto_21_disconnects: fewer than three takeovers of edge-23")
    # TLS 1.3: the broker's alert comes after the handshake; mosquitto_pub may read a bare EOF or a
    # lost connection instead
    _require(_read(scene.root / "clients/edge-26-pub.log"), r"certificate required|unexpected eof|connection was lost",
             "mosquitto_21_disconnects: edge-26")
    scene.extra["broker"] = {"version": MOSQUITTO_21, "per_listener_settings": True,
                             "listeners": {"plain": "password_file passwd, acl_file acl, allow_anonymous false",
                                           "tls": "require_certificate true, allow_anonymous true"}}
    scene.finish([("auth.bad_credentials", ["edge-20", "edge-21"]),
                  ("auth.anonymous_denied", ["edge-22"]),
                  ("session.client_id_takeover", ["edge-23-a", "edge-23-b"]),
                  ("tls.client_cert_missing", ["edge-26-pub"]),
                  ("tls.client_cert_untrusted", ["edge-27"]),
                  ("tls.protocol_mismatch", ["edge-28"])],
                 broker=broker, extra_versions={"mosquitto": f"{MOSQUITTO_21} (built from source, tag v{MOSQUITTO_21})",
                                                "mosquitto-clients": f"{MOSQUITTO_21} (the same build)"})


def _takeovers(log: str) -> list[str]:
    return [line for line in log.splitlines() if "disconnected: session taken over." in line]
