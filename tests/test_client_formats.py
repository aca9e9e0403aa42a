"""Client log formats: each kind of client file is detected as its own format, parses with no
`unparsed` line, and its key failure lines carry the evidence rules depend on.

Real output comes first (sample_logs/ and live runs against a real broker); the Java, .NET,
Node-RED and eACM snippets are layouts and wordings taken from those projects' documentation and
source, since no such software runs here.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from correlator.analysis import analyze
from correlator.formats.parse import match_line
from correlator.formats.registry import default_registry
from correlator.model import Event
from correlator.sources.files import LogFile, decode

REGISTRY = default_registry()
ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LOGS = ROOT / "sample_logs"


def _parse(path: Path) -> tuple[str, list[Event]]:
    log = LogFile(path, REGISTRY)
    return log.format.name, list(log.events())


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text.lstrip("\n"))
    return path


def _assert_format(path: Path, expected: str) -> list[Event]:
    lines = [decode(raw) for raw in path.read_bytes().splitlines()]  # as the reader decodes them
    fmt, _ = REGISTRY.detect(lines)
    assert fmt.name == expected, f"{path} detected as {fmt.name}"
    name, events = _parse(path)
    assert name == expected
    unparsed = [e.raw for e in events if e.kind == "unparsed"]
    assert unparsed == [], f"{path}: unparsed lines {unparsed[:5]}"
    return events


def _line(format_name: str, text: str) -> dict[str, object]:
    """Kind and fields one line yields, as one dict, for compact assertions."""
    found = match_line(REGISTRY.get(format_name), text, REGISTRY.evidence, year=2026)
    assert found is not None, text
    return {"kind": found.kind, **found.fields}


# ---------------------------------------------------------------- mosquitto_pub / mosquitto_sub

CLIENT_TOOL_LOGS = sorted(SAMPLE_LOGS.glob("*/clients/*-pub.log")) + sorted(SAMPLE_LOGS.glob("*/clients/*-sub.log"))


@pytest.mark.parametrize("path", CLIENT_TOOL_LOGS, ids=[f"{p.parent.parent.name}/{p.name}" for p in CLIENT_TOOL_LOGS])
def test_sample_mosquitto_client_logs(path: Path) -> None:
    _assert_format(path, "mosquitto_clients")


def test_mosquitto_sub_payload_lines_attach_to_records(tmp_path: Path) -> None:
    path = _write(tmp_path, "viewer-sub.log", """
