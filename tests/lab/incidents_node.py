"""Incidents with MQTT.js clients (the `mqtt` package of Node.js) traced with DEBUG=mqttjs*, once
to a file (the `debug` package's ISO-dated lines) and once on a terminal (`script`: the indented,
coloured lines with the time since the last one, as users paste them). Made by real software like
the rest of lab.incidents, which registers them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from lab.incidents import (
    HOST,
    LOG_ALL,
    USERS,
    Client,
    IncidentUnavailable,
    Pki,
    Scene,
    _read,
    _require,
    _run_text,
    npm_package,
    tls_and_login_listeners,
    trust_another_ca,
)

MQTT_JS_VERSION = "5.15.2"
MQTT_JS_CLIENT = Path(__file__).resolve().parent / "mqtt_js" / "client.js"


def mqtt_js_module() -> Path:
    """The `mqtt` package: $CORRELATOR_MQTT_JS, the copy in the lab's Node-RED install, or the
    lab's own (installed once with npm into ~/.cache/correlator-lab/mqtt-js)."""
    if shutil.which("node") is None:
        raise IncidentUnavailable("MQTT.js needs node (Debian: apt-get install nodejs npm)")
    lab = Path.home() / ".cache" / "correlator-lab"
    for module in (lab / "node-red" / "node_modules" / "mqtt", lab / "mqtt-js" / "node_modules" / "mqtt"):
        if (module / "package.json").is_file():
            return module
    return npm_package("mqtt", MQTT_JS_VERSION, "mqtt-js")


def mqtt_js_client(scene: Scene, name: str, url: str, args: list[str], *, client_id: str,
                   terminal: bool = False) -> Client:
    """The lab's MQTT.js program with DEBUG=mqttjs*; `terminal`: run on a pseudo-terminal
    (`script`), so the trace is written as on a user's screen, colours and all."""
    node = shutil.which("node")
    if node is None:
        raise IncidentUnavailable("MQTT.js needs node")
    cmd = [node, str(MQTT_JS_CLIENT), url, client_id, *args]
    env = {"DEBUG": "mqttjs*", "CORRELATOR_MQTT_JS": str(mqtt_js_module())}
    info = {"kind": "mqtt.js", "dials": url.split("://", 1)[1], "client_id": client_id,
            "trace": "terminal (script)" if terminal else "stderr to file"}
    if terminal:
        if shutil.which("script") is None:
            raise IncidentUnavailable("script (util-linux) is needed for a terminal trace")
        cmd = ["script", "-q", "-e", "-c", " ".join(cmd), "/dev/null"]
    return scene.start(scene._add(name, info, cmd, env))


def make_mqtt_js_clients(out: Path) -> None:
    scene = Scene.create(out, "mqtt_js_clients",
                         "MQTT.js 5 clients traced with DEBUG=mqttjs*. js-edge-80 trusts another CA than the one that "
                         "signed the broker's certificate (trace to a file); js-edge-81 sends a wrong password (trace "
                         "on a terminal: indented, coloured, untimed lines); js-edge-82 logs in and publishes.")
    module = mqtt_js_module()
    lab = Pki.create(scene.now)
    trust_another_ca(scene, lab)
    scene.passwd(USERS)
    config = tls_and_login_listeners()
    with scene.broker(config, listeners=2) as broker:
        tls, plain = broker.ports
        untrusted = mqtt_js_client(scene, "js-edge-80", f"mqtts://{HOST}:{tls}", ["--ca", "certs/ca.pem"],
                                   client_id="js-edge-80")
        scene.wait(untrusted, timeout=30)
        refused = mqtt_js_client(scene, "js-edge-81", f"mqtt://{HOST}:{plain}",
                                 ["--username", "MyEACM", "--password", "eacm-secret-OLD"], client_id="js-edge-81",
                                 terminal=True)
        scene.wait(refused, timeout=30)
        healthy = mqtt_js_client(scene, "js-edge-82", f"mqtt://{HOST}:{plain}",
                                 ["--username", "MyEACM", "--password", USERS["MyEACM"], "--seconds", "2"],
                                 client_id="js-edge-82")
        scene.wait(healthy, timeout=30)
        scene.end(broker)
    text = broker.log_text()
    _require(text, r"disconnected, not authorised", "mqtt_js_clients: refused login")
    _require(text, r"New client connected .* as js-edge-82", "mqtt_js_clients: the healthy client")
    _require(_read(scene.root / "clients/js-edge-80.log"), r"mqttjs:client streamErrorHandler :: error .*certificate",
             "mqtt_js_clients: js-edge-80's trace")
    _require(_read(scene.root / "clients/js-edge-81.log"), "\x1b\\[", "mqtt_js_clients: js-edge-81's coloured trace")
    _require(_read(scene.root / "clients/js-edge-81.log"), r"Not authorized", "mqtt_js_clients: js-edge-81's error")
    package = json.loads((module / "package.json").read_text())
    scene.finish([("tls.server_cert_untrusted", ["js-edge-80"]), ("auth.bad_credentials", ["js-edge-81"])],
                 broker=broker,
                 extra_versions={"node": _run_text(["node", "--version"]) or "unknown",
                                 "mqtt.js": str(package.get("version", "unknown"))})


