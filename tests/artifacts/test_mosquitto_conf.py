"""mosquitto.conf parsing: listeners, TLS, effective security, problems with file:line, bundle
file lookup, and agreement with a real mosquitto 2.0 on what starts and what does not."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.artifacts.mosquitto_conf import (
    Config,
    parse_mosquitto_conf,
    parse_mosquitto_conf_text,
)
from lab import pki
from lab.broker import Mosquitto

SEED_CONF = r"""per_listener_settings true

listener 8883
allow_anonymous false
require_certificate false
certfile C:\Users\myuser\Documents\certs\server.pem
keyfile C:\Users\myuser\Documents\certs\server.key
cafile C:\Users\myuser\Documents\certs\ca.pem
password_file C:\Users\myuser\Documents\mosquitto\user-passwd.txt
"""


def codes(config: Config) -> list[tuple[str, int | None]]:
    return [(p.code, p.line) for p in config.problems]


def test_vendor_guide_conf_with_windows_paths(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "broker" / "certs").mkdir(parents=True)
    for name in ("server.pem", "server.key", "ca.pem"):
        (bundle / "broker" / "certs" / name).write_text("x")
    (bundle / "broker" / "mosquitto.conf").write_text(SEED_CONF)
    config = parse_mosquitto_conf(bundle / "broker" / "mosquitto.conf", bundle_root=bundle)

    assert config.per_listener_settings
    [listener] = config.listeners
    assert (listener.port, listener.bind, listener.tls, listener.require_certificate) == (8883, None, True, False)
    assert listener.security.allow_anonymous is False
    assert listener.security.password_file is not None and listener.security.password_file.line == 9
    assert config.tls_on_port(8883) is True and config.tls_on_port(1883) is None
    assert config.listener_for_port(8883) is listener
    found = {r.option: (r.how, r.found.name if r.found else None) for r in config.referenced_files}
    assert found == {"certfile": ("basename", "server.pem"), "keyfile": ("basename", "server.key"),
                     "cafile": ("basename", "ca.pem"), "password_file": ("missing", None)}
    assert [r.setting.location for r in config.missing_files] == [f"{bundle / 'broker' / 'mosquitto.conf'}:9"]
    assert codes(config) == [("missing_file", 9)]
    ref = config.file_for("certfile", listener)
    assert ref is not None and ref.setting.value.endswith("server.pem")


def test_longest_relative_path_wins_over_basename(tmp_path: Path) -> None:
    for folder in ("etc/mosquitto/certs", "old/certs"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "server.pem").write_text("x")
    config = parse_mosquitto_conf_text("listener 8883\ncertfile /etc/mosquitto/certs/server.pem\n"
                                       "cafile /opt/b/etc/mosquitto/certs/server.pem\n"
                                       "keyfile /srv/keys/server.pem\n", bundle_root=tmp_path)
    refs = {r.option: r for r in config.referenced_files}
    expected = tmp_path / "etc/mosquitto/certs/server.pem"
    assert (refs["certfile"].how, refs["certfile"].found) == ("exact", expected)
    assert (refs["cafile"].how, refs["cafile"].found) == ("relative", expected)
    assert refs["keyfile"].how == "basename" and len(refs["keyfile"].candidates) == 2


def test_defaults_local_only_mode() -> None:
    config = parse_mosquitto_conf_text("log_type all\nallow_anonymous false\npassword_file /x/pw\n")
    assert config.local_only
    assert [(lst.port, lst.bind) for lst in config.listeners] == [(1883, "127.0.0.1"), (1883, "::1")]
    # mosquitto 2.0.11 lets anonymous clients in on the local-only listener whatever the file says.
    assert all(lst.security.allow_anonymous for lst in config.listeners)
    assert config.tls_on_port(1883) is False


def test_port_only_makes_the_default_listener_on_every_interface() -> None:
    config = parse_mosquitto_conf_text("port 1884\nbind_address 10.0.0.5\n")
    [listener] = config.listeners
    assert (listener.port, listener.bind, listener.origin) == (1884, "10.0.0.5", "default")
    assert listener.security.allow_anonymous is False  # the 2.0 default
    assert "deprecated" in [p.code for p in config.problems]


def test_per_listener_settings_false_makes_security_global() -> None:
    config = parse_mosquitto_conf_text(
        "listener 1883\nlistener 8883\ncertfile /c.pem\nkeyfile /k.pem\nallow_anonymous true\npassword_file /p\n")
    plain, tls = config.listeners
    assert not plain.tls and tls.tls
    for listener in (plain, tls):
        assert listener.security.allow_anonymous is True
        assert listener.security.password_file is not None and listener.security.password_file.line == 6
    assert config.global_security.acl_file is None


def test_per_listener_settings_true_attaches_to_the_listener_above() -> None:
    config = parse_mosquitto_conf_text("per_listener_settings true\nallow_anonymous true\nlistener 1883\n"
                                       "allow_anonymous true\nlistener 8883\npassword_file /p\nacl_file /a\n")
    plain, second = config.listeners
    assert plain.security.allow_anonymous is True and plain.security.password_file is None
    assert second.security.allow_anonymous is False
    assert second.security.acl_file is not None and second.security.acl_file.line == 7
    # allow_anonymous before the first listener reaches no listener (confirmed on 2.0.11 below)
    assert ("lost_setting", 2) in codes(config)


def test_options_before_first_listener_create_a_default_listener() -> None:
    config = parse_mosquitto_conf_text("require_certificate true\ncafile /ca\nlistener 8883\n")
    assert [(lst.port, lst.origin) for lst in config.listeners] == [(1883, "default"), (8883, "listener")]
    assert ("default_listener", 1) in codes(config)


def test_settings_keep_file_and_line_and_include_dir_is_alphabetical(tmp_path: Path) -> None:
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "b.conf").write_text("listener 8883\ncertfile /etc/x.pem\nkeyfile /etc/x.key\n")
    (conf_d / "a.conf").write_text("# first\nlog_type all\n")
    (conf_d / "z.txt").write_text("not a conf\n")
    main = tmp_path / "mosquitto.conf"
    main.write_text("per_listener_settings false\ninclude_dir /etc/mosquitto/conf.d\nlistener 1883\n")
    config = parse_mosquitto_conf(main)
    assert config.files == [str(main), str(conf_d / "a.conf"), str(conf_d / "b.conf")]
    assert config.global_settings["log_type"].location == f"{conf_d / 'a.conf'}:2"
    tls = config.listener_for_port(8883)
    assert tls is not None and tls.tls and tls.declared_at is not None
    assert tls.declared_at.location == f"{conf_d / 'b.conf'}:1"
    assert tls.get("keyfile") is not None and tls.value("keyfile") == "/etc/x.key"


def test_all_tls_auth_and_log_options_are_recorded() -> None:
    text = ("listener 8883 0.0.0.0\nprotocol websockets\ncafile /ca.pem\ncapath /cas\ncertfile /s.pem\n"
            "keyfile /s.key\nrequire_certificate true\nuse_identity_as_username true\n"
            "use_subject_as_username false\ntls_version tlsv1.2\nciphers ECDHE-RSA-AES128-GCM-SHA256\n"
            "ciphers_tls1.3 TLS_AES_128_GCM_SHA256\ncrlfile /crl.pem\npsk_hint hint\npsk_file /psk\n"
            "log_dest file /var/log/mosquitto/mosquitto.log\nlog_dest stdout\nlog_timestamp true\n"
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\nlog_type error\nlog_type warning\nuser mosquitto\n")
    config = parse_mosquitto_conf_text(text)
    [listener] = config.listeners
    assert listener.protocol == "websockets" and listener.tls and listener.require_certificate
    assert listener.tls_version == "tlsv1.2" and listener.bind == "0.0.0.0"
    for option in ("cafile", "capath", "crlfile", "ciphers", "ciphers_tls1.3", "psk_hint",
                   "use_identity_as_username", "use_subject_as_username"):
        assert listener.get(option) is not None, option
    assert config.global_security.psk_file is not None
    assert config.global_settings["log_timestamp_format"].value == "%Y-%m-%dT%H:%M:%S"
    assert [s.value for s in config.settings if s.name == "log_dest"] == [
        "file /var/log/mosquitto/mosquitto.log", "stdout"]
    assert [s.value for s in config.settings if s.name == "log_type"] == ["error", "warning"]
    assert config.global_settings["user"].value == "mosquitto"
    assert config.problems == [] or all(p.code == "missing_file" for p in config.problems)


def test_problems_are_collected_with_file_and_line() -> None:
    text = ("listener 1883\n"                      # 1
            "  # indented comment\n"               # 2
            "allow_anonymous yes\n"                # 3
            "\tlistener 1884\n"                    # 4
            "foo bar\n"                            # 5
            "cafile\n"                             # 6
            "certfile /a.pem\ncertfile /b.pem\n"   # 7, 8
            "listener 1883\n"                      # 9
            "topic read STATE/+\n"                 # 10
            "password_file /etc/pw # old one\n"   # 11
            "max_qos 3\n"                          # 12
            "protocol websocket\n")                # 13
    config = parse_mosquitto_conf_text(text, "broker.conf")
    got = [(p.severity, p.code, p.line) for p in config.problems]
    for expected in [("error", "unknown_option", 2), ("error", "bad_value", 3), ("error", "unknown_option", 4),
                     ("error", "unknown_option", 5), ("error", "empty_value", 6), ("error", "duplicate_value", 8),
                     ("error", "duplicate_listener", 9), ("error", "bad_value", 10), ("error", "bad_value", 12),
                     ("error", "bad_value", 13)]:
        assert expected in got
    assert not config.starts
    # a trailing comment is part of a path, as mosquitto reads it
    assert config.global_security.password_file is not None
    assert config.global_security.password_file.value == "/etc/pw # old one"
    for problem in config.problems:
        text_form = str(problem)
        assert "\n" not in text_form and text_form.startswith("broker.conf:")
        assert problem.error().line == problem.line


def test_unreadable_and_binary_conf(tmp_path: Path) -> None:
    missing = parse_mosquitto_conf(tmp_path / "nope.conf")
    assert [p.code for p in missing.problems] == ["unreadable"]
    binary = tmp_path / "bin.conf"
    binary.write_bytes(b"\x00\x01listener 1883\n")
    assert [p.code for p in parse_mosquitto_conf(binary).problems] == ["unreadable"]
    folder = tmp_path / "dir.conf"
    folder.mkdir()
    assert [p.code for p in parse_mosquitto_conf(folder).problems] == ["unreadable"]


# -- property-based: never crash ------------------------------------------------------------

OPTION_WORDS = ["listener", "port", "allow_anonymous", "per_listener_settings", "certfile", "keyfile", "cafile",
                "password_file", "acl_file", "include_dir", "log_type", "log_dest", "protocol", "max_qos",
                "require_certificate", "bind_address", "user", "topic", "connection", "#", "", "\t", "true",
                "false", "1883", "0", "-1", "C:\\x\\y.pem", "/etc/m.conf", "websockets", "file", "tlsv1.2",
                "9" * 5000]  # a number too long for int()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(OPTION_WORDS), max_size=4).map(" ".join), max_size=20))
def test_conf_parser_never_crashes_on_shuffled_options(lines: list[str]) -> None:
    config = parse_mosquitto_conf_text("\n".join(lines), "fuzz.conf", bundle_root="/nonexistent-bundle")
    assert config.listeners, "there is always at least one listener (local only mode at worst)"
    for problem in config.problems:
        assert problem.line is None or 1 <= problem.line <= len(lines)
        assert "\n" not in str(problem)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400))
def test_conf_parser_never_crashes_on_random_input(data: bytes | str) -> None:
    config = parse_mosquitto_conf_text(data, "fuzz.conf", bundle_root="/nonexistent-bundle")
    assert isinstance(config.starts, bool)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=len(SEED_CONF) - 1), st.text(max_size=5))
def test_conf_parser_survives_mutations_of_a_real_conf(position: int, insert: str) -> None:
    mutated = SEED_CONF[:position] + insert + SEED_CONF[position + 1:]
    config = parse_mosquitto_conf_text(mutated, "m.conf", bundle_root="/nonexistent-bundle")
    assert all(isinstance(p.message, str) for p in config.problems)


# -- against the real broker -----------------------------------------------------------------

@pytest.mark.broker
def test_accepted_conf_really_starts_and_tls_is_where_we_say(tmp_path: Path, mosquitto_available: str) -> None:
    now = datetime.now(UTC)
    ca = pki.make_ca(not_before=now - timedelta(days=1))
    server = pki.make_leaf("localhost", ca, sans=["localhost", "127.0.0.1"], not_before=now - timedelta(days=1))
    ca.write(tmp_path / "certs" / "ca.pem")
    server.write(tmp_path / "certs" / "server.pem", tmp_path / "certs" / "server.key")
    config_text = ("per_listener_settings true\n"
                   "listener {port0} 127.0.0.1\nallow_anonymous true\n"
                   "listener {port1} 127.0.0.1\nallow_anonymous true\n"
                   f"cafile {tmp_path}/certs/ca.pem\ncertfile {tmp_path}/certs/server.pem\n"
                   f"keyfile {tmp_path}/certs/server.key\ntls_version tlsv1.2\nlog_type all\n")
    with Mosquitto(tmp_path, config_text, listeners=2) as broker:
        config = parse_mosquitto_conf(broker.conf_path, bundle_root=tmp_path)
        assert config.starts and config.errors == []
        assert config.missing_files == []
        plain_port, tls_port = broker.ports
        assert config.tls_on_port(plain_port) is False and config.tls_on_port(tls_port) is True

        def pub(port: int, *extra: str) -> int:
            return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "t", "-m", "x",
                                   *extra], capture_output=True, timeout=10).returncode

        assert pub(plain_port) == 0
        assert pub(tls_port, "--cafile", str(tmp_path / "certs" / "ca.pem")) == 0
        assert pub(tls_port) != 0  # plain MQTT to the TLS listener fails


@pytest.mark.broker
def test_lost_allow_anonymous_really_refuses_anonymous(tmp_path: Path, mosquitto_available: str) -> None:
    """per_listener_settings true with allow_anonymous above the first listener: mosquitto starts,
    and anonymous clients are refused, as our 'lost_setting' warning and effective value say."""
    with Mosquitto(tmp_path, "per_listener_settings true\nallow_anonymous true\nlistener {port0} 127.0.0.1\n"
                   ) as broker:
        config = parse_mosquitto_conf(broker.conf_path)
        assert config.starts and ("lost_setting", 2) in codes(config)
        listener = config.listener_for_port(broker.port, "127.0.0.1")
        assert listener is not None and listener.security.allow_anonymous is False
        run = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "t", "-m", "x"],
                             capture_output=True, text=True, timeout=10)
        assert run.returncode != 0 and "not authorised" in (run.stdout + run.stderr)


BROKEN = {
    "unknown option": "foo bar\n",
    "tab separator": "\tallow_anonymous true\n",
    "indented comment": "  # note\n",
    "bad bool": "allow_anonymous True\n",
    "duplicate certfile": "certfile /a.pem\ncertfile /b.pem\n",
    "order of per_listener_settings": "allow_anonymous false\nper_listener_settings true\n",
    "acl line in conf": "topic read STATE/+\n",
    "max_qos": "max_qos 3\n",
    "empty value": "cafile\n",
    "duplicate listener": "listener {port0} 127.0.0.1\n",
    "bad log_type": "log_type info\n",
    "port out of range": "listener 70000\n",
    "quoted path": "password_file \"/etc/mosquitto/passwd\"\n",
}
BROKEN_FIRST = {"mount_point before any listener": "mount_point site/\n"}


def test_windows_line_endings_are_fine_but_a_bom_is_not() -> None:
    crlf = parse_mosquitto_conf_text(b"# c\r\nlistener 8883\r\nallow_anonymous true\r\n")
    assert crlf.problems == [] and crlf.listeners[0].security.allow_anonymous
    bom = parse_mosquitto_conf_text(b"\xef\xbb\xbflistener 8883\r\n", "notepad.conf")
    assert [(p.code, p.line) for p in bom.problems] == [("unknown_option", 1)]
    assert "byte order mark" in bom.problems[0].message


@pytest.mark.broker
@pytest.mark.parametrize("case", sorted(BROKEN) + sorted(BROKEN_FIRST))
def test_conf_we_flag_as_error_really_stops_mosquitto(case: str, tmp_path: Path, mosquitto_available: str) -> None:
    listener = "listener {port0} 127.0.0.1\n"
    text = BROKEN_FIRST[case] + listener if case in BROKEN_FIRST else listener + BROKEN[case]
    broker = Mosquitto(tmp_path, text, capture_stdout=True)  # config errors go to stderr, not the log
    config = parse_mosquitto_conf(broker.conf_path)
    assert not config.starts, [str(p) for p in config.problems]
    broker.start(expect_failure=True, timeout=5)
    assert broker.returncode not in (None, 0)
    flagged = {p.line for p in config.errors}
    reported = [line for line in broker.log_text().splitlines() if "Error found at" in line]
    if case in ("duplicate listener", "quoted path"):
        assert reported == []  # these pass config loading and fail when binding / opening the file
    else:  # mosquitto names the same line we do
        assert reported and int(reported[0].rsplit(":", 1)[1].rstrip(".")) in flagged, broker.log_text()


ACCEPTED = {
    "trailing comment after yes/no": ("allow_anonymous true # for now\n", None),
    "log_type information": ("log_type information\nlog_type subscribe\n", None),
    "bridge after listener": ("connection b1\naddress 127.0.0.1:9\nlistener {port1} 127.0.0.1\ntopic # both 0\n",
                              None),
    "certfile without keyfile": ("certfile /nonexistent/server.pem\n", "tls_incomplete"),
    "tls_version typo without TLS": ("tls_version tlsv1.0\n", "bad_value"),
    "number that is not one": ("max_connections lots\n", "bad_value"),
}


@pytest.mark.broker
@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_conf_we_accept_really_starts(case: str, tmp_path: Path, mosquitto_available: str) -> None:
    extra, warning = ACCEPTED[case]
    broker = Mosquitto(tmp_path, "listener {port0} 127.0.0.1\n" + extra, listeners=2)
    config = parse_mosquitto_conf(broker.conf_path)
    assert config.starts, [str(p) for p in config.problems]
    if warning is not None:
        assert warning in [p.code for p in config.problems if p.severity == "warning"]
    with broker:
        assert broker.proc is not None and broker.proc.poll() is None


def test_listener_for_port_prefers_the_exact_bind_address() -> None:
    config = parse_mosquitto_conf_text("listener 1883 10.0.0.5\nlistener 1883 127.0.0.1\n"
                                       "listener 8883 0.0.0.0\ncertfile /c\nkeyfile /k\n")
    assert config.problems == []
    by_lo = config.listener_for_port(1883, "127.0.0.1")
    assert by_lo is not None and by_lo.declared_at is not None and by_lo.declared_at.line == 2
    assert config.listener_for_port(1883, "192.168.1.9") is None
    assert config.tls_on_port(8883, "192.168.1.9") is True
    clash = parse_mosquitto_conf_text("listener 1883 0.0.0.0\nlistener 1883 127.0.0.1\n")
    assert [(p.code, p.line) for p in clash.problems] == [("duplicate_listener", 2)]


def _anonymous_pub(port: int) -> bool:
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "t", "-m", "x"],
                          capture_output=True, timeout=10).returncode == 0


@pytest.mark.broker
@pytest.mark.parametrize("per_listener", [False, True])
def test_effective_allow_anonymous_matches_the_broker(per_listener: bool, tmp_path: Path,
                                                      mosquitto_available: str) -> None:
    """allow_anonymous under the second listener: global without per_listener_settings (both
    listeners let anonymous in), only that listener's with it."""
    text = (f"per_listener_settings {str(per_listener).lower()}\n"
            "listener {port0} 127.0.0.1\nlistener {port1} 127.0.0.1\nallow_anonymous true\n")
    with Mosquitto(tmp_path, text, listeners=2) as broker:
        config = parse_mosquitto_conf(broker.conf_path)
        assert config.starts
        for port in broker.ports:
            listener = config.listener_for_port(port, "127.0.0.1")
            assert listener is not None
            assert listener.security.allow_anonymous == _anonymous_pub(port), port
        first = config.listener_for_port(broker.ports[0])
        assert first is not None and first.security.allow_anonymous is (not per_listener)


