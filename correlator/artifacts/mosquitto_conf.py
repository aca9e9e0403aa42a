"""mosquitto.conf as mosquitto 2.0 reads it: which listeners exist, which of them speak TLS, which
security settings really apply to each, and what in the file mosquitto would refuse.

The rules below were read from mosquitto's conf.c and checked against a real 2.0.11 broker
(tests/artifacts/test_mosquitto_conf.py starts mosquitto on confs this parser accepts and
rejects). The ones that surprise people in the field:

- Only a line whose first character is '#' is a comment; an indented '# ...' is the unknown
  option '#'. Fields are split on spaces only: a tab makes the whole line one unknown word.
- A trailing '# comment' is ignored after yes/no and number values but becomes part of a path
  (`password_file /etc/x # old` opens the file '/etc/x # old').
- `per_listener_settings true` must come before every security option, else mosquitto refuses
  to start. With it false (the default), allow_anonymous, password_file, acl_file, psk_file,
  plugins, auto_id_prefix and allow_zero_length_clientid are global wherever they stand; with it
  true they belong to the listener they follow.
- Options before the first `listener` line belong to the *default listener*. Listener options
  there (certfile, require_certificate, max_connections, password_file and psk_file under
  per_listener_settings, `port`, `bind_address`, ...) create it, on `port` or 1883, on every
  interface, beside the listeners the file declares. `allow_anonymous` and `acl_file` do not
  create it: under per_listener_settings true they are then silently lost, and the listener
  below them keeps allow_anonymous false.
- No listener at all: "local only mode", 1883 on loopback, and anonymous clients are allowed
  even when allow_anonymous false or a password_file is set.
- allow_anonymous defaults to false.
- TLS is on for a listener when it has both certfile and keyfile (or a psk_hint); a certfile
  alone starts a plain listener.
- Two listeners on the same port start, then the second fails to bind and mosquitto exits.

Every setting keeps the file and line it came from. Paths in a customer's conf are paths on
their machine (`/etc/mosquitto/certs/server.pem`, `C:\\Users\\x\\certs\\server.pem`); they are
looked up in the bundle by the longest matching relative path, then by file name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

from correlator.artifacts.acl import AclFile, parse_acl
from correlator.artifacts.passwd import PasswdUser, PasswordFile, parse_passwd
from correlator.artifacts.textfile import decode_artifact, keyword_hint
from correlator.errors import ArtifactError

Severity = Literal["error", "warning"]

# -- the option catalogue --------------------------------------------------------------------

#: Options that per_listener_settings moves between global and per-listener scope.
SECURITY_OPTIONS = frozenset({
    "acl_file", "allow_anonymous", "allow_zero_length_clientid", "auto_id_prefix", "password_file",
    "plugin", "auth_plugin", "psk_file", "auth_plugin_deny_special_chars",
})
SECURITY_PREFIXES = ("plugin_opt_", "auth_opt_")

#: Options that belong to the listener they follow (or the default listener before the first).
LISTENER_OPTIONS = frozenset({
    "bind_address", "bind_interface", "cafile", "capath", "certfile", "keyfile", "ciphers", "ciphers_tls1.3",
    "crlfile", "dhparamfile", "http_dir", "max_connections", "max_qos", "max_topic_alias", "mount_point",
    "port", "protocol", "psk_hint", "require_certificate", "socket_domain", "tls_engine",
    "tls_engine_kpass_sha1", "tls_keyform", "tls_version", "use_identity_as_username",
    "use_subject_as_username", "use_username_as_clientid", "websockets_headers_size",
})

GLOBAL_OPTIONS = frozenset({
    "allow_duplicate_messages", "autosave_interval", "autosave_on_changes", "check_retain_source",
    "clientid_prefixes", "connection_messages", "include_dir", "log_dest", "log_facility", "log_timestamp",
    "log_timestamp_format", "log_type", "max_inflight_bytes", "max_inflight_messages", "max_keepalive",
    "max_packet_size", "max_queued_bytes", "max_queued_messages", "memory_limit", "message_size_limit",
    "per_listener_settings", "persistence", "persistence_file", "persistence_location",
    "persistent_client_expiration", "pid_file", "queue_qos0_messages", "retain_available", "retry_interval",
    "set_tcp_nodelay", "store_clean_interval", "sys_interval", "upgrade_outgoing_qos", "user",
    "websockets_log_level",
})

BRIDGE_OPTIONS = frozenset({
    "address", "addresses", "bridge_alpn", "bridge_attempt_unsubscribe", "bridge_bind_address", "bridge_cafile",
    "bridge_capath", "bridge_certfile", "bridge_identity", "bridge_insecure", "bridge_keyfile",
    "bridge_max_packet_size", "bridge_outgoing_retain", "bridge_protocol_version", "bridge_psk",
    "bridge_require_ocsp", "bridge_tls_version", "cleansession", "clientid", "idle_timeout",
    "keepalive_interval", "local_cleansession", "local_clientid", "local_password", "local_username",
    "notification_topic", "notifications", "notifications_local_only", "password", "remote_clientid",
    "remote_password", "remote_username", "restart_timeout", "round_robin", "start_type", "threshold", "topic",
    "try_private", "username",
})

BOOL_OPTIONS = frozenset({
    "allow_anonymous", "allow_duplicate_messages", "allow_zero_length_clientid", "autosave_on_changes",
    "auth_plugin_deny_special_chars", "check_retain_source", "connection_messages", "log_timestamp",
    "per_listener_settings", "persistence", "queue_qos0_messages", "require_certificate", "retain_available",
    "set_tcp_nodelay", "upgrade_outgoing_qos", "use_identity_as_username", "use_subject_as_username",
    "use_username_as_clientid", "bridge_attempt_unsubscribe", "bridge_insecure", "bridge_outgoing_retain",
    "bridge_require_ocsp", "cleansession", "local_cleansession", "notifications", "notifications_local_only",
    "round_robin", "try_private",
})

INT_OPTIONS = frozenset({
    "autosave_interval", "log_facility", "max_connections", "max_inflight_bytes", "max_inflight_messages",
    "max_keepalive", "max_packet_size", "max_qos", "max_queued_bytes", "max_queued_messages",
    "max_topic_alias", "memory_limit", "message_size_limit", "port", "retry_interval", "store_clean_interval",
    "sys_interval", "websockets_headers_size", "websockets_log_level", "bridge_max_packet_size",
    "idle_timeout", "keepalive_interval", "threshold",
})

#: Options whose value is a file (or folder) the broker opens: the ones worth finding in a bundle.
FILE_OPTIONS = frozenset({
    "cafile", "capath", "certfile", "keyfile", "crlfile", "dhparamfile", "password_file", "acl_file",
    "psk_file", "bridge_cafile", "bridge_capath", "bridge_certfile", "bridge_keyfile",
})
DIR_OPTIONS = frozenset({"capath", "bridge_capath", "include_dir"})

#: Options that may repeat (everything else that takes a string is a 'Duplicate' error).
REPEATABLE = frozenset({
    "log_dest", "log_type", "include_dir", "plugin", "auth_plugin", "topic", "address", "addresses",
    "listener", "connection", "bridge_psk", "bridge_identity",
})

#: Listener options that make mosquitto create the default listener when set before the first
#: `listener` line (confirmed on 2.0.11; allow_anonymous, acl_file, tls_version, http_dir and
#: max_topic_alias do not).
DEFAULT_LISTENER_TRIGGERS = frozenset({
    "bind_address", "bind_interface", "cafile", "capath", "certfile", "keyfile", "ciphers", "ciphers_tls1.3",
    "crlfile", "dhparamfile", "max_connections", "max_qos", "port", "protocol", "psk_hint",
    "require_certificate", "socket_domain", "tls_engine", "tls_engine_kpass_sha1", "tls_keyform",
    "use_identity_as_username", "use_subject_as_username", "use_username_as_clientid",
})
#: ... and, under per_listener_settings true, these security options too.
DEFAULT_LISTENER_SECURITY_TRIGGERS = frozenset({
    "password_file", "psk_file", "allow_zero_length_clientid", "plugin", "auth_plugin",
})

ENUMS: dict[str, frozenset[str]] = {
    "protocol": frozenset({"mqtt", "websockets"}),
    "socket_domain": frozenset({"ipv4", "ipv6"}),
    "tls_keyform": frozenset({"pem", "engine"}),
    "log_type": frozenset({"debug", "error", "warning", "notice", "information", "subscribe",
                           "unsubscribe", "websockets", "none", "all"}),
    "log_dest": frozenset({"stderr", "stdout", "syslog", "topic", "file", "dlt", "none"}),
}
#: Options mosquitto reads one word of (so a trailing comment is harmless), like yes/no and numbers.
FIRST_WORD_OPTIONS = frozenset({"log_type", "protocol", "socket_domain", "tls_keyform"})
#: tls_version is only applied when TLS starts, so a bad value passes config loading; we warn.
TLS_VERSIONS = frozenset({"tlsv1.3", "tlsv1.2", "tlsv1.1"})

LOCAL_ONLY_PORT = 1883


# -- result types ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Setting:
    """One option line as mosquitto reads it."""

    name: str
    value: str
    """The value mosquitto uses: the rest of the line for strings and paths (a trailing
    '# comment' included, as mosquitto does), the first word for yes/no and numbers."""
    file: str
    line: int

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def text(self) -> str:
        return f"{self.name} {self.value}".rstrip()


@dataclass(frozen=True, slots=True)
class ConfProblem:
    """Something wrong in the configuration. 'error': mosquitto refuses to start (or exits while
    opening listeners); 'warning': it starts, but not the way the author probably meant."""

    severity: Severity
    code: str
    """Stable short id: unknown_option, bad_value, empty_value, duplicate_value, duplicate_listener,
    order, lost_setting, default_listener, deprecated, missing_file, quoted_path, tls_incomplete,
    unreadable."""
    message: str
    file: str
    line: int | None = None

    def error(self) -> ArtifactError:
        return ArtifactError(self.message, file=self.file, line=self.line)

    def __str__(self) -> str:
        return str(self.error())


@dataclass(frozen=True, slots=True)
class ReferencedFile:
    """A file the conf points to, and where (if anywhere) it is in the bundle."""

    setting: Setting
    found: Path | None
    how: Literal["exact", "relative", "basename", "missing"]
    candidates: tuple[Path, ...] = ()
    """Every bundle file with the same name, when the name alone had to decide."""

    @property
    def option(self) -> str:
        return self.setting.name

    @property
    def missing(self) -> bool:
        return self.found is None


@dataclass
class Security:
    """The security settings in force for one listener (or globally)."""

    settings: dict[str, Setting] = field(default_factory=dict)
    extra: list[Setting] = field(default_factory=list)
    """plugin, plugin_opt_* and auth_opt_* lines, which may repeat."""
    local_only: bool = False

    def get(self, name: str) -> Setting | None:
        return self.settings.get(name)

    @property
    def allow_anonymous(self) -> bool:
        """Effective: mosquitto 2.0 defaults to false; local only mode lets anonymous in."""
        if self.local_only:
            return True
        setting = self.settings.get("allow_anonymous")
        return setting is not None and _bool_value(setting.value) is True

    @property
    def password_file(self) -> Setting | None:
        return self.settings.get("password_file")

    @property
    def acl_file(self) -> Setting | None:
        return self.settings.get("acl_file")

    @property
    def psk_file(self) -> Setting | None:
        return self.settings.get("psk_file")

    @property
    def plugins(self) -> list[Setting]:
        return [s for s in self.extra if s.name in ("plugin", "auth_plugin")]


@dataclass
class Listener:
    port: int
    bind: str | None
    """Bind address (or, for port 0, a unix socket path); None means every interface."""
    origin: Literal["listener", "default", "local_only"]
    declared_at: Setting | None
    """The `listener` line (or the first option that created the default listener)."""
    settings: dict[str, Setting] = field(default_factory=dict)
    security: Security = field(default_factory=Security)
    """Effective security: the listener's own under per_listener_settings true, else global."""

    def get(self, name: str) -> Setting | None:
        return self.settings.get(name)

    def value(self, name: str) -> str | None:
        setting = self.settings.get(name)
        return setting.value if setting is not None else None

    @property
    def all_interfaces(self) -> bool:
        return self.bind in (None, "0.0.0.0", "::", "")

    @property
    def tls(self) -> bool:
        """TLS is on when certfile and keyfile are both set, or a PSK hint is."""
        return ("certfile" in self.settings and "keyfile" in self.settings) or "psk_hint" in self.settings

    @property
    def protocol(self) -> str:
        return self.value("protocol") or "mqtt"

    @property
    def require_certificate(self) -> bool:
        return _bool_value(self.value("require_certificate") or "false") is True

    @property
    def tls_version(self) -> str | None:
        return self.value("tls_version")

    @property
    def location(self) -> str:
        return self.declared_at.location if self.declared_at is not None else "built-in default"

    def describe(self) -> str:
        where = self.bind or "all interfaces"
        kind = "TLS" if self.tls else "plain"
        return f"{self.protocol} {kind} listener on {where} port {self.port} ({self.location})"


