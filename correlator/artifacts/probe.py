"""A live probe of a broker: TCP, then TLS, then (optionally) an MQTT 3.1.1 CONNECT, each step
reported with the same root-cause ids log analysis uses.

The TLS handshake does not verify: a verifying handshake stops at the first complaint and hands
back no certificate, while the point of the probe is to see the chain the broker really presents
and say everything that is wrong with it. The chain is then judged by `cert_checks` at "now" (or
an injected time), and the handshake goes on so that client-certificate and credential problems
behind a bad server certificate are found in the same run.

With TLS 1.3 the broker checks the client's certificate after the client's handshake has already
finished, so a missing or rejected client certificate only shows on the first read; the probe
always reads once after the handshake for that reason.
"""

from __future__ import annotations

import _ssl
import contextlib
import dataclasses
import functools
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from correlator.artifacts import cert_checks
from correlator.artifacts.certs import CertFacts, load_bytes, load_paths
from correlator.check_result import CheckResult
from correlator.errors import ProbeError
from correlator.formats.evidence import Vocabulary, load_vocabulary
from correlator.resources import builtin_dir

StepStatus = Literal["ok", "failed", "not_run"]

#: CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3) with the cause each one points to.
CONNACK_CODES: dict[int, tuple[str, str | None]] = {
    0: ("connection accepted", None),
    1: ("unacceptable protocol version", None),
    2: ("identifier rejected", "auth.client_id_rejected"),
    3: ("server unavailable", None),
    4: ("bad user name or password", "auth.bad_credentials"),
    5: ("not authorised", "auth.bad_credentials"),
}

@dataclass(frozen=True)
class MqttOutcome:
    """What the broker answered to our CONNECT."""

    status: StepStatus
    return_code: int | None = None
    meaning: str = ""
    session_present: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "return_code": self.return_code, "meaning": self.meaning,
                "session_present": self.session_present}


@dataclass(frozen=True)
class Problem:
    """One thing the probe found wrong."""

    cause: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"cause": self.cause, "message": self.message}


@dataclass(frozen=True)
class ProbeResult:
    """Everything one probe learnt. `causes` lists every root cause found, most blocking first (the
    one a real client would hit first); `cause` is the first of them or None when all is well."""

    host: str
    port: int
    tls: bool
    servername: str | None
    tcp: StepStatus
    tls_handshake: StepStatus
    message: str
    causes: tuple[str, ...] = ()
    tls_version: str | None = None
    cipher: str | None = None
    tls_error: str | None = None
    chain: tuple[CertFacts, ...] = ()
    checks: tuple[CheckResult, ...] = ()
    mqtt: MqttOutcome | None = None
    notes: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    """Every problem found, in plain words, with its cause where one applies (an unresolvable
    host name has none)."""
    elapsed_ms: int = 0
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def cause(self) -> str | None:
        return self.causes[0] if self.causes else None

    @property
    def ok(self) -> bool:
        return not self.causes and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "tls": self.tls,
            "servername": self.servername,
            "ok": self.ok,
            "cause": self.cause,
            "causes": list(self.causes),
            "message": self.message,
            "tcp": self.tcp,
            "tls_handshake": self.tls_handshake,
            "tls_version": self.tls_version,
            "cipher": self.cipher,
            "tls_error": self.tls_error,
            "chain": [c.to_dict() for c in self.chain],
            "checks": [c.to_dict() for c in self.checks],
            "mqtt": self.mqtt.to_dict() if self.mqtt is not None else None,
            "problems": [p.to_dict() for p in self.problems],
            "notes": list(self.notes),
            "elapsed_ms": self.elapsed_ms,
            "at": self.at.isoformat().replace("+00:00", "Z"),
        }


# ---------------------------------------------------------------------------------------------
# MQTT packets (3.1.1), written by hand: the probe needs two packets and no client library