LOG4JS_VERSION = "6.9.1"
LOG4JS_EDGE = Path(__file__).resolve().parent / "log4js" / "edge.js"


def log4js_module() -> Path:
    """The `log4js` package: $CORRELATOR_LOG4JS, or the lab's own (installed once with npm into
    ~/.cache/correlator-lab/log4js)."""
    given = os.environ.get("CORRELATOR_LOG4JS")
    return Path(given) if given else npm_package("log4js", LOG4JS_VERSION, "log4js")


def log4js_edge(scene: Scene, name: str, url: str, args: list[str], *, client_id: str) -> Client:
    """The lab's MQTT.js application logging through log4js's file appender (lab/log4js/edge.js)."""
    node = shutil.which("node")
    if node is None:
        raise IncidentUnavailable("the log4js edge needs node")
    cmd = [node, str(LOG4JS_EDGE), url, client_id, f"clients/{name}.log", *args]
    env = {"CORRELATOR_MQTT_JS": str(mqtt_js_module()), "CORRELATOR_LOG4JS": str(log4js_module())}
    info = {"kind": "mqtt.js + log4js", "dials": url.split("://", 1)[1], "client_id": client_id}
    return scene.start(scene._add(name, info, cmd, env, sink=f"clients/{name}.stderr.txt"))


def make_log4js_clients(out: Path) -> None:
    """Client logs in log4js's layout, `[time] [LEVEL] category - message`: a layout no format
    lists, whose only catalogue-like line is the `Error: ...` of the error event. Such a file is a
    client's, not the broker's (mosquitto's own `Error: ...` catch-all says nothing of whose log it
    is), so each failure is named for its client."""
    scene = Scene.create(out, "log4js_clients",
                         "Node.js edge applications (MQTT.js) logging through log4js's file layout. edge-60 dials a "
                         "port nothing listens on; edge-61 sends an old password; edge-62 logs in and publishes.")
    scene.passwd(USERS)
    config = "listener {port0} 127.0.0.1\nallow_anonymous false\npassword_file passwd\n" + LOG_ALL
    from lab.ports import free_port

    with scene.broker(config) as broker:
        closed = free_port()
        refused = log4js_edge(scene, "edge-60", f"mqtt://{HOST}:{closed}", ["--seconds", "2"], client_id="edge-60")
        scene.wait(refused, timeout=30)
        denied = log4js_edge(scene, "edge-61", f"mqtt://{HOST}:{broker.port}",
                             ["--username", "MyEACM", "--password", "eacm-secret-OLD", "--seconds", "2"],
                             client_id="edge-61")
        scene.wait(denied, timeout=30)
        healthy = log4js_edge(scene, "edge-62", f"mqtt://{HOST}:{broker.port}",
                              ["--username", "MyEACM", "--password", USERS["MyEACM"], "--seconds", "2"],
                              client_id="edge-62")
        scene.wait(healthy, timeout=30)
        scene.end(broker)
    _require(broker.log_text(), r"New client connected .* as edge-62", "log4js_clients: the healthy client")
    _require(_read(scene.root / "clients/edge-60.log"), r"\] \[ERROR\] edge-60 - Error: connect ECONNREFUSED",
             "log4js_clients: edge-60's refused connection")
    _require(_read(scene.root / "clients/edge-61.log"), r"\[ERROR\] edge-61 - .*Not authorized",
             "log4js_clients: edge-61's refused login")
    package = json.loads((log4js_module() / "package.json").read_text())
    scene.finish([("net.connection_refused", ["edge-60"]), ("auth.bad_credentials", ["edge-61"])], broker=broker,
                 extra_versions={"node": _run_text(["node", "--version"]) or "unknown",
                                 "log4js": str(package.get("version", "unknown"))})