@dataclass
class Bridge:
    name: str
    declared_at: Setting
    settings: list[Setting] = field(default_factory=list)


@dataclass
class Config:
    path: str
    files: list[str] = field(default_factory=list)
    """Every conf file read, in reading order (include_dir files alphabetically)."""
    settings: list[Setting] = field(default_factory=list)
    """Every option line, in reading order."""
    global_settings: dict[str, Setting] = field(default_factory=dict)
    global_security: Security = field(default_factory=Security)
    per_listener_settings: bool = False
    listeners: list[Listener] = field(default_factory=list)
    bridges: list[Bridge] = field(default_factory=list)
    referenced_files: list[ReferencedFile] = field(default_factory=list)
    problems: list[ConfProblem] = field(default_factory=list)

    @property
    def local_only(self) -> bool:
        return any(lst.origin == "local_only" for lst in self.listeners)

    @property
    def starts(self) -> bool:
        """False when a problem would stop mosquitto from starting."""
        return not any(p.severity == "error" for p in self.problems)

    @property
    def errors(self) -> list[ConfProblem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def missing_files(self) -> list[ReferencedFile]:
        return [r for r in self.referenced_files if r.missing]

    def listeners_on_port(self, port: int) -> list[Listener]:
        return [lst for lst in self.listeners if lst.port == port]

    def listener_for_port(self, port: int, address: str | None = None) -> Listener | None:
        """The listener that serves a connection to `port` (on `address`, when the client's
        target address is known): a listener bound to that address first, then one on all
        interfaces."""
        candidates = self.listeners_on_port(port)
        if address is not None:
            for lst in candidates:
                if lst.bind == address:
                    return lst
            for lst in candidates:
                if lst.all_interfaces:
                    return lst
            return None
        return candidates[0] if candidates else None

    def tls_on_port(self, port: int, address: str | None = None) -> bool | None:
        """True/False for the listener on that port, None when no listener serves it."""
        lst = self.listener_for_port(port, address)
        return lst.tls if lst is not None else None

    def file_for(self, option: str, listener: Listener | None = None) -> ReferencedFile | None:
        """The bundle file behind an option, e.g. the certfile of a listener."""
        setting = (listener.get(option) or listener.security.get(option)) if listener else None
        setting = setting or self.global_settings.get(option) or self.global_security.get(option)
        if setting is None:
            return None
        for ref in self.referenced_files:
            if ref.setting == setting:
                return ref
        return None


    def acl_for(self, listener: Listener) -> AclFile | None:
        """The parsed acl_file in force on this listener; None when there is none or it is not in
        the bundle (see `missing_files`). Without an acl_file mosquitto allows every topic."""
        ref = self.file_for("acl_file", listener)
        if ref is None or ref.found is None:
            return None
        return parse_acl(ref.found, display_name=str(ref.found))

    def passwd_for(self, listener: Listener) -> PasswordFile | None:
        """The parsed password_file in force on this listener (user names only)."""
        ref = self.file_for("password_file", listener)
        if ref is None or ref.found is None:
            return None
        return parse_passwd(ref.found, display_name=str(ref.found))


    def login_verdict(self, listener: Listener, username: str | None, *, password_given: bool = True,
                      passwd: PasswordFile | None = None) -> LoginVerdict:
        """What mosquitto 2.0's built-in check does with a CONNECT on this listener, so a
        'not authorised' can be named: anonymous refused, no password_file at all, unknown user,
        unusable entry, or (known user) a wrong password. `passwd` defaults to the listener's
        password_file from the bundle. Confirmed against 2.0.11 for every branch but plugins."""
        sec = listener.security
        anon = sec.get("allow_anonymous")
        pw_setting = sec.password_file
        evidence = tuple(s for s in (anon, pw_setting) if s is not None)
        if sec.plugins:
            return LoginVerdict(None, "plugin", "an auth plugin decides logins on this listener", evidence)
        identity = any(_bool_value(listener.value(o) or "") for o in ("use_identity_as_username",
                                                                      "use_subject_as_username"))
        if listener.tls and identity:
            return LoginVerdict(None, "certificate_identity", "the username comes from the client certificate "
                                "on this listener, not from the CONNECT", evidence)
        if username is None:
            if sec.allow_anonymous:
                return LoginVerdict(True, "anonymous_allowed", "anonymous clients are allowed", evidence)
            why = ("allow_anonymous is false" if anon is not None
                   else "allow_anonymous is not set and mosquitto 2.0 defaults it to false")
            return LoginVerdict(False, "anonymous_denied", f"the client sent no username and {why}", evidence)
        if pw_setting is None:
            if sec.allow_anonymous:
                return LoginVerdict(True, "unchecked", "no password_file: with allow_anonymous true any "
                                    "username and password are accepted", evidence)
            return LoginVerdict(False, "no_password_file", "allow_anonymous is false and there is no "
                                "password_file, so mosquitto refuses every client, with or without a username",
                                evidence)
        users = passwd if passwd is not None else self.passwd_for(listener)
        if users is None:
            return LoginVerdict(None, "password_file_missing", f"the password_file {pw_setting.value!r} is not "
                                "in the bundle, so unknown user and wrong password cannot be told apart", evidence)
        entry = users.user(username)
        if entry is None:
            return LoginVerdict(False, "unknown_user", f"user {username!r} is not in the password_file "
                                f"({users.path}), so mosquitto refuses it whatever the password", evidence)
        if not entry.usable:
            return LoginVerdict(False, "unusable_entry", f"the password_file entry for {username!r} at "
                                f"{entry.location} is not a mosquitto hash, so mosquitto dropped it", evidence,
                                entry)
        if not password_given:
            return LoginVerdict(False, "no_password", f"user {username!r} exists but the client sent no "
                                "password", evidence, entry)
        return LoginVerdict(None, "known_user", f"user {username!r} exists ({entry.location}); if mosquitto "
                            "refused the login, the password was wrong", evidence, entry)


@dataclass(frozen=True, slots=True)
class LoginVerdict:
    accepted: bool | None
    """True/False when the configuration alone decides; None when it depends on the password (or
    on a plugin, or on a file the bundle lacks)."""
    cause: str
    """anonymous_allowed, anonymous_denied, unchecked, no_password_file, password_file_missing,
    unknown_user, unusable_entry, no_password, known_user, certificate_identity, plugin."""
    explanation: str
    evidence: tuple[Setting, ...] = ()
    user_entry: PasswdUser | None = None


# -- parsing ---------------------------------------------------------------------------------

def parse_mosquitto_conf(path: str | os.PathLike[str], *, bundle_root: str | os.PathLike[str] | None = None,
                         display_name: str | None = None) -> Config:
    """Parse a mosquitto.conf and the include_dir files it names. `bundle_root` is the folder the
    customer's files were unpacked to (default: the conf's folder); referenced files are looked
    up there. Never raises for bad input: problems are collected in `Config.problems`."""
    conf_path = Path(path)
    root = Path(bundle_root) if bundle_root is not None else conf_path.parent
    name = display_name or str(conf_path)
    parser = _Parser(name, root, conf_path.parent)
    parser.read_file(conf_path, name, depth=0)
    return parser.finish()


def parse_mosquitto_conf_text(text: str | bytes, name: str = "mosquitto.conf", *,
                              bundle_root: str | os.PathLike[str] | None = None) -> Config:
    """Parse conf text. include_dir and file references resolve against `bundle_root`; without
    one nothing is looked up (and nothing is reported missing)."""
    root = Path(bundle_root) if bundle_root is not None else None
    parser = _Parser(name, root, root)
    parser.read_text(text, name, depth=0)
    return parser.finish()


@dataclass
class _Scope:
    """Where options go while reading: the current listener (or default listener) and bridge."""

    listener: Listener
    bridge: Bridge | None = None


class _Parser:
    def __init__(self, name: str, root: Path | None, conf_dir: Path | None) -> None:
        self.config = Config(name)
        self.root = root
        self.conf_dir = conf_dir
        self.default = Listener(LOCAL_ONLY_PORT, None, "default", None)
        self.default_needed: Setting | None = None
        self.scope = _Scope(self.default)
        self.security_seen: Setting | None = None
        self.default_security = Security()
        self._index: list[Path] | None = None

    # reading

    def read_file(self, path: Path, name: str, depth: int) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.problem("error", "unreadable", f"cannot read config file: {exc.strerror or exc}", name, None)
            return
        self.read_text(data, name, depth)

    def read_text(self, data: str | bytes, name: str, depth: int) -> None:
        self.config.files.append(name)
        text = decode_artifact(data)
        if text is None:
            self.problem("error", "unreadable", "binary file, not a mosquitto config file", name, 1)
            return
        for number, raw in enumerate(text.split("\n"), start=1):
            if not raw or raw[0] in "#\r":
                continue
            line = raw.rstrip()
            words = [w for w in line.split(" ") if w]
            if not words:
                continue
            self.option(words[0], line, name, number, depth)

    # one option

    def option(self, key: str, line: str, file: str, number: int, depth: int) -> None:
        rest = _rest_after(line, 1)
        first = rest.split(" ", 1)[0] if rest else ""
        known = (key in SECURITY_OPTIONS or key in LISTENER_OPTIONS or key in GLOBAL_OPTIONS
                 or key in BRIDGE_OPTIONS or key in ("listener", "connection")
                 or key.startswith(SECURITY_PREFIXES))
        if not known:
            hint = keyword_hint(key)
            if not hint and key == "pattern":
                hint = " (ACL lines belong in the acl_file, not in mosquitto.conf)"
            self.problem("error", "unknown_option", f"unknown option {key!r}{hint}: mosquitto refuses to start",
                         file, number)
            return
        one_word = key in BOOL_OPTIONS or key in INT_OPTIONS or key in FIRST_WORD_OPTIONS
        value = first if one_word else rest
        setting = Setting(key, value, file, number)
        self.config.settings.append(setting)

        if key == "listener":
            self.new_listener(setting, rest)
            return
        if key == "connection":
            if not value:
                self.problem("error", "empty_value", "connection without a name", file, number)
                return
            bridge = Bridge(value, setting)
            self.config.bridges.append(bridge)
            self.scope.bridge = bridge
            return
        if not value:
            self.problem("error", "empty_value", f"empty {key} value: mosquitto refuses to start", file, number)
            return
        if not self.check_value(setting):
            return
        if key == "include_dir":
            self.include_dir(setting, depth)
            return
        if key == "per_listener_settings":
            if self.security_seen is not None and _bool_value(value):
                self.problem("error", "order", f"per_listener_settings true after the security option at "
                             f"{self.security_seen.location}: mosquitto refuses to start (it must come first)",
                             file, number)
            self.config.per_listener_settings = bool(_bool_value(value))
            self.config.global_settings[key] = setting
            return
        if key in BRIDGE_OPTIONS:
            if self.scope.bridge is None:
                hint = (" (this looks like an ACL line: put it in the acl_file)" if key == "topic" else "")
                self.problem("error", "bad_value", f"{key} outside a bridge `connection` section{hint}: "
                             "mosquitto refuses to start", file, number)
                return
            self.scope.bridge.settings.append(setting)
            self.reference(setting)
            return
        if key in SECURITY_OPTIONS or key.startswith(SECURITY_PREFIXES):
            self.security_seen = self.security_seen or setting
            self.security_option(setting)
            return
        if key in LISTENER_OPTIONS:
            self.listener_option(setting)
            return
        self.global_option(setting)

    def check_value(self, setting: Setting) -> bool:
        key, value, file, number = setting.name, setting.value, setting.file, setting.line
        if key in BOOL_OPTIONS and _bool_value(value) is None:
            self.problem("error", "bad_value", f"invalid {key} value {value!r} (true or false): mosquitto refuses "
                         "to start", file, number)
            return False
        if key in INT_OPTIONS and not re.fullmatch(r"-?[0-9]+", value):
            self.problem("warning", "bad_value", f"{key} value {value!r} is not a number; mosquitto reads it as 0",
                         file, number)
        if key == "max_qos" and value not in ("0", "1", "2"):
            self.problem("error", "bad_value", "max_qos must be 0, 1 or 2: mosquitto refuses to start",
                         file, number)
            return False
        if key == "port" and not _valid_port(value, allow_zero=False):
            self.problem("error", "bad_value", f"invalid port {value!r}: mosquitto refuses to start", file, number)
            return False
        if key in FIRST_WORD_OPTIONS and value not in ENUMS[key]:
            self.problem("error", "bad_value", f"invalid {key} value {value!r} "
                         f"({', '.join(sorted(ENUMS[key]))}): mosquitto refuses to start", file, number)
            return False
        if key == "log_dest":
            kind = value.split(" ")[0]
            if kind not in ENUMS["log_dest"]:
                self.problem("error", "bad_value", f"invalid log_dest {kind!r}: mosquitto refuses to start",
                             file, number)
                return False
            if kind == "file" and not _rest_after(value, 1):
                self.problem("error", "empty_value", "log_dest file without a path: mosquitto refuses to start",
                             file, number)
                return False
        if key == "tls_version" and value not in TLS_VERSIONS:
            self.problem("warning", "bad_value", f"tls_version {value!r} is not one of "
                         f"{', '.join(sorted(TLS_VERSIONS))}; mosquitto loads the config but TLS on this "
                         "listener will not start", file, number)
        return True

    # scopes

    def new_listener(self, setting: Setting, rest: str) -> None:
        words = rest.split(" ")
        words = [w for w in words if w]
        if not words:
            self.problem("error", "empty_value", "listener without a port: mosquitto refuses to start",
                         setting.file, setting.line)
            return
        port_text = words[0]
        bind = words[1] if len(words) > 1 and not words[1].startswith("#") else None
        if _is_number(port_text) and _digits(port_text) > 65535:
            self.problem("error", "bad_value", f"invalid listener port {port_text}: mosquitto refuses to start",
                         setting.file, setting.line)
            return
        if not _valid_port(port_text, allow_zero=True):
            self.problem("warning" if bind else "error", "bad_value",
                         f"listener port {port_text!r} is not a number: mosquitto reads it as 0"
                         + (f" and opens a unix socket at {bind!r}" if bind else ", which needs a socket path"),
                         setting.file, setting.line)
            if not bind:
                return
            port = 0
        else:
            port = _digits(port_text)
        for other in self.config.listeners:
            if other.port == port and port != 0 and _overlap(other.bind, bind):
                self.problem("error", "duplicate_listener", f"a second listener on port {port} (the first is at "
                             f"{other.location}): the second cannot bind and mosquitto exits",
                             setting.file, setting.line)
        listener = Listener(port, bind, "listener", setting)
        self.config.listeners.append(listener)
        self.scope = _Scope(listener, self.scope.bridge)  # bridge options may continue below

    def security_option(self, setting: Setting) -> None:
        if self.config.per_listener_settings:
            if self.scope.listener is self.default:
                target = self.default_security
                if setting.name in DEFAULT_LISTENER_SECURITY_TRIGGERS:
                    self.default_needed = self.default_needed or setting
            else:
                target = self.scope.listener.security
        else:
            target = self.config.global_security
        self.store(target, setting)
        self.reference(setting)

    def store(self, target: Security, setting: Setting) -> None:
        if setting.name in ("plugin", "auth_plugin") or setting.name.startswith(SECURITY_PREFIXES):
            target.extra.append(setting)
            return
        previous = target.settings.get(setting.name)
        if previous is not None and setting.name not in BOOL_OPTIONS:
            self.problem("error", "duplicate_value", f"duplicate {setting.name} (already set at "
                         f"{previous.location}): mosquitto refuses to start", setting.file, setting.line)
            return
        target.settings[setting.name] = setting

    def listener_option(self, setting: Setting) -> None:
        listener = self.scope.listener
        if setting.name == "mount_point" and listener is self.default:
            self.problem("error", "order", "mount_point before the first listener: mosquitto refuses to start",
                         setting.file, setting.line)
            return
        if listener is self.default and setting.name in DEFAULT_LISTENER_TRIGGERS:
            self.default_needed = self.default_needed or setting
        if setting.name in ("port", "bind_address") and listener is not self.default:
            # `port` and `bind_address` always set the default listener, wherever they stand.
            listener = self.default
            self.default_needed = self.default_needed or setting
        if setting.name == "port":
            self.problem("warning", "deprecated", "`port` is deprecated in mosquitto 2.0: it creates the default "
                         "listener on every interface; use `listener PORT [ADDRESS]`", setting.file, setting.line)
        previous = listener.settings.get(setting.name)
        if previous is not None and setting.name not in BOOL_OPTIONS and setting.name not in INT_OPTIONS:
            self.problem("error", "duplicate_value", f"duplicate {setting.name} (already set at "
                         f"{previous.location}): mosquitto refuses to start", setting.file, setting.line)
            return
        listener.settings[setting.name] = setting
        self.reference(setting)

    def global_option(self, setting: Setting) -> None:
        previous = self.config.global_settings.get(setting.name)
        if setting.name in REPEATABLE:
            self.config.global_settings.setdefault(setting.name, setting)
            return
        if (previous is not None and setting.name not in BOOL_OPTIONS and setting.name not in INT_OPTIONS):
            hint = ""
            if setting.name == "user":
                hint = (" (`user` in mosquitto.conf is the account mosquitto runs as; ACL `user` sections "
                        "belong in the acl_file)")
            self.problem("error", "duplicate_value", f"duplicate {setting.name} (already set at "
                         f"{previous.location}){hint}: mosquitto refuses to start", setting.file, setting.line)
            return
        self.config.global_settings[setting.name] = setting

    def include_dir(self, setting: Setting, depth: int) -> None:
        if depth > 5:
            self.problem("error", "bad_value", "include_dir nested too deeply", setting.file, setting.line)
            return
        folder = self.resolve(setting.value, want_dir=True, setting=setting)
        if folder.found is None:
            if self.root is None:
                return
            self.problem("warning", "missing_file", f"include_dir {setting.value!r} is not in the bundle: the "
                         "settings in it are unknown", setting.file, setting.line)
            return
        try:
            names = sorted(p.name for p in folder.found.iterdir() if p.name.endswith(".conf") and p.is_file())
        except OSError as exc:
            self.problem("error", "unreadable", f"cannot list include_dir: {exc.strerror or exc}",
                         setting.file, setting.line)
            return
        for child in names:
            self.read_file(folder.found / child, str(folder.found / child), depth + 1)

    # file references

    def reference(self, setting: Setting) -> None:
        if setting.name not in FILE_OPTIONS:
            return
        if setting.value[:1] in "\"'" or setting.value[-1:] in "\"'":
            self.problem("error", "quoted_path", f"{setting.name} {setting.value}: mosquitto keeps the quotes as "
                         "part of the file name and cannot open it; write the path without quotes",
                         setting.file, setting.line)
        ref = self.resolve(setting.value, want_dir=setting.name in DIR_OPTIONS, setting=setting)
        self.config.referenced_files.append(ref)
        if ref.missing and self.root is not None:
            self.problem("warning", "missing_file", f"{setting.name} {setting.value!r} is not in the bundle",
                         setting.file, setting.line)

    def resolve(self, value: str, *, want_dir: bool, setting: Setting | None = None) -> ReferencedFile:
        ref_setting = setting or Setting("include_dir", value, "", 0)
        parts = _path_parts(value)

        def ok(p: Path) -> bool:
            try:
                return p.is_dir() if want_dir else p.is_file()
            except OSError:
                return False  # a name no file system takes (too long): no such file

        if not parts or self.root is None:
            return ReferencedFile(ref_setting, None, "missing")
        literal = Path(value)
        if literal.is_absolute() and ok(literal) and _inside(literal, self.root):
            return ReferencedFile(ref_setting, literal, "exact")
        if not _is_absolute(value) and self.conf_dir is not None and "\\" not in value:
            # relative to the conf's folder as mosquitto reads it, `..` included (a bundle of
            # several brokers has many `../certs/server.pem`: only this one is this broker's)
            literal = Path(os.path.normpath(self.conf_dir / value.strip().strip('"')))
            if ok(literal) and _inside(literal, self.root):
                return ReferencedFile(ref_setting, literal, "exact")
        if not _is_absolute(value):
            for base in (self.conf_dir or self.root, self.root):
                candidate = base.joinpath(*parts)
                if ok(candidate):
                    return ReferencedFile(ref_setting, candidate, "exact")
        for start in range(len(parts)):
            candidate = self.root.joinpath(*parts[start:])
            if ok(candidate):
                return ReferencedFile(ref_setting, candidate, "exact" if start == 0 else "relative")
        if want_dir:
            return ReferencedFile(ref_setting, None, "missing")
        filename = parts[-1].lower()
        same = [p for p in self.index() if p.name.lower() == filename]
        if not same:
            return ReferencedFile(ref_setting, None, "missing")
        same.sort(key=lambda p: (-_common_suffix(p.parts, parts), len(p.parts), str(p)))
        return ReferencedFile(ref_setting, same[0], "basename", tuple(same) if len(same) > 1 else ())

    def index(self) -> list[Path]:
        if self._index is None:
            found: list[Path] = []
            if self.root is None:
                return found
            for count, p in enumerate(_walk(self.root)):
                if count > 50000:
                    break
                found.append(p)
            self._index = found
        return self._index

    # the end

    def finish(self) -> Config:
        config = self.config
        if self.default_needed is not None:
            port_setting = self.default.settings.get("port")
            self.default.port = _digits(port_setting.value) if port_setting and _is_number(port_setting.value) else 1883
            bind = self.default.settings.get("bind_address")
            self.default.bind = bind.value if bind is not None else None
            self.default.declared_at = self.default_needed
            self.default.security = self.default_security
            for other in config.listeners:
                if other.port == self.default.port and _overlap(other.bind, self.default.bind):
                    self.problem("error", "duplicate_listener", f"the default listener (created by "
                                 f"{self.default_needed.text!r} at {self.default_needed.location}) and the listener "
                                 f"at {other.location} both use port {other.port}: mosquitto exits",
                                 self.default_needed.file, self.default_needed.line)
            if config.listeners:
                self.problem("warning", "default_listener", f"{self.default_needed.text!r} comes before the first "
                             f"listener, so mosquitto also opens a default listener on port {self.default.port} "
                             "on every interface", self.default_needed.file, self.default_needed.line)
            config.listeners.insert(0, self.default)
        elif self.config.per_listener_settings:
            lost = (list(self.default_security.settings.values()) + self.default_security.extra
                    + list(self.default.settings.values()))
            for setting in lost:
                self.problem("warning", "lost_setting", f"{setting.text!r} comes before the first listener with "
                             "per_listener_settings true, so it applies to no listener (mosquitto ignores it)",
                             setting.file, setting.line)
        if not config.listeners:
            local = Security(local_only=True)
            local.settings = dict(config.global_security.settings)
            local.extra = list(config.global_security.extra)
            for address in ("127.0.0.1", "::1"):
                config.listeners.append(Listener(LOCAL_ONLY_PORT, address, "local_only", None, security=local))
        if not config.per_listener_settings:
            for listener in config.listeners:
                if listener.origin != "local_only":
                    listener.security = config.global_security
        for listener in config.listeners:
            self.listener_checks(listener)
        return config

    def listener_checks(self, listener: Listener) -> None:
        at = listener.declared_at
        file, line = (at.file, at.line) if at else (self.config.path, None)
        has_cert, has_key = "certfile" in listener.settings, "keyfile" in listener.settings
        if has_cert != has_key:
            present = "certfile" if has_cert else "keyfile"
            absent = "keyfile" if has_cert else "certfile"
            self.problem("warning", "tls_incomplete", f"{listener.describe()} has {present} but no {absent}: "
                         "mosquitto starts it without TLS", file, line)
        if not listener.tls:
            for option in ("cafile", "capath", "require_certificate", "use_identity_as_username",
                           "use_subject_as_username", "crlfile", "tls_version", "ciphers"):
                if option in listener.settings:
                    self.problem("warning", "tls_incomplete", f"{option} is set but {listener.describe()} has no "
                                 "TLS (certfile and keyfile are needed), so it has no effect", file, line)
                    break
        if listener.require_certificate and listener.tls and not (
                "cafile" in listener.settings or "capath" in listener.settings):
            self.problem("error", "tls_incomplete", f"{listener.describe()} requires client certificates but has "
                         "no cafile or capath to check them: the listener cannot start", file, line)

    def problem(self, severity: Severity, code: str, message: str, file: str, line: int | None) -> None:
        self.config.problems.append(ConfProblem(severity, code, message, file, line))


# -- helpers ---------------------------------------------------------------------------------

def _bool_value(text: str) -> bool | None:
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    return None


def _overlap(a: str | None, b: str | None) -> bool:
    """Would two listeners on one port fight over it? (A wildcard bind takes every address.)"""
    wildcard = (None, "0.0.0.0", "::", "")
    return a == b or a in wildcard or b in wildcard


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '¹' and friends, which int() refuses."""
    return re.fullmatch(r"[0-9]+", text) is not None


def _digits(text: str) -> int:
    """The value of ASCII digits; a run too long for int() (over 4,300 digits) is simply huge."""
    significant = text.lstrip("0")
    return int(significant or "0") if len(significant) <= 18 else 10**18


def _valid_port(text: str, *, allow_zero: bool) -> bool:
    if not _is_number(text):
        return False
    value = _digits(text)
    return (0 if allow_zero else 1) <= value <= 65535


def _rest_after(line: str, count: int) -> str:
    rest = line.lstrip(" ")
    for _ in range(count):
        cut = rest.find(" ")
        if cut < 0:
            return ""
        rest = rest[cut:].lstrip(" ")
    return rest.strip()


_WINDOWS = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def _is_absolute(value: str) -> bool:
    return value.startswith("/") or bool(_WINDOWS.match(value))


def _path_parts(value: str) -> list[str]:
    """The path's folder and file names without anchor, for POSIX and Windows spellings."""
    value = value.strip().strip('"')
    if "\\" in value or _WINDOWS.match(value):
        parts = list(PureWindowsPath(value).parts)
        if parts and (parts[0].endswith("\\") or parts[0].endswith(":")):
            parts = parts[1:]
    else:
        parts = [p for p in PurePosixPath(value).parts if p != "/"]
    return [p for p in parts if p not in ("", ".", "..")]


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def _common_suffix(a: tuple[str, ...], b: list[str]) -> int:
    count = 0
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x.lower() != y.lower():
            break
        count += 1
    return count


def _walk(root: Path) -> Iterator[Path]:
    try:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                yield Path(dirpath) / name
    except OSError:
        return