def test_acl_and_password_file_of_a_listener(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "acl").write_text("user HMI\ntopic readwrite STATE/+\n")
    (tmp_path / "etc" / "passwd").write_text("HMI:$6$" + "A" * 16 + "$" + "B" * 86 + "==\n")
    config = parse_mosquitto_conf_text("per_listener_settings true\nlistener 1883\nlistener 8883\n"
                                       "acl_file /etc/mosquitto/acl\npassword_file D:\\mosq\\passwd\n",
                                       bundle_root=tmp_path)
    plain, tls = config.listeners
    assert config.acl_for(plain) is None and config.passwd_for(plain) is None
    acl = config.acl_for(tls)
    assert acl is not None and acl.check("HMI", "hmi-1", "STATE/scada", "write").allowed
    passwd = config.passwd_for(tls)
    assert passwd is not None and passwd.knows("HMI") and not passwd.knows("MyEACM")


LOGINS: list[tuple[str | None, str | None]] = [(None, None), ("alice", "good"), ("alice", "bad"), ("bob", "x"),
                                              ("alice", None)]
AUTH_CONFS = {
    "no password_file, allow_anonymous false": "allow_anonymous false\n",
    "no password_file, allow_anonymous true": "allow_anonymous true\n",
    "password_file only": "password_file {dir}/pw\n",
    "password_file, allow_anonymous true": "password_file {dir}/pw\nallow_anonymous true\n",
}


