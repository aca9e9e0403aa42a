"""Client-side configurations found in a bundle: what a client was told to dial and to trust.

Some clients give no reason when they fail: Node-RED only says "Connection failed to broker", and
Node's TLS closes the socket after a failed verification without sending an alert, so the broker
logs no more than `unexpected eof while reading`. The reason is then in what the client was
configured with; this module reads it so the checks can hold it against the broker's certificate
and mosquitto.conf:

- Node-RED `flows.json` (a list of nodes, or `{"flows": [...]}` as the file store writes it with
  revisions): each `mqtt-broker` config node (`broker`, `port`, `clientid`, `usetls`) with the
  `tls-config` node it points at (`ca`, `cert`, `key` file paths, `servername`,
  `verifyservercert`). Certificates uploaded in the editor live encrypted in `flows_cred.json`
  and are not readable here; the node then names no file.
- Other configuration files, `.json`, `.yaml`/`.yml`, `.ini`/`.cfg`/`.conf` (INI) and `.toml`: any
  table (INI section, JSON object, YAML mapping) that names a host or URL, a CA file, or a
  client certificate under one of the usual key spellings (`ca_certs`, `cafile`, `tls.ca`,
  `hostname`, `broker_url`, `client_id`, ... compared without case, `_`, `-` or `.`): the settings
  paho-mqtt applications, eACM-style gateways and MQTT.js services keep.

A file is only ever read, never run; a file that parses but names nothing of the kind is not a
client configuration (an `expected.json`, a package manifest) and is said to be skipped, not lost.
"""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from correlator.errors import ArtifactError

if TYPE_CHECKING:
    import yaml
else:
    from correlator.lazy import lazy_module

    yaml = lazy_module("yaml")  # imported when a bundle holds a YAML file

#: File name endings read as configurations (JSON is sniffed whatever it is called).
SUFFIXES = (".json", ".yaml", ".yml", ".ini", ".cfg", ".toml", ".conf")
_MAX_BYTES = 4 << 20


def _norm(key: str) -> str:
    return re.sub(r"[\s_.\-]", "", key).lower()


#: Key spellings per setting, compared after `_norm`.
_KEYS: dict[str, frozenset[str]] = {
    "host": frozenset({"host", "hostname", "broker", "brokerhost", "brokeraddress", "server", "serverhost",
                       "address", "mqtthost", "mqttbroker", "mqttserver", "endpoint"}),
    "url": frozenset({"url", "uri", "brokerurl", "brokeruri", "serveruri", "serverurl", "mqtturl"}),
    "port": frozenset({"port", "brokerport", "mqttport", "serverport"}),
    "ca_file": frozenset({"ca", "cafile", "cacert", "cacerts", "cacertfile", "cacertificate", "cacertpath",
                          "cafilepath", "tlsca", "tlscafile", "tlscacert", "sslca", "sslcafile", "rootca",
                          "rootcafile", "trustedca", "trustedcafile", "trustca", "cacertificatefile",
                          "truststore", "ssltruststore"}),
    "cert_file": frozenset({"cert", "certfile", "certificate", "certificatefile", "clientcert", "clientcertfile",
                            "clientcertificate", "tlscert", "tlscertfile", "sslcert", "sslcertfile", "keystore",
                            "sslkeystore"}),
    "key_file": frozenset({"key", "keyfile", "clientkey", "clientkeyfile", "privatekey", "privatekeyfile", "tlskey",
                           "tlskeyfile", "sslkey", "sslkeyfile"}),
    "client_id": frozenset({"clientid", "mqttclientid"}),
    "username": frozenset({"username", "user", "mqttuser", "mqttusername"}),
    "tls": frozenset({"tls", "ssl", "usetls", "usessl", "tlsenabled", "sslenabled", "enabletls", "secure"}),
    "insecure": frozenset({"insecure", "tlsinsecure", "sslinsecure", "allowinsecure", "skipverify"}),
    "verify": frozenset({"verify", "verifyservercert", "rejectunauthorized", "tlsverify", "verifycert",
                         "certreqs", "checkhostname"}),
    "servername": frozenset({"servername", "sni", "tlsservername"}),
}
_LOOKUP = {spelling: setting for setting, spellings in _KEYS.items() for spelling in spellings}
_TLS_SCHEMES = ("mqtts", "ssl", "tls", "wss", "tcps")
_FALSE = ("false", "no", "off", "0", "none", "cert_none")


