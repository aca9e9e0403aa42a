"""Client configurations: Node-RED flows and the configuration files of paho, gateway and MQTT.js
applications, read for what they dial and trust; files that configure nothing are told apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from correlator.artifacts.client_config import read_client_configs, resolve
from correlator.errors import ArtifactError
from correlator.sources.bundle import open_bundle

SAMPLES = Path(__file__).resolve().parent.parent.parent / "sample_logs"

FLOWS = [
    {"id": "t1", "type": "tab", "label": "Plant"},
    {"id": "tls1", "type": "tls-config", "name": "plant CA", "ca": "/data/certs/ca.pem", "cert": "", "key": "",
     "servername": "", "verifyservercert": True},
    {"id": "b1", "type": "mqtt-broker", "name": "plant broker", "broker": "broker.plant", "port": "8883",
     "tls": "tls1", "usetls": True, "clientid": "nodered-gw"},
    {"id": "b2", "type": "mqtt-broker", "name": "lab", "broker": "mqtt://10.3.0.40:1883", "port": "", "usetls": False,
     "clientid": ""},
    {"id": "o1", "type": "mqtt out", "z": "t1", "broker": "b1", "wires": []},
]


def test_node_red_flows(tmp_path: Path) -> None:
    path = tmp_path / "flows.json"
    path.write_text(json.dumps(FLOWS, indent=4))
    plant, lab = read_client_configs(path)
    assert (plant.kind, plant.host, plant.port, plant.tls, plant.verify) == \
        ("node-red", "broker.plant", 8883, True, True)
    assert (plant.ca_file, plant.client_id) == ("/data/certs/ca.pem", "nodered-gw")
    assert "tls-config 'plant CA'" in plant.origin and plant.line is not None
    assert (lab.host, lab.port, lab.tls, lab.ca_file, lab.client_id) == ("10.3.0.40", 1883, False, None, None)
    # the file store's format with revisions holds the same nodes
    path.write_text(json.dumps({"rev": "3a1f", "flows": FLOWS}))
    assert [c.host for c in read_client_configs(path)] == ["broker.plant", "10.3.0.40"]


def test_ini_yaml_json_toml(tmp_path: Path) -> None:
    ini = tmp_path / "gateway.ini"
    ini.write_text("[general]\nname = line 3\n\n[mqtt]\nhost = broker.plant\nport = 8883\n"
                   "ca_certs = /etc/plant/ca.pem\ntls_insecure = false\nclient_id = edge-07\n")
    [config] = read_client_configs(ini)
    assert (config.origin, config.host, config.port, config.tls, config.ca_file, config.client_id, config.line) == \
        ("mqtt", "broker.plant", 8883, True, "/etc/plant/ca.pem", "edge-07", 5)
    assert config.verify is None
    yml = tmp_path / "service.yaml"
    yml.write_text("mqtt:\n  broker_url: mqtts://10.3.0.11:8883\n  clientId: hmi-32\n  tls:\n"
                   "    ca: certs/ca.pem\n    rejectUnauthorized: false\nlogging:\n  level: info\n")
    [config] = read_client_configs(yml)
    assert (config.origin, config.host, config.port, config.tls, config.ca_file, config.verify, config.client_id) == \
        ("mqtt", "10.3.0.11", 8883, True, "certs/ca.pem", False, "hmi-32")
    js = tmp_path / "config.json"
    js.write_text(json.dumps({"connection": {"hostname": "broker.plant", "port": 1883, "username": "MyEACM"}}))
    [config] = read_client_configs(js)
    assert (config.host, config.port, config.tls, config.username) == ("broker.plant", 1883, None, "MyEACM")
    toml = tmp_path / "edge.toml"
    toml.write_text('[broker]\naddress = "broker.plant"\ncafile = "ca.pem"\n')
    assert [(c.host, c.ca_file) for c in read_client_configs(toml)] == [("broker.plant", "ca.pem")]


def test_files_that_configure_nothing(tmp_path: Path) -> None:
    package = tmp_path / "package.json"
    package.write_text(json.dumps({"name": "node-red-project", "dependencies": {"node-red": "4.1.15"}}))
    assert read_client_configs(package) == []
    # an incident's expected.json names clients, commands and certificates, but configures nothing
    assert read_client_configs(SAMPLES / "node_red_untrusted_ca" / "expected.json") == []
    plain = tmp_path / "mosquitto-bridge.conf"
    plain.write_text("connection bridge\naddress 10.3.0.11:8883\n")
    assert read_client_configs(plain) == []


def test_a_broken_file_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "flows.json"
    path.write_text('[\n  {"id": "b1",\n   "type": "mqtt-broker",,\n}]\n')
    with pytest.raises(ArtifactError) as caught:
        read_client_configs(path)
    assert (caught.value.file, caught.value.line) == (str(path), 3)
    assert "not valid JSON" in caught.value.message


def test_named_files_are_found_in_the_bundle(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "gw").mkdir()
    ca = tmp_path / "certs" / "ca.pem"
    other = tmp_path / "certs" / "site-ca.pem"
    for file in (ca, other):
        file.write_text("-----BEGIN CERTIFICATE-----\n")
    flows = tmp_path / "gw" / "flows.json"
    flows.write_text(json.dumps(FLOWS))
    [plant, _] = read_client_configs(flows)
    # /data/certs/ca.pem on the gateway is the bundle's certs/ca.pem
    assert resolve(plant, [ca, other], [tmp_path]).found == {"ca_file": ca}
    assert resolve(plant, [other], [tmp_path]).found == {}


def test_json_is_sniffed_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "flows.json").write_text(json.dumps(FLOWS))
    (tmp_path / "package.json").write_text(json.dumps({"name": "x"}))
    (tmp_path / "app.json").write_text('{"t": 1, "msg": "connected"}\n{"t": 2, "msg": "lost"}\n')
    (tmp_path / "broken.json").write_text('{"broker": "x",\n')
    with open_bundle([tmp_path]) as bundle:
        assert sorted(p.name for p in bundle.client_confs) == ["broken.json", "flows.json"]
        assert [p.name for p in bundle.logs] == ["app.json"]
        assert [(p.name, why) for p, why in bundle.skipped] == [("package.json", "json")]