@pytest.mark.broker
@pytest.mark.parametrize("case", sorted(AUTH_CONFS))
def test_login_verdicts_match_the_broker(case: str, tmp_path: Path, mosquitto_available: str) -> None:
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp_path / "pw"), "alice", "good"], check=True,
                   capture_output=True, timeout=10)
    with Mosquitto(tmp_path, "listener {port0} 127.0.0.1\n" + AUTH_CONFS[case]) as broker:
        config = parse_mosquitto_conf(broker.conf_path)
        listener = config.listener_for_port(broker.port)
        assert listener is not None
        procs = []
        for user, password in LOGINS:
            args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "t", "-m", "x"]
            args += ["-u", user] if user else []
            args += ["-P", password] if password else []
            procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        outcomes = [proc.wait(timeout=10) == 0 for proc in procs]
    for (user, password), accepted in zip(LOGINS, outcomes, strict=True):
        verdict = config.login_verdict(listener, user, password_given=password is not None)
        if verdict.accepted is None:
            assert verdict.cause == "known_user" and accepted == (password == "good"), (user, verdict)
        else:
            assert verdict.accepted == accepted, (case, user, password, verdict)


def test_login_verdict_causes_name_the_evidence(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("alice:plaintext\n")
    config = parse_mosquitto_conf_text("listener 1883\npassword_file /etc/mosquitto/pw\n", bundle_root=tmp_path)
    [listener] = config.listeners
    anon = config.login_verdict(listener, None)
    assert (anon.accepted, anon.cause) == (False, "anonymous_denied") and "defaults it to false" in anon.explanation
    dropped = config.login_verdict(listener, "alice")
    assert dropped.cause == "unusable_entry" and dropped.user_entry is not None
    assert [s.line for s in dropped.evidence] == [2]
    missing = parse_mosquitto_conf_text("listener 1883\npassword_file /x/pw\n", bundle_root=tmp_path / "none")
    assert missing.login_verdict(missing.listeners[0], "alice").cause == "password_file_missing"
    local = parse_mosquitto_conf_text("log_type all\n")
    assert local.login_verdict(local.listeners[0], None).accepted is True


def test_windows_path_with_spaces_and_quotes(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "server.pem").write_text("x")
    config = parse_mosquitto_conf_text('listener 8883\ncertfile C:\\Program Files\\mosquitto\\certs\\server.pem\n'
                                       'keyfile "C:\\Program Files\\mosquitto\\certs\\server.pem"\n',
                                       bundle_root=tmp_path)
    refs = {r.option: r for r in config.referenced_files}
    assert refs["certfile"].found == tmp_path / "certs" / "server.pem" and refs["certfile"].how == "relative"
    assert [(p.code, p.line) for p in config.problems] == [("quoted_path", 3)]


@pytest.mark.broker
def test_error_in_an_included_file_is_named_like_mosquitto_does(tmp_path: Path, mosquitto_available: str) -> None:
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "10-listener.conf").write_text("listener {port}\nallow_anonymous true\n")
    (conf_d / "20-tls.conf").write_text("# TLS\nrequire_certificate maybe\n")
    broker = Mosquitto(tmp_path, f"include_dir {conf_d}\n", capture_stdout=True)
    (conf_d / "10-listener.conf").write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous true\n")
    config = parse_mosquitto_conf(broker.conf_path)
    assert [(p.code, p.file, p.line) for p in config.errors] == [("bad_value", str(conf_d / "20-tls.conf"), 2)]
    broker.start(expect_failure=True)
    assert f"Error found at {conf_d / '20-tls.conf'}:2." in broker.log_text()
