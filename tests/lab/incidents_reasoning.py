"""Incidents that need reasoning over a whole connection, a certificate's real issuer, the time a
certificate is judged at, and counts: each made by real software, like the rest of lab.incidents.

They live apart from lab/incidents.py to keep that file's size in hand; lab.incidents registers them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lab import pki
from lab.incidents import (
    HOST,
    LOG_ALL,
    SPARKPLUG_ACL,
    USERS,
    IncidentFailed,
    IncidentUnavailable,
    Pki,
    Scene,
    _measured_offset,
    _read,
    _require,
    _settle,
    dpkg_version,
    need_faketime,
    tls_listener,
)
from lab.ports import free_port

# --------------------------------------------------------------------------- one connection at a time


def make_login_per_connection(out: Path) -> None:
    """Refused logins told apart per connection, and a refused publish that is no refused login."""
    scene = Scene.create(out, "login_per_connection",
                         "One broker, allow_anonymous false with a password file and the Sparkplug ACL. edge-70 "
                         "(paho) sends no user name at all; edge-71 (paho) sends user MyEACM with an old "
                         "password; viewer-73 (paho over MQTT 5, read-only SparkplugViewer) logs in, then "
                         "publishes a node command and gets PUBACK reason 135 (Not authorized): an ACL denial "
                         "after CONNACK 0, not a refused login. hmi-74 logs in and subscribes.")
    with scene.broker(scene.login_listener(USERS, SPARKPLUG_ACL)) as broker:
        port = broker.port
        ok = scene.hmi("hmi-74", port, duration=5)
        time.sleep(0.5)
        scene.paho("edge-70", port, ["--publish", "spBv1.0/Plant7/NDATA/edge-70", "--attempts", "2",
                                     "--retry-delay", "0.7"], client_id="edge-70", duration=3)
        time.sleep(0.3)
        scene.paho("edge-71", port, ["--publish", "spBv1.0/Plant7/NDATA/edge-71", "--attempts", "2",
                                     "--retry-delay", "0.7"], client_id="edge-71", username="MyEACM",
                   password="eacm-secret-OLD", duration=3)
        time.sleep(0.3)
        scene.paho("viewer-73", port, ["--mqtt-version", "5", "--publish", "spBv1.0/Plant7/NCMD/edge-70",
                                       "--attempts", "1", "--interval", "1"], client_id="viewer-73",
                   username="SparkplugViewer", password=USERS["SparkplugViewer"], duration=2.5)
        scene.end(broker, ok)
    text = broker.log_text()
    _require(text, r"not authorised", "login_per_connection: broker log")
    _require(_read(scene.root / "clients/edge-70.log"), r"Sending CONNECT \(u0, p0", "login_per_connection: edge-70")
    _require(_read(scene.root / "clients/edge-71.log"), r"Sending CONNECT \(u1, p1", "login_per_connection: edge-71")
    _require(_read(scene.root / "clients/viewer-73.log"), r"Not authorized", "login_per_connection: viewer-73")
    scene.finish([("auth.anonymous_denied", ["edge-70"]), ("auth.bad_credentials", ["edge-71"]),
                  ("acl.publish_denied", ["viewer-73"])], broker=broker)


def make_login_undecided(out: Path) -> None:
    """Refused logins whose client logs do not say whether a user name was sent: the broker's
    config decides where it can, and where it cannot the finding must say both."""
    scene = Scene.create(out, "login_undecided",
                         "Neither mosquitto_pub -d nor an application logging at INFO says whether its CONNECT "
                         "carries a user name, and the broker logs a refused anonymous client exactly as a "
                         "wrong password. per_listener_settings true; the first listener has allow_anonymous "
                         "false and a password file, the second allow_anonymous true and the same password "
                         "file (a client without a user name is let in there, so a refusal is a wrong login). "
                         "edge-81 (paho application at INFO) sends user MyEACM with an old password to the "
                         "second listener; edge-83 (the same, no user name) is let in there. edge-80-pub "
                         "(mosquitto_pub) sends no user name to the first listener: nothing in the bundle "
                         "tells that from a wrong password. hmi-82 logs in to the first listener.")
    scene.passwd(USERS)
    config = ("per_listener_settings true\n"
              f"listener {{port0}} {HOST}\nallow_anonymous false\npassword_file passwd\n"
              f"listener {{port1}} {HOST}\nallow_anonymous true\npassword_file passwd\n" + LOG_ALL)
    info = ["--log-level", "INFO"]
    with scene.broker(config, listeners=2) as broker:
        first, second = broker.ports
        ok = scene.hmi("hmi-82", first, args=info, duration=4)
        time.sleep(0.3)
        scene.paho("edge-81", second, [*info, "--publish", "spBv1.0/Plant8/NDATA/edge-81", "--attempts", "2",
                                       "--retry-delay", "0.6"], client_id="edge-81", username="MyEACM",
                   password="eacm-secret-OLD", duration=2.5)
        scene.paho("edge-83", second, [*info, "--publish", "spBv1.0/Plant8/NDATA/edge-83", "--attempts", "1"],
                   client_id="edge-83", duration=2)
        scene.wait(timeout=20)
        # last, so its lines (no time, no port) are dated by its file's time, next to its connection
        scene.wait(scene.mosquitto_client("edge-80-pub", "mosquitto_pub", first,
                                          ["-t", "spBv1.0/Plant8/NDATA/edge-80", "-m", "rpm=900", "-q", "1"],
                                          client_id="edge-80"), timeout=10)
        scene.end(broker, ok)
    text = broker.log_text()
    _require(text, r"not authorised", "login_undecided: broker log")
    _require(text, r"New client connected from \S+ as edge-83 ",
             "login_undecided: anonymous passes the second listener")
    _require(_read(scene.root / "clients/edge-81.log"), r"Not authorized", "login_undecided: edge-81")
    scene.finish([("auth.anonymous_denied", ["edge-80-pub"]),
                  ("auth.bad_credentials", ["edge-80-pub", "edge-81"])], broker=broker)


# --------------------------------------------------------------------------- the same-name CA


def make_same_name_ca(out: Path) -> None:
    """A CA remade under the same name with a new key: verifiers find it by name and its
    signature check fails, which no 'unknown ca' says."""
    scene = Scene.create(out, "same_name_ca",
                         "The site CA was made again under the same name (CN=correlator lab CA) with a new "
                         "key. The broker's certificate and the broker's cafile (certs/ca.pem) come from the "
                         "new CA; certs/ca-2025.pem is the old CA, still what edge-90 trusts, and edge-92's "
                         "client certificate was issued by the old CA. The certificates carry no authority key "
                         "identifier (as `openssl x509 -req` makes them without an extension file), so every "
                         "verifier picks the CA by name and then finds the signature wrong. require_certificate "
                         "true; hmi-93 trusts the new CA with a certificate from it and connects. edge-92 "
                         "starts 3 s after edge-90 gave up.")
    old = Pki.create(scene.now - timedelta(days=500))
    new = Pki.create(scene.now)
    new.ca.write(scene.root / "certs" / "ca.pem")
    old.ca.write(scene.root / "certs" / "ca-2025.pem")
    scene.save_cert(new.server(authority_key_id=False), "server")
    scene.save_cert(new.client("edge-90", authority_key_id=False), "edge-90")
    scene.save_cert(old.client("edge-92", not_before=scene.now - timedelta(days=30), authority_key_id=False),
                    "edge-92")
    scene.save_cert(new.client("hmi-93", authority_key_id=False), "hmi-93")
    config = tls_listener(require_certificate=True) + "allow_anonymous true\n" + LOG_ALL
    with scene.broker(config) as broker:
        port = broker.port

        def tls(ca: str, name: str) -> list[str]:
            return ["--tls", "--cafile", f"certs/{ca}", "--cert", f"certs/{name}.pem", "--key", f"keys/{name}.key"]

        ok = scene.hmi("hmi-93", port, args=tls("ca.pem", "hmi-93"), login=False, duration=4)
        time.sleep(0.5)
        edge90 = scene.paho("edge-90", port, [*tls("ca-2025.pem", "edge-90"), "--publish",
                                              "spBv1.0/Plant9/NDATA/edge-90", "--attempts", "2",
                                              "--retry-delay", "0.6"], client_id="edge-90", duration=2.5)
        scene.wait(edge90, timeout=20)
        # neither failing client logs its port (the handshake fails inside connect()): apart by more
        # than the stitching window, so each attempt is paired by time with its own broker connection
        time.sleep(3)
        scene.paho("edge-92", port, [*tls("ca.pem", "edge-92"), "--publish", "spBv1.0/Plant9/NDATA/edge-92",
                                     "--attempts", "2", "--retry-delay", "0.6"], client_id="edge-92", duration=2.5)
        scene.end(broker, ok)
    text = broker.log_text()
    _require(text, r"decrypt error", "same_name_ca: broker hears the client's decrypt error alert")
    _require(_read(scene.root / "clients/edge-90.log"), r"certificate signature failure", "same_name_ca: edge-90")
    _require(_read(scene.root / "clients/edge-92.log"), r"decrypt error", "same_name_ca: edge-92")
    scene.finish([("tls.server_cert_untrusted", ["edge-90"]), ("tls.client_cert_untrusted", ["edge-92"])],
                 broker=broker)


# --------------------------------------------------------------------------- clocks and zones


def make_clock_a_day_behind(out: Path) -> None:
    """A client clock off by a whole day: a time zone cannot explain it and the certificate says
    so; beside it, a client in another zone whose timestamps nothing contradicts."""
    need_faketime()
    scene = Scene.create(out, "clock_a_day_behind",
                         "The broker's certificate was issued 6 hours before the run. edge-95's clock is one "
                         "day behind (faketime -86400 s): to it the certificate is not yet valid, though it is "
                         "valid at the broker's time. An offset of a whole day looks like a time zone to a "
                         "naive reading; the certificate says it is the clock. hmi-97 runs with TZ=Asia/Kolkata "
                         "(UTC+5:30, its log in local time without a zone) and connects: nothing contradicts "
                         "reading its offset as a zone.")
    lab = Pki.create(scene.now)
    lab.ca.write(scene.root / "certs" / "ca.pem")
    scene.save_cert(lab.server(not_before=scene.now - timedelta(hours=6)), "server")
    offset = _measured_offset(-86400)
    config = tls_listener() + "allow_anonymous true\n" + LOG_ALL
    with scene.broker(config) as broker:
        port = broker.port
        tls = ["--tls", "--cafile", "certs/ca.pem"]
        ok = scene.paho("hmi-97", port, [*tls, "--subscribe", "spBv1.0/#", "--attempts", "2", "--session-length",
                                         "1.5", "--retry-delay", "0.5"], client_id="hmi-97", duration=4.5,
                        tz="Asia/Kolkata")
        time.sleep(0.5)
        scene.paho("edge-95", port, [*tls, "--publish", "spBv1.0/Plant9/NDATA/edge-95", "--attempts", "3",
                                     "--retry-delay", "0.7"], client_id="edge-95", duration=3.5, clock_offset=offset)
        scene.end(broker, ok)
    _require(_read(scene.root / "clients/edge-95.log"), r"certificate is not yet valid", "clock_a_day_behind: edge-95")
    _require(broker.log_text(), r"bad certificate", "clock_a_day_behind: broker")
    _require(broker.log_text(), r"New client connected from \S+ as hmi-97", "clock_a_day_behind: hmi-97")
    scene.finish([("client.clock_skew", ["edge-95"])], broker=broker)


# --------------------------------------------------------------------------- certificates at reliable times


def make_cert_judged_at_estimate(out: Path) -> None:
    """An untimed client's lines are dated by their file's time, which can lie past a certificate's
    end: the certificate must be judged at the broker's time of the failure."""
    scene = Scene.create(out, "cert_judged_at_estimate",
                         "The broker's certificate expires 20 s after the run starts (a certificate about to "
                         "expire, still valid). edge-98-pub (mosquitto_pub, whose lines carry no time: they are "
                         "dated by the file's modification time, here the broker's last line) trusts another "
                         "site's CA (certs/ca.pem), so it fails at once with a bare 'certificate verify failed'; "
                         "the broker hears 'unknown ca'. The broker runs on until after the certificate's end. "
                         "At the broker's time of the failure the certificate is valid: the cause is the CA, not "
                         "an expired certificate, though the file's time lies after the notAfter.")
    lab = Pki.create(scene.now)
    other = pki.make_ca("other site CA", not_before=scene.now - timedelta(days=400))
    other.write(scene.root / "certs" / "ca.pem")
    lab.ca.write(scene.root / "certs" / "broker-ca.pem")
    scene.save_cert(lab.server(not_before=scene.now - timedelta(days=365), not_after=scene.now + timedelta(seconds=20)),
                    "server")
    config = tls_listener(cafile="../certs/broker-ca.pem") + "allow_anonymous true\n" + LOG_ALL
    with scene.broker(config) as broker:
        port = broker.port
        scene.wait(scene.mosquitto_client("edge-98-pub", "mosquitto_pub", port,
                                          ["--cafile", "certs/ca.pem", "-t", "spBv1.0/Plant9/NDATA/edge-98",
                                           "-m", "flow=3", "-q", "1"], client_id="edge-98"), timeout=10)
        # the broker lives on past the certificate's end: its last line is the file time a bundle keeps
        time.sleep(max(0.0, (scene.now + timedelta(seconds=26) - datetime.now(UTC)).total_seconds()))
        _settle(broker)
    _require(broker.log_text(), r"unknown ca", "cert_judged_at_estimate: broker")
    _require(_read(scene.root / "clients/edge-98-pub.log"), r"certificate verify failed",
             "cert_judged_at_estimate: mosquitto_pub")
    scene.finish([("tls.server_cert_untrusted", ["edge-98-pub"])], broker=broker)