@dataclass(frozen=True)
class ClientConfig:
    """One client's connection settings, as a file states them."""

    path: Path
    origin: str
    """Where in the file: `mqtt-broker node 'plant broker' (b1)`, `[mqtt]`, `mqtt.tls`."""
    kind: str
    """'node-red' or 'file' (a generic configuration file)."""
    host: str | None = None
    port: int | None = None
    tls: bool | None = None
    """True when the URL's scheme or a flag turns TLS on, False when a flag turns it off."""
    verify: bool | None = None
    """False when the file turns verification of the broker's certificate off."""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    client_id: str | None = None
    username: str | None = None
    servername: str | None = None
    line: int | None = None
    found: dict[str, Path] = field(default_factory=dict)
    """The files it names (`ca_file`, `cert_file`, `key_file`) as found in the bundle."""

    @property
    def label(self) -> str:
        return f"{self.origin}"

    def names_anything(self) -> bool:
        return any((self.host, self.ca_file, self.cert_file))


# -- reading -----------------------------------------------------------------------------------

def read_client_configs(path: Path) -> list[ClientConfig]:
    """The client configurations in one file ([] when it holds none). Raises ArtifactError naming
    the file (and line, where the parser says) when it cannot be read or parsed."""
    data = _load(path)
    if data is None:
        return []
    nodes = _node_red_nodes(data)
    if nodes is not None:
        return list(_node_red(path, nodes))
    return [c for c in _tables(path, data) if c.names_anything()]


def looks_like_config(path: Path) -> bool:
    """Whether a file should be read as a configuration: its name ends like one, or it is JSON."""
    return path.suffix.lower() in SUFFIXES


def _load(path: Path) -> Any:
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ArtifactError("too large for a configuration file", file=str(path))
        raw = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    text = raw.decode("utf-8", "replace").lstrip("\ufeff")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix in (".ini", ".cfg", ".conf"):
            return _ini(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"not valid JSON: {exc.msg}", file=str(path), line=exc.lineno) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ArtifactError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", file=str(path),
                            line=mark.line + 1 if mark is not None else None) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ArtifactError(f"not valid TOML: {exc}", file=str(path)) from exc
    except configparser.Error as exc:
        raise ArtifactError(f"not a valid INI file: {exc}", file=str(path),
                            line=getattr(exc, "lineno", None)) from exc
    return None


def _ini(text: str) -> dict[str, dict[str, str]] | None:
    """INI sections as tables; None for a file that is not INI (mosquitto.conf has no sections)."""
    if not re.search(r"^\s*\[[^\]]+\]\s*$", text, re.M):
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    return {name: dict(parser.items(name)) for name in parser.sections()}


# -- Node-RED ----------------------------------------------------------------------------------

def _node_red_nodes(data: Any) -> list[dict[str, Any]] | None:
    flows = data.get("flows") if isinstance(data, dict) else data
    if not isinstance(flows, list) or not flows:
        return None
    nodes = [n for n in flows if isinstance(n, dict)]
    if len(nodes) != len(flows) or not all(isinstance(n.get("type"), str) and "id" in n for n in nodes):
        return None
    return nodes


def _node_red(path: Path, nodes: list[dict[str, Any]]) -> Iterator[ClientConfig]:
    by_id = {str(n["id"]): n for n in nodes}
    for node in nodes:
        if node["type"] != "mqtt-broker":
            continue
        name = str(node.get("name") or node.get("id"))
        broker = str(node.get("broker") or "").strip()
        host, port, scheme_tls = _split_url(broker) if "://" in broker else (broker or None, None, None)
        port = port or _int(node.get("port"))
        tls_node = by_id.get(str(node.get("tls") or ""))
        use_tls = _bool(node.get("usetls"))
        tls = scheme_tls if scheme_tls is not None else use_tls
        config = ClientConfig(
            path=path, origin=f"Node-RED mqtt-broker node '{name}' ({node['id']})", kind="node-red", host=host,
            port=port, tls=tls, client_id=_str(node.get("clientid")), line=_line_of(path, f'"{node["id"]}"'))
        if tls_node is not None and tls is not False:
            config = replace(config, ca_file=_str(tls_node.get("ca")), cert_file=_str(tls_node.get("cert")),
                             key_file=_str(tls_node.get("key")), servername=_str(tls_node.get("servername")),
                             verify=_bool(tls_node.get("verifyservercert")),
                             origin=f"{config.origin} with tls-config '{tls_node.get('name') or tls_node['id']}'")
        yield config


# -- any other configuration --------------------------------------------------------------------