Client viewer sending CONNECT
Client viewer received CONNACK (0)
Client viewer sending SUBSCRIBE (Mid: 1, Topic: plant/#, QoS: 0, Options: 0x00)
Client viewer received SUBACK
Subscribed (mid: 1): 0
Client viewer received PUBLISH (d0, q0, r0, m0, 'plant/a', ... (16 bytes))
connection timed out
Client viewer received PUBLISH (d0, q0, r0, m0, 'plant/b', ... (1 bytes))
x
""")
    events = _assert_format(path, "mosquitto_clients")
    deliveries = [e for e in events if e.kind == "mqtt.deliver"]
    assert [e.line_count for e in deliveries] == [2, 2]
    assert "net_error" not in deliveries[0].fields  # a payload's words are not evidence


def test_mosquitto_client_evidence_lines() -> None:
    fmt = "mosquitto_clients"
    assert _line(fmt, "Client (null) received CONNACK (5)")["mqtt_reason"] == "not_authorized"
    assert _line(fmt, "Client edge-11 received CONNACK (4)")["mqtt_reason"] == "bad_credentials"
    assert _line(fmt, "Connection error: Connection Refused: not authorised.") == {
        "kind": "mqtt.refused", "error": "Connection Refused: not authorised", "mqtt_reason": "not_authorized"}
    tls = _line(fmt, "OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed")
    assert (tls["kind"], tls["tls_reason"]) == ("tls.error", "verify_failed")
    assert _line(fmt, "Error: host name verification failed.")["tls_reason"] == "hostname_mismatch"
    assert _line(fmt, "Error: Connection refused")["net_error"] == "refused"
    assert _line(fmt, "Error: The connection was lost.")["net_error"] == "closed"
    assert _line(fmt, "Unable to connect (Lookup error.).")["net_error"] == "dns"
    assert _line(fmt, "Subscribed (mid: 1): 128")["kind"] == "mqtt.suback_failed"
    assert _line(fmt, "Subscribed (mid: 1): 0, 1")["kind"] == "mqtt.subscribed"
    assert _line(fmt, "Timed out") == {"kind": "mqtt.receive_timeout"}  # -W ran out: no net_error
    assert _line(fmt, "Error: Problem setting TLS options: File not found.")["kind"] == "client.tls_config_error"


def test_mosquitto_clients_do_not_claim_a_broker_log(tmp_path: Path) -> None:
    path = _write(tmp_path, "mosquitto.log", """
1763907600: mosquitto version 2.0.11 starting
1763907600: Opening ipv4 listen socket on port 8883.
1763907601: New connection from 127.0.0.1:50412 on port 8883.
1763907601: OpenSSL Error[0]: error:0A000418:SSL routines::tlsv1 alert unknown ca
1763907601: Client <unknown> disconnected: Protocol error.
""")
    assert REGISTRY.detect(path.read_text().splitlines())[0].name == "mosquitto"


@pytest.mark.broker
def test_real_mosquitto_clients_output(tmp_path: Path, mosquitto_available: str) -> None:
    from lab.broker import Mosquitto
    from lab.ports import free_port

    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "alice", "secret"], check=True,
                   capture_output=True)
    config = f"allow_anonymous false\npassword_file {passwd}\nlistener {{port0}} 127.0.0.1\n"

    def run(name: str, *args: str, timeout: float = 10) -> Path:
        out = tmp_path / f"{name}.log"
        with out.open("wb") as sink:  # stdout and stderr into one file, as people capture them
            subprocess.run(list(args), stdout=sink, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        return out

    with Mosquitto(tmp_path / "broker", config) as broker:
        port = str(broker.port)
        common = ["-d", "-h", "127.0.0.1", "-p", port]
        bad = run("bad-pub", "mosquitto_pub", *common, "-u", "alice", "-P", "wrong", "-i", "edge-1",
                  "-t", "plant/a", "-m", "x")
        bad5 = run("bad5-pub", "mosquitto_pub", *common, "-V", "5", "-u", "alice", "-P", "wrong",
                   "-t", "plant/a", "-m", "x")
        sub = run("viewer-sub", "mosquitto_sub", *common, "-u", "alice", "-P", "secret", "-t", "plant/#",
                  "-W", "1")
        good = run("good-pub", "mosquitto_pub", *common, "-u", "alice", "-P", "secret", "-q", "1",
                   "-t", "plant/a", "-m", "x")
    refused = run("nobroker-pub", "mosquitto_pub", "-d", "-h", "127.0.0.1", "-p", str(free_port()),
                  "-t", "a", "-m", "x")

    kinds = {path.name: {e.kind: e for e in _assert_format(path, "mosquitto_clients")}
             for path in (bad, bad5, sub, good, refused)}
    assert kinds["bad-pub.log"]["mqtt.connack_refused"].fields["mqtt_reason"] == "not_authorized"
    assert kinds["bad-pub.log"]["mqtt.refused"].fields["mqtt_reason"] == "not_authorized"
    assert kinds["bad5-pub.log"]["mqtt.connack_refused"].fields["connack_code"] == 135
    assert kinds["bad5-pub.log"]["mqtt.connect"].fields["client_id"] == "(null)"
    assert {"mqtt.subscribe", "mqtt.subscribed", "mqtt.receive_timeout"} <= kinds["viewer-sub.log"].keys()
    assert {"mqtt.connack", "mqtt.publish", "mqtt.packet", "mqtt.disconnect"} <= kinds["good-pub.log"].keys()
    assert kinds["nobroker-pub.log"]["net.error"].fields["net_error"] == "refused"


# ---------------------------------------------------------------- Python logging (paho-mqtt, asyncua)

PYTHON_LOGS = sorted(p for p in SAMPLE_LOGS.glob("*/*/*.log")
                     if p.parent.name in ("clients", "server") and not p.name.endswith(("-pub.log", "-sub.log"))
                     and p.read_text(errors="replace")[:4].isdigit() and " mqttjs" not in p.read_text()[:200])


@pytest.mark.parametrize("path", PYTHON_LOGS, ids=[f"{p.parent.parent.name}/{p.name}" for p in PYTHON_LOGS])
def test_sample_python_logs(path: Path) -> None:
    _assert_format(path, "python_logging")


def test_python_layouts_and_tracebacks(tmp_path: Path) -> None:
    # asyncua 2.1 server refusing a client certificate (a real run, the cookbook's layout)
    path = _write(tmp_path, "opcua-server.log", """
2026-11-23 14:39:02,643 - asyncua.server.binary_server_asyncio - INFO - New connection from ('127.0.0.1', 60366)
2026-11-23 14:39:02,691 - asyncuagds.validate - ERROR - Not trusted certificate used: [CN=urn:correlator:lab:opcua-client]
Traceback (most recent call last):
  File "/work/main/.venv/lib/python3.11/site-packages/asyncua/crypto/truststore.py", line 128, in is_trusted
    verifier.verify(certificate, [])
cryptography.hazmat.bindings._rust.x509.VerificationError: validation failed: candidates exhausted: all candidates exhausted with no interior errors
2026-11-23 14:39:02,691 - asyncua.server.uaprocessor - ERROR - sending service fault response: The certificate is not trusted. (BadCertificateUntrusted)
""")  # noqa: E501
    events = _assert_format(path, "python_logging")
    assert [e.kind for e in events] == ["net.accept", "opcua.cert_untrusted", "opcua.status"]
    assert events[1].line_count == 5
    assert events[2].fields["opcua_status"] == "BadCertificateUntrusted"
    # an app's exception log: the reason is only in the traceback's last line
    path = _write(tmp_path, "app.log", """
[2026-11-23 14:36:56,665] ERROR [app] connect failed
Traceback (most recent call last):
  File "/opt/app/run.py", line 20, in <module>
    c.connect("broker.plant", 8883, 30)
  File "/root/.pyenv/versions/3.11.7/lib/python3.11/ssl.py", line 1383, in do_handshake
    self._sslobj.do_handshake()
ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired (_ssl.c:1006)
[2026-11-23 14:36:57,665] INFO [app] retrying
""")  # noqa: E501
    events = _assert_format(path, "python_logging")
    assert (events[0].kind, events[0].fields["tls_reason"], events[0].line_count) == ("tls.error", "cert_expired", 7)
    # basicConfig's default layout has no time
    path = _write(tmp_path, "basic.log", """
DEBUG:paho.mqtt.client:Sending CONNECT (u0, p0, wr0, wq0, wf0, c1, k60) client_id=b'edge-06'
DEBUG:paho.mqtt.client:Received CONNACK (0, 5)
""")
    events = _assert_format(path, "python_logging")
    assert events[0].fields["has_username"] == 0 and events[1].fields["mqtt_reason"] == "not_authorized"


def test_python_evidence_lines() -> None:
    fmt = "python_logging"
    head = "2026-11-23 14:31:44,174 DEBUG paho.mqtt.client: "
    connect = _line(fmt, head + "Sending CONNECT (u1, p0, wr0, wq0, wf0, c1, k30) client_id=b'edge-10'")
    assert (connect["kind"], connect["has_username"], connect["has_password"]) == ("mqtt.connect", 1, 0)
    assert _line(fmt, head + "Received CONNACK (0, 4)")["mqtt_reason"] == "bad_credentials"
    assert _line(fmt, head + "Received CONNACK (0, Not authorized) properties=[]")["mqtt_reason"] == "not_authorized"
    assert _line(fmt, head + "Received CONNACK (0, Unsupported protocol version) properties=[]") == {
        "kind": "mqtt.connack_refused", "logger": "paho.mqtt.client", "session_present": 0,
        "reason": "Unsupported protocol version", "protocol": 5, "mqtt_reason": "bad_protocol"}
    ssl = _line(fmt, "2026-11-23 14:31:42,329 ERROR lab.client: connection to 127.0.0.1:58337 failed: "
                     "SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                     "certificate has expired (_ssl.c:1006)")
    assert (ssl["kind"], ssl["tls_reason"]) == ("tls.error", "cert_expired")
    assert _line(fmt, "2026-11-23 14:31:48,127 ERROR paho.mqtt.client: Client is not connected. Socket: None). "
                      "Last known Connection State: MQTT_CS_DISCONNECTED")["kind"] == "mqtt.not_connected"
    assert _line(fmt, "INFO:asyncua.client.client:connect (auto_reconnect=None)")["kind"] == "opcua.connect"


@pytest.mark.broker
def test_real_paho_output(tmp_path: Path, mosquitto_available: str) -> None:
    import logging

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from lab.broker import Mosquitto

    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "alice", "secret"], check=True,
                   capture_output=True)
    config = f"allow_anonymous false\npassword_file {passwd}\nlistener {{port0}} 127.0.0.1\n"
    log_path = tmp_path / "edge-50.log"
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("test.paho.edge-50")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        with Mosquitto(tmp_path / "broker", config) as broker:
            for password, protocol in (("wrong", mqtt.MQTTv311), ("wrong", mqtt.MQTTv5), ("secret", mqtt.MQTTv311)):
                client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-50", protocol=protocol)
                client.enable_logger(logger)
                client.username_pw_set("alice", password)
                client.connect("127.0.0.1", broker.port, 30)
                client.loop_start()
                client.subscribe("plant/#", 1)
                client.publish("plant/a", "x", qos=1)
                time.sleep(0.5)
                client.disconnect()
                client.loop_stop()
    finally:
        logger.removeHandler(handler)
        handler.close()
    events = _assert_format(log_path, "python_logging")
    refused = [e for e in events if e.kind == "mqtt.connack_refused"]
    assert {e.fields["mqtt_reason"] for e in refused} == {"not_authorized"}
    assert any(e.fields.get("protocol") == 5 for e in refused)
    assert all(e.fields["has_username"] == 1 for e in events if e.kind == "mqtt.connect")
    assert "mqtt.connack" in {e.kind for e in events}


# ---------------------------------------------------------------- Java, .NET, Node-RED, eACM
# Layouts and wordings from the libraries' documentation and source (Paho Java's
# messages.properties, HiveMQ client issues, Ignition's logback pattern, UA-.NETStandard's
# CertificateValidator, Node-RED's 10-mqtt.js); eACM's are guesses (see parsers/eacm.toml).

JAVA_LOGBACK = """
14:20:00.101 [main] INFO  c.e.gateway.MqttUplink - connecting to ssl://broker.plant:8883 as edge-07
14:20:00.412 [main] ERROR c.e.gateway.MqttUplink - connect failed
org.eclipse.paho.client.mqttv3.MqttException: MqttException
\tat org.eclipse.paho.client.mqttv3.internal.ExceptionHelper.createMqttException(ExceptionHelper.java:38)
\tat org.eclipse.paho.client.mqttv3.internal.ClientComms$ConnectBG.run(ClientComms.java:736)
Caused by: javax.net.ssl.SSLHandshakeException: PKIX path building failed: unable to find valid certification path
\tat java.base/sun.security.ssl.Alert.createSSLException(Alert.java:131)
\t... 4 common frames omitted
14:20:05.000 [main] INFO  c.e.gateway.MqttUplink - retrying in 5 s
"""

IGNITION_WRAPPER = """
STATUS | wrapper  | 2026/11/23 14:19:58 | --> Wrapper Started as Service
INFO   | jvm 1    | 2026/11/23 14:20:00 | I [MqttServerConnection          ] [14:20:00.101] [MQTT-1]: Connecting to ssl://broker.plant:8883
INFO   | jvm 1    | 2026/11/23 14:20:00 | E [MqttServerConnection          ] [14:20:00.412] [MQTT-1]: Failed to connect
INFO   | jvm 1    | 2026/11/23 14:20:00 | org.eclipse.paho.client.mqttv3.MqttException: MqttException
INFO   | jvm 1    | 2026/11/23 14:20:00 | \tat org.eclipse.paho.client.mqttv3.internal.ClientComms$ConnectBG.run(ClientComms.java:736)
INFO   | jvm 1    | 2026/11/23 14:20:00 | Caused by: javax.net.ssl.SSLHandshakeException: Received fatal alert: certificate_expired
INFO   | jvm 1    | 2026/11/23 14:20:05 | W [MqttServerConnection          ] [14:20:05.000] [MQTT-1]: Retrying in 5000 ms
"""  # noqa: E501

LOG4J2 = """
2026-11-23 14:20:00,123 INFO  [main] c.h.m.c.MqttClient - connecting to broker.plant:8883
2026-11-23 14:20:00,456 ERROR [main] c.h.m.c.MqttClient - CONNECT failed as CONNACK contained an Error Code: NOT_AUTHORIZED.
2026-11-23 14:20:01,000 WARN  [main] c.e.Uplink - Not authorized to connect (5)
"""  # noqa: E501

DOTNET_MEL = """
info: Microsoft.Hosting.Lifetime[0]
      Application started. Press Ctrl+C to shut down.
fail: Opc.Ua.CertificateValidator[0]
      Certificate rejected. Reason=BadCertificateUntrusted. [CN=plc-07] [9F8E7D6C5B4A39281706F5E4D3C2B1A098765432]
fail: Plant.Gateway.OpcUaSource[0]
      Connect to opc.tcp://plc-07:4840 failed
      Opc.Ua.ServiceResultException: BadSecurityChecksFailed 'Certificate validation failed.'
         at Opc.Ua.Client.Session.Create(ISessionChannel channel)
"""

DOTNET_SERILOG = """
2026-11-23 14:20:00.101 +01:00 [INF] Connecting to mqtts://broker.plant:8883 as edge-07
2026-11-23 14:20:00.412 +01:00 [ERR] Connecting with MQTT server failed
MQTTnet.Exceptions.MqttCommunicationException: The remote certificate is invalid: RemoteCertificateNameMismatch
 ---> System.Security.Authentication.AuthenticationException: The remote certificate is invalid: RemoteCertificateNameMismatch
   at System.Net.Security.SslStream.SendAuthResetSignal(ProtocolToken message, ExceptionDispatchInfo exception)
   --- End of inner exception stack trace ---
2026-11-23 14:20:05.000 +01:00 [INF] Retrying in 5 s
"""  # noqa: E501

DOTNET_NLOG = """
2026-11-23 14:20:00.1234|INFO|Plant.Gateway.OpcUaSource|Connecting to opc.tcp://plc-07:4840
2026-11-23 14:20:00.5678|ERROR|Opc.Ua.CertificateValidator|Certificate rejected. Reason=BadCertificateTimeInvalid. [CN=plc-07] [0A1B2C3D4E5F60718293A4B5C6D7E8F901234567]
"""  # noqa: E501

NODE_RED = """
23 Nov 14:19:58 - [info] Node-RED version: v3.1.9
23 Nov 14:19:59 - [info] Server now running at http://127.0.0.1:1880/
23 Nov 14:19:59 - [info] Starting flows
23 Nov 14:19:59 - [info] Started flows
23 Nov 14:20:00 - [info] [mqtt-broker:plant broker] Connection failed to broker: edge-07@mqtts://broker.plant:8883
23 Nov 14:20:15 - [info] [mqtt-broker:plant broker] Connection failed to broker: edge-07@mqtts://broker.plant:8883
"""

EACM = """
2026-11-23 14:20:00.101 [INFO] [MQTT] Connecting to broker mqtts://10.3.0.11:8883 as edge-07
2026-11-23 14:20:00.150 [ERROR] [TLS] TLS handshake failed: certificate verify failed: certificate has expired
2026-11-23 14:20:00.151 [ERROR] [MQTT] Connection to broker 10.3.0.11:8883 failed: A TLS error occurred.
2026-11-23 14:20:00.300 [WARN] [Sparkplug] Primary host STATE/scada-01 is OFFLINE, holding data
"""


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("java-logback.log", JAVA_LOGBACK, "java_logging"),
    ("wrapper.log", IGNITION_WRAPPER, "java_logging"),
    ("java-log4j2.log", LOG4J2, "java_logging"),
    ("dotnet-mel.log", DOTNET_MEL, "dotnet_logging"),
    ("dotnet-serilog.log", DOTNET_SERILOG, "dotnet_logging"),
    ("dotnet-nlog.log", DOTNET_NLOG, "dotnet_logging"),
    ("node-red.log", NODE_RED, "node_red"),
    ("eacm.log", EACM, "eacm"),
])
def test_other_client_logs_detected_and_parsed(tmp_path: Path, name: str, text: str, expected: str) -> None:
    _assert_format(_write(tmp_path, name, text), expected)


def test_stack_trace_cause_is_evidence_on_its_record(tmp_path: Path) -> None:
    events = _assert_format(_write(tmp_path, "app.log", JAVA_LOGBACK), "java_logging")
    failed = events[1]
    assert (failed.kind, failed.fields["tls_reason"], failed.line_count) == ("tls.error", "unknown_ca", 7)
    wrapper = _assert_format(_write(tmp_path, "wrapper.log", IGNITION_WRAPPER), "java_logging")
    assert [e.fields.get("tls_reason") for e in wrapper if e.kind == "tls.error"] == ["cert_expired"]
    assert wrapper[2].fields["tls_alert"] is True  # "Received fatal alert": the broker complained
    serilog = _assert_format(_write(tmp_path, "serilog.log", DOTNET_SERILOG), "dotnet_logging")
    assert serilog[1].fields["tls_reason"] == "hostname_mismatch"
    mel = _assert_format(_write(tmp_path, "mel.log", DOTNET_MEL), "dotnet_logging")
    assert [e.fields.get("opcua_status") for e in mel] == [None, "BadCertificateUntrusted", "BadSecurityChecksFailed"]
    # MEL's message sits on the line under "fail: Category[0]": the catalogue reads it there
    assert (mel[1].kind, mel[1].fields["subject"]) == ("opcua.cert_rejected", "CN=plc-07")


def test_time_of_day_stamps_take_the_files_date(tmp_path: Path) -> None:
    import os
    from datetime import UTC, datetime

    path = _write(tmp_path, "app.log", JAVA_LOGBACK)
    mtime = datetime(2026, 11, 23, 15, 0, tzinfo=UTC).timestamp()
    os.utime(path, (mtime, mtime))
    events = _assert_format(path, "java_logging")
    assert datetime.fromtimestamp(events[0].ts, UTC) == datetime(2026, 11, 23, 14, 20, 0, 101000, tzinfo=UTC)
    os.utime(path, (mtime - 15 * 3600, mtime - 15 * 3600))  # written 00:00 on the 23rd: lines are the 22nd's
    events = _assert_format(path, "java_logging")
    assert datetime.fromtimestamp(events[0].ts, UTC).day == 22


def test_other_client_evidence_lines() -> None:
    hivemq = _line("java_logging", "2026-11-23 14:20:00,456 ERROR [main] c.h.m.c.MqttClient - CONNECT failed as "
                                   "CONNACK contained an Error Code: BAD_USER_NAME_OR_PASSWORD.")
    assert hivemq["mqtt_reason"] == "bad_credentials"
    assert _line("java_logging", "14:20:00.412 [main] ERROR c.e.Uplink - Unable to connect to server (32103) - "
                                 "java.net.ConnectException: Connection refused")["net_error"] == "refused"
    node = _line("node_red", "23 Nov 14:20:00 - [error] [mqtt-broker:broker] Connection failed to broker: "
                             "mqtts://10.3.0.11:8883")
    assert (node["kind"], node["remote_host"], node["port"], node["scheme"]) == (
        "mqtt.connect_failed", "10.3.0.11", 8883, "mqtts")
    expired = _line("node_red", "23 Nov 14:20:00 - [error] [mqtt-broker:broker] CERT_HAS_EXPIRED")
    assert expired["tls_reason"] == "cert_expired"
    assert _line("dotnet_logging", "2026-11-23 14:20:00,123 [7] WARN  Gw.Uplink - TLS handshake failed: "
                                   "RemoteCertificateNameMismatch")["tls_reason"] == "hostname_mismatch"
    state = _line("eacm", "2026-11-23 14:20:00.300 [INFO] [Sparkplug] Primary host spBv1.0/STATE/scada-01 is ONLINE")
    assert (state["kind"], state["host_id"], state["state"]) == ("sparkplug.state", "scada-01", "ONLINE")


# ---------------------------------------------------------------- java.util.logging's default layout


def test_jul_two_line_records_take_the_level_and_message_of_their_second_line() -> None:
    """A JDK program's log through java.util.logging's default SimpleFormatter (the lab's JSSE
    client, as Paho Java logs): the head line names date, class and method, the next line the
    level and message, then the stack trace; each record is one event with that level, and JSSE's
    'PKIX path building failed' is its evidence."""
    path = SAMPLE_LOGS / "java_clients" / "clients" / "java-edge-70.log"
    events = _assert_format(path, "java_logging")
    lines = path.read_text().splitlines()
    failed = [e for e in events if e.kind == "tls.error"]
    assert len(failed) == 2
    for event in failed:
        assert lines[event.line].startswith("SEVERE: connection to ssl://127.0.0.1:")
        assert (event.level, event.fields["logger"], event.fields["tls_reason"]) == ("error", "TlsEdge", "unknown_ca")
    assert {e.level for e in events if e.kind != "tls.error"} <= {"info", "error"}
    assert sum(e.line_count for e in events) == sum(1 for line in lines if line.strip())  # every line kept


def test_a_records_sharpest_reason_wins_over_its_head_line() -> None:
    """JSSE against an expired broker certificate (java_cert_expired, a real run): the head says
    'PKIX path validation failed' (no reason), the last 'Caused by:' says
    'CertificateExpiredException'. The record's reason is the sharper one and its reason line
    that 'Caused by:', so the client's log alone names the expired certificate, quoting it."""
    path = SAMPLE_LOGS / "java_cert_expired" / "clients" / "java-edge-80.log"
    events = _assert_format(path, "java_logging")
    lines = path.read_text().splitlines()
    failed = [e for e in events if e.kind == "tls.error"]
    assert len(failed) == 2  # two attempts
    for event in failed:
        assert lines[event.line].startswith("SEVERE: connection to ssl://127.0.0.1:")
        assert (event.fields["tls_reason"], event.fields["tls_alert"]) == ("cert_expired", False)
        reason = event.raw.splitlines()[event.reason_line]
        assert reason.startswith("Caused by: java.security.cert.CertificateExpiredException: NotAfter:")
    [finding] = analyze([path]).findings
    assert (finding.id, finding.clients) == ("tls.server_cert_expired", {"java-edge-80"})
    assert "CertificateExpiredException" in finding.evidence[0].text


def test_a_catch_all_message_does_not_make_a_client_log_the_brokers() -> None:
    """log4js's layout (log4js_clients, real Node.js edges): no format lists it, and the only line
    of edge-60's log a catalogue knows is its `Error: connect ECONNREFUSED ...`, which mosquitto's
    `Error: ...` catch-all also reads. A catch-all says nothing of whose log a file is: the file is
    a client's, so there is one broker and the refused connection is named for edge-60."""
    analysis = analyze([SAMPLE_LOGS / "log4js_clients"])
    roles = {s.info.path: s.info.source for s in analysis.sources}
    assert [path for path, source in roles.items() if source == "broker"] == ["broker/mosquitto.log"]
    assert roles["clients/edge-60.log"] == "client:edge-60"
    found = {(f.id, frozenset(f.clients)) for f in analysis.findings}
    assert found == {("net.connection_refused", frozenset({"edge-60"})),
                     ("auth.bad_credentials", frozenset({"edge-61"}))}
    refused = next(f for f in analysis.findings if f.id == "net.connection_refused")
    assert "Error: connect ECONNREFUSED 127.0.0.1:" in refused.evidence[0].text


# ---------------------------------------------------------------- MQTT.js (DEBUG=mqttjs*)


def test_mqtt_js_traces_to_a_file_and_on_a_terminal_name_the_client_and_its_failure() -> None:
    """The same library's trace in both of debug's layouts, from real runs: to a file (ISO time
    first) and on a terminal (indented, coloured, '+1ms' at the end, CR LF): every line read, the
    colour codes gone from what a finding quotes, the client id named, and the failure each says
    (the program's 'Connection error:' lines carry the reason into the record before them)."""
    folder = SAMPLE_LOGS / "mqtt_js_clients" / "clients"
    file_trace = _assert_format(folder / "js-edge-80.log", "mqtt_js")
    assert {e.fields.get("client_id") for e in file_trace if e.kind == "client.start"} == {"js-edge-80"}
    tls = [e for e in file_trace if e.kind == "tls.error"]
    assert tls and {e.fields["tls_reason"] for e in tls} <= {"self_signed", "unknown_ca"}
    assert not any(e.estimated for e in file_trace)

    terminal = folder / "js-edge-81.log"
    assert b"\x1b[" in terminal.read_bytes() and b"\r\n" in terminal.read_bytes()
    tty_trace = _assert_format(terminal, "mqtt_js")
    assert {e.fields.get("client_id") for e in tty_trace if e.kind == "client.start"} == {"js-edge-81"}
    refused = [e for e in tty_trace if e.kind == "mqtt.refused"]
    assert len(refused) == 3 and {e.fields["mqtt_reason"] for e in refused} == {"not_authorized"}
    assert not any("\x1b" in e.raw for e in tty_trace)
    assert all(e.raw.lstrip().startswith(("mqttjs", "connected", "Connection error")) for e in tty_trace)
