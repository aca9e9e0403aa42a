"""The hosts of a support bundle: which files came from which machine, so each broker is judged by
its own config, ACL, password file and certificates, and clocks and connections are tied only
between parts that can talk to each other.

A bundle often holds several brokers and gateways, each in its own folder or archive. Hosts are
anchored by servers: a mosquitto.conf (one broker; files it includes are part of it), a broker's
log, an OPC UA server's log. The folder tree (archives are folders here: `site.zip!gw-01/...`) is
split from the top: a folder holding at most one anchor is one host, one holding more is split
into its sub-folders; files beside the sub-folders (a shared `certs/`, a `clients/` folder) stay
shared. A folder holding several brokers' logs that no sub-folder separates is split by the host
name their syslog lines carry. Then:

- the files a mosquitto.conf names (`acl_file`, `password_file`, `certfile`, `cafile`, `keyfile`)
  belong to its host, wherever they sit in the bundle;
- a log whose syslog lines name a host joins the host of that name;
- a client's log belongs to the host it sits in, and talks to the broker(s) whose listener ports
  it dials (all brokers when its lines name no port); its lines are judged on the host of the
  broker their connection was stitched to (the `broker_source` stitching carries), where one was;
- a host with a mosquitto.conf uses what the conf names and nothing else: a broker whose config
  names no `acl_file` has no ACL, whatever other ACL the bundle holds. Shared certificates and keys
  are seen by every host; its own come first.

A bundle with at most one anchor is one host: everything is judged together, as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from correlator.check_result import CheckResult
from correlator.engine.facts import CHECKS, NEEDS, Artifacts
from correlator.errors import CorrelatorError
from correlator.formats.parse import line_host
from correlator.model import Event, is_broker_source
from correlator.report_model import HostOutline, HostReport
from correlator.sources.bundle import Bundle
from correlator.sources.files import LogFile, base_name, decode
from correlator.sources.lines import iter_chunks

if TYPE_CHECKING:
    from correlator.artifacts.certs import CertFacts

_PART = re.compile(r"(?<=!)|/")
_ARCHIVE = re.compile(r"(\.(zip|tar|tgz|tbz2|txz|tar\.gz|tar\.bz2|tar\.xz))?!$", re.I)
#: Fields of a client's lines that name the port it dials.
_DIAL_PORTS = ("peer_port", "port", "remote_port")
#: Fields of a client's lines that name the address or host name it dials.
_DIAL_ADDRESSES = ("peer_addr", "remote_host")
#: Fields of a broker's lines that name a port it listens on.
_LISTEN_PORTS = ("listener_port",)
#: Most host names one log is split into (a file per host is open while it is split).
MAX_SPLIT_HOSTS = 64


def _parts(display: str) -> tuple[str, ...]:
    return tuple(p for p in _PART.split(display) if p)


def _safe(name: str) -> str:
    """A host name as part of a file name."""
    return re.sub(r"[^\w.-]", "_", name) or "host"


def _host_name(part: str) -> str:
    """A folder's or archive's name as a host name: `gw-01.tar.gz!` -> `gw-01`."""
    return _ARCHIVE.sub("", part) or part


@dataclass
class Host(HostOutline):
    """One machine of the bundle: its files and what the analysis learnt about it."""

    ports: set[int] = field(default_factory=set)
    """The ports its broker listens on (mosquitto.conf and the broker's own log)."""
    syslog_names: set[str] = field(default_factory=set)
    artifacts: Artifacts = field(default_factory=Artifacts)
    own: Artifacts | None = None
    """Its own artifacts without the shared ones: what the checks on artifacts alone (expiring
    certificates, insecure settings) look at, so a shared certificate is reported once, not once
    per host (None: the same as `artifacts`)."""
    has_conf: bool = False

    def addresses(self) -> set[str]:
        """What a client may dial to reach it: the addresses its listeners bind (mosquitto.conf),
        its name and the names its syslog lines give."""
        binds = {lst.bind.lower() for conf in self.artifacts.confs for lst in conf.listeners if lst.bind}
        return binds | {self.name.lower()} | {n.lower() for n in self.syslog_names}

    def report(self) -> HostReport:
        """The host as the report shows it (no artifacts, only their names)."""
        arts = self.artifacts
        return HostReport(self.name, self.how, self.root, list(self.logs), list(self.sources), sorted(self.ports),
                          sorted(self.syslog_names), configs=[arts.name(c.path) for c in arts.confs],
                          acl_files=[arts.name(a.path) for a in arts.acls],
                          password_files=[arts.name(p.path) for p in arts.passwds],
                          certificates=sorted({arts.name(c.path) for c in arts.certs}))


@dataclass
class HostPlan:
    """The hosts of one analysis and how its sources relate to them."""

    hosts: list[Host]
    home: dict[str, str] = field(default_factory=dict)
    """Source -> the host its log came from."""
    reach: dict[str, frozenset[str]] = field(default_factory=dict)
    """Client source -> the broker sources it can talk to (absent: any broker)."""
    shared: Artifacts | None = None
    """With several hosts, what no host claims (certificates and keys beside the host folders):
    all a client's lines are judged by when nothing says which broker it talks to."""

    @property
    def multi(self) -> bool:
        return len(self.hosts) > 1

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    def clock_groups(self) -> dict[str, str]:
        """Source -> its host, for hosts with no broker of their own (a gateway): their logs share
        one clock, so an offset estimated for one of them holds for all."""
        out: dict[str, str] = {}
        for host in self.hosts:
            if self.multi and not any(is_broker_source(s) for s in host.sources):
                out.update({source: host.name for source in host.sources})
        return out

    def host_of(self, events: Sequence[Event]) -> str:
        """The host whose artifacts judge these events (and whose findings they make): a broker's
        own; for a client's lines, the host of the broker their connection was stitched to, else
        the broker's host it talks to when that is one host; for the timeline's clock estimate,
        the host of the clock."""
        if not self.multi:
            return self.hosts[0].name if self.hosts else ""
        if not events:
            return ""
        for event in events:
            if event.kind == "timeline.skew":
                return self.home.get(str(event.fields.get("source_name", event.source)), "")
            if is_broker_source(event.source):
                return self.home.get(event.source, "")
        for event in events:
            # the broker whose connection this client line was stitched to (by port, id or time)
            broker = event.fields.get("broker_source")
            if isinstance(broker, str) and broker in self.home:
                return self.home[broker]
        source = events[0].source
        brokers = self.reach.get(source)
        if brokers:
            homes = {self.home.get(b, "") for b in brokers}
            if len(homes) == 1:
                return homes.pop()
        return self.home.get(source, "")


class HostFacts:
    """The engine's artifact checks, each asked of one host's artifacts: the host the engine names
    in the context (`host`), else the host of the events."""

    def __init__(self, plan: HostPlan, base: Artifacts) -> None:
        self.plan = plan
        self.base = base
        self._by_name = {h.name: h.artifacts for h in plan.hosts}

    def scopes(self) -> list[str]:
        """The hosts the checks on artifacts alone run for ('' for what no host claims)."""
        names = [h.name for h in self.plan.hosts]
        return [*names, ""] if self.plan.multi else names

    def can_hold(self, name: str) -> bool:
        return name in CHECKS and any(
            all(getattr(arts, collection) for collection in NEEDS.get(name, ())) for arts in self._by_name.values())

    def check(self, name: str, events: list[Event], context: dict[str, Any]) -> CheckResult:
        host = context.get("host_name")
        if not isinstance(host, str) or (host and host not in self._by_name):
            host = self.plan.host_of(events)
        if not events:  # a check on the artifacts alone: each file once, with its own host
            found = self.plan.host(host) if host else None
            arts = (found.own or found.artifacts) if found is not None else self.plan.shared or self.base
        else:
            arts = self._by_name.get(host) or self.plan.shared or self.base
        arts.now = self.base.now
        arts.window = self.base.window
        return arts.check(name, events, context)


def split_by_syslog_host(log: LogFile, bundle: Bundle) -> list[tuple[Path, str]] | None:
    """A log whose lines come from several hosts (a central syslog server's file): one stream
    (and its host name) per host name, as files in a scratch folder of the bundle, each line in its place (the other
    hosts' lines blank, so line numbers stay the file's); a line naming no host (a continuation)
    stays with the line before (lines before the first that names one are blank in every stream).
    Read and written a chunk at a time: memory does not grow with the file. None when the first
    lines name fewer than two hosts, or the file names more than MAX_SPLIT_HOSTS."""
    if len({e.host for e in log.peek_events() if e.host}) < 2:
        return None
    folder = bundle.scratch()
    stem = base_name(log.path)
    streams: dict[str, TextIO] = {}
    written = 0  # lines so far: a host first seen late starts with that many blank lines
    current = ""
    try:
        for chunk in iter_chunks(log.path):
            for _, raw in chunk:
                text = decode(raw)
                current = line_host(log.format, text) or current
                if current and current not in streams:
                    if len(streams) >= MAX_SPLIT_HOSTS:
                        return None
                    streams[current] = (folder / f"{stem}@{_safe(current)}.log").open("w", encoding="utf-8")
                    streams[current].write("\n" * written)
                for name, stream in streams.items():
                    stream.write(text + "\n" if name == current else "\n")
                written += 1
    except (OSError, CorrelatorError):
        return None  # the file is read as it is, and its own read reports the fault
    finally:
        for stream in streams.values():
            stream.close()
    if len(streams) < 2:
        return None
    return [(folder / f"{stem}@{_safe(name)}.log", name) for name in sorted(streams)]


# ---------------------------------------------------------------------- grouping


@dataclass
class _File:
    display: str
    parts: tuple[str, ...]
    anchor: tuple[str, ...] | None = None
    """(kind, folder..., syslog name) for a file that anchors a host."""


def _split(files: list[_File], depth: int) -> list[tuple[tuple[str, ...], list[_File]]]:
    """Host roots under a folder (its path's first `depth` parts): (root parts, files) per host;
    files no host root holds come back under the root ()."""
    anchors = {f.anchor for f in files if f.anchor is not None}
    confs = {a for a in anchors if a[0] == "conf"}
    logs = {a for a in anchors if a[0] != "conf"}
    brokers = len(confs) if confs else len({a for a in logs if a[0] == "broker"})
    servers = len({a[:-1] for a in logs if a[0] == "server"})
    if brokers + servers <= 1:
        return [(files[0].parts[:depth] if files else (), files)]
    children: dict[str, list[_File]] = {}
    direct: list[_File] = []
    for f in files:
        if len(f.parts) > depth + 1:
            children.setdefault(f.parts[depth], []).append(f)
        else:
            direct.append(f)
    held = [(name, members) for name, members in children.items() if any(m.anchor for m in members)]
    if not held or (len(held) == 1 and not any(f.anchor for f in direct)):
        if len(held) == 1:
            return [*_split(held[0][1], depth + 1), ((), [f for f in files if f not in held[0][1]])]
        return [(files[0].parts[:depth], files)]
    out: list[tuple[tuple[str, ...], list[_File]]] = []
    shared = list(direct)
    for members in children.values():
        if any(m.anchor for m in members):
            out.extend(_split(members, depth + 1))
        else:
            shared.extend(members)
    out.append(((), shared))
    return out


def _syslog_name(log: LogFile) -> str | None:
    names = {e.host for e in log.peek_events() if e.host}
    return names.pop() if len(names) == 1 else None


def _ports(log: LogFile, fields: Sequence[str]) -> set[int]:
    found: set[int] = set()
    for event in log.peek_events():
        for name in fields:
            value = event.fields.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                found.add(value)
            elif isinstance(value, str) and value.isdigit():
                found.add(int(value))
    return found


def _addresses(log: LogFile) -> set[str]:
    """The addresses and host names a client's first lines say it dials."""
    found: set[str] = set()
    for event in log.peek_events():
        for name in _DIAL_ADDRESSES:
            value = event.fields.get(name)
            if isinstance(value, str) and value:
                found.add(value.strip("[]").lower())
    return found


def plan_hosts(bundle: Bundle, artifacts: Artifacts, logs: Sequence[LogFile]) -> HostPlan:
    """Group the bundle into hosts and give each its artifacts. With more than one host, broker
    sources are named `broker:<host>` and log names two hosts share are told apart by `@<host>`
    (so the stitcher and the clock estimate never mix two machines' lines)."""
    included = {f for conf in artifacts.confs for f in conf.files[1:]}
    files: dict[str, _File] = {}

    def add(display: str) -> _File:
        entry = files.get(display)
        if entry is None:
            entry = files[display] = _File(display, _parts(display))
        return entry

    for conf in artifacts.confs:
        entry = add(artifacts.name(conf.path))
        if conf.path not in included:
            entry.anchor = ("conf", *entry.parts[:-1], "")
    syslog: dict[str, str | None] = {}
    for log in logs:
        entry = add(log.info.path)
        name = syslog[log.info.path] = _syslog_name(log)
        source = log.info.source
        if is_broker_source(source):
            entry.anchor = ("broker", *entry.parts[:-1], name or "")
        elif source.startswith("opcua-server:"):
            entry.anchor = ("server", *entry.parts[:-1], name or "")
    for path in (*bundle.certs, *bundle.acls, *bundle.passwds):
        add(bundle.name(path))
    pki_names = {str(root): _display_dir(bundle, root) for root in bundle.pki_roots}
    for shown in pki_names.values():
        add(shown)

    split = _split(list(files.values()), 0)
    roots = [(root, members) for root, members in split if root and members]
    # a folder no sub-folder separates, holding brokers that name different syslog hosts
    by_syslog: list[tuple[tuple[str, ...], list[_File], str]] = []
    for root, members in split:
        names = {a[-1] for m in members if (a := m.anchor) is not None and a[0] == "broker" and a[-1]}
        if len(names) > 1:
            for n in sorted(names):
                by_syslog.append((root, [m for m in members if syslog.get(m.display) == n], n))
    if len(roots) <= 1 and not by_syslog:
        return _single(artifacts, logs, syslog)

    hosts: dict[str, Host] = {}
    member_of: dict[str, str] = {}
    for root, members in roots:
        if any(r == root for r, _, _ in by_syslog):
            continue
        last = root[-1]
        name = _host_name(last)
        if name in hosts:  # two folders of one name (site-a/broker, site-b/broker): the longer name
            name = "/".join(_host_name(p) for p in root)
        how = "archive" if last.endswith("!") else "folder"
        host = hosts.setdefault(name, Host(name, how, "/".join(root).replace("!/", "!")))
        for m in members:
            member_of[m.display] = host.name
    for root, members, name in by_syslog:
        host = hosts.setdefault(name, Host(name, "syslog host name", "/".join(root).replace("!/", "!")))
        for m in members:
            member_of[m.display] = host.name
    # a log whose syslog lines name a host of the bundle joins it
    for log in logs:
        name = syslog.get(log.info.path)
        if name and name in hosts:
            member_of[log.info.path] = name
    return _finish(list(hosts.values()), member_of, artifacts, logs, syslog, pki_names)


def _single(artifacts: Artifacts, logs: Sequence[LogFile], syslog: dict[str, str | None]) -> HostPlan:
    # named only by what the lines say: the name a folder or upload happens to have differs
    # between surfaces (the API stores an upload under a name of its own)
    names = {n for n in syslog.values() if n}
    name, how = (names.pop(), "syslog host name") if len(names) == 1 else ("", "the whole bundle")
    host = Host(name, how, artifacts=_conf_named(artifacts), has_conf=bool(artifacts.confs))
    host.logs = [log.info.path for log in logs]
    host.sources = list(dict.fromkeys(log.info.source for log in logs))
    host.syslog_names = {n for n in syslog.values() if n}
    for log in logs:
        if is_broker_source(log.info.source):
            host.ports |= _ports(log, _LISTEN_PORTS)
    host.ports |= {lst.port for conf in artifacts.confs for lst in conf.listeners}
    return HostPlan([host], {source: name for source in host.sources})


def _finish(hosts: list[Host], member_of: dict[str, str], artifacts: Artifacts, logs: Sequence[LogFile],
            syslog: dict[str, str | None], pki_names: dict[str, str]) -> HostPlan:
    by_name = {h.name: h for h in hosts}
    # what a mosquitto.conf names belongs to its host, wherever it sits
    for conf in artifacts.confs:
        owner = member_of.get(artifacts.name(conf.path))
        if owner is None:
            continue
        for ref in conf.referenced_files:
            if ref.found is not None:
                member_of[artifacts.name(ref.found)] = owner
    for host in hosts:
        host.artifacts = _artifacts_of(host.name, member_of, artifacts, pki_names)
        host.own = _artifacts_of(host.name, member_of, artifacts, pki_names, own_only=True)
        host.has_conf = bool(host.artifacts.confs)
        host.ports |= {lst.port for conf in host.artifacts.confs for lst in conf.listeners}
    plan = HostPlan(hosts, shared=_artifacts_of("", member_of, artifacts, pki_names))
    # sources: a broker's is named by its host; a name two hosts share is told apart
    taken: dict[str, str] = {}
    for log in logs:
        owner = member_of.get(log.info.path)
        source = log.info.source
        if is_broker_source(source) and owner is not None:
            source = f"broker:{owner}"
        elif source in taken and taken[source] != owner and owner is not None:
            source = f"{source}@{owner}"
        taken.setdefault(source, owner or "")
        _rename(log, source)
        mine = by_name.get(owner or "")
        if mine is None:
            continue
        host = mine
        host.logs.append(log.info.path)
        if source not in host.sources:
            host.sources.append(source)
        if syslog.get(log.info.path):
            host.syslog_names.add(str(syslog[log.info.path]))
        plan.home[source] = host.name
        if is_broker_source(source):
            host.ports |= _ports(log, _LISTEN_PORTS)
    brokers = {h.name: [s for s in h.sources if is_broker_source(s)] for h in hosts}
    for log in logs:
        source = log.info.source
        if is_broker_source(source):
            continue
        dialed = _ports(log, _DIAL_PORTS)
        reached = [name for name, h in by_name.items() if brokers[name] and h.ports & dialed]
        if len(reached) > 1:
            # brokers of several machines on one port (1883 everywhere): the address it dials
            # decides, when a broker binds it or is named so
            addresses = _addresses(log)
            named = [name for name in reached if addresses & by_name[name].addresses()]
            reached = named or reached
        if reached:
            plan.reach[source] = frozenset(s for name in reached for s in brokers[name])
            if source not in plan.home and len(reached) == 1:
                # a client log no host folder holds belongs with the broker it talks to
                plan.home[source] = reached[0]
                by_name[reached[0]].logs.append(log.info.path)
                by_name[reached[0]].sources.append(source)
    return plan


def _conf_named(artifacts: Artifacts) -> Artifacts:
    """The bundle's artifacts as one host's: with a mosquitto.conf, only the ACL and password files
    it names are the broker's (mosquitto reads no other)."""
    if not artifacts.confs:
        return artifacts
    named = {artifacts.name(ref.found) for c in artifacts.confs for ref in c.referenced_files if ref.found is not None}
    if all(artifacts.name(a.path) in named for a in artifacts.acls) and all(
            artifacts.name(p.path) in named for p in artifacts.passwds):
        return artifacts
    return replace(artifacts, acls=[a for a in artifacts.acls if artifacts.name(a.path) in named],
                   passwds=[p for p in artifacts.passwds if artifacts.name(p.path) in named])


def _rename(log: LogFile, source: str) -> None:
    if source != log.info.source:
        log.parser.source = source
        log.info.source = source


def _display_dir(bundle: Bundle, root: Path) -> str:
    """A folder's display path (a bundle names files only), from a file under it."""
    for path, shown in bundle.display.items():
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        return shown[: len(shown) - len(str(rel))]
    return str(root) + "/"


def _artifacts_of(name: str, member_of: dict[str, str], artifacts: Artifacts,
                  pki_names: dict[str, str], *, own_only: bool = False) -> Artifacts:
    """A host's artifacts: its own, and the certificates and keys no host claims. With a
    mosquitto.conf, ACL and password files are only the ones the conf names."""
    def mine(path: str) -> bool:
        return member_of.get(artifacts.name(path)) == name

    def shared(path: str) -> bool:
        return not own_only and artifacts.name(path) not in member_of

    confs = [c for c in artifacts.confs if mine(c.path)]
    named = {artifacts.name(ref.found) for c in confs for ref in c.referenced_files if ref.found is not None}
    # what is not sorted by host here (the clients' own configurations) every host sees
    arts = replace(artifacts, confs=confs, acls=[], passwds=[], errors=[])
    own_certs: list[CertFacts] = [c for c in artifacts.certs if mine(c.path)]
    arts.certs = own_certs + [c for c in artifacts.certs if shared(c.path)]
    arts.keys = [k for k in artifacts.keys if mine(k.path)] + [k for k in artifacts.keys if shared(k.path)]
    if not name:
        pass  # lines whose broker is not known are judged by no broker's ACL or password file
    elif confs:
        arts.acls = [a for a in artifacts.acls if artifacts.name(a.path) in named]
        arts.passwds = [p for p in artifacts.passwds if artifacts.name(p.path) in named]
    else:
        arts.acls = [a for a in artifacts.acls if mine(a.path) or shared(a.path)]
        arts.passwds = [p for p in artifacts.passwds if mine(p.path) or shared(p.path)]
    pki = [(s, pki_names.get(str(s.root), str(s.root))) for s in artifacts.pki]
    arts.pki = [s for s, shown in pki if member_of.get(shown, name) == name]
    return arts