def _tables(path: Path, data: Any, where: str = "") -> Iterator[ClientConfig]:
    """Every mapping in the document that names connection settings, as one configuration. A
    nested mapping that names no host of its own (`tls: {ca: ...}` under the broker's settings)
    adds its settings to the mapping around it."""
    if isinstance(data, Mapping):
        settings = _settings(data)
        nested = []
        for key, value in data.items():
            child = _settings(value) if isinstance(value, Mapping) else {}
            if child and not {"host", "url"} & child.keys() and isinstance(value, Mapping) \
                    and not any(isinstance(v, Mapping | list) for v in value.values()):
                for name, setting in child.items():
                    settings.setdefault(name, setting)
            elif isinstance(value, Mapping | list):
                nested.append((key, value))
        if settings:
            config = _from_settings(path, where or "(top level)", settings)
            if config is not None:
                yield config
        for key, value in nested:
            yield from _tables(path, value, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _tables(path, item, f"{where}[{index}]")


def _settings(data: Mapping[Any, Any]) -> dict[str, Any]:
    """The connection settings a mapping states with its own scalar values, by setting name."""
    settings: dict[str, Any] = {}
    for key, value in data.items():
        setting = _LOOKUP.get(_norm(str(key)))
        if setting is not None and not isinstance(value, Mapping | list) and setting not in settings:
            settings[setting] = value
    return settings


def _from_settings(path: Path, where: str, settings: dict[str, Any]) -> ClientConfig | None:
    host = _str(settings.get("host"))
    port = _int(settings.get("port"))
    tls: bool | None = _bool(settings["tls"]) if "tls" in settings else None
    for text in (_str(settings.get("url")), host):
        if text and "://" in text:
            host, url_port, scheme_tls = _split_url(text)
            port = port or url_port
            tls = scheme_tls if tls is None else tls
            break
    verify = _bool(settings["verify"]) if "verify" in settings else None
    if "insecure" in settings and _bool(settings["insecure"]):
        verify = False
    ca = _str(settings.get("ca_file"))
    cert = _str(settings.get("cert_file"))
    if ca and tls is None:
        tls = True
    if host and not _hostlike(host):
        host = None
    if not (host or ca or cert):
        return None
    return ClientConfig(path=path, origin=where, kind="file", host=host, port=port, tls=tls, verify=verify,
                        ca_file=ca, cert_file=cert, key_file=_str(settings.get("key_file")),
                        client_id=_str(settings.get("client_id")), username=_str(settings.get("username")),
                        servername=_str(settings.get("servername")),
                        line=_line_of(path, host or ca or cert or ""))


def _split_url(text: str) -> tuple[str | None, int | None, bool | None]:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None, None, None
    scheme = parts.scheme.lower()
    tls = True if scheme in _TLS_SCHEMES else False if scheme in ("mqtt", "tcp", "ws") else None
    return parts.hostname, port, tls


def _hostlike(text: str) -> bool:
    return re.fullmatch(r"[\w.\-]+|\[[0-9a-fA-F:]+\]|[0-9a-fA-F:]+", text) is not None


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 65536 else None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    return str(value).strip().lower() not in _FALSE


def _line_of(path: Path, needle: str) -> int | None:
    """The first line of the file holding `needle`, for evidence (`flows.json:12`)."""
    if not needle:
        return None
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if needle in line:
                    return number
    except OSError:
        return None
    return None


# -- finding what a configuration names ----------------------------------------------------------

def resolve(config: ClientConfig, files: list[Path], roots: list[Path]) -> ClientConfig:
    """The files a configuration names, found in the bundle: at the path as written (relative to
    the configuration's folder or a bundle root), else the one bundle file whose path ends the
    same way (a field path such as /data/certs/ca.pem against the bundle's certs/ca.pem), else
    the one with that file name."""
    found: dict[str, Path] = {}
    for setting in ("ca_file", "cert_file", "key_file"):
        written = getattr(config, setting)
        if not written:
            continue
        hit = _find(written, config.path.parent, files, roots)
        if hit is not None:
            found[setting] = hit
    return replace(config, found=found)


def _find(written: str, base: Path, files: list[Path], roots: list[Path]) -> Path | None:
    target = Path(written)
    candidates = [target] if target.is_absolute() else [base / target, *(root / target for root in roots)]
    known = {f.resolve(): f for f in files}
    for candidate in candidates:
        try:
            real = candidate.resolve()
        except OSError:
            continue
        if real in known:
            return known[real]
    parts = [p for p in target.parts if p not in ("/", "..", ".")]
    for size in range(len(parts), 0, -1):
        tail = parts[-size:]
        matches = list(dict.fromkeys(f for f in files if list(f.parts[-size:]) == tail))
        if len(matches) == 1:
            return matches[0]
        if matches:
            return None
    return None