# --------------------------------------------------------------------------- the user from the client's configuration


def make_login_from_config(out: Path) -> None:
    """A refused login that neither log names a user for: the client's own configuration file does."""
    scene = Scene.create(out, "login_from_config",
                         "One broker, allow_anonymous false with a password file. line-3 is a paho-mqtt "
                         "application that reads its broker, client id, user name (HMI) and password from "
                         "clients/line-3.ini, holding last year's password, and logs at WARNING: its log says "
                         "only that the broker refused it, and the broker logs a refused login as "
                         "'Client <unknown> disconnected, not authorised' without the user. hmi-85 logs in "
                         "with the right password.")
    scene.passwd(USERS)
    config = f"listener {{port0}} {HOST}\nallow_anonymous false\npassword_file passwd\n" + LOG_ALL
    with scene.broker(config) as broker:
        port = broker.port
        ok = scene.paho("hmi-85", port, ["--subscribe", "spBv1.0/#", "--attempts", "1"], client_id="hmi-85",
                        username="HMI", password=USERS["HMI"], duration=4)
        time.sleep(0.5)
        scene.paho("line-3", port, ["--log-level", "WARNING", "--publish", "spBv1.0/Plant9/NDATA/line-3",
                                    "--attempts", "2", "--retry-delay", "0.7"], client_id="line-3",
                   username="HMI", password="hmi-secret-OLD", duration=3, config="line-3.ini")
        scene.wait(ok, timeout=20)
        scene.wait(timeout=20)
        _settle(broker)
    text = broker.log_text()
    _require(text, r"Client <unknown> disconnected, not authorised", "login_from_config: broker log")
    client_log = _read(scene.root / "clients/line-3.log")
    _require(client_log, r"Not authorized", "login_from_config: line-3")
    if "HMI" in client_log or "u1" in client_log:
        raise IncidentFailed("login_from_config: line-3's log names its user; the scenario is a log that does not")
    scene.finish([("auth.bad_credentials", ["line-3"])], broker=broker)