def _utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def connect_packet(client_id: str, *, username: str | None = None, password: str | None = None,
                   keepalive: int = 30) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session."""
    flags = 0x02
    payload = _utf8(client_id)
    if username is not None:
        flags |= 0x80
        payload += _utf8(username)
        if password is not None:
            flags |= 0x40
            payload += _utf8(password)
    variable = _utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    body = variable + payload
    return bytes([0x10]) + _remaining_length(len(body)) + body


DISCONNECT = bytes([0xE0, 0x00])


def parse_connack(data: bytes) -> tuple[bool, int]:
    """(session present, return code) of a CONNACK; ValueError when the bytes are not one."""
    if len(data) < 4 or data[0] != 0x20 or data[1] != 0x02:
        raise ValueError(f"not a CONNACK: {data[:8].hex()}")
    return bool(data[2] & 0x01), data[3]


# ---------------------------------------------------------------------------------------------
# helpers


@functools.cache
def _tls_vocabulary() -> Vocabulary:
    return load_vocabulary(builtin_dir("parsers") / "vocab" / "tls_reasons.toml")


def tls_cause(text: str, sent_client_cert: bool, vocabulary: Vocabulary | None = None) -> str | None:
    """The root cause an OpenSSL error or TLS alert met during or right after the handshake
    names: the TLS reason the vocabulary (parsers/vocab/tls_reasons.toml, the one log analysis
    reads) finds in the text, and that reason's `probe_cause` for whether a client certificate
    was sent. None when the text names no reason, or one that names no cause in a probe."""
    reason = (vocabulary or _tls_vocabulary()).find(text)
    if reason is None:
        return None
    return reason.probe_with_cert if sent_client_cert else reason.probe_without_cert


def _recv_exact(sock: socket.socket | ssl.SSLSocket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def default_trust() -> list[CertFacts]:
    """The system CA bundle OpenSSL clients use when they are given no CA file."""
    paths = ssl.get_default_verify_paths()
    candidates = [p for p in (paths.cafile, paths.openssl_cafile) if p and os.path.exists(p)]
    return load_paths(candidates[:1]).certs if candidates else []


def parse_target(target: str, default_port: int = 8883) -> tuple[str, int]:
    """'host:port', '[v6]:port', 'host' -> (host, port); ProbeError when it is not an address."""
    host, port_text = target, ""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port_text = rest.lstrip(":")
    elif target.count(":") == 1:
        host, port_text = target.split(":")
    if not host:
        raise ProbeError(f"no host in {target!r} (expected HOST:PORT)")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ProbeError(f"bad port in {target!r} (expected HOST:PORT)") from None
    if not 0 < port < 65536:
        raise ProbeError(f"port {port} out of range in {target!r}")
    return host, port


# ---------------------------------------------------------------------------------------------
# the probe


@dataclass
class _State:
    """Mutable notes while probing, frozen into a ProbeResult at the end."""

    causes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def add(self, cause: str | None, message: str) -> None:
        if cause is not None and cause not in self.causes:
            self.causes.append(cause)
        self.problems.append(Problem(cause, message))


def probe(host: str, port: int, *, tls: bool = True, ca: str | Path | None = None,
          cert: str | Path | None = None, key: str | Path | None = None, key_password: str | None = None,
          servername: str | None = None, mqtt: bool = False, username: str | None = None,
          password: str | None = None, client_id: str | None = None, timeout: float = 5.0,
          at: datetime | None = None, trust: Sequence[CertFacts] | None = None,
          pool: Sequence[CertFacts] = ()) -> ProbeResult:
    """Probe `host:port`. `ca` (file or folder) is what the client would trust (default: the
    system bundle); `servername` is the name the client dials and sends as SNI (default: `host`);
    `cert`/`key` a client certificate; `mqtt` adds a CONNECT. Raises ProbeError only for bad
    options (a CA file that does not load); everything the network says is in the result.
    `trust` replaces `ca` with certificates already loaded; `pool` holds other certificates known
    from the inputs (a bundle's intermediate.pem), so an intermediate the broker fails to send is
    named as tls.server_chain_incomplete rather than guessed at."""
    started = time.monotonic()
    name = servername or host
    state = _State()
    if trust is None and ca is not None and tls:
        loaded = load_paths([ca])
        if not loaded.certs:
            raise loaded.errors[0] if loaded.errors else ProbeError("holds no CA certificate", file=str(ca))
        trust = loaded.certs

    def finish(tcp: StepStatus, handshake: StepStatus, **extra: Any) -> ProbeResult:
        message = "; ".join(p.message for p in state.problems) if state.problems else "all checks passed"
        return ProbeResult(host=host, port=port, tls=tls, servername=name if tls else None, tcp=tcp,
                           tls_handshake=handshake, message=message, causes=tuple(state.causes),
                           notes=tuple(state.notes), problems=tuple(state.problems),
                           elapsed_ms=int((time.monotonic() - started) * 1000),
                           at=at or datetime.now(UTC), **extra)

    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        state.add("net.connection_refused", f"connection refused: nothing listens on {host}:{port}")
        return finish("failed", "not_run")
    except TimeoutError:
        state.add("net.timeout", f"no answer from {host}:{port} within {timeout:g} s (firewall, wrong address)")
        return finish("failed", "not_run")
    except socket.gaierror as exc:
        state.add(None, f"cannot resolve {host!r}: {exc.strerror}")
        return finish("failed", "not_run")
    except OSError as exc:
        state.add("net.timeout" if "unreachable" in str(exc).lower() else None,
                  f"cannot connect to {host}:{port}: {exc.strerror or exc}")
        return finish("failed", "not_run")
    with raw:
        if not tls:
            outcome = _mqtt_exchange(raw, state, client_id, username, password, plain=True) if mqtt else None
            if outcome is None:
                state.notes.append("TCP only: add an MQTT CONNECT to learn more from a plain listener")
            return finish("ok", "not_run", mqtt=outcome)
        return _tls_probe(raw, host, name, state, finish, trust, cert=cert, key=key,
                          key_password=key_password, mqtt=mqtt, client_id=client_id, username=username,
                          password=password, timeout=timeout, at=at or datetime.now(UTC), pool=pool)


def _tls_probe(raw: socket.socket, host: str, name: str, state: _State, finish: Callable[..., ProbeResult],
               trust: Sequence[CertFacts] | None, *, cert: str | Path | None, key: str | Path | None,
               key_password: str | None, mqtt: bool, client_id: str | None, username: str | None,
               password: str | None, timeout: float, at: datetime, pool: Sequence[CertFacts]) -> ProbeResult:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sent_cert = cert is not None
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), str(key) if key else None, key_password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            state.add("tls.client_key_problem", f"the client certificate/key cannot be used: "
                      f"{getattr(exc, 'reason', None) or exc}")
            return finish("ok", "not_run")
    handshake_started = time.monotonic()
    try:
        sock = context.wrap_socket(raw, server_hostname=None if _is_ip(name) else name,
                                   do_handshake_on_connect=False)
        sock.do_handshake()
    except ssl.SSLError as exc:
        text = str(exc)
        cause = tls_cause(text, sent_cert)
        if isinstance(exc, ssl.SSLEOFError) or "eof" in text.lower():
            cause = "tls.protocol_mismatch"
            text = (f"the port closed the connection during the TLS handshake ({exc.reason or exc}): it is "
                    f"most likely a plain MQTT listener, or the broker's TLS setup is broken")
        state.add(cause, f"TLS handshake failed: {text}")
        return finish("ok", "failed", tls_error=str(exc))
    except (ConnectionResetError, BrokenPipeError) as exc:
        state.add("tls.protocol_mismatch", f"the port reset the connection during the TLS handshake ({exc}): "
                  "it is most likely a plain MQTT listener")
        return finish("ok", "failed", tls_error=str(exc))
    except TimeoutError:
        state.add("net.timeout", f"the TLS handshake got no answer within {timeout:g} s (a plain listener "
                  "waiting for MQTT would act like this)")
        return finish("ok", "failed", tls_error="timeout")
    with sock:
        version, cipher = sock.version(), (sock.cipher() or ("", "", 0))[0]
        chain = _presented_chain(sock)
        # A TLS 1.3 broker rejects our certificate about one round trip after our handshake ended.
        wait = min(timeout, max(0.25, 3 * (time.monotonic() - handshake_started) + 0.1))
        checks = _judge_chain(chain, default_trust() if trust is None else trust, name, at, state, pool)
        tls_error: str | None = None
        outcome: MqttOutcome | None = None
        try:
            _read_after_handshake(sock, wait, timeout)
            if mqtt:
                outcome = _mqtt_exchange(sock, state, client_id, username, password, plain=False)
            with contextlib.suppress(OSError, ValueError):
                sock.unwrap()  # close_notify, so the broker logs a clean close, not an 'unexpected eof'
        except ssl.SSLError as exc:
            tls_error = str(exc)
            cause = tls_cause(tls_error, sent_cert)
            state.add(cause, f"the broker ended TLS after the handshake: {exc.reason or exc}"
                      + (" (it requires a client certificate)" if cause == "tls.client_cert_missing" else ""))
            if mqtt:
                outcome = MqttOutcome("not_run")
        except (ConnectionResetError, BrokenPipeError) as exc:
            tls_error = str(exc)
            state.add(None, f"the broker reset the connection after the handshake ({exc})")
        return finish("ok", "ok", tls_version=version, cipher=cipher, chain=tuple(chain),
                      checks=tuple(checks), mqtt=outcome, tls_error=tls_error)


def _presented_chain(sock: ssl.SSLSocket) -> list[CertFacts]:
    """The certificates the broker sent, in its order. Python 3.13 has get_unverified_chain();
    3.10-3.12 have it on the internal SSL object; the leaf alone is the last resort."""
    ders: list[bytes] = []
    getter = getattr(sock, "get_unverified_chain", None)
    if getter is None:
        sslobj = getattr(sock, "_sslobj", None)
        getter = getattr(sslobj, "get_unverified_chain", None)
    items = getter() if getter is not None else None
    if items:
        for item in items:
            ders.append(item if isinstance(item, bytes) else item.public_bytes(_ssl.ENCODING_DER))
    else:
        leaf = sock.getpeercert(binary_form=True)
        if leaf:
            ders.append(leaf)
    chain: list[CertFacts] = []
    for index, der in enumerate(ders):
        for facts in load_bytes(der, path="(presented by the broker)").certs:
            chain.append(dataclasses.replace(facts, index=index))
    return chain


def _judge_chain(chain: list[CertFacts], trust: Sequence[CertFacts], name: str, at: datetime,
                 state: _State, pool: Sequence[CertFacts]) -> list[CheckResult]:
    if not chain:
        state.add(None, "the broker presented no certificate")
        return []
    leaf = chain[0]
    # Most blocking first, in libmosquitto's order: an untrusted chain before anything else, then
    # time, then the host name (seen with mosquitto_pub 2.0.11: expired + wrong host -> the broker
    # logs 'sslv3 alert certificate expired'; Python's ssl reports the host name first instead).
    results = [
        cert_checks.check_chain(leaf, trust, at, intermediates=chain[1:], pool=pool),
        cert_checks.check_not_yet_valid(leaf, at),
        cert_checks.check_expired(leaf, at),
        cert_checks.check_hostname(leaf, name),
        cert_checks.check_purpose(leaf, "server"),
        cert_checks.check_expiring_soon(leaf, at),
        cert_checks.check_key_strength(leaf),
        cert_checks.check_signature(leaf),
    ]
    for result in results:
        if result.is_problem:
            state.add(result.cause, result.message)
    return results


def _read_after_handshake(sock: ssl.SSLSocket, wait: float, timeout: float) -> None:
    """Give the broker a moment to reject our certificate (TLS 1.3 does it after the handshake).
    Reading before writing the CONNECT matters: once we have written, the broker's close turns its
    alert into a bare EOF on our side. A silent broker is the good case: it waits for CONNECT."""
    sock.settimeout(wait)
    try:
        data = sock.recv(1)
    except TimeoutError:
        return
    finally:
        sock.settimeout(timeout)
    if not data:
        raise ConnectionResetError("the broker closed the connection right after the TLS handshake")


def _mqtt_exchange(sock: socket.socket | ssl.SSLSocket, state: _State, client_id: str | None,
                   username: str | None, password: str | None, *, plain: bool) -> MqttOutcome:
    packet = connect_packet(client_id or f"correlator-probe-{os.getpid()}", username=username,
                            password=password)
    try:
        sock.sendall(packet)
        data = _recv_exact(sock, 4)
    except TimeoutError:
        state.add("net.timeout", "no CONNACK within the timeout")
        return MqttOutcome("failed", meaning="no CONNACK")
    except ssl.SSLError:
        raise
    except (ConnectionResetError, BrokenPipeError) as exc:
        data = b""
        state.notes.append(f"connection reset at CONNECT ({exc})")
    if plain and data[:1] in (b"\x15", b"\x16") and data[1:2] == b"\x03":
        state.add("tls.protocol_mismatch", "the port answered the MQTT CONNECT with a TLS record: it is a TLS "
                  "listener (use TLS)")
        return MqttOutcome("failed", meaning="TLS answer")
    if not data:
        if plain:
            state.add("tls.protocol_mismatch", "the port closed the connection at the MQTT CONNECT without a "
                      "CONNACK: most likely a TLS listener (use TLS)")
        else:
            state.add(None, "the broker closed the connection at the MQTT CONNECT without a CONNACK")
        return MqttOutcome("failed", meaning="closed without CONNACK")
    try:
        session, code = parse_connack(data)
    except ValueError as exc:
        state.add("tls.protocol_mismatch" if plain else None, f"the answer to CONNECT is not MQTT: {exc}")
        return MqttOutcome("failed", meaning="not MQTT")
    meaning, cause = CONNACK_CODES.get(code, (f"unknown return code {code}", None))
    if code == 5 and username is None:
        cause = "auth.anonymous_denied"
    if code == 0:
        with contextlib.suppress(OSError):
            sock.sendall(DISCONNECT)
        return MqttOutcome("ok", code, meaning, session)
    who = f"user {username!r}" if username is not None else "no user name"
    state.add(cause, f"CONNACK {code} ({meaning}) for {who}")
    return MqttOutcome("failed", code, meaning, session)
