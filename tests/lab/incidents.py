"""Real incidents for sample_logs/: each function runs a real mosquitto (or asyncua) with its own
certificates, config, password and ACL files, drives real clients into one failure, and saves what
a person on call would collect: the broker's log and config, the certificates, the clients' logs.

No log line here is written by hand. The parsers and rules are built against these folders, so a
scenario that does not fail the way its name says is changed (or dropped), never its log.

Folder layout per incident (`out/<name>/`): broker/ (mosquitto.log, mosquitto.conf, acl, passwd),
certs/ (certificates only), keys/ (private keys only), clients/<name>.log, pki/ (OPC UA trust
folders) and expected.json (the root causes from ROOT_CAUSES.md, the clients, the versions used).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab import child_env, pki
from lab.broker import BrokerUnavailable, Mosquitto, mosquitto_binary
from lab.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
SPARKPLUG_ACL = """\
# The vendor guide's Sparkplug ACL (eACM, viewer, HMI), plus the lab's own users.
user MyEACM
topic read STATE/+
topic readwrite spBv1.0/#

user SparkplugViewer
topic read STATE/+
topic read spBv1.0/#

user HMI
topic readwrite STATE/+
topic readwrite spBv1.0/#
"""


class IncidentUnavailable(RuntimeError):
    """This machine cannot run the incident (a daemon or tool is missing); nothing was written."""


class IncidentFailed(RuntimeError):
    """Real software did not behave the way the scenario needs; the sample would be a lie."""


# --------------------------------------------------------------------------- versions


def _run_text(cmd: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).strip()


@cache
def versions() -> dict[str, str]:
    """The versions of the real software that produced a sample, so a reader can tell what a
    line looked like in which release."""
    made: dict[str, str] = {}
    match = re.search(r"mosquitto version (\S+)", _run_text(["mosquitto", "-h"]))
    made["mosquitto"] = match.group(1) if match else "unknown"
    match = re.search(r"OpenSSL (\S+)", _run_text(["openssl", "version"]))
    made["openssl"] = match.group(1) if match else "unknown"
    for package in ("paho-mqtt", "asyncua", "cryptography"):
        try:
            made[package] = version(package)
        except PackageNotFoundError:
            made[package] = "not installed"
    made["python"] = platform.python_version()
    return made


GO_PAHO_SOURCE = Path(__file__).resolve().parent / "go_paho" / "main.go"


@cache
def go_paho_binary() -> Path:
    """The lab's Go client, built from tests/lab/go_paho in GOPATH mode against Debian's packaged
    Paho Go (no network: apt-get install golang-go golang-github-eclipse-paho.mqtt.golang-dev)."""
    gocode = Path("/usr/share/gocode")
    if shutil.which("go") is None or not (gocode / "src/github.com/eclipse/paho.mqtt.golang").is_dir():
        raise IncidentUnavailable("Go or Paho Go is not installed (Debian: apt-get install golang-go "
                                  "golang-github-eclipse-paho.mqtt.golang-dev)")
    out = Path(tempfile.gettempdir()) / "correlator-lab-go"
    out.mkdir(exist_ok=True)
    binary = out / f"go_paho-{os.getpid()}"  # its own: another process may be running its copy (ETXTBSY)
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(gocode), "GOCACHE": str(out / "cache"),
           "GOFLAGS": ""}
    done = subprocess.run(["go", "build", "-o", str(binary), str(GO_PAHO_SOURCE)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise IncidentFailed(f"go build failed: {done.stderr.strip()}")
    return binary


@cache
def dpkg_version(package: str) -> str:
    text = _run_text(["dpkg-query", "-W", "-f=${Version}", package])
    return text if text and "no packages" not in text else "unknown"


# --------------------------------------------------------------------------- the scene


@dataclass
class Client:
    """A client process: its command, where its log goes, and what expected.json says about it."""

    name: str
    info: dict[str, Any]
    cmd: list[str]
    env: dict[str, str] | None
    proc: subprocess.Popen[bytes] | None = None
    sink: str | None = None  # where stdout+stderr go, relative to the incident folder


@dataclass
class Scene:
    """One incident folder being made. Clients run with the folder as working directory, so the
    commands recorded in expected.json use the same relative paths a reader sees."""

    root: Path
    name: str
    description: str
    clients: dict[str, Client] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def create(cls, out: Path, name: str, description: str) -> Scene:
        root = Path(out) / name
        if root.exists():
            shutil.rmtree(root)
        for sub in ("broker", "certs", "keys", "clients"):
            (root / sub).mkdir(parents=True)
        return cls(root=root, name=name, description=description)

    # ---- artifacts

    def save_cert(self, issued: pki.Issued, stem: str, *, key_suffix: str = ".key") -> None:
        """Certificates go to certs/, keys to keys/, the layout a bundle from the field has."""
        issued.write(self.root / "certs" / f"{stem}.pem", self.root / "keys" / f"{stem}{key_suffix}")

    def save_chain(self, stem: str, *certs: pki.Issued) -> None:
        (self.root / "certs" / f"{stem}.pem").write_bytes(
            b"".join(c.cert.public_bytes(serialization.Encoding.PEM) for c in certs))

    def passwd(self, users: dict[str, str], folder: str = "broker", *, tool: str = "mosquitto_passwd") -> None:
        """A real mosquitto password file, made the way an operator makes it (in `folder`: a
        bundle of several hosts has one folder per broker; `tool`: the mosquitto_passwd of the
        release the broker is)."""
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        path = self.root / folder / "passwd"
        first = True
        for user, password in users.items():
            cmd = [tool, "-b", *(["-c"] if first else []), str(path), user, password]
            subprocess.run(cmd, check=True, capture_output=True, timeout=20)
            first = False

    def acl(self, text: str, folder: str = "broker") -> None:
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        (self.root / folder / "acl").write_text(text)

    def broker(self, config: str, folder: str = "broker", **kwargs: Any) -> Mosquitto:
        return Mosquitto(self.root / folder, config, **kwargs)

    def login_listener(self, users: dict[str, str], acl: str | None = None, *, settings: str = "") -> str:
        """A broker that wants a user name and password: the password file (and the ACL) written
        to broker/, and the config of one listener that uses them (`settings`: lines to add
        before the logging ones)."""
        self.passwd(users)
        if acl is not None:
            self.acl(acl)
        return (f"listener {{port0}} {HOST}\nallow_anonymous false\npassword_file passwd\n"
                + ("acl_file acl\n" if acl is not None else "") + settings + LOG_ALL)

    # ---- clients

    def _add(self, name: str, info: dict[str, Any], cmd: list[str], env: dict[str, str] | None,
             *, tz: str | None = None, clock_offset: int | None = None, sink: str | None = None,
             folder: str = "clients", netns: str | None = None) -> Client:
        if name in self.clients:  # the same client run again (a retry by hand): same file, same info
            return self.clients[name]
        full_env = child_env()
        full_env.pop("PYTHONDONTWRITEBYTECODE", None)
        full_env["PYTHONDONTWRITEBYTECODE"] = "1"
        full_env.update(env or {})
        if tz is not None:
            full_env["TZ"] = tz
            info["timezone"] = tz
            self.extra.setdefault("timezones", {})[name] = tz
        if clock_offset is not None:
            cmd = ["faketime", "-f", f"{clock_offset:+d}s", *cmd]
            info["clock_offset_seconds"] = clock_offset
            self.extra.setdefault("clock_offsets", {})[name] = clock_offset
        info["log"] = f"{folder}/{name}.log"
        info["command"] = shlex.join(_show(cmd))
        if netns is not None:  # on a machine of its own: a network namespace (see lab.netns)
            cmd = ["ip", "netns", "exec", netns, *cmd]
            info["network_namespace"] = netns
        client = Client(name=name, info=info, cmd=cmd, env=full_env, sink=sink)
        self.clients[name] = client
        return client

    def start(self, client: Client) -> Client:
        log = self.root / (client.sink or f"clients/{client.name}.log")
        with log.open("ab") as sink:  # `>> log 2>&1`: one file, both streams, as a user captures it
            client.proc = subprocess.Popen(client.cmd, cwd=self.root, stdout=sink, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=client.env)
        return client

    def mosquitto_client(self, name: str, tool: str, port: int, args: Sequence[str], *, client_id: str | None,
                         host: str = HOST, username: str | None = None, password: str | None = None,
                         tz: str | None = None, clock_offset: int | None = None, start: bool = True,
                         bin_dir: Path | None = None) -> Client:
        """mosquitto_pub / mosquitto_sub with -d, the way people reproduce a failure by hand; with
        `client_id=None`, no -i at all (mosquitto 2.0's tools then send an empty client id);
        `bin_dir`: the folder of another release's tools (lab.mosquitto_build) than the installed."""
        cmd = [tool, "-d", "-h", host, "-p", str(port), *(["-i", client_id] if client_id is not None else [])]
        if username is not None:
            cmd += ["-u", username]
        if password is not None:
            cmd += ["-P", password]
        cmd += list(args)
        info: dict[str, Any] = {"kind": tool, "dials": f"{host}:{port}",
                                "client_id": client_id if client_id is not None else ""}
        if username is not None:
            info["username"] = username
        env = None
        if bin_dir is not None:  # that release's tools first on the PATH; the command names the tool as usual
            env = {"PATH": os.pathsep.join((str(bin_dir), os.environ.get("PATH", "")))}
            home = Path.home()
            info["path_first"] = f"~/{bin_dir.relative_to(home)}" if bin_dir.is_relative_to(home) else str(bin_dir)
        client = self._add(name, info, cmd, env, tz=tz, clock_offset=clock_offset)
        return self.start(client) if start else client

    def paho(self, name: str, port: int, args: Sequence[str], *, client_id: str, host: str = HOST,
             username: str | None = None, password: str | None = None, tz: str | None = None,
             clock_offset: int | None = None, duration: float = 4.0, start: bool = True,
             folder: str = "clients", config: str | None = None, netns: str | None = None) -> Client:
        """The lab's paho-mqtt application (lab.paho_client); its log goes to `folder` (a host's
        own folder in a bundle of several hosts). With `config` (a file name in `folder`), the
        application reads its broker, client id, user name and password from that INI file, which
        this writes, as a field application keeps them; the command line then names none of them."""
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "lab.paho_client", "--log-file", f"{folder}/{name}.log",
               "--duration", str(duration)]
        settings = {"host": host, "port": str(port), "client_id": client_id, "username": username,
                    "password": password}
        if config is not None:
            lines = [f"{key} = {value}" for key, value in settings.items() if value is not None]
            (self.root / folder / config).write_text("[mqtt]\n" + "\n".join(lines) + "\n", encoding="utf-8")
            cmd += ["--config", f"{folder}/{config}"]
        else:
            cmd += [arg for key, value in settings.items() if value is not None
                    for arg in (f"--{key.replace('_', '-')}", value)]
        cmd += list(args)
        info: dict[str, Any] = {"kind": "paho", "dials": f"{host}:{port}", "client_id": client_id}
        if config is not None:
            info["config"] = f"{folder}/{config}"
        if username is not None:
            info["username"] = username
        client = self._add(name, info, cmd, None, tz=tz, clock_offset=clock_offset,
                           sink=f"{folder}/{name}.stderr.txt", folder=folder, netns=netns)
        return self.start(client) if start else client

    def paho_c(self, name: str, tool: str, port: int, args: Sequence[str], *, client_id: str,
               username: str | None = None, password: str | None = None, trace: str = "env",
               host: str = HOST, run_for: float | None = None) -> Client:
        """A Paho C sample program (Debian paho.mqtt.c-examples) with the library's protocol trace:
        `trace="env"` has the library write it with its own times (MQTT_C_CLIENT_TRACE=ON), and
        `trace="callback"` has the program print it (`--trace protocol`: Paho's 19700101 placeholder
        times). `run_for` ends a program that never stops on its own (a subscriber) with timeout(1)."""
        if shutil.which(tool) is None:
            raise IncidentUnavailable(f"{tool} is not installed (Debian: apt-get install paho.mqtt.c-examples)")
        cmd = [tool, "-h", host, "-p", str(port), "-i", client_id]
        if username is not None:
            cmd += ["-u", username]
        if password is not None:
            cmd += ["-P", password]
        cmd += list(args)
        env = None
        if trace == "env":
            env = {"MQTT_C_CLIENT_TRACE": "ON", "MQTT_C_CLIENT_TRACE_LEVEL": "PROTOCOL"}
        else:
            cmd += ["--trace", "protocol"]
        if run_for is not None:
            cmd = ["timeout", "--signal=INT", str(run_for), *cmd]
        info: dict[str, Any] = {"kind": "paho-c", "program": tool, "dials": f"{host}:{port}", "client_id": client_id,
                                "trace": trace, "paho.mqtt.c": dpkg_version("libpaho-mqtt1.3")}
        if env:
            info["environment"] = env
        if username is not None:
            info["username"] = username
        return self.start(self._add(name, info, cmd, env))

    def go_paho(self, name: str, url: str, args: Sequence[str], *, client_id: str, username: str | None = None,
                password: str | None = None) -> Client:
        """The lab's Eclipse Paho Go application (tests/lab/go_paho), built offline."""
        cmd = [str(go_paho_binary()), "-broker", url, "-id", client_id]
        if username is not None:
            cmd += ["-user", username, "-pass", password or ""]
        cmd += list(args)
        info: dict[str, Any] = {"kind": "paho-go", "dials": url, "client_id": client_id,
                                "paho.mqtt.golang": dpkg_version("golang-github-eclipse-paho.mqtt.golang-dev")}
        if username is not None:
            info["username"] = username
        return self.start(self._add(name, info, cmd, None))

    def hmi(self, name: str, port: int, *, duration: float, args: Sequence[str] = (), login: bool = True,
            **paho: Any) -> Client:
        """The healthy client beside the failing ones: a paho application (id `name`) subscribed to
        spBv1.0/# for `duration` s, as user HMI unless `login` is false (`args` go first: TLS
        options, a log layout)."""
        return self.paho(name, port, [*args, "--subscribe", "spBv1.0/#", "--attempts", "1"], client_id=name,
                         username="HMI" if login else None, password=USERS["HMI"] if login else None,
                         duration=duration, **paho)

    def end(self, broker: Mosquitto, *first: Client, timeout: float = 20.0) -> None:
        """The scenario's end: the clients given first, then every other, each within `timeout`
        seconds, and the broker stopped once it has logged the last disconnects."""
        if first:
            self.wait(*first, timeout=timeout)
        self.wait(timeout=timeout)
        _settle(broker)

    def wait(self, *clients: Client, timeout: float = 30.0) -> None:
        """Wait for the given clients (all when none given); kill what hangs, since a hung client
        is itself evidence, but say so in expected.json."""
        deadline = time.monotonic() + timeout
        for client in clients or tuple(self.clients.values()):
            if client.proc is None:
                continue
            try:
                client.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                client.proc.send_signal(signal.SIGINT)
                try:
                    client.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    client.proc.kill()
                    client.proc.wait()
                client.info["stopped_by_lab"] = "still running at the end of the scenario, interrupted"
            client.info["exit_code"] = client.proc.returncode

    # ---- results

    def finish(self, root_causes: Sequence[tuple[str, Sequence[str]]], *, broker: Mosquitto | None = None,
               extra_versions: dict[str, str] | None = None,
               hosts: dict[str, Sequence[tuple[str, Sequence[str]]]] | None = None,
               named_by_file: Sequence[str] = ()) -> dict[str, Any]:
        """Write expected.json. `hosts`: for a bundle of several hosts, the root causes found on
        each (host name -> causes); `root_causes` is then their union. `named_by_file`: clients
        whose lines name no client id (mosquitto_pub failing before its CONNECT), so findings name
        them by their log file."""
        self.wait()
        if hosts is not None:
            root_causes = [cause for causes in hosts.values() for cause in causes]
        if broker is not None:
            self.extra.setdefault("broker", {}).update(
                {"listener_ports": broker.ports, "exit_code": broker.returncode})
        for name, _ in root_causes:
            _check_id(name)
        made_with = dict(versions())
        made_with.update(extra_versions or {})
        if any(c.cmd and c.cmd[0] == "faketime" for c in self.clients.values()):
            made_with["libfaketime"] = dpkg_version("libfaketime")
        affected = sorted({self.clients[n].info.get("client_id") or n
                           if n in self.clients and n not in named_by_file else n
                           for _, names in root_causes for n in names})
        expected: dict[str, Any] = {
            "description": self.description,
            "root_causes": [{"id": rid, "clients": list(names)} for rid, names in root_causes],
            "affected_clients": affected,
            "clients": {name: c.info for name, c in self.clients.items()
                        if not c.info["kind"].endswith("-server")},
            "made_at": self.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "made_with": made_with,
        }
        if hosts is not None:
            expected["hosts"] = {
                name: {"root_causes": [{"id": rid, "clients": list(names)} for rid, names in causes],
                       "affected_clients": sorted({self.clients[n].info.get("client_id") or n
                                                   if n in self.clients else n for _, names in causes for n in names})}
                for name, causes in hosts.items()}
        servers = {name: c.info for name, c in self.clients.items() if c.info["kind"].endswith("-server")}
        if servers:
            expected["servers"] = servers
        expected.update(self.extra)
        expected["certificates"] = _describe_certs(self.root / "certs")
        for client in self.clients.values():
            # A Python client's own stdout/stderr (tracebacks, warnings) is kept only when it said something.
            if client.sink and (self.root / client.sink).exists():
                if (self.root / client.sink).stat().st_size == 0:
                    (self.root / client.sink).unlink()
                else:
                    client.info["stderr"] = client.sink
        for sub in ("certs", "keys", "clients", "broker"):
            folder = self.root / sub
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        (self.root / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
        return expected


def _show(cmd: Sequence[str]) -> list[str]:
    """The command as a reader would type it (python -m ..., not this venv's absolute path)."""
    return ["python" if part == sys.executable else part for part in cmd]


def _describe_certs(folder: Path) -> dict[str, list[dict[str, str]]]:
    described: dict[str, list[dict[str, str]]] = {}
    if not folder.is_dir():
        return described
    for path in sorted(folder.glob("*.pem")):
        entries = []
        for cert in x509.load_pem_x509_certificates(path.read_bytes()):
            entries.append({"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
                             "not_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                             "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")})
        described[path.name] = entries
    return described


@cache
def _known_ids() -> frozenset[str]:
    for candidate in (REPO_ROOT / "ROOT_CAUSES.md", REPO_ROOT.parent / "shared" / "ROOT_CAUSES.md",
                      Path("/work/shared/ROOT_CAUSES.md")):
        if candidate.is_file():
            return frozenset(re.findall(r"^\| ([a-z]+\.[a-z_]+) \|", candidate.read_text(), re.M))
    return frozenset()


def _check_id(rid: str) -> None:
    known = _known_ids()
    if known and rid not in known:
        raise IncidentFailed(f"{rid!r} is not an id in ROOT_CAUSES.md")


def need_faketime() -> None:
    """A scenario with a host's clock off runs its processes under faketime."""
    if shutil.which("faketime") is None:
        raise IncidentUnavailable("faketime is not installed (Debian: apt-get install faketime)")


def _require(text: str, pattern: str, what: str) -> None:
    """Fail loudly when real software did not print what the scenario is about."""
    if not re.search(pattern, text, re.M):
        raise IncidentFailed(f"{what}: no line matches {pattern!r}")


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _settle(broker: Mosquitto, seconds: float = 0.3) -> None:
    """Give the broker a moment to log the last disconnects before it is stopped."""
    time.sleep(seconds)
    broker.stop()


# --------------------------------------------------------------------------- certificates


@dataclass
class Pki:
    """The lab's usual PKI, made like the vendor guide's (RSA 2048, one CA, a server certificate
    for the broker's address) but with dates relative to the moment the sample is made."""

    now: datetime
    ca: pki.Issued

    @classmethod
    def create(cls, now: datetime, cn: str = "correlator lab CA") -> Pki:
        return cls(now=now, ca=pki.make_ca(cn, not_before=now - timedelta(days=400), days=3650))

    def server(self, *, cn: str = "broker.lab", sans: Sequence[str] = ("localhost", HOST),
               issuer: pki.Issued | None = None, not_before: datetime | None = None,
               not_after: datetime | None = None, authority_key_id: bool = True) -> pki.Issued:
        start = not_before or self.now - timedelta(days=30)
        return pki.make_leaf(cn, issuer or self.ca, sans=sans, usage=("server",), not_before=start,
                             not_after=not_after or start + timedelta(days=365), authority_key_id=authority_key_id)

    def client(self, cn: str, *, issuer: pki.Issued | None = None, not_before: datetime | None = None,
               not_after: datetime | None = None, authority_key_id: bool = True) -> pki.Issued:
        start = not_before or self.now - timedelta(days=30)
        return pki.make_leaf(cn, issuer or self.ca, sans=(), usage=("client",), not_before=start,
                             not_after=not_after or start + timedelta(days=365), authority_key_id=authority_key_id)


def usual_pki(scene: Scene, **server: Any) -> Pki:
    """The usual files: the lab CA as certs/ca.pem (what the clients trust) and the broker's
    certificate (`Pki.server` with `server`'s arguments) as certs/server.pem and keys/server.key."""
    lab = Pki.create(scene.now)
    lab.ca.write(scene.root / "certs" / "ca.pem")
    scene.save_cert(lab.server(**server), "server")
    return lab


def tls_listener(port: str = "{port0}", *, require_certificate: bool = False, cafile: str = "../certs/ca.pem",
                 certfile: str = "../certs/server.pem", keyfile: str = "../keys/server.key") -> str:
    return (f"listener {port} {HOST}\n"
            f"cafile {cafile}\ncertfile {certfile}\nkeyfile {keyfile}\n"
            f"require_certificate {'true' if require_certificate else 'false'}\n")


LOG_ALL = "log_dest file mosquitto.log\nlog_type all\n"
SPB_TOPIC = "spBv1.0/Plant1/NDATA/edge-01"


# --------------------------------------------------------------------------- TLS: the broker's certificate


def _server_cert_incident(out: Path, name: str, description: str, rid: str,
                          setup: Callable[[Scene, Pki], str], *,
                          expect_broker: str, expect_pub: str, expect_paho: str) -> None:
    """A TLS listener with a broker certificate the clients must reject; one mosquitto_pub and one
    paho client, each verifying against certs/ca.pem. `setup` writes certs/ca.pem (what the
    clients trust), certs/server.pem and keys/server.key, and returns the broker's cafile."""
    scene = Scene.create(out, name, description)
    lab = Pki.create(scene.now)
    cafile = setup(scene, lab)
    config = tls_listener(cafile=f"../certs/{cafile}") + "allow_anonymous true\n" + LOG_ALL
    with scene.broker(config) as broker:
        port = broker.port
        scene.paho("edge-02", port, ["--tls", "--cafile", "certs/ca.pem", "--publish",
                                     "spBv1.0/Plant1/NDATA/edge-02", "--attempts", "2", "--retry-delay", "0.5"],
                   client_id="edge-02", duration=3)
        for _ in range(2):  # tried twice by hand, appended to one file: its words vary between runs
            pub = scene.mosquitto_client("edge-01-pub", "mosquitto_pub", port,
                                         ["--cafile", "certs/ca.pem", "-t", SPB_TOPIC, "-m", "temperature=21.5",
                                          "-q", "1"], client_id="edge-01")
            scene.wait(pub, timeout=10)
            time.sleep(0.5)
        scene.end(broker)
    _require(broker.log_text(), expect_broker, f"{name}: broker log")
    _require(_read(scene.root / "clients/edge-01-pub.log"), expect_pub, f"{name}: mosquitto_pub log")
    _require(_read(scene.root / "clients/edge-02.log"), expect_paho, f"{name}: paho log")
    scene.finish([(rid, ["edge-01-pub", "edge-02"])], broker=broker)


def _plain_server(make: Callable[[Pki], pki.Issued]) -> Callable[[Scene, Pki], str]:
    """The usual files: one CA for everybody, the broker's certificate from `make`."""
    def setup(scene: Scene, lab: Pki) -> str:
        lab.ca.write(scene.root / "certs" / "ca.pem")
        scene.save_cert(make(lab), "server")
        return "ca.pem"
    return setup


def make_server_cert_expired(out: Path) -> None:
    _server_cert_incident(
        out, "server_cert_expired",
        "The broker's certificate expired 12 days ago; clients that verify it refuse the handshake.",
        "tls.server_cert_expired",
        _plain_server(lambda lab: lab.server(not_before=lab.now - timedelta(days=377),
                                             not_after=lab.now - timedelta(days=12))),
        expect_broker=r"certificate expired", expect_pub=r"certificate verify failed|Error",
        expect_paho=r"certificate has expired")


def make_server_cert_not_yet_valid(out: Path) -> None:
    _server_cert_incident(
        out, "server_cert_not_yet_valid",
        "The broker's certificate becomes valid only in 3 days (issued with a wrong clock on the CA).",
        "tls.server_cert_not_yet_valid",
        _plain_server(lambda lab: lab.server(not_before=lab.now + timedelta(days=3),
                                             not_after=lab.now + timedelta(days=368))),
        expect_broker=r"bad certificate|OpenSSL", expect_pub=r"Error|verify",
        expect_paho=r"not yet valid")


def make_server_hostname_mismatch(out: Path) -> None:
    _server_cert_incident(
        out, "server_hostname_mismatch",
        "The vendor recipe: the broker's certificate has CN=10.3.0.11 and no subjectAltName, but the "
        "clients dial 127.0.0.1.",
        "tls.server_hostname_mismatch",
        _plain_server(lambda lab: lab.server(cn="10.3.0.11", sans=())),
        expect_broker=r"OpenSSL|failed", expect_pub=r"Error|mismatch|verify",
        expect_paho=r"mismatch")


def trust_another_ca(scene: Scene, lab: Pki) -> None:
    """The clients' certs/ca.pem is another site's CA; the broker's certificate (certs/server.pem,
    keys/server.key) comes from the lab's CA, kept as certs/broker-ca.pem."""
    pki.make_ca("other site CA", not_before=lab.now - timedelta(days=400)).write(scene.root / "certs" / "ca.pem")
    lab.ca.write(scene.root / "certs" / "broker-ca.pem")
    scene.save_cert(lab.server(), "server")


def tls_and_login_listeners(*, acl: bool = False) -> str:
    """{port0}: TLS with the certificate `trust_another_ca` made, anonymous clients welcome;
    {port1}: plain, the password file (and the ACL) decide."""
    return ("per_listener_settings true\n" + tls_listener("{port0}", cafile="../certs/broker-ca.pem")
            + "allow_anonymous true\n"
            + f"listener {{port1}} {HOST}\nallow_anonymous false\npassword_file passwd\n"
            + ("acl_file acl\n" if acl else "") + LOG_ALL)


def make_server_cert_untrusted(out: Path) -> None:
    def setup(scene: Scene, lab: Pki) -> str:
        trust_another_ca(scene, lab)
        return "broker-ca.pem"

    _server_cert_incident(
        out, "server_cert_untrusted",
        "The clients' ca.pem is another CA than the one that signed the broker's certificate "
        "(certs/broker-ca.pem).",
        "tls.server_cert_untrusted", setup,
        expect_broker=r"unknown ca", expect_pub=r"Error|verify",
        expect_paho=r"self-signed certificate in certificate chain|unable to get local issuer")


def make_listener_certs(out: Path) -> None:
    scene = Scene.create(out, "listener_certs",
                         "One broker, two TLS listeners with their own certificates: the first still serves "
                         "server-2025.pem, which expired 5 days ago; the second serves the renewed server.pem. "
                         "edge-70 (paho) and edge-72-pub (mosquitto_pub) dial the first and refuse the handshake; "
                         "edge-71 dials the second and publishes.")
    lab = Pki.create(scene.now)
    lab.ca.write(scene.root / "certs" / "ca.pem")
    scene.save_cert(lab.server(not_before=lab.now - timedelta(days=370), not_after=lab.now - timedelta(days=5)),
                    "server-2025")
    scene.save_cert(lab.server(), "server")
    config = (tls_listener("{port0}", certfile="../certs/server-2025.pem", keyfile="../keys/server-2025.key")
              + tls_listener("{port1}") + "allow_anonymous true\n" + LOG_ALL)
    with scene.broker(config, listeners=2) as broker:
        old, new = broker.ports
        scene.paho("edge-71", new, ["--tls", "--cafile", "certs/ca.pem", "--publish", "spBv1.0/Plant7/NDATA/edge-71",
                                    "--attempts", "1", "--interval", "0.5"], client_id="edge-71", duration=3)
        scene.paho("edge-70", old, ["--tls", "--cafile", "certs/ca.pem", "--publish", "spBv1.0/Plant7/NDATA/edge-70",
                                    "--attempts", "2", "--retry-delay", "0.5"], client_id="edge-70", duration=3)
        time.sleep(1.5)
        pub = scene.mosquitto_client("edge-72-pub", "mosquitto_pub", old,
                                     ["--cafile", "certs/ca.pem", "-t", "spBv1.0/Plant7/NDATA/edge-72", "-m", "on",
                                      "-q", "1"], client_id="edge-72")
        scene.wait(pub, timeout=10)
        scene.end(broker)
    _require(broker.log_text(), r"certificate expired", "listener_certs: broker log")
    _require(broker.log_text(), r"Received PUBLISH from edge-71", "listener_certs: edge-71 publishes")
    _require(_read(scene.root / "clients/edge-70.log"), r"certificate has expired", "listener_certs: edge-70")
    scene.finish([("tls.server_cert_expired", ["edge-70", "edge-72-pub"])], broker=broker,
                 named_by_file=["edge-72-pub"])


def make_server_chain_incomplete(out: Path) -> None:
    def setup(scene: Scene, lab: Pki) -> str:
        intermediate = pki.make_ca("correlator lab issuing CA", issuer=lab.ca,
                                   not_before=lab.now - timedelta(days=200), days=1825, path_length=0)
        lab.ca.write(scene.root / "certs" / "ca.pem")
        intermediate.write(scene.root / "certs" / "intermediate.pem")
        scene.save_cert(lab.server(issuer=intermediate), "server")  # the leaf alone: the mistake
        # The broker's cafile is the root alone too: OpenSSL completes a server's chain from the
        # cafile when it can, and then the mistake would not show.
        return "ca.pem"

    _server_cert_incident(
        out, "server_chain_incomplete",
        "The broker's certfile holds only its leaf certificate; the issuing intermediate "
        "(certs/intermediate.pem) is not sent, and the clients trust only the root (certs/ca.pem).",
        "tls.server_chain_incomplete", setup,
        expect_broker=r"unknown ca|OpenSSL|failed", expect_pub=r"Error|verify",
        expect_paho=r"unable to get local issuer")


# --------------------------------------------------------------------------- TLS: the client's certificate


def _client_cert_incident(out: Path, name: str, description: str, rid: str,
                          make_client_cert: Callable[[Pki], pki.Issued] | None, *,
                          expect_broker: str, expect_pub: str, expect_paho: str,
                          paho_tz: str | None = None) -> None:
    """A listener with require_certificate true; the clients present `make_client_cert`'s
    certificate (none when it is None). Both clients trust the broker: only their side is wrong."""
    scene = Scene.create(out, name, description)
    lab = usual_pki(scene)
    client_args: list[str] = []
    paho_args: list[str] = []
    if make_client_cert is not None:
        scene.save_cert(make_client_cert(lab), "client")
        client_args = ["--cert", "certs/client.pem", "--key", "keys/client.key"]
        paho_args = ["--cert", "certs/client.pem", "--key", "keys/client.key"]
    config = tls_listener(require_certificate=True) + "allow_anonymous true\n" + LOG_ALL
    with scene.broker(config) as broker:
        port = broker.port
        scene.paho("edge-04", port, ["--tls", "--cafile", "certs/ca.pem", *paho_args, "--publish",
                                     "spBv1.0/Plant1/NDATA/edge-04", "--attempts", "4", "--retry-delay", "0.4"],
                   client_id="edge-04", duration=3.5, tz=paho_tz)
        for _ in range(2):  # tried twice by hand, appended to one file: its words vary between runs
            pub = scene.mosquitto_client("edge-03-pub", "mosquitto_pub", port,
                                         ["--cafile", "certs/ca.pem", *client_args, "-t",
                                          "spBv1.0/Plant1/NDATA/edge-03", "-m", "pressure=3.2", "-q", "1"],
                                         client_id="edge-03")
            scene.wait(pub, timeout=10)
            time.sleep(0.5)
        scene.end(broker)
    _require(broker.log_text(), expect_broker, f"{name}: broker log")
    _require(_read(scene.root / "clients/edge-03-pub.log"), expect_pub, f"{name}: mosquitto_pub log")
    _require(_read(scene.root / "clients/edge-04.log"), expect_paho, f"{name}: paho log")
    scene.finish([(rid, ["edge-03-pub", "edge-04"])], broker=broker)


def make_client_cert_missing(out: Path) -> None:
    _client_cert_incident(
        out, "client_cert_missing",
        "The listener has require_certificate true; the clients verify the broker but send no "
        "certificate of their own.",
        "tls.client_cert_missing", None,
        expect_broker=r"peer did not return a certificate", expect_pub=r"Error|error",
        # TLS 1.3: the broker's alert comes after the handshake; when paho has already written its
        # CONNECT the alert is lost and OpenSSL reports a bare EOF instead (both seen in real runs)
        expect_paho=r"CERTIFICATE_REQUIRED|certificate required|EOF occurred in violation of protocol")


def make_client_cert_untrusted(out: Path) -> None:
    def other(lab: Pki) -> pki.Issued:
        vendor = pki.make_ca("vendor factory CA", not_before=lab.now - timedelta(days=400))
        return lab.client("edge-03", issuer=vendor)

    _client_cert_incident(
        out, "client_cert_untrusted",
        "The clients present certificates issued by a vendor CA that is not in the broker's cafile.",
        "tls.client_cert_untrusted", other,
        expect_broker=r"certificate verify failed", expect_pub=r"Error|error",
        expect_paho=r"UNKNOWN_CA")


def make_client_cert_expired(out: Path) -> None:
    _client_cert_incident(
        out, "client_cert_expired",
        "The clients present a certificate from the right CA that expired 5 days ago. The paho "
        "client's host runs in Europe/Berlin local time.",
        "tls.client_cert_expired",
        lambda lab: lab.client("edge-03", not_before=lab.now - timedelta(days=370),
                               not_after=lab.now - timedelta(days=5)),
        expect_broker=r"certificate verify failed", expect_pub=r"Error|error",
        expect_paho=r"CERTIFICATE_EXPIRED", paho_tz="Europe/Berlin")


# --------------------------------------------------------------------------- transport and broker configuration


def make_plain_to_tls_port(out: Path) -> None:
    scene = Scene.create(out, "plain_to_tls_port",
                         "Clients speak plain MQTT to the broker's TLS listener (port 8883 style, "
                         "configured without --cafile/--tls).")
    usual_pki(scene)
    with scene.broker(tls_listener() + "allow_anonymous true\n" + LOG_ALL) as broker:
        port = broker.port
        scene.mosquitto_client("edge-05-pub", "mosquitto_pub", port,
                               ["-t", "spBv1.0/Plant1/NDATA/edge-05", "-m", "level=7", "-q", "1"],
                               client_id="edge-05")
        scene.paho("edge-06", port, ["--publish", "spBv1.0/Plant1/NDATA/edge-06", "--attempts", "2",
                                     "--retry-delay", "0.5"], client_id="edge-06", duration=4)
        scene.wait(timeout=25)
        _settle(broker)
    _require(broker.log_text(), r"OpenSSL Error|failed:", "plain_to_tls_port: broker log")
    scene.finish([("tls.protocol_mismatch", ["edge-05-pub", "edge-06"])], broker=broker)


def make_tls_to_plain_port(out: Path) -> None:
    scene = Scene.create(out, "tls_to_plain_port",
                         "Clients configured for TLS dial the broker's plain MQTT listener.")
    usual_pki(scene)
    config = f"listener {{port0}} {HOST}\nallow_anonymous true\n" + LOG_ALL
    with scene.broker(config) as broker:
        port = broker.port
        scene.mosquitto_client("edge-05-pub", "mosquitto_pub", port,
                               ["--cafile", "certs/ca.pem", "-t", "spBv1.0/Plant1/NDATA/edge-05", "-m",
                                "level=7", "-q", "1"], client_id="edge-05")
        scene.paho("edge-06", port, ["--tls", "--cafile", "certs/ca.pem", "--publish",
                                     "spBv1.0/Plant1/NDATA/edge-06", "--attempts", "2", "--retry-delay", "0.5"],
                   client_id="edge-06", duration=4)
        scene.wait(timeout=25)
        _settle(broker)
    scene.finish([("tls.protocol_mismatch", ["edge-05-pub", "edge-06"])], broker=broker)


def make_tls_version_mismatch(out: Path) -> None:
    scene = Scene.create(out, "tls_version_mismatch",
                         "The listener accepts TLS 1.3 only (tls_version tlsv1.3); the paho client, like an "
                         "older device's stack, speaks TLS 1.2 only. mosquitto_pub on the same listener gets "
                         "through: its --tls-version is a floor, not a ceiling, so it negotiates TLS 1.3.")
    usual_pki(scene)
    config = tls_listener() + "tls_version tlsv1.3\nallow_anonymous true\n" + LOG_ALL
    with scene.broker(config) as broker:
        port = broker.port
        scene.paho("edge-08", port, ["--tls", "--cafile", "certs/ca.pem", "--tls-version", "1.2", "--publish",
                                     "spBv1.0/Plant1/NDATA/edge-08", "--attempts", "3", "--retry-delay", "0.5"],
                   client_id="edge-08", duration=3)
        # the healthy contrast: a current client on the same listener
        scene.mosquitto_client("edge-07-pub", "mosquitto_pub", port,
                               ["--cafile", "certs/ca.pem", "--tls-version", "tlsv1.2", "-t",
                                "spBv1.0/Plant1/NDATA/edge-07", "-m", "flow=12.5", "-q", "1"], client_id="edge-07")
        scene.wait(timeout=25)
        _settle(broker)
    _require(broker.log_text(), r"unsupported protocol|no protocols available|version",
             "tls_version_mismatch: broker log")
    _require(_read(scene.root / "clients/edge-08.log"), r"PROTOCOL_VERSION|protocol version|UNSUPPORTED_PROTOCOL",
             "tls_version_mismatch: paho log")
    _require(_read(scene.root / "clients/edge-07-pub.log"), r"received CONNACK \(0\)",
             "tls_version_mismatch: mosquitto_pub log")
    scene.finish([("tls.version_mismatch", ["edge-08"])], broker=broker)


def make_client_key_mismatch(out: Path) -> None:
    scene = Scene.create(out, "client_key_mismatch",
                         "The clients' key was made again but their certificate was not re-issued: "
                         "keys/client.key does not belong to certs/client.pem. The clients never reach "
                         "the broker.")
    lab = usual_pki(scene)
    scene.save_cert(lab.client("edge-09"), "client")
    pki.write_key(scene.root / "keys" / "client.key", pki.make_key())
    config = tls_listener(require_certificate=True) + "allow_anonymous true\n" + LOG_ALL
    with scene.broker(config) as broker:
        port = broker.port
        scene.paho("edge-10", port, ["--tls", "--cafile", "certs/ca.pem", "--cert", "certs/client.pem", "--key",
                                     "keys/client.key", "--publish", "spBv1.0/Plant1/NDATA/edge-10"],
                   client_id="edge-10", duration=2)
        scene.mosquitto_client("edge-09-pub", "mosquitto_pub", port,
                               ["--cafile", "certs/ca.pem", "--cert", "certs/client.pem", "--key", "keys/client.key",
                                "-t", "spBv1.0/Plant1/NDATA/edge-09", "-m", "flow=3.1", "-q", "1"],
                               client_id="edge-09")
        scene.wait(timeout=25)
        _settle(broker)
    _require(_read(scene.root / "clients/edge-10.log"), r"KEY_VALUES_MISMATCH|key values mismatch",
             "client_key_mismatch: paho log")
    scene.finish([("tls.client_key_problem", ["edge-09-pub", "edge-10"])], broker=broker)


def make_broker_tls_config_error(out: Path) -> None:
    scene = Scene.create(out, "broker_tls_config_error",
                         "The broker's keyfile belongs to another certificate (the old key left behind "
                         "after a renewal): mosquitto exits at start-up, and clients find nothing listening.")
    lab = Pki.create(scene.now)
    lab.ca.write(scene.root / "certs" / "ca.pem")
    server = lab.server()
    server.write(scene.root / "certs" / "server.pem")
    pki.write_key(scene.root / "keys" / "server.key", pki.make_key())  # the wrong key
    broker = scene.broker(tls_listener() + "allow_anonymous true\n" + LOG_ALL)
    broker.start(expect_failure=True)
    _require(broker.log_text(), r"Error", "broker_tls_config_error: broker log")
    port = broker.port
    scene.mosquitto_client("edge-01-pub", "mosquitto_pub", port,
                           ["--cafile", "certs/ca.pem", "-t", SPB_TOPIC, "-m", "temperature=21.5"],
                           client_id="edge-01")
    scene.paho("edge-02", port, ["--tls", "--cafile", "certs/ca.pem", "--publish", "spBv1.0/Plant1/NDATA/edge-02",
                                 "--attempts", "2", "--retry-delay", "0.5"], client_id="edge-02", duration=3)
    scene.wait(timeout=20)
    _require(_read(scene.root / "clients/edge-02.log"), r"Connection refused", "broker_tls_config_error: paho")
    scene.finish([("broker.tls_config_error", ["edge-01-pub", "edge-02"])], broker=broker)


def make_connection_refused(out: Path) -> None:
    scene = Scene.create(out, "connection_refused",
                         "The broker listens on one port; the clients are configured with another, where "
                         "nothing listens.")
    config = f"listener {{port0}} {HOST}\nallow_anonymous true\n" + LOG_ALL
    with scene.broker(config) as broker:
        wrong = free_port()
        scene.mosquitto_client("edge-01-pub", "mosquitto_pub", wrong, ["-t", SPB_TOPIC, "-m", "temperature=21.5"],
                               client_id="edge-01")
        scene.paho("edge-02", wrong, ["--publish", "spBv1.0/Plant1/NDATA/edge-02", "--attempts", "3",
                                      "--retry-delay", "0.5"], client_id="edge-02", duration=3)
        scene.end(broker)
    _require(_read(scene.root / "clients/edge-01-pub.log"), r"Connection refused", "connection_refused: pub")
    scene.finish([("net.connection_refused", ["edge-01-pub", "edge-02"])], broker=broker)


def make_broker_hung(out: Path) -> None:
    scene = Scene.create(out, "broker_hung",
                         "The broker hangs (its process frozen with SIGSTOP after a healthy client came and "
                         "went): the kernel still accepts TCP connections into the listen backlog, but nobody "
                         "answers the TLS handshake, and the clients' connect timeout expires. The broker is "
                         "then resumed (SIGCONT) and stopped normally.")
    usual_pki(scene)
    config = tls_listener() + "allow_anonymous true\n" + LOG_ALL
    tls = ["--tls", "--cafile", "certs/ca.pem"]
    with scene.broker(config) as broker:
        port = broker.port
        healthy = scene.paho("edge-50", port, [*tls, "--publish", "spBv1.0/Plant5/NDATA/edge-50", "--attempts", "1",
                                               "--interval", "0.5"], client_id="edge-50", duration=2)
        scene.wait(healthy, timeout=15)
        _require(broker.log_text(), r"Received PUBLISH from edge-50", "broker_hung: the healthy client")
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)
        scene.extra["broker"] = {"hung": "SIGSTOP after edge-50's session, SIGCONT before it was stopped"}
        try:
            for i in (51, 52):
                scene.paho(f"edge-{i}", port, [*tls, "--connect-timeout", "3", "--publish",
                                               f"spBv1.0/Plant5/NDATA/edge-{i}", "--attempts", "2",
                                               "--retry-delay", "1"], client_id=f"edge-{i}", duration=8)
            scene.wait(timeout=20)
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        _settle(broker, 1.0)
    for i in (51, 52):
        _require(_read(scene.root / f"clients/edge-{i}.log"), r"timed out", f"broker_hung: edge-{i}'s log")
    scene.finish([("net.timeout", ["edge-51", "edge-52"])], broker=broker)


# --------------------------------------------------------------------------- authentication and authorisation


USERS = {"MyEACM": "eacm-secret-1", "SparkplugViewer": "viewer-secret-2", "HMI": "hmi-secret-3"}


def make_bad_credentials(out: Path) -> None:
    scene = Scene.create(out, "bad_credentials",
                         "The vendor guide's TLS listener with a password file: edge-10 (user MyEACM) "
                         "sends a wrong password, edge-11 a user the password file does not know; "
                         "hmi-01 logs in correctly.")
    usual_pki(scene, cn=HOST, sans=(HOST, "localhost"))
    scene.passwd(USERS)
    scene.acl(SPARKPLUG_ACL)
    config = ("per_listener_settings true\n" + tls_listener() + "allow_anonymous false\n"
              "password_file passwd\nacl_file acl\n" + LOG_ALL)
    with scene.broker(config) as broker:
        port = broker.port
        tls = ["--tls", "--cafile", "certs/ca.pem"]
        ok = scene.hmi("hmi-01", port, args=tls, duration=4)
        scene.paho("edge-10", port, [*tls, "--publish", "spBv1.0/Plant1/NDATA/edge-10", "--attempts", "3",
                                     "--retry-delay", "0.5"], client_id="edge-10", username="MyEACM",
                   password="eacm-secret-OLD", duration=3)
        scene.mosquitto_client("edge-11-pub", "mosquitto_pub", port,
                               ["--cafile", "certs/ca.pem", "-t", "spBv1.0/Plant1/NDATA/edge-11", "-m", "flow=12",
                                "-q", "1"], client_id="edge-11", username="EdgeNode11", password="edge11-secret")
        scene.end(broker, ok)
    _require(broker.log_text(), r"not authorised", "bad_credentials: broker log")
    scene.finish([("auth.bad_credentials", ["edge-10", "edge-11-pub"])], broker=broker)


def make_anonymous_denied(out: Path) -> None:
    scene = Scene.create(out, "anonymous_denied",
                         "allow_anonymous false with a password file; two clients send no username at all. "
                         "The broker logs to stdout (log_dest stdout), captured as `mosquitto -c ... > "
                         "mosquitto.log 2>&1`.")
    scene.passwd(USERS)
    config = (f"listener {{port0}} {HOST}\nallow_anonymous false\npassword_file passwd\n"
              "log_dest stdout\nlog_type all\n")
    with scene.broker(config, capture_stdout=True) as broker:
        port = broker.port
        scene.mosquitto_client("edge-12-pub", "mosquitto_pub", port, ["-t", "spBv1.0/Plant1/NDATA/edge-12",
                                                                      "-m", "rpm=1500", "-q", "1"],
                               client_id="edge-12")
        scene.paho("edge-13", port, ["--publish", "spBv1.0/Plant1/NDATA/edge-13", "--attempts", "2",
                                     "--retry-delay", "0.5"], client_id="edge-13", duration=3)
        scene.end(broker)
    _require(broker.log_text(), r"not authorised", "anonymous_denied: broker log")
    scene.extra["broker"] = {"log_dest": "stdout"}
    scene.finish([("auth.anonymous_denied", ["edge-12-pub", "edge-13"])], broker=broker)


def make_client_id_takeover(out: Path) -> None:
    scene = Scene.create(out, "client_id_takeover",
                         "Two edge devices were cloned from one image and both use client id edge-07; each "
                         "reconnect kicks the other off. The broker log uses log_timestamp_format "
                         "%Y-%m-%dT%H:%M:%S (local time, UTC here).")
    config = scene.login_listener(USERS, SPARKPLUG_ACL, settings="log_timestamp_format %Y-%m-%dT%H:%M:%S\n")
    with scene.broker(config, env={"TZ": "UTC"}) as broker:
        port = broker.port
        for suffix in ("a", "b"):
            scene.paho(f"edge-07-{suffix}", port,
                       ["--publish", "spBv1.0/Plant1/NDATA/edge-07", "--attempts", "40", "--retry-delay", "0.7",
                        "--interval", "0.5"], client_id="edge-07", username="MyEACM", password=USERS["MyEACM"],
                       duration=10)
            time.sleep(0.3)
        scene.wait(timeout=30)
        _settle(broker)
    _require(broker.log_text(), r"already connected, closing old connection", "client_id_takeover: broker log")
    scene.extra["broker"] = {"log_timestamp_format": "%Y-%m-%dT%H:%M:%S", "timezone": "UTC"}
    scene.finish([("session.client_id_takeover", ["edge-07-a", "edge-07-b"])], broker=broker)


def make_client_id_rejected(out: Path) -> None:
    scene = Scene.create(out, "client_id_rejected",
                         "The broker runs with allow_zero_length_clientid false; three clients were set up "
                         "without a client id (empty) and the broker refuses them: a paho application over "
                         "MQTT 3.1.1 (CONNACK 2, identifier rejected; paho then retries on its own with a "
                         "generated id, which the broker accepts), the same application over MQTT 5 "
                         "(mosquitto 2.0.11 answers 128, Unspecified error, not 0x85), and mosquitto_pub run "
                         "without -i (mosquitto 2.0's tools then send an empty id; CONNACK 2). hmi-60 has a "
                         "client id and connects.")
    config = f"listener {{port0}} {HOST}\nallow_anonymous true\nallow_zero_length_clientid false\n" + LOG_ALL
    with scene.broker(config) as broker:
        port = broker.port
        ok = scene.hmi("hmi-60", port, login=False, duration=4)
        time.sleep(0.5)
        scene.paho("edge-60", port, ["--publish", "spBv1.0/Plant6/NDATA/edge-60", "--attempts", "2",
                                     "--retry-delay", "0.5"], client_id="", duration=3)
        scene.paho("edge-61", port, ["--mqtt-version", "5", "--publish", "spBv1.0/Plant6/NDATA/edge-61",
                                     "--attempts", "2", "--retry-delay", "0.5"], client_id="", duration=3)
        scene.mosquitto_client("edge-62-pub", "mosquitto_pub", port,
                               ["-t", "spBv1.0/Plant6/NDATA/edge-62", "-m", "temperature=19.5", "-q", "1"],
                               client_id=None)
        scene.end(broker, ok)
    _require(broker.log_text(), r"Sending CONNACK to 127\.0\.0\.1 \(0, 2\)", "client_id_rejected: broker, MQTT 3.1.1")
    # mosquitto 2.0.11 refuses an empty id over MQTT 5 with 128 (Unspecified error), not 0x85
    _require(broker.log_text(), r"Sending CONNACK to 127\.0\.0\.1 \(0, 128\)", "client_id_rejected: broker, MQTT 5")
    _require(_read(scene.root / "clients/edge-60.log"), r"client_id=b''\n.*Received CONNACK \(0, 2\)",
             "client_id_rejected: paho MQTT 3.1.1 log")
    _require(_read(scene.root / "clients/edge-61.log"), r"client_id=b'' properties=None\n.*Received CONNACK \(0, "
             r"Unspecified error\)", "client_id_rejected: paho MQTT 5 log")
    _require(_read(scene.root / "clients/edge-62-pub.log"), r"received CONNACK \(2\)|identifier rejected",
             "client_id_rejected: mosquitto_pub log")
    scene.finish([("auth.client_id_rejected", ["edge-60", "edge-61", "edge-62-pub"])], broker=broker)


ACL_SPARKPLUG_22_HOST = SPARKPLUG_ACL + """
# The SCADA host was set up for Sparkplug 2.2 (STATE/<host_id>); it now runs Sparkplug 3.0.
user ScadaHost
topic readwrite STATE/+
topic read spBv1.0/+/NDATA/#

# The historian may only read host state.
user Historian
topic read STATE/+
"""
USERS_ACL = {**USERS, "ScadaHost": "scada-secret-4", "Historian": "hist-secret-5"}


def make_publish_denied(out: Path) -> None:
    scene = Scene.create(out, "publish_denied",
                         "ACL: SparkplugViewer (read-only) publishes a node command with mosquitto_pub over "
                         "MQTT 5; ScadaHost publishes its Sparkplug 3.0 state topic spBv1.0/STATE/scada-01, "
                         "but its ACL grants only the Sparkplug 2.2 STATE/+. Denials are logged at debug "
                         "level only (log_type all).")
    config = scene.login_listener(USERS_ACL, ACL_SPARKPLUG_22_HOST)
    with scene.broker(config) as broker:
        port = broker.port
        watcher = scene.hmi("hmi-01", port, duration=4.5)
        time.sleep(0.8)
        scene.mosquitto_client("viewer-01-pub", "mosquitto_pub", port,
                               ["-V", "mqttv5", "-t", "spBv1.0/Plant1/NCMD/edge-01", "-m", "rebirth=true", "-q", "1"],
                               client_id="viewer-01", username="SparkplugViewer", password=USERS["SparkplugViewer"])
        scene.paho("scada-01", port, ["--publish", "spBv1.0/STATE/scada-01", "--attempts", "1", "--interval", "1"],
                   client_id="scada-01", username="ScadaHost", password=USERS_ACL["ScadaHost"], duration=3)
        scene.end(broker, watcher)
    _require(broker.log_text(), r"Denied PUBLISH", "publish_denied: broker log")
    scene.finish([("acl.publish_denied", ["viewer-01-pub", "scada-01"])], broker=broker)


def make_subscribe_denied(out: Path) -> None:
    scene = Scene.create(out, "subscribe_denied",
                         "ACL: user Historian may read only STATE/+, but subscribes to spBv1.0/#. mosquitto "
                         "2.0 grants the subscription and silently drops every message: the historians "
                         "receive nothing while edge-01 publishes.")
    config = scene.login_listener(USERS_ACL, ACL_SPARKPLUG_22_HOST)
    with scene.broker(config) as broker:
        port = broker.port
        scene.mosquitto_client("historian-01-sub", "mosquitto_sub", port, ["-v", "-t", "spBv1.0/#", "-q", "1",
                                                                           "-W", "4"],
                               client_id="historian-01", username="Historian", password=USERS_ACL["Historian"])
        scene.paho("historian-02", port, ["--subscribe", "spBv1.0/#", "--attempts", "1"], client_id="historian-02",
                   username="Historian", password=USERS_ACL["Historian"], duration=4)
        time.sleep(0.8)
        scene.paho("edge-01", port, ["--publish", SPB_TOPIC, "--attempts", "1", "--interval", "0.5"],
                   client_id="edge-01", username="MyEACM", password=USERS["MyEACM"], duration=2.5)
        scene.end(broker)
    _require(_read(scene.root / "clients/historian-02.log"), r"0 received", "subscribe_denied: paho subscriber")
    scene.finish([("acl.subscribe_denied", ["historian-01-sub", "historian-02"])], broker=broker)


# --------------------------------------------------------------------------- bundles of several hosts

#: Plant 1's ACL: the viewer only reads, the historian reads everything.
ACL_PLANT1 = """\
user MyEACM
topic readwrite spBv1.0/#

user SparkplugViewer
topic read spBv1.0/#

user Historian
topic read spBv1.0/#
"""
#: Plant 2's ACL: the viewer may send node commands, the historian reads host state only.
ACL_PLANT2 = """\
user MyEACM
topic readwrite spBv1.0/#

user SparkplugViewer
topic readwrite spBv1.0/#

user Historian
topic read STATE/+
"""


def make_multi_broker_acl(out: Path) -> None:
    scene = Scene.create(out, "multi_broker_acl",
                         "A support bundle of three brokers, one folder each, with the clients' logs in one "
                         "shared folder. Like three machines, the brokers listen on one port, each on its own "
                         "address (127.0.0.2, .3, .4): broker-a (plant 1's ACL: SparkplugViewer reads only), "
                         "broker-b (plant "
                         "2's ACL: SparkplugViewer may send node commands, Historian reads host state only) and "
                         "broker-c (no acl_file: every topic allowed). The same users do the same things on "
                         "each: only viewer-a's node commands on broker-a and historian-b's subscription on "
                         "broker-b are denied.")
    plants = {"broker-a": ACL_PLANT1, "broker-b": ACL_PLANT2, "broker-c": None}
    addresses = {"broker-a": "127.0.0.2", "broker-b": "127.0.0.3", "broker-c": "127.0.0.4"}
    port = free_port()  # one port for all, as 1883 on every machine of a site
    brokers: dict[str, Mosquitto] = {}
    for folder, acl in plants.items():
        scene.passwd(USERS_ACL, folder)
        if acl is not None:
            scene.acl(acl, folder)
        config = (f"listener {{port0}} {addresses[folder]}\nallow_anonymous false\npassword_file passwd\n"
                  + ("acl_file acl\n" if acl is not None else "") + LOG_ALL)
        brokers[folder] = scene.broker(config, folder, ports=[port]).start()
    try:
        for folder in brokers:
            site = folder[-1]  # a, b, c: the clients' names say which broker they dial
            host = addresses[folder]
            scene.paho(f"historian-{site}", port, ["--subscribe", "spBv1.0/#", "--attempts", "1"], host=host,
                       client_id=f"historian-{site}", username="Historian", password=USERS_ACL["Historian"],
                       duration=4)
            time.sleep(0.3)
            scene.paho(f"edge-{site}", port, ["--publish", f"spBv1.0/Plant1/NDATA/edge-{site}", "--attempts", "1",
                                               "--interval", "0.5"], host=host,
                       client_id=f"edge-{site}", username="MyEACM", password=USERS["MyEACM"], duration=2.5)
            scene.paho(f"viewer-{site}", port, ["--publish", f"spBv1.0/Plant1/NCMD/edge-{site}", "--attempts", "1",
                                                 "--interval", "1"], host=host,
                       client_id=f"viewer-{site}", username="SparkplugViewer",
                       password=USERS["SparkplugViewer"], duration=2.5)
        scene.wait(timeout=30)
        time.sleep(0.3)
    finally:
        for broker in brokers.values():
            broker.stop()
    _require(brokers["broker-a"].log_text(), r"Denied PUBLISH from viewer-a", "multi_broker_acl: broker-a")
    for folder in ("broker-b", "broker-c"):
        text = brokers[folder].log_text()
        _require(text, r"Received PUBLISH from viewer-", f"multi_broker_acl: {folder} lets the viewer publish")
        if "Denied" in text:
            raise IncidentFailed(f"multi_broker_acl: {folder} denied something")
    _require(_read(scene.root / "clients/historian-b.log"), r"0 received", "multi_broker_acl: historian-b")
    scene.extra["brokers"] = {folder: {"listener_ports": b.ports, "exit_code": b.returncode,
                                       "acl_file": "acl" if plants[folder] else None}
                              for folder, b in brokers.items()}
    scene.finish([], hosts={"broker-a": [("acl.publish_denied", ["viewer-a"])],
                            "broker-b": [("acl.subscribe_denied", ["historian-b"])],
                            "broker-c": []})


def make_gateway_clock(out: Path) -> None:
    """A gateway host with its own clock beside the central broker: every process on the gateway
    runs under one faketime offset, as on a machine whose clock drifted."""
    need_faketime()
    from lab.opcua_lab import SERVER_URI

    scene = Scene.create(out, "gateway_clock",
                         "A support bundle of two hosts: central/ (the site's mosquitto with a password file) and "
                         "gw-01/ (an edge gateway whose clock runs about 42 minutes ahead: every process on it "
                         "ran under one faketime offset). On the gateway, gw-01-uplink publishes Sparkplug data "
                         "to the central broker, gw-01-cmd logs in with last year's password, and an asyncua "
                         "server refuses the HMI's OPC UA client (hmi-ua, a wrong password). The gateway's OPC "
                         "UA logs never talk to the broker: only the uplink's connections date its clock.")
    gw = "gw-01"
    offset = _measured_offset(2533)  # 42 min 13 s: no whole number of quarter hours, not a time zone
    lab = Pki.create(scene.now, cn="plant OPC UA CA")
    server_cert = pki.make_leaf("gw-01 OPC UA server", lab.ca, sans=(f"URI:{SERVER_URI}", "localhost", HOST),
                                usage=("server", "client"), not_before=lab.now - timedelta(days=30), days=730)
    client_cert = pki.make_leaf("correlator lab OPC UA client", lab.ca,
                                sans=("URI:urn:correlator:lab:opcua-client", "localhost"), usage=("client",),
                                not_before=lab.now - timedelta(days=30), days=730)
    # asyncua picks a key's format from its file name: a PEM key must end in .pem
    server_cert.write(scene.root / gw / "certs" / "opcua-server.pem", scene.root / gw / "keys" / "opcua-server.pem")
    client_cert.write(scene.root / gw / "certs" / "hmi-ua.pem", scene.root / gw / "keys" / "hmi-ua.pem")
    lab.ca.write(scene.root / gw / "pki" / "server" / "trusted" / "certs" / "opcua-ca.der", der=True)
    scene.passwd(USERS, "central")
    config = f"listener {{port0}} {HOST}\nallow_anonymous false\npassword_file passwd\n" + LOG_ALL
    ua_port = free_port()
    url = f"opc.tcp://{HOST}:{ua_port}/correlator/"
    with scene.broker(config, "central") as broker:
        port = broker.port
        ready = scene.root / gw / ".ready"
        server_cmd = [sys.executable, "-m", "lab.opcua_lab", "server", "--port", str(ua_port),
                      "--cert", f"{gw}/certs/opcua-server.pem", "--key", f"{gw}/keys/opcua-server.pem",
                      "--trusted", f"{gw}/pki/server/trusted/certs", "--log-file", f"{gw}/opcua-server.log",
                      "--duration", "40", "--ready-file", f"{gw}/.ready", "--stop-file", f"{gw}/.stop",
                      "--user", "operator:op-secret-2026"]
        server = scene._add("opcua-server", {"kind": "asyncua-server", "listens": f"{HOST}:{ua_port}",
                                             "application_uri": SERVER_URI}, server_cmd, None,
                            clock_offset=offset, sink=f"{gw}/opcua-server.stderr.txt", folder=gw)
        scene.start(server)
        deadline = time.monotonic() + 20
        while not ready.exists():
            if time.monotonic() > deadline or (server.proc is not None and server.proc.poll() is not None):
                raise IncidentFailed(f"gateway_clock: the OPC UA server did not start:\n"
                                     f"{_read(scene.root / gw / 'opcua-server.log')}")
            time.sleep(0.05)
        ready.unlink()
        scene.paho("gw-01-uplink", port, ["--publish", "spBv1.0/Plant1/NDATA/gw-01", "--interval", "0.3",
                                          "--session-length", "1", "--attempts", "3", "--retry-delay", "0.3"],
                   client_id="gw-01-uplink", username="MyEACM", password=USERS["MyEACM"], duration=5,
                   clock_offset=offset, folder=gw)
        scene.paho("gw-01-cmd", port, ["--publish", "STATE/gw-01", "--attempts", "2", "--retry-delay", "0.5"],
                   client_id="gw-01-cmd", username="HMI", password="hmi-secret-OLD", duration=3,
                   clock_offset=offset, folder=gw)
        ua_cmd = [sys.executable, "-m", "lab.opcua_lab", "client", "--url", url, "--cert", f"{gw}/certs/hmi-ua.pem",
                  "--key", f"{gw}/keys/hmi-ua.pem", "--server-cert", f"{gw}/certs/opcua-server.pem",
                  "--user", "operator", "--password", "op-secret-2025", "--log-file", f"{gw}/hmi-ua.log",
                  "--attempts", "2", "--retry-delay", "0.5", "--duration", "5"]
        hmi = scene._add("hmi-ua", {"kind": "asyncua", "dials": url}, ua_cmd, None, clock_offset=offset,
                         sink=f"{gw}/hmi-ua.stderr.txt", folder=gw)
        scene.start(hmi)
        scene.wait(scene.clients["gw-01-uplink"], scene.clients["gw-01-cmd"], hmi, timeout=30)
        (scene.root / gw / ".stop").write_text("")
        scene.wait(timeout=25)
        (scene.root / gw / ".stop").unlink()
        _settle(broker)
    _require(broker.log_text(), r"not authorised", "gateway_clock: central broker refuses gw-01-cmd")
    _require(broker.log_text(), r"Received PUBLISH from gw-01-uplink", "gateway_clock: the uplink publishes")
    _require(_read(scene.root / gw / "hmi-ua.log"), r"failed: BadUserAccessDenied", "gateway_clock: hmi-ua")
    scene.extra["host_details"] = {"central": {"listener_ports": broker.ports, "exit_code": broker.returncode},
                            gw: {"clock_offset_seconds": offset, "faketime": f"faketime -f {offset:+d}s"}}
    scene.finish([], hosts={"central": [("auth.bad_credentials", ["gw-01-cmd"])],
                            gw: [("client.clock_skew", ["gw-01-uplink", "gw-01-cmd"]),
                                 ("opcua.user_access_denied", ["hmi-ua"])]})


# --------------------------------------------------------------------------- healthy and mixed traffic


def _measured_offset(seconds: int) -> int:
    """The offset faketime really applies here, measured rather than assumed."""
    probe = [sys.executable, "-c", "import time; print(time.time())"]
    done = subprocess.run(["faketime", "-f", f"{seconds:+d}s", *probe], capture_output=True, text=True,
                          timeout=20, check=True)
    return round(float(done.stdout.strip()) - time.time())


def make_healthy_noisy(out: Path) -> None:
    scene = Scene.create(out, "healthy_noisy",
                         "A busy healthy site: Sparkplug publishers (one over TLS) that end their sessions "
                         "cleanly and reconnect, an HMI and a viewer subscribing, host state published with "
                         "mosquitto_pub. paho logs 'Client is not connected' after each clean disconnect: "
                         "no failure. No root cause.")
    usual_pki(scene)
    scene.passwd(USERS)
    scene.acl(SPARKPLUG_ACL)
    config = (f"per_listener_settings false\nallow_anonymous false\npassword_file passwd\nacl_file acl\n"
              f"listener {{port0}} {HOST}\n" + tls_listener("{port1}") + LOG_ALL)
    with scene.broker(config, listeners=2) as broker:
        plain, tls = broker.ports
        eacm = ("MyEACM", USERS["MyEACM"])
        scene.paho("hmi-21", plain, ["--subscribe", "spBv1.0/#", "--subscribe", "STATE/+", "--attempts", "20",
                                     "--session-length", "7", "--retry-delay", "0.3"],
                   client_id="hmi-21", username="HMI", password=USERS["HMI"], duration=15)
        scene.mosquitto_client("viewer-21-sub", "mosquitto_sub", plain,
                               ["-v", "-q", "1", "-t", "spBv1.0/Plant2/NDATA/edge-21", "-t", "STATE/+", "-W", "14"],
                               client_id="viewer-21", username="SparkplugViewer",
                               password=USERS["SparkplugViewer"])
        time.sleep(0.5)
        for i, port in ((21, tls), (22, plain), (23, plain)):
            tls_args = ["--tls", "--cafile", "certs/ca.pem"] if port == tls else []
            scene.paho(f"edge-{i}", port, [*tls_args, "--publish", f"spBv1.0/Plant2/NDATA/edge-{i}",
                                           "--publish", f"spBv1.0/Plant2/DDATA/edge-{i}/pump-1",
                                           "--interval", "0.06", "--session-length", str(3 + i % 3),
                                           "--attempts", "20", "--retry-delay", "0.3"],
                       client_id=f"edge-{i}", duration=13, username=eacm[0], password=eacm[1])
        for _ in range(3):
            scene.mosquitto_client("scada-21-pub", "mosquitto_pub", plain,
                                   ["-t", "STATE/scada-21", "-m", "ONLINE", "-q", "1", "-r", "--repeat", "5",
                                    "--repeat-delay", "0.4"],
                                   client_id="scada-21", username="HMI", password=USERS["HMI"])
            scene.wait(scene.clients["scada-21-pub"], timeout=10)
            time.sleep(2)
        scene.wait(timeout=30)
        _settle(broker)
    scene.finish([], broker=broker)


def make_mixed(out: Path) -> None:
    need_faketime()
    scene = Scene.create(out, "mixed",
                         "One broker, a TLS listener with require_certificate and a plain one, both with "
                         "passwords and the Sparkplug ACL. Three causes at once next to healthy traffic: "
                         "hmi-32 sends a wrong password; edge-31's client certificate expired 2 days ago; "
                         "viewer-33 (read-only SparkplugViewer, on a host whose clock runs 300 s ahead) "
                         "publishes node commands.")
    lab = usual_pki(scene)
    scene.save_cert(lab.client("edge-30"), "edge-30")
    scene.save_cert(lab.client("edge-31", not_before=lab.now - timedelta(days=367),
                               not_after=lab.now - timedelta(days=2)), "edge-31")
    scene.passwd(USERS)
    scene.acl(SPARKPLUG_ACL)
    config = (f"per_listener_settings false\nallow_anonymous false\npassword_file passwd\nacl_file acl\n"
              f"listener {{port0}} {HOST}\n" + tls_listener("{port1}", require_certificate=True) + LOG_ALL)
    offset = _measured_offset(300)
    with scene.broker(config, listeners=2) as broker:
        plain, tls = broker.ports
        eacm = ("MyEACM", USERS["MyEACM"])
        scene.mosquitto_client("hmi-30-sub", "mosquitto_sub", plain, ["-v", "-q", "1", "-t", "spBv1.0/#", "-W", "7"],
                               client_id="hmi-30", username="HMI", password=USERS["HMI"])
        time.sleep(0.4)
        scene.paho("edge-30", tls, ["--tls", "--cafile", "certs/ca.pem", "--cert", "certs/edge-30.pem", "--key",
                                    "keys/edge-30.key", "--publish", "spBv1.0/Plant3/NDATA/edge-30",
                                    "--interval", "0.5", "--attempts", "3"], client_id="edge-30", duration=6,
                   username=eacm[0], password=eacm[1])
        scene.paho("edge-31", tls, ["--tls", "--cafile", "certs/ca.pem", "--cert", "certs/edge-31.pem", "--key",
                                    "keys/edge-31.key", "--publish", "spBv1.0/Plant3/NDATA/edge-31",
                                    "--attempts", "4", "--retry-delay", "1"], client_id="edge-31", duration=5,
                   username=eacm[0], password=eacm[1])
        scene.paho("viewer-33", plain, ["--publish", "spBv1.0/Plant3/NCMD/edge-30", "--interval", "1",
                                        "--attempts", "2"], client_id="viewer-33", username="SparkplugViewer",
                   password=USERS["SparkplugViewer"], duration=5, clock_offset=offset)
        for _ in range(2):
            scene.mosquitto_client("hmi-32-pub", "mosquitto_pub", plain,
                                   ["-t", "STATE/hmi-32", "-m", "ONLINE", "-q", "1"], client_id="hmi-32",
                                   username="HMI", password="hmi-secret-OLD")
            scene.wait(scene.clients["hmi-32-pub"], timeout=10)
            time.sleep(1.5)
        scene.wait(timeout=30)
        _settle(broker)
    text = broker.log_text()
    _require(text, r"not authorised", "mixed: bad password")
    _require(text, r"certificate verify failed", "mixed: expired client certificate")
    _require(_read(scene.root / "clients/edge-31.log"), r"CERTIFICATE_EXPIRED", "mixed: edge-31's log")
    _require(text, r"Denied PUBLISH from viewer-33", "mixed: ACL")
    _require(text, r"Received PUBLISH from edge-30", "mixed: healthy traffic")
    scene.finish([("auth.bad_credentials", ["hmi-32-pub"]), ("tls.client_cert_expired", ["edge-31"]),
                  ("acl.publish_denied", ["viewer-33"])], broker=broker)


# --------------------------------------------------------------------------- layouts of the field


#: Python `logging` layouts seen in the field, as applications around paho-mqtt configure them:
#: (format, datefmt) for each client of paho_logging_layouts.
PAHO_LAYOUTS = {
    "edge-40": ("%(asctime)s %(levelname)s %(name)s %(message)s", None),
    "viewer-41": ("%(asctime)s - %(name)s - %(levelname)s - %(message)s", "%Y-%m-%d %H:%M:%S"),
    "edge-42": ("%(asctime)s %(levelname)s (%(threadName)s) [%(name)s] %(message)s", None),
    "edge-43": ("%(name)s; %(levelname)s; %(asctime)s; %(message)s", None),
    "hmi-44": ("%(asctime)s.%(msecs)03d %(levelname)-8s [%(threadName)s] %(name)s: %(message)s",
               "%Y-%m-%dT%H:%M:%S"),
}


def make_paho_logging_layouts(out: Path) -> None:
    scene = Scene.create(out, "paho_logging_layouts",
                         "Five paho-mqtt applications, each logging in another common Python logging layout "
                         "(no colon after the logger, ` - ` separated without milliseconds, thread names, "
                         "`name; LEVEL; time;`, padded levels with ISO T and msecs). edge-40 sends a wrong "
                         "password, edge-42 a user the password file does not know, viewer-41 (read-only) "
                         "publishes a node command; edge-43 and hmi-44 are healthy.")
    config = scene.login_listener(USERS, SPARKPLUG_ACL)

    def layout(name: str) -> list[str]:
        form, datefmt = PAHO_LAYOUTS[name]
        return ["--log-format", form, *(["--date-format", datefmt] if datefmt else [])]

    with scene.broker(config) as broker:
        port = broker.port
        scene.hmi("hmi-44", port, args=layout("hmi-44"), duration=5)
        time.sleep(0.4)
        scene.paho("edge-43", port, [*layout("edge-43"), "--publish", "spBv1.0/Plant4/NDATA/edge-43",
                                     "--interval", "0.5", "--attempts", "1"], client_id="edge-43", duration=4,
                   username="MyEACM", password=USERS["MyEACM"])
        scene.paho("edge-40", port, [*layout("edge-40"), "--publish", "spBv1.0/Plant4/NDATA/edge-40",
                                     "--attempts", "2", "--retry-delay", "0.5"], client_id="edge-40",
                   username="MyEACM", password="eacm-secret-OLD", duration=3)
        scene.paho("viewer-41", port, [*layout("viewer-41"), "--publish", "spBv1.0/Plant4/NCMD/edge-43",
                                       "--interval", "1", "--attempts", "1"], client_id="viewer-41",
                   username="SparkplugViewer", password=USERS["SparkplugViewer"], duration=3)
        scene.paho("edge-42", port, [*layout("edge-42"), "--publish", "spBv1.0/Plant4/NDATA/edge-42",
                                     "--attempts", "2", "--retry-delay", "0.5"], client_id="edge-42",
                   username="EdgeNode42", password="edge42-secret", duration=3)
        scene.wait(timeout=30)
        _settle(broker)
    text = broker.log_text()
    _require(text, r"not authorised", "paho_logging_layouts: refused logins")
    _require(text, r"Denied PUBLISH from viewer-41", "paho_logging_layouts: ACL")
    _require(_read(scene.root / "clients/edge-40.log"), r"DEBUG paho\.mqtt\.client Sending CONNECT \(u1, p1",
             "paho_logging_layouts: edge-40's layout")
    _require(_read(scene.root / "clients/edge-42.log"), r"\(MainThread\) \[paho\.mqtt\.client\] Sending CONNECT \(u1",
             "paho_logging_layouts: edge-42's layout")
    scene.extra["layouts"] = {name: form for name, (form, _) in PAHO_LAYOUTS.items()}
    scene.finish([("auth.bad_credentials", ["edge-40", "edge-42"]), ("acl.publish_denied", ["viewer-41"])],
                 broker=broker)


def make_paho_c_clients(out: Path) -> None:
    scene = Scene.create(out, "paho_c_clients",
                         "Eclipse Paho C's sample programs (Debian paho.mqtt.c-examples) with the library's "
                         "protocol trace. edge-50 (paho_cs_pub, trace written by the library with its times) "
                         "sends a wrong password; viewer-51 (paho_c_pub --trace protocol: every time is the "
                         "19700101 placeholder) publishes a node command its read-only user may not; hmi-52 "
                         "(paho_cs_sub) subscribes and is healthy.")
    scene.passwd(USERS)
    scene.acl(SPARKPLUG_ACL)
    config = (f"listener {{port0}} {HOST}\nallow_anonymous false\npassword_file passwd\nacl_file acl\n"
              + LOG_ALL)
    with scene.broker(config) as broker:
        port = broker.port
        sub = scene.paho_c("hmi-52", "paho_cs_sub", port, ["-t", "spBv1.0/#", "-q", "1"], client_id="hmi-52",
                           username="HMI", password=USERS["HMI"], run_for=5)
        time.sleep(0.6)
        scene.paho_c("edge-50", "paho_cs_pub", port, ["-t", "spBv1.0/Plant5/NDATA/edge-50", "-m", "rpm=1200",
                                                      "-q", "1"], client_id="edge-50", username="MyEACM",
                     password="eacm-secret-OLD")
        time.sleep(0.5)
        scene.paho_c("viewer-51", "paho_c_pub", port, ["-t", "spBv1.0/Plant5/NCMD/edge-50", "-m", "reboot",
                                                       "-q", "1"], client_id="viewer-51", username="SparkplugViewer",
                     password=USERS["SparkplugViewer"], trace="callback")
        scene.wait(sub, timeout=15)
        scene.wait(timeout=15)
        _settle(broker)
    text = broker.log_text()
    _require(text, r"not authorised", "paho_c_clients: refused login")
    _require(text, r"Denied PUBLISH from viewer-51", "paho_c_clients: ACL")
    _require(_read(scene.root / "clients/edge-50.log"), r"^\d{8} \d{6}\.\d{3} \d+ edge-50 <- CONNACK rc: 5",
             "paho_c_clients: edge-50's trace")
    _require(_read(scene.root / "clients/viewer-51.log"), r"^Trace : \d, 19700101 000000\.000 \d+ viewer-51 -> PUBLISH",
             "paho_c_clients: viewer-51's trace")
    scene.finish([("auth.bad_credentials", ["edge-50"]), ("acl.publish_denied", ["viewer-51"])], broker=broker,
                 extra_versions={"paho.mqtt.c": dpkg_version("libpaho-mqtt1.3")})


def make_go_paho_clients(out: Path) -> None:
    scene = Scene.create(out, "go_paho_clients",
                         "Eclipse Paho Go clients (Debian's paho.mqtt.golang, built offline) logging through "
                         "Go's log package with level prefixes and microseconds. edge-60 trusts another CA "
                         "than the one that signed the broker's certificate; edge-61 sends a wrong password; "
                         "edge-62 publishes and is healthy.")
    lab = Pki.create(scene.now)
    trust_another_ca(scene, lab)
    scene.passwd(USERS)
    scene.acl(SPARKPLUG_ACL)
    config = tls_and_login_listeners(acl=True)
    go_paho_binary()  # built before the broker starts, so the clients' times are not the compiler's
    with scene.broker(config, listeners=2) as broker:
        tls, plain = broker.ports
        edge = scene.go_paho("edge-60", f"ssl://{HOST}:{tls}", ["-cafile", "certs/ca.pem", "-pub",
                                                                 "spBv1.0/Plant6/NDATA/edge-60", "-attempts", "2"],
                             client_id="edge-60")
        scene.wait(edge, timeout=20)
        time.sleep(1.0)
        bad = scene.go_paho("edge-61", f"tcp://{HOST}:{plain}", ["-pub", "spBv1.0/Plant6/NDATA/edge-61",
                                                                  "-attempts", "2"], client_id="edge-61",
                            username="MyEACM", password="eacm-secret-OLD")
        scene.wait(bad, timeout=20)
        time.sleep(1.0)
        scene.go_paho("edge-62", f"tcp://{HOST}:{plain}", ["-pub", "spBv1.0/Plant6/NDATA/edge-62", "-count", "3",
                                                            "-duration", "1s"], client_id="edge-62",
                      username="MyEACM", password=USERS["MyEACM"])
        scene.end(broker)
    text = broker.log_text()
    _require(text, r"not authorised", "go_paho_clients: refused login")
    _require(text, r"OpenSSL Error|bad certificate|unknown ca", "go_paho_clients: broker's TLS failure")
    _require(_read(scene.root / "clients/edge-60.log"), r"certificate signed by unknown authority",
             "go_paho_clients: edge-60's log")
    _require(_read(scene.root / "clients/edge-61.log"),
             r"^\[INFO\]  \d{4}/\d\d/\d\d \S+ connect failed: Not Authorized", "go_paho_clients: edge-61's log")
    go = _run_text(["go", "version"]).split()
    scene.finish([("tls.server_cert_untrusted", ["edge-60"]), ("auth.bad_credentials", ["edge-61"])], broker=broker,
                 extra_versions={"go": go[2] if len(go) > 2 else "unknown",
                                 "paho.mqtt.golang": dpkg_version("golang-github-eclipse-paho.mqtt.golang-dev")})


# --------------------------------------------------------------------------- OPC UA


def _opcua_incident(out: Path, name: str, description: str, rid: str,
                    make_client_cert: Callable[[Pki, pki.Issued], pki.Issued], *, expect_server: str,
                    expect_client: str = "", server_args: Sequence[str] = (),
                    clients: Sequence[tuple[str, Sequence[str], str]] = (),
                    client_copy: Callable[[Pki], pki.Issued] | None = None, server_kind: str = "asyncua") -> None:
    """An asyncua server whose trusted list (pki/server/trusted/certs) holds the plant's OPC UA CA;
    one asyncua client connects with Basic256Sha256 SignAndEncrypt, the certificate from
    `make_client_cert` and the server's certificate pinned. `server_args` go to the server (users);
    `clients` replaces that client by several, one after the other: (log name, client arguments
    after the URL, certificate and key, what its log must show). With `client_copy`, the client's
    trusted folder (pki/client/trusted/certs, which it pins) holds that certificate instead of the
    server's, and both sides' own certificates sit in their pki/*/own/certs, as a UA-.NETStandard
    or open62541 application keeps them. `server_kind="open62541"` runs open62541 (o6) instead of
    asyncua as the server."""
    from lab.opcua_lab import CLIENT_URI, SERVER_URI

    scene = Scene.create(out, name, description)
    (scene.root / "broker").rmdir()
    lab = Pki.create(scene.now, cn="plant OPC UA CA")
    lab.ca.write(scene.root / "certs" / "opcua-ca.pem")
    server = pki.make_leaf("correlator lab OPC UA server", lab.ca, sans=(f"URI:{SERVER_URI}", "localhost", HOST),
                           usage=("server", "client"), not_before=lab.now - timedelta(days=30), days=730)
    # asyncua picks a key's format from its file name: a PEM key must end in .pem.
    scene.save_cert(server, "opcua-server", key_suffix=".pem")
    client_cert = make_client_cert(lab, lab.ca)
    scene.save_cert(client_cert, "opcua-client", key_suffix=".pem")
    trusted = scene.root / "pki" / "server" / "trusted" / "certs"
    lab.ca.write(trusted / "opcua-ca.der", der=True)
    copy = server if client_copy is None else client_copy(lab)
    copy.write(scene.root / "pki" / "client" / "trusted" / "certs" / "opcua-server.der", der=True)
    if client_copy is not None:
        server.write(scene.root / "pki" / "server" / "own" / "certs" / "opcua-server.der", der=True)
        client_cert.write(scene.root / "pki" / "client" / "own" / "certs" / "opcua-client.der", der=True)
    (scene.root / "server").mkdir()
    port = free_port()
    url = f"opc.tcp://{HOST}:{port}/correlator/"
    ready = Path(scene.root / "server" / ".ready")
    runner = ([sys.executable, "-m", "lab.opcua_lab", "server"] if server_kind == "asyncua"
              else [o6_python(), "-m", "lab.o6_server"])
    server_cmd = [*runner, "--port", str(port),
                  "--cert", "certs/opcua-server.pem", "--key", "keys/opcua-server.pem",
                  "--trusted", "pki/server/trusted/certs", "--log-file", "server/opcua-server.log",
                  "--duration", "40", "--ready-file", "server/.ready", "--stop-file", "server/.stop",
                  *server_args]
    srv = scene._add("opcua-server", {"kind": f"{server_kind}-server", "listens": f"{HOST}:{port}",
                                      "application_uri": SERVER_URI}, server_cmd, None,
                     sink="server/opcua-server.stdout.txt" if server_kind != "asyncua"
                     else "server/opcua-server.stderr.txt")
    srv.info["log"] = "server/opcua-server.log"
    scene.start(srv)
    deadline = time.monotonic() + 20
    while not ready.exists():
        if time.monotonic() > deadline or (srv.proc is not None and srv.proc.poll() is not None):
            raise IncidentFailed(f"{name}: the OPC UA server did not start:\n"
                                 f"{_read(scene.root / 'server/opcua-server.log')}")
        time.sleep(0.05)
    ready.unlink()
    pinned = ("--server-cert", "certs/opcua-server.pem" if client_copy is None
              else "pki/client/trusted/certs/opcua-server.der")
    clients = clients or [("opcua-client", pinned, expect_client)]
    for client_name, extra, _ in clients:
        client_cmd = [sys.executable, "-m", "lab.opcua_lab", "client", "--url", url,
                      "--cert", "certs/opcua-client.pem", "--key", "keys/opcua-client.pem", *extra,
                      "--log-file", f"clients/{client_name}.log", "--attempts", "2", "--retry-delay", "0.5",
                      "--duration", "5"]
        cli = scene._add(client_name, {"kind": "asyncua", "dials": url, "application_uri": CLIENT_URI},
                         client_cmd, None, sink=f"clients/{client_name}.stderr.txt")
        scene.start(cli)
        scene.wait(cli, timeout=25)
    (scene.root / "server" / ".stop").write_text("")
    scene.wait(timeout=25)
    (scene.root / "server" / ".stop").unlink()
    _require(_read(scene.root / "server/opcua-server.log"), expect_server, f"{name}: server log")
    for client_name, _, expect in clients:
        _require(_read(scene.root / f"clients/{client_name}.log"), expect, f"{name}: {client_name}'s log")
    extra_versions = None
    if server_kind == "open62541":
        # o6's banner on standard output is not a log
        (scene.root / "server" / "opcua-server.stdout.txt").unlink(missing_ok=True)
        extra_versions = {"o6": _run_text([o6_python(), "-c", "from importlib.metadata import version; "
                                                           "print(version('o6'))"]).strip()}
    scene.finish([(rid, [c[0] for c in clients])], extra_versions=extra_versions)


def make_opcua_cert_untrusted(out: Path) -> None:
    def vendor_signed(lab: Pki, _ca: pki.Issued) -> pki.Issued:
        vendor = pki.make_ca("HMI vendor CA", not_before=lab.now - timedelta(days=400))
        return pki.make_leaf("correlator lab OPC UA client", vendor,
                             sans=("URI:urn:correlator:lab:opcua-client", "localhost"), usage=("client",),
                             not_before=lab.now - timedelta(days=30), days=730)

    _opcua_incident(
        out, "opcua_cert_untrusted",
        "The OPC UA client's application certificate is issued by its vendor's CA, which is not in the "
        "server's trusted list; asyncua's CertificateValidator refuses it at CreateSession.",
        "opcua.cert_untrusted", vendor_signed, expect_server=r"Not trusted certificate|Untrusted",
        expect_client=r"BadCertificateUntrusted|BadSecurityChecksFailed|failed")


def make_opcua_cert_time_invalid(out: Path) -> None:
    def expired(lab: Pki, ca: pki.Issued) -> pki.Issued:
        return pki.make_leaf("correlator lab OPC UA client", ca,
                             sans=("URI:urn:correlator:lab:opcua-client", "localhost"), usage=("client",),
                             not_before=lab.now - timedelta(days=400), not_after=lab.now - timedelta(days=9))

    _opcua_incident(
        out, "opcua_cert_time_invalid",
        "The OPC UA client's certificate, issued by the trusted plant CA, expired 9 days ago.",
        "opcua.cert_time_invalid", expired, expect_server=r"TimeInvalid|.",
        expect_client=r"BadCertificateTimeInvalid|BadSecurityChecksFailed|failed")


def _trusted_client(lab: Pki, ca: pki.Issued) -> pki.Issued:
    """A good client certificate from the trusted plant CA: the failure is elsewhere."""
    return pki.make_leaf("correlator lab OPC UA client", ca, sans=("URI:urn:correlator:lab:opcua-client", "localhost"),
                         usage=("client",), not_before=lab.now - timedelta(days=30), days=730)


def make_opcua_security_policy_rejected(out: Path) -> None:
    _opcua_incident(
        out, "opcua_security_policy_rejected",
        "The server offers one endpoint, Basic256Sha256 SignAndEncrypt. opcua-client (a newer HMI, set up "
        "without the server's certificate, as asyncua allows) asks for Aes256Sha256RsaPss SignAndEncrypt; "
        "opcua-client-none (an engineering tool set to no security) asks for None. Each reads the "
        "server's endpoint list, finds no endpoint of its policy and mode, and gives up. asyncua 2.1 "
        "sends no BadSecurityPolicyRejected status.",
        "opcua.security_policy_rejected", _trusted_client,
        expect_server=r"get endpoint",
        clients=[("opcua-client", ["--policy", "Aes256Sha256RsaPss"],
                  r"No matching endpoints: 3, http://opcfoundation\.org/UA/SecurityPolicy#Aes256_Sha256_RsaPss"),
                 ("opcua-client-none", ["--policy", "None"],
                  r"No matching endpoints: 1, http://opcfoundation\.org/UA/SecurityPolicy#None")])


def make_opcua_user_access_denied(out: Path) -> None:
    pinned = ["--server-cert", "certs/opcua-server.pem"]
    _opcua_incident(
        out, "opcua_user_access_denied",
        "The server accepts only user name tokens and knows one user, operator. opcua-client sends "
        "operator with last year's password (BadUserAccessDenied at ActivateSession); opcua-client-anon "
        "connects anonymously (BadIdentityTokenRejected). Both secure channels (Basic256Sha256 "
        "SignAndEncrypt, trusted certificate) are fine.",
        "opcua.user_access_denied", _trusted_client, server_args=["--user", "operator:op-secret-2026"],
        expect_server=r"\(BadIdentityTokenRejected\)",
        clients=[("opcua-client", [*pinned, "--user", "operator", "--password", "op-secret-2025"],
                  r"failed: BadUserAccessDenied"),
                 ("opcua-client-anon", pinned, r"failed: BadIdentityTokenRejected")])


def o6_python() -> str:
    """An interpreter that can import o6 (open62541 for Python): $CORRELATOR_O6_PYTHON, else the
    lab's own when o6 is installed there."""
    given = os.environ.get("CORRELATOR_O6_PYTHON")
    if given:
        return given
    done = subprocess.run([sys.executable, "-c", "import o6"], capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        raise IncidentUnavailable("o6 (open62541 for Python) is not installed: pip install o6 in a virtual "
                                  "environment and set CORRELATOR_O6_PYTHON to its python")
    return sys.executable


def _last_years_server(lab: Pki) -> pki.Issued:
    """The certificate the server had before its renewal: same name, same ApplicationUri, another key."""
    from lab.opcua_lab import SERVER_URI

    return pki.make_leaf("correlator lab OPC UA server", lab.ca, sans=(f"URI:{SERVER_URI}", "localhost", HOST),
                         usage=("server", "client"), not_before=lab.now - timedelta(days=700), days=730)


def make_opcua_server_cert_changed_open62541(out: Path) -> None:
    _opcua_incident(
        out, "opcua_server_cert_changed_open62541",
        "As opcua_server_cert_changed, with an open62541 server (o6): it renewed its certificate, the asyncua "
        "client (Aes128Sha256RsaOaep SignAndEncrypt, the policies open62541 offers) still pins last year's copy "
        "from pki/client/trusted/certs. open62541 finds no policy for the receiver certificate the client names "
        "and answers BadSecurityPolicyRejected: the status names the wrong cause, the PKI folders the right one.",
        "opcua.server_cert_changed", _trusted_client, client_copy=_last_years_server, server_kind="open62541",
        expect_server=r"Processing the message failed with error BadSecurityPolicyRejected",
        clients=[("opcua-client", ["--server-cert", "pki/client/trusted/certs/opcua-server.der",
                                   "--policy", "Aes128Sha256RsaOaep"], r"failed: BadSecurityPolicyRejected")])


def make_opcua_server_cert_changed(out: Path) -> None:
    _opcua_incident(
        out, "opcua_server_cert_changed",
        "The OPC UA server renewed its application certificate (new key, same subject and ApplicationUri, "
        "pki/server/own/certs); the client still pins last year's copy from its trusted folder "
        "(pki/client/trusted/certs/opcua-server.der). It encrypts OpenSecureChannel for the old key: the "
        "asyncua server logs 'ValueError: Decryption failed' and drops the message, the client's secure "
        "channel times out with no status code.",
        "opcua.server_cert_changed", _trusted_client, client_copy=_last_years_server,
        expect_server=r"ValueError: Decryption failed", expect_client=r"failed: TimeoutError")


# --------------------------------------------------------------------------- Node-RED

NODE_RED_VERSION = "4.1.15"


def npm_package(package: str, version: str, folder: str, wanted: str | None = None) -> Path:
    """`package@version` installed once with npm into ~/.cache/correlator-lab/FOLDER; the path
    `wanted` inside it (default: the package's own folder under node_modules), which is there when
    the install worked."""
    prefix = Path.home() / ".cache" / "correlator-lab" / folder
    found = prefix / (wanted or f"node_modules/{package}")
    if found.exists():
        return found
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise IncidentUnavailable(f"{package} needs node and npm (Debian: apt-get install nodejs npm)")
    prefix.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
                           f"{package}@{version}"], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not found.exists():
        raise IncidentUnavailable(f"npm install {package} failed: {done.stderr.strip()[-500:]}")
    return found


def node_red_binary() -> Path:
    """Node-RED from npm: $CORRELATOR_NODE_RED, a `node-red` on the PATH, or the lab's own copy
    (installed once with npm into ~/.cache/correlator-lab/node-red)."""
    given = os.environ.get("CORRELATOR_NODE_RED") or shutil.which("node-red")
    if given:
        return Path(given)
    return npm_package("node-red", NODE_RED_VERSION, "node-red", "node_modules/.bin/node-red")


def make_node_red_untrusted_ca(out: Path) -> None:
    """Node-RED's mqtt-broker node over TLS, its tls-config node naming the site CA file instead of
    the CA that issued the broker's certificate. Node's TLS verifies after the handshake and closes
    the socket without an alert: the broker logs only `unexpected eof while reading`, Node-RED only
    `Connection failed to broker`. The reason is in flows.json against the broker's certificate."""
    scene = Scene.create(out, "node_red_untrusted_ca",
                         "Node-RED (nodered/flows.json: mqtt-broker node 'plant broker' with tls-config 'plant CA') "
                         "trusts certs/site-ca.pem, another site's CA; the broker's certificate comes from "
                         "certs/ca.pem. Node-RED logs only 'Connection failed to broker', the broker only "
                         "'unexpected eof while reading': neither log says why.")
    binary = node_red_binary()
    lab = Pki.create(scene.now)
    lab.ca.write(scene.root / "certs" / "ca.pem")
    pki.make_ca("other site CA", not_before=lab.now - timedelta(days=400)).write(scene.root / "certs" / "site-ca.pem")
    scene.save_cert(lab.server(), "server")
    user_dir = scene.root / "nodered"
    user_dir.mkdir()
    config = tls_listener() + "allow_anonymous true\n" + LOG_ALL
    with scene.broker(config) as broker:
        port = broker.port
        flows = [
            {"id": "5f1c2a7e.plant", "type": "tab", "label": "Plant", "disabled": False, "info": ""},
            {"id": "a41b9c30.tls", "type": "tls-config", "name": "plant CA", "cert": "", "key": "",
             "ca": "certs/site-ca.pem", "certname": "", "keyname": "", "caname": "", "servername": "",
             "verifyservercert": True, "alpnprotocol": ""},
            {"id": "c2d84f11.broker", "type": "mqtt-broker", "name": "plant broker", "broker": HOST,
             "port": str(port), "tls": "a41b9c30.tls", "clientid": "nodered-gw", "autoConnect": True,
             "usetls": True, "protocolVersion": "4", "keepalive": "60", "cleansession": True,
             "autoUnsubscribe": True, "birthTopic": "", "closeTopic": "", "willTopic": ""},
            {"id": "7e3a0b52.out", "type": "mqtt out", "z": "5f1c2a7e.plant", "name": "NDATA",
             "topic": "spBv1.0/Plant1/NDATA/nodered-gw", "qos": "1", "retain": "", "broker": "c2d84f11.broker",
             "x": 420, "y": 120, "wires": []},
        ]
        (user_dir / "flows.json").write_text(json.dumps(flows, indent=4) + "\n")
        cmd = [str(binary), "--userDir", "nodered", "--port", str(free_port()), "flows.json"]
        client = scene._add("nodered", {"kind": "node-red", "dials": f"mqtts://{HOST}:{port}",
                                        "client_id": "nodered-gw", "config": "nodered/flows.json"}, cmd, None)
        scene.start(client)
        deadline = time.monotonic() + 60
        while "Connection failed to broker" not in _read(scene.root / "clients/nodered.log"):
            if time.monotonic() > deadline or (client.proc is not None and client.proc.poll() is not None):
                break
            time.sleep(0.5)
        time.sleep(6)  # one more attempt: Node-RED retries every 5 s but says so only once
        if client.proc is not None:
            client.proc.send_signal(signal.SIGINT)
        scene.wait(client, timeout=15)
        _settle(broker)
    # keep what a support bundle of a Node-RED host holds: the flows; not the runtime's own files
    # (.config.runtime.json holds the credential secret), its generated settings.js or modules
    for extra in user_dir.iterdir():
        if extra.name != "flows.json":
            shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
    _require(broker.log_text(), r"unexpected eof while reading", "node_red_untrusted_ca: broker log")
    _require(_read(scene.root / "clients/nodered.log"), r"Connection failed to broker: nodered-gw@mqtts://",
             "node_red_untrusted_ca: Node-RED log")
    version_line = re.search(r"Node-RED version: v(\S+)", _read(scene.root / "clients/nodered.log"))
    scene.finish([("tls.server_cert_untrusted", ["nodered"])], broker=broker,
                 extra_versions={"node-red": version_line.group(1) if version_line else "unknown",
                                 "node": _run_text(["node", "--version"]).strip()})


# --------------------------------------------------------------------------- syslog


RSYSLOG_CONF = """\
# rsyslogd run by lab.incidents for the syslog_variants sample: mosquitto's lines only,
# written twice, in the traditional RFC 3164 file format and in RFC 5424.
global(workDirectory="{work}")
module(load="imuxsock" SysSock.Name="/dev/log" SysSock.RateLimit.Interval="0")
if $programname == "mosquitto" then {{
  action(type="omfile" file="{out}/syslog-rfc3164.log" template="RSYSLOG_TraditionalFileFormat")
  action(type="omfile" file="{out}/syslog-rfc5424.log" template="RSYSLOG_SyslogProtocol23Format")
  stop
}}
"""


def rsyslogd_usable() -> str:
    """The rsyslogd binary, when this machine lets the lab own /dev/log; checked before an
    incident folder is touched, so a machine that cannot run it keeps the committed sample."""
    binary = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None)
    if binary is None:
        raise IncidentUnavailable("rsyslogd is not installed (Debian: apt-get install rsyslog)")
    dev_log = Path("/dev/log")
    if dev_log.exists() or dev_log.is_symlink():
        raise IncidentUnavailable("/dev/log already exists: another syslog daemon (or journald) owns it")
    if os.geteuid() != 0:
        raise IncidentUnavailable("creating /dev/log needs root")
    return binary


@contextmanager
def rsyslogd(out_dir: Path) -> Iterator[Path]:
    """A real rsyslogd owning /dev/log while the incident runs. mosquitto's syslog output always
    goes to /dev/log, so the daemon must sit there; this refuses to run when another syslog
    daemon already does, and removes the socket it created afterwards."""
    binary = rsyslogd_usable()
    dev_log = Path("/dev/log")
    with tempfile.TemporaryDirectory(prefix="correlator-rsyslog-") as work:
        conf = Path(work) / "rsyslog.conf"
        conf.write_text(RSYSLOG_CONF.format(work=work, out=out_dir))
        pidfile = Path(work) / "rsyslogd.pid"
        log = Path(work) / "rsyslogd.out"
        with log.open("wb") as sink:
            proc = subprocess.Popen([binary, "-n", "-f", str(conf), "-i", str(pidfile)], stdout=sink,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not dev_log.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise IncidentFailed(f"rsyslogd did not create /dev/log: {_read(log)}")
                time.sleep(0.05)
            yield Path(binary)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if dev_log.is_socket():
                dev_log.unlink()


def make_syslog_variants(out: Path) -> None:
    rsyslogd_usable()
    scene = Scene.create(out, "syslog_variants",
                         "The broker logs to syslog (log_dest syslog) through a real rsyslogd, which writes "
                         "the same lines in RFC 3164 (broker/syslog-rfc3164.log) and RFC 5424 "
                         "(broker/syslog-rfc5424.log). Traffic: edge-41 sends a wrong password, edge-42 "
                         "speaks plain MQTT to the TLS listener, hmi-41 is healthy.")
    usual_pki(scene)
    scene.passwd(USERS)
    scene.acl(SPARKPLUG_ACL)
    broker_dir = scene.root / "broker"
    config = (f"per_listener_settings false\nallow_anonymous false\npassword_file passwd\nacl_file acl\n"
              f"listener {{port0}} {HOST}\n" + tls_listener("{port1}") +
              "log_dest syslog\nlog_facility 3\nlog_type all\n")
    with rsyslogd(broker_dir) as binary:
        broker = scene.broker(config, listeners=2, log_path=broker_dir / "syslog-rfc3164.log")
        with broker:
            plain, tls = broker.ports
            scene.paho("hmi-41", plain, ["--subscribe", "spBv1.0/#", "--attempts", "1"], client_id="hmi-41",
                       username="HMI", password=USERS["HMI"], duration=4)
            time.sleep(0.5)
            scene.paho("edge-40", plain, ["--publish", "spBv1.0/Plant4/NDATA/edge-40", "--attempts", "1",
                                          "--interval", "0.5"], client_id="edge-40", username="MyEACM",
                       password=USERS["MyEACM"], duration=2.5)
            scene.mosquitto_client("edge-41-pub", "mosquitto_pub", plain,
                                   ["-t", "spBv1.0/Plant4/NDATA/edge-41", "-m", "valve=open", "-q", "1"],
                                   client_id="edge-41", username="MyEACM", password="eacm-secret-OLD")
            scene.mosquitto_client("edge-42-pub", "mosquitto_pub", tls,
                                   ["-t", "spBv1.0/Plant4/NDATA/edge-42", "-m", "valve=closed", "-q", "1"],
                                   client_id="edge-42", username="MyEACM", password=USERS["MyEACM"])
            scene.wait(timeout=20)
            time.sleep(0.5)
            _settle(broker)
        time.sleep(0.5)  # let rsyslogd write the last lines before it is stopped
    text = _read(broker_dir / "syslog-rfc5424.log")
    _require(text, r"not authorised", "syslog_variants: RFC 5424 file")
    _require(_read(broker_dir / "syslog-rfc3164.log"), r"mosquitto\[\d+\]: ", "syslog_variants: RFC 3164 file")
    scene.extra["broker"] = {"log_dest": "syslog", "log_facility": 3,
                             "logs": ["broker/syslog-rfc3164.log", "broker/syslog-rfc5424.log"],
                             "syslog_daemon": f"rsyslogd {dpkg_version('rsyslog')} ({binary})",
                             "journald": "not available here (no systemd); no journalctl output is included"}
    scene.finish([("auth.bad_credentials", ["edge-41-pub"]), ("tls.protocol_mismatch", ["edge-42-pub"])],
                 broker=broker, extra_versions={"rsyslog": dpkg_version("rsyslog")})


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class Incident:
    name: str
    make: Callable[[Path], None]
    summary: str


REGISTRY: dict[str, Incident] = {}


def _register(*entries: tuple[Callable[[Path], None], str]) -> None:
    for make, summary in entries:
        name = make.__name__.removeprefix("make_")
        REGISTRY[name] = Incident(name, make, summary)


_register(
    (make_server_cert_expired, "broker certificate past notAfter"),
    (make_server_cert_not_yet_valid, "broker certificate before notBefore"),
    (make_server_hostname_mismatch, "CN=10.3.0.11 without SAN, clients dial 127.0.0.1"),
    (make_server_cert_untrusted, "clients trust another CA"),
    (make_server_chain_incomplete, "certfile without the intermediate"),
    (make_listener_certs, "two TLS listeners, two certificates: one expired, one renewed"),
    (make_client_cert_missing, "require_certificate true, clients send none"),
    (make_client_cert_untrusted, "client certificates from a CA the broker does not know"),
    (make_client_cert_expired, "client certificate past notAfter (paho client in Europe/Berlin time)"),
    (make_plain_to_tls_port, "plain MQTT to a TLS listener"),
    (make_tls_to_plain_port, "TLS to a plain listener"),
    (make_tls_version_mismatch, "listener tls_version tlsv1.3, clients speak TLS 1.2 only"),
    (make_client_key_mismatch, "client key made again, certificate not re-issued: key and certificate differ"),
    (make_broker_tls_config_error, "keyfile does not match certfile; mosquitto exits"),
    (make_bad_credentials, "wrong password and an unknown user"),
    (make_anonymous_denied, "no username, allow_anonymous false (broker logs to stdout)"),
    (make_client_id_takeover, "two clients share one client id (ISO timestamps in the broker log)"),
    (make_client_id_rejected, "allow_zero_length_clientid false, clients with an empty client id"),
    (make_publish_denied, "ACL denies publishes (MQTT 5 and 3.1.1)"),
    (make_subscribe_denied, "ACL denies reading: nothing arrives, no broker line"),
    (make_connection_refused, "nothing listens on the port the clients dial"),
    (make_broker_hung, "broker process frozen (SIGSTOP): the clients' TLS handshake times out"),
    (make_healthy_noisy, "busy healthy traffic with clean reconnects; no root cause"),
    (make_mixed, "bad password + expired client certificate + ACL publish denial, with healthy traffic"),
    (make_multi_broker_acl, "three brokers in one bundle: two ACLs and one broker without acl_file"),
    (make_gateway_clock, "a gateway with its own clock (faketime) beside the central broker; OPC UA on the gateway"),
    (make_opcua_cert_untrusted, "OPC UA client certificate from a CA not in the server's trusted list"),
    (make_opcua_cert_time_invalid, "OPC UA client certificate expired"),
    (make_opcua_security_policy_rejected, "OPC UA clients ask for a security policy the server does not offer"),
    (make_opcua_user_access_denied, "OPC UA server refuses a wrong password and anonymous users"),
    (make_opcua_server_cert_changed, "OPC UA server renewed its certificate; the client pins the old one"),
    (make_opcua_server_cert_changed_open62541, "the same with an open62541 (o6) server: BadSecurityPolicyRejected"),
    (make_node_red_untrusted_ca, "Node-RED trusts another CA (flows.json); no reason in either log"),
    (make_syslog_variants, "broker logging through rsyslogd, RFC 3164 and RFC 5424 files"),
    (make_paho_logging_layouts, "paho-mqtt clients in five Python logging layouts; bad password, unknown user, ACL"),
    (make_paho_c_clients, "Paho C sample programs with protocol traces; bad password, ACL"),
    (make_go_paho_clients, "Paho Go clients through Go's log package; untrusted broker certificate, bad password"),
)


def make(names: Sequence[str], out: Path) -> Iterator[tuple[str, float, str | None]]:
    """Make the named incidents one after the other; yield (name, seconds, problem or None)."""
    for name in names:
        started = time.monotonic()
        try:
            for tool in ("mosquitto_pub", "mosquitto_sub", "mosquitto_passwd", "openssl"):
                if shutil.which(tool) is None:
                    raise IncidentUnavailable(f"{tool} is not installed (Debian: apt-get install "
                                              "mosquitto mosquitto-clients openssl)")
            mosquitto_binary()
            REGISTRY[name].make(out)
        except (IncidentUnavailable, BrokerUnavailable) as exc:
            yield name, time.monotonic() - started, f"skipped: {exc}"
            continue
        yield name, time.monotonic() - started, None


# Incidents that need reasoning over a whole connection, a CA's real key, the time certificates are
# judged at, and counts (lab/incidents_reasoning.py); imported last, since they use the parts above.
from lab import incidents_reasoning  # noqa: E402

_register(
    (incidents_reasoning.make_login_per_connection, "anonymous, wrong password and an MQTT 5 ACL denial, told "
                                                    "apart per connection"),
    (incidents_reasoning.make_login_undecided, "refused logins the client logs cannot decide; the config "
                                               "decides one"),
    (incidents_reasoning.make_same_name_ca, "a CA made again under the same name: signature failures both ways"),
    (incidents_reasoning.make_clock_a_day_behind, "a client clock a whole day behind (faketime) beside a client "
                                                  "in UTC+5:30"),
    (incidents_reasoning.make_cert_judged_at_estimate, "an untimed client whose file time lies past the broker "
                                                       "certificate's end; the failure was before it"),
    (incidents_reasoning.make_login_from_config, "a refused login whose user only the client's configuration "
                                                 "file names"),
    (incidents_reasoning.make_shared_port_brokers, "two brokers on one port on machines of their own; client logs "
                                                   "that name no address or port"),
    (incidents_reasoning.make_two_clients_same_second, "two clients refused in the same seconds for different "
                                                       "reasons; only ports tell them apart"),
    (incidents_reasoning.make_rotated_overlap, "logrotate's copy and the live log's last lines share a stretch "
                                               "holding one refusal"),
)

# An incident on the mosquitto release the distribution does not ship yet, built from source.
from lab import incidents_mosquitto21  # noqa: E402

_register(
    (incidents_mosquitto21.make_mosquitto_21_disconnects, "mosquitto 2.1.2's reworded disconnect lines: refused "
                                                          "logins, takeovers, keepalive, TLS"),
)

# Incidents with Java (JSSE) clients (lab/incidents_java.py).
from lab import incidents_java  # noqa: E402

_register(
    (incidents_java.make_java_clients, "Java (JSSE) clients: an untrusted broker certificate the broker hears only as "
                                       "\"certificate unknown\""),
    (incidents_java.make_java_cert_expired, "a Java (JSSE) client against an expired broker certificate: the reason "
                                            "only in the stack trace's last 'Caused by:'"),
)

# Incidents with MQTT.js clients (lab/incidents_node.py).
from lab import incidents_node  # noqa: E402

_register(
    (incidents_node.make_mqtt_js_clients, "MQTT.js clients traced with DEBUG=mqttjs* (to a file and on a terminal); "
                                          "untrusted broker certificate, bad password"),
    (incidents_node.make_log4js_clients, "Node.js edges logging through log4js's layout; a refused connection and a "
                                         "bad password, each its client's"),
)