# --------------------------------------------------------------------------- rotated logs that share lines


def make_rotated_overlap(out: Path) -> None:
    """A rotation set whose two files share a stretch of lines: logrotate's `copy` snapshot as
    mosquitto.log.1, and the live log as a support script collects it, its last lines only."""
    if shutil.which("logrotate") is None:
        raise IncidentUnavailable("logrotate is not installed (Debian: apt-get install logrotate)")
    scene = Scene.create(out, "rotated_overlap",
                         "One broker, allow_anonymous false with a password file. logrotate (`copy`: a snapshot, "
                         "the live file left as it is) rotates mosquitto.log while the broker runs; the support "
                         "script then collects mosquitto.log.1 whole and the live log's last lines (tail -n), "
                         "which begin before the rotation: the two files share a stretch of lines. Three paho "
                         "clients send an old password once each: edge-75 before the shared stretch, edge-76 "
                         "inside it (its refusal is in both files), edge-77 after the rotation. The broker "
                         "refused three logins, not four. hmi-78 logs in.")
    scene.passwd(USERS)
    config = f"listener {{port0}} {HOST}\nallow_anonymous false\npassword_file passwd\n" + LOG_ALL
    broker_dir = scene.root / "broker"
    live = broker_dir / "mosquitto.log"
    rotate_conf = scene.root / ".logrotate.conf"
    rotate_conf.write_text(f"{live} {{\n  copy\n  rotate 3\n  missingok\n}}\n", encoding="utf-8")
    refused = ["--publish", "spBv1.0/Plant7/NDATA/x", "--attempts", "1"]
    with scene.broker(config) as broker:
        port = broker.port
        ok = scene.paho("hmi-78", port, ["--subscribe", "spBv1.0/#", "--attempts", "1"], client_id="hmi-78",
                        username="HMI", password=USERS["HMI"], duration=7)
        time.sleep(0.5)
        scene.wait(scene.paho("edge-75", port, refused, client_id="edge-75", username="MyEACM",
                              password="eacm-secret-OLD", duration=1.5), timeout=20)
        time.sleep(1.0)
        scene.wait(scene.paho("edge-76", port, refused, client_id="edge-76", username="MyEACM",
                              password="eacm-secret-OLD", duration=1.5), timeout=20)
        time.sleep(0.5)
        subprocess.run(["logrotate", "-f", "-s", str(scene.root / ".logrotate.state"), str(rotate_conf)],
                       check=True, capture_output=True, timeout=30)
        time.sleep(0.5)
        scene.wait(scene.paho("edge-77", port, refused, client_id="edge-77", username="MyEACM",
                              password="eacm-secret-OLD", duration=1.5), timeout=20)
        scene.wait(ok, timeout=20)
        _settle(broker)
    rotated = broker_dir / "mosquitto.log.1"
    if not rotated.is_file():
        raise IncidentFailed("rotated_overlap: logrotate made no mosquitto.log.1")
    snapshot = rotated.read_text(encoding="utf-8").splitlines()
    whole = live.read_text(encoding="utf-8").splitlines()
    if whole[: len(snapshot)] != snapshot:
        raise IncidentFailed("rotated_overlap: the live log does not begin with logrotate's copy")
    # the support script keeps the live log's last lines: from edge-76's connection on
    start = next(i for i, line in enumerate(snapshot) if "New connection from" in line
                 and i > next(j for j, x in enumerate(snapshot) if "not authorised" in x))
    keep = len(whole) - start
    with (broker_dir / "mosquitto.log.tail").open("w", encoding="utf-8") as sink:
        subprocess.run(["tail", "-n", str(keep), str(live)], stdout=sink, check=True, timeout=30)
    (broker_dir / "mosquitto.log.tail").replace(live)
    for leftover in (rotate_conf, scene.root / ".logrotate.state"):
        leftover.unlink(missing_ok=True)
    scene.extra["collected"] = {"broker/mosquitto.log.1": "logrotate copy (whole)",
                                "broker/mosquitto.log": f"tail -n {keep} of the live log"}
    shared = [line for line in snapshot if line in set(_read(live).splitlines())]
    if sum("not authorised" in line for line in shared) != 1:
        raise IncidentFailed("rotated_overlap: the shared stretch does not hold exactly edge-76's refusal")
    _require(_read(live), r"not authorised", "rotated_overlap: the live log")
    rotated.chmod(0o644)  # logrotate's copy is its owner's only; a sample is read by anyone
    scene.finish([("auth.bad_credentials", ["edge-75", "edge-76", "edge-77"])], broker=broker,
                 extra_versions={"logrotate": dpkg_version("logrotate")})


