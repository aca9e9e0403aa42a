"""Every format's samples, the bad-definition catalogue, user format folders and detection."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from correlator.errors import DefinitionError
from correlator.formats.definition import load_format
from correlator.formats.parse import match_line
from correlator.formats.registry import check_samples, default_registry, load_registry

REGISTRY = default_registry()
SAMPLES = [(fmt.name, sample) for fmt in REGISTRY.formats.values() for sample in fmt.samples]
BAD = sorted((Path(__file__).parent / "bad_formats").glob("*.toml"))


@pytest.mark.parametrize(("format_name", "sample"), SAMPLES, ids=[f"{n}:{s.where}" for n, s in SAMPLES])
def test_sample_yields_declared_kind_and_fields(format_name: str, sample: object) -> None:
    fmt = REGISTRY.formats[format_name]
    found = match_line(fmt, sample.line, REGISTRY.evidence, year=2026)  # type: ignore[attr-defined]
    assert found is not None, sample.line  # type: ignore[attr-defined]
    assert found.kind == sample.kind  # type: ignore[attr-defined]
    assert found.fields == sample.fields  # type: ignore[attr-defined]


def test_every_builtin_format_has_samples_for_every_pattern() -> None:
    for fmt in REGISTRY.formats.values():
        assert check_samples(fmt, REGISTRY.evidence) == []
        assert fmt.samples


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_definition_gives_its_error(path: Path) -> None:
    expected = re.match(r"# expect: (.*)", path.read_text()).group(1)  # type: ignore[union-attr]
    with pytest.raises(DefinitionError) as info:
        fmt = load_format(path)
        problems = check_samples(fmt, REGISTRY.evidence)
        if problems:
            raise problems[0]
    message = str(info.value)
    assert expected in message
    line = re.search(r"^# line: (\d+)$", path.read_text(), re.M)
    assert line is not None, f"{path.name} says on which line its error is"
    assert re.match(rf"{re.escape(str(path))}:{line.group(1)}\b", message)  # names the file and the line


def test_collect_mode_reports_every_error(tmp_path: Path) -> None:
    for path in BAD:
        (tmp_path / path.name).write_text(path.read_text())
    registry = load_registry([tmp_path], collect=True)
    assert len(registry.errors) >= len(BAD)
    assert "mosquitto" in registry.formats  # the good built-ins still load


def _user_format(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plc_gateway.toml").write_text(r"""
[format]
name = "plc_gateway"
role = "client"
[[format.line]]
regex = '^GW\|(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\|(?P<level>\w+)\|(?P<body>.*)$'
time = "iso"
[[message]]
name = "link_down"
kind = "net.link_down"
regex = '^uplink (?P<peer_addr>\S+) down$'
samples = [{ line = 'GW|2026-11-23T14:20:00|ERROR|uplink 10.3.0.11 down', fields = { peer_addr = "10.3.0.11" } }]
[kind."net.link_down"]
meaning = "The gateway's uplink to the broker went down"
""")


def test_user_folder_by_option_and_environment(tmp_path: Path) -> None:
    _user_format(tmp_path / "mine")
    assert "plc_gateway" in load_registry([tmp_path / "mine"]).formats
    log = tmp_path / "gw.log"
    log.write_text("GW|2026-11-23T14:20:00|ERROR|uplink 10.3.0.11 down\n")
    env = dict(os.environ, CORRELATOR_PARSERS=str(tmp_path / "mine"))
    out = subprocess.run([sys.executable, "-m", "correlator", "formats", "test", str(log)], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "format plc_gateway" in out
    assert "net.link_down" in out and "peer_addr=10.3.0.11" in out


def test_validate_command_fails_on_bad_folder(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text((Path(__file__).parent / "bad_formats" / "wrong_fields.toml").read_text())
    result = subprocess.run([sys.executable, "-m", "correlator", "formats", "validate", "--formats-dir",
                             str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "wrong_fields" not in result.stdout or "bad.toml" in result.stdout
    assert "sample yields other fields than it declares" in result.stdout


def test_mosquitto_prefixes_all_detect_as_mosquitto() -> None:
    lines = {
        "epoch": "1795444254: New connection from 127.0.0.1:38880 on port 18830.",
        "iso": "2026-11-23T14:30:54: New connection from 127.0.0.1:38880 on port 18830.",
        "syslog": "Nov 23 14:30:54 gw mosquitto[81]: New connection from 127.0.0.1:38880 on port 18830.",
        "bare": "New connection from 127.0.0.1:38880 on port 18830.",
    }
    for name, line in lines.items():
        fmt, share = REGISTRY.detect([line] * 5)
        assert (fmt.name, share) == ("mosquitto", 1.0), name


def test_generic_fallback_for_unknown_text() -> None:
    fmt, share = REGISTRY.detect(["2026-11-23 14:20:00 something happened"])
    assert fmt.name == "generic"
    fmt, share = REGISTRY.detect(["no time here at all"])
    assert fmt.name == "generic" and share == 0.0


@pytest.mark.parametrize(("pattern", "words"), [
    (r"^Client (?P<client_id>\S+) disconnected\.$", ("Client",)),
    (r"^(?:Config loaded from|Loading config file) (?P<file>.+?)\.?$", ("Config", "Loading")),
    (r"^(?:Warning|Error): (?P<text>.*)$", ("Warning:", "Error:")),
    (r"^(?:Received AUTH from|Sending AUTH to) (?P<client_id>\S+)$", ("Received", "Sending")),
    # a branch that does not start with a literal word, an optional group, a word that runs into
    # a pattern: the message must then be tried on every line
    (r"^(?:Bad client (?P<c>\S+)|(?:Invalid|Empty) string)$", ()),
    (r"^(?:Warning|Error)? (?P<text>.*)$", ()),
    (r"^Error(?::| opening) (?P<text>.*)$", ()),
    (r"^(?P<client_id>\S+) (?P<qos>[0-2]) (?P<topic>\S+)$", ()),
])
def test_messages_are_keyed_by_every_first_word_they_allow(pattern: str, words: tuple[str, ...]) -> None:
    from correlator.formats.definition import first_words
    assert first_words(pattern) == words


def test_digit_only_groups_are_found_for_plain_int_conversion() -> None:
    from correlator.formats.definition import group_source
    pattern = r"^Sending PUBACK to (?P<client_id>\S+) \(m(?P<mid>\d+)(?:, rc(?P<rc>[0-9]{1,3}))?\)$"
    assert group_source(pattern, "mid") == r"\d+"
    assert group_source(pattern, "rc") == "[0-9]{1,3}"
    assert group_source(pattern, "client_id") == r"\S+"
    assert group_source(pattern, "missing") is None


def test_an_asyncua_server_log_is_the_server_side(tmp_path: Path) -> None:
    """One Python logging layout serves asyncua's server and its clients; the server's logger names
    make its log the OPC UA server's source (its lines are then the server side of a finding, not
    another client)."""
    from correlator.sources.files import LogFile
    samples = Path(__file__).resolve().parent.parent / "sample_logs" / "opcua_cert_untrusted"
    server = LogFile(samples / "server" / "opcua-server.log", REGISTRY)
    client = LogFile(samples / "clients" / "opcua-client.log", REGISTRY)
    assert (server.format.name, client.format.name) == ("python_logging", "python_logging")
    assert server.info.source == "opcua-server:opcua-server"
    assert client.info.source == "client:opcua-client"


def test_evidence_of_a_repeated_text_is_remembered_and_handed_out_as_a_copy() -> None:
    text = "OpenSSL Error[0]: error:0A000415:SSL routines::sslv3 alert certificate expired"
    first, kind = REGISTRY.evidence.extract(text)
    assert first["tls_reason"] == "cert_expired" and first["tls_alert"] is True and kind == "tls.error"
    first["tls_reason"] = "changed by a caller"
    again, _ = REGISTRY.evidence.extract(text)
    assert again["tls_reason"] == "cert_expired"  # the memo's own copy was not touched


def test_no_sample_line_goes_unparsed() -> None:
    """`correlator formats test sample_logs/`: every line of every log of every real sample is read
    by a format (certificates, configurations and expected.json are sorted out as `analyze` sorts
    them, not tested as logs)."""
    samples = Path(__file__).resolve().parent.parent / "sample_logs"
    out = subprocess.run([sys.executable, "-m", "correlator", "formats", "test", "--only-unparsed", str(samples)],
                         capture_output=True, text=True, check=True).stdout
    files = [line for line in out.splitlines() if ": format " in line]
    assert len(files) > 100
    assert [line for line in files if " 0 unparsed," not in line] == []
    assert "UNPARSED" not in out
    assert "expected.json" not in out and ".pem:" not in out


def test_a_syslog_stamp_is_dated_in_the_year_asked_even_after_another_year_was_asked() -> None:
    """Detection reads a file's first lines in this year, the parse in the year of the file's
    time: the same stamp must not keep the first year from a cache."""
    from correlator.formats.timeparse import TimeParser

    parser = TimeParser("syslog")
    first = parser.parse("Nov 23 14:41:49", year=2026)
    assert parser.parse("Nov 23 14:41:49.5", year=2023) == first - 3 * 365 * 86400 - 86400 + 0.5  # 2024 leaps


def test_every_built_in_sample_yields_what_it_declares() -> None:
    """A start does not run the built-in formats' samples (it would compile every alternation a
    log may never use): they are run here and by `./dev validate`."""
    registry = default_registry()
    problems = [str(p) for fmt in registry.formats.values() for p in check_samples(fmt, registry.evidence)]
    assert problems == []
    assert load_registry(collect=True).errors == []
