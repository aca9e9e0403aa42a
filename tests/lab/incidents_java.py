"""Incidents with Java clients: the JDK's own TLS (JSSE), as Paho Java, the HiveMQ client, Ignition's
MQTT modules and Android apps use it, against a real mosquitto. JSSE refuses a certificate with the
alert "certificate unknown" and no reason, so a broker's log alone cannot say why: the case where
a support engineer holds only the broker's log. Made by real software like the rest of
lab.incidents, which registers them.
"""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

from lab.incidents import (
    HOST,
    LOG_ALL,
    Client,
    IncidentUnavailable,
    Pki,
    Scene,
    _read,
    _require,
    _run_text,
    tls_listener,
    trust_another_ca,
)

JAVA_CLIENT = Path(__file__).resolve().parent / "java" / "TlsEdge.java"


def java_binary() -> str:
    found = shutil.which("java")
    if found is None:
        raise IncidentUnavailable("java is not installed (Debian: apt-get install default-jdk-headless)")
    return found


def java_client(scene: Scene, name: str, port: int, *, client_id: str, cafile: str, attempts: int = 2) -> Client:
    """The lab's JSSE client (lab/java/TlsEdge.java, run from source) dialing `port` with TLS,
    trusting only `cafile` and checking the broker's host name as Paho Java does; it logs through
    java.util.logging's default two-line layout, as Paho Java does."""
    cmd = [java_binary(), str(JAVA_CLIENT), HOST, str(port), client_id, cafile, str(attempts)]
    info = {"kind": "java-jsse", "dials": f"{HOST}:{port}", "client_id": client_id}
    return scene.start(scene._add(name, info, cmd, None))


def make_java_clients(out: Path) -> None:
    scene = Scene.create(out, "java_clients",
                         "Java clients on the JDK's TLS (JSSE). java-edge-70 trusts another CA than the one that "
                         "signed the broker's certificate: JSSE answers with the alert \"certificate unknown\", "
                         "which is all the broker logs. java-edge-72 trusts the right CA and connects.")
    lab = Pki.create(scene.now)
    trust_another_ca(scene, lab)
    config = tls_listener(cafile="../certs/broker-ca.pem") + "allow_anonymous true\n" + LOG_ALL
    java_binary()
    with scene.broker(config) as broker:
        refused = java_client(scene, "java-edge-70", broker.port, client_id="java-edge-70", cafile="certs/ca.pem")
        scene.wait(refused, timeout=60)
        healthy = java_client(scene, "java-edge-72", broker.port, client_id="java-edge-72",
                              cafile="certs/broker-ca.pem", attempts=1)
        scene.wait(healthy, timeout=60)
        scene.end(broker)
    _require(broker.log_text(), r"alert certificate unknown", "java_clients: the broker hears JSSE's alert")
    _require(broker.log_text(), r"New client connected .* as java-edge-72", "java_clients: the healthy client")
    _require(_read(scene.root / "clients/java-edge-70.log"), r"PKIX path building failed",
             "java_clients: java-edge-70's log")
    match = re.search(r'version "([^"]+)"', _run_text([java_binary(), "-version"]))
    scene.finish([("tls.server_cert_untrusted", ["java-edge-70"])], broker=broker,
                 extra_versions={"java": match.group(1) if match else "unknown"})


def make_java_cert_expired(out: Path) -> None:
    """JSSE heads its failure with "PKIX path validation failed" (no reason) and says why three
    causes down the stack trace ("CertificateExpiredException: NotAfter ..."); the broker hears
    only "certificate unknown". The reader keeps the sharper reason of the record."""
    scene = Scene.create(out, "java_cert_expired",
                         "A Java client on the JDK's TLS (JSSE) against a broker whose certificate expired 12 days "
                         "ago: the client's log says so only in the last 'Caused by:' of its stack trace, the "
                         "broker hears the alert \"certificate unknown\".")
    lab = Pki.create(scene.now)
    lab.ca.write(scene.root / "certs" / "ca.pem")
    scene.save_cert(lab.server(not_before=lab.now - timedelta(days=377), not_after=lab.now - timedelta(days=12)),
                    "server")
    config = tls_listener(cafile="../certs/ca.pem") + "allow_anonymous true\n" + LOG_ALL
    java_binary()
    with scene.broker(config) as broker:
        refused = java_client(scene, "java-edge-80", broker.port, client_id="java-edge-80", cafile="certs/ca.pem")
        scene.wait(refused, timeout=60)
        scene.end(broker)
    _require(broker.log_text(), r"alert certificate unknown", "java_cert_expired: the broker hears JSSE's alert")
    log = _read(scene.root / "clients/java-edge-80.log")
    _require(log, r"PKIX path validation failed", "java_cert_expired: JSSE's head line")
    _require(log, r"Caused by: java\.security\.cert\.CertificateExpiredException",
             "java_cert_expired: the reason down the stack trace")
    match = re.search(r'version "([^"]+)"', _run_text([java_binary(), "-version"]))
    scene.finish([("tls.server_cert_expired", ["java-edge-80"])], broker=broker,
                 extra_versions={"java": match.group(1) if match else "unknown"})