# --------------------------------------------------------------------------- two brokers on one port


def make_shared_port_brokers(out: Path) -> None:
    """Two brokers of one site on the same port, on machines of their own; the clients' logs in one
    shared folder name neither the broker's address nor its port: only the time of each broker's
    connections says which broker a client's attempts went to."""
    from lab.netns import NamespaceUnavailable, network_namespace

    scene = Scene.create(out, "shared_port_brokers",
                         "A support bundle of two brokers, site-a/ and site-b/, each on its own machine and both "
                         "listening on the same port on every address (`listener PORT`, no bind address), with "
                         "the clients' logs in one shared folder. site-b's broker and its clients ran in a "
                         "network namespace of their own. hmi-a (site-a) and viewer-b (site-b) are paho "
                         "applications that read their settings from an INI file and log at WARNING: their logs "
                         "name neither their own port nor a user, and the address they dial is no broker's. "
                         "hmi-a's password is last year's (a wrong password: HMI is in site-a's password file); "
                         "viewer-b logs in as SparkplugViewer, a user site-b's password file does not have. "
                         "edge-a1 and edge-b1 log in and publish.")
    users_b = {"MyEACM": USERS["MyEACM"], "Historian": "hist-secret-5"}
    scene.passwd(USERS, "site-a")
    scene.passwd(users_b, "site-b")
    port = free_port()
    config = "listener {port0}\nallow_anonymous false\npassword_file passwd\n" + LOG_ALL
    publish = ["--publish", "spBv1.0/Plant1/NDATA/x", "--attempts", "1", "--interval", "0.5"]
    refused = ["--log-level", "WARNING", "--publish", "spBv1.0/Plant1/NDATA/x", "--attempts", "2",
               "--retry-delay", "0.6"]
    try:
        with network_namespace("corr-site-b") as site_b:
            a = scene.broker(config, "site-a", ports=[port]).start()
            b = scene.broker(config, "site-b", ports=[port], prefix=["ip", "netns", "exec", site_b]).start()
            try:
                scene.paho("edge-a1", port, publish, client_id="edge-a1", username="MyEACM",
                           password=USERS["MyEACM"], duration=2)
                scene.paho("edge-b1", port, publish, client_id="edge-b1", username="MyEACM",
                           password=USERS["MyEACM"], duration=2, netns=site_b)
                scene.wait(timeout=20)
                time.sleep(0.5)
                scene.wait(scene.paho("hmi-a", port, refused, client_id="hmi-a", username="HMI",
                                      password="hmi-secret-OLD", duration=2, config="hmi-a.ini"), timeout=20)
                time.sleep(2.0)  # a second of its own for each broker's refusals
                scene.wait(scene.paho("viewer-b", port, refused, client_id="viewer-b", username="SparkplugViewer",
                                      password=USERS["SparkplugViewer"], duration=2, config="viewer-b.ini",
                                      netns=site_b), timeout=20)
                time.sleep(0.3)
            finally:
                a.stop()
                b.stop()
    except NamespaceUnavailable as exc:
        raise IncidentUnavailable(str(exc)) from exc
    for folder, broker, client in (("site-a", a, "hmi-a"), ("site-b", b, "viewer-b")):
        text = broker.log_text()
        _require(text, r"Client <unknown> disconnected, not authorised", f"shared_port_brokers: {folder}")
        if text.count("not authorised") != 2:
            raise IncidentFailed(f"shared_port_brokers: {folder} should refuse {client}'s two attempts only")
        log = _read(scene.root / f"clients/{client}.log")
        _require(log, r"Not authorized", f"shared_port_brokers: {client}")
        if "local" in log or "CONNECT" in log:
            raise IncidentFailed(f"shared_port_brokers: {client}'s log names its own port or its CONNECT; the "
                                 "scenario is one that does not")
    scene.extra["brokers"] = {"site-a": {"listener_ports": [port], "exit_code": a.returncode},
                              "site-b": {"listener_ports": [port], "exit_code": b.returncode,
                                         "network_namespace": "its own (ip netns)"}}
    scene.finish([], hosts={"site-a": [("auth.bad_credentials", ["hmi-a"])],
                            "site-b": [("auth.bad_credentials", ["viewer-b"])]})


# --------------------------------------------------------------------------- two clients, one second


def make_two_clients_same_second(out: Path) -> None:
    """Two clients refused in the same seconds for different reasons: only each connection's own
    port tells whose refusal is whose, since the broker logs both as `Client <unknown>`."""
    scene = Scene.create(out, "two_clients_same_second",
                         "One broker, allow_anonymous false with a password file. edge-a (paho, user MyEACM with "
                         "an old password) and edge-b (paho, no user name) start together and retry twice, "
                         "0.2 s apart: their six refusals fall in the same second or two, interleaved, each "
                         "logged by the broker as 'Client <unknown> disconnected, not authorised'. Their logs "
                         "(DEBUG) name each connection's local port and the CONNECT's user name flag.")
    scene.passwd(USERS)
    config = f"listener {{port0}} {HOST}\nallow_anonymous false\npassword_file passwd\n" + LOG_ALL
    retry = ["--publish", "spBv1.0/Plant3/NDATA/x", "--attempts", "3", "--retry-delay", "0.2"]
    with scene.broker(config) as broker:
        port = broker.port
        a = scene.paho("edge-a", port, retry, client_id="edge-a", username="MyEACM", password="eacm-secret-OLD",
                       duration=2, start=False)
        b = scene.paho("edge-b", port, retry, client_id="edge-b", duration=2, start=False)
        scene.start(a)
        scene.start(b)
        scene.wait(timeout=20)
        _settle(broker)
    text = broker.log_text()
    owner = {}
    for client in ("edge-a", "edge-b"):
        for local in re.findall(r"socket open: local \S+:(\d+)", _read(scene.root / f"clients/{client}.log")):
            owner[local] = client
    seconds: dict[str, set[str]] = {}
    for stamp, peer in re.findall(r"^(\d+): New connection from \S+:(\d+)", text, re.M):
        seconds.setdefault(stamp, set()).add(owner.get(peer, "?"))
    if len(owner) != 6 or not any(len(who) == 2 for who in seconds.values()):
        raise IncidentFailed("two_clients_same_second: no second holds both clients' connections")
    scene.finish([("auth.bad_credentials", ["edge-a"]), ("auth.anonymous_denied", ["edge-b"])], broker=broker)
