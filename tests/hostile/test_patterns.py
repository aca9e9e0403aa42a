"""A user's format cannot hang the reader (issue 16, item 9): its patterns run under a time bound
(formats/patterns.py); a pattern that runs out of time on a line is reported with its file and
line, the line is read with the generic format, and after a few such lines the rest of the file is
read without it. (The built-in formats run unbounded on `re`: benchmarks/hostile.py --patterns shows
each stays linear on long pathological lines.)"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hostile import corpus

from correlator.analysis import Options, analyze
from correlator.definitions import line_in
from correlator.errors import DefinitionError
from correlator.formats import patterns
from correlator.formats.definition import load_format
from correlator.formats.parse import match_line
from correlator.formats.patterns import BoundedPattern
from correlator.formats.registry import default_registry, load_registry
from correlator.sources.files import LogFile

GATEWAY = r"""
[format]
name = "plc_gateway"
role = "client"

[[format.line]]
name = "main"
regex = '^GW;(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d);(?P<level>\w+);(?P<body>.*)$'
time = "iso"

[[message]]
name = "link_down"
kind = "net.error"
level = "error"
regex = '^uplink (?P<peer_addr>\S+) down$'
samples = [{ line = 'GW;2026-11-23T14:20:00;ERROR;uplink 10.3.0.11 down', fields = { peer_addr = "10.3.0.11" } }]

[[message]]
name = "flood"
kind = "gw.flood"
regex = '^(a+)+$'
samples = [{ line = 'GW;2026-11-23T14:20:00;INFO;aaaa', fields = {} }]

[kind."gw.flood"]
meaning = "A line of a's (the catastrophic pattern of the issue)"
"""
#: A body `(a+)+$` backtracks on for ever (the issue's case): a long run of a's and one b.
FLOOD = "a" * 5000 + "b"


def gateway(tmp_path: Path, bodies: list[str]) -> tuple[Path, Path]:
    """The user's format folder and a gateway log with these bodies, one second apart."""
    formats = tmp_path / "formats"
    formats.mkdir()
    (formats / "gw.toml").write_text(GATEWAY)
    log = tmp_path / "bundle" / "gw.log"
    log.parent.mkdir()
    log.write_text("".join(f"GW;2026-11-23T14:20:{i:02d};INFO;{body}\n" for i, body in enumerate(bodies)))
    return formats, log


def test_a_catastrophic_message_pattern_is_named_and_its_line_read_with_the_generic_format(tmp_path: Path) -> None:
    formats, log = gateway(tmp_path, ["aaaa", "uplink 10.3.0.11 down", FLOOD, "uplink 10.3.0.12 down", "aaa"])
    registry = load_registry([formats])
    reader = LogFile(log, registry)
    events = list(reader.events())
    assert reader.format.name == "plc_gateway"
    assert [e.format for e in events] == ["plc_gateway/main/flood", "plc_gateway/main/link_down", "generic/iso",
                                          "plc_gateway/main/link_down", "plc_gateway/main/flood"]
    assert events[2].ts == events[1].ts + 1  # the generic format still dates it
    place = f"{formats / 'gw.toml'}:{line_in(formats / 'gw.toml', ('message', 1, 'regex'))}"
    assert [str(p) for p in reader.problems()] == [
        f"{log}:3: the regex of format plc_gateway, message 'flood'.regex ({place}) took over 0.05 s on this line "
        "(it backtracks): the line is read with the generic format"]


def test_a_pattern_that_keeps_running_out_of_time_is_set_aside_for_the_rest_of_the_file(tmp_path: Path) -> None:
    formats, log = gateway(tmp_path, ["uplink 10.3.0.11 down", *[FLOOD] * 8, "uplink 10.3.0.12 down", "aaaa"])
    reader = LogFile(log, load_registry([formats]), format_name="plc_gateway")
    events = list(reader.events())
    kinds = [e.format for e in events]
    assert kinds[1:4] == ["generic/iso"] * 3
    # set aside: the gateway's line pattern still reads the rest, without the flood message
    assert kinds[4:] == ["plc_gateway/main"] * 5 + ["plc_gateway/main/link_down", "plc_gateway/main"]
    problems = [str(p) for p in reader.problems()]
    assert len(problems) == 2 and problems[0].startswith(f"{log}:2: the regex of format plc_gateway, message 'flood'")
    assert problems[1].startswith(f"{log}:4: the regex of format plc_gateway, message 'flood'.regex (")
    assert problems[1].endswith("ran out of time on 3 lines: the rest of the file is read without it")


def test_analyze_reports_the_pattern_and_still_finds_the_healthy_incident(tmp_path: Path) -> None:
    formats, log = gateway(tmp_path, ["uplink 10.3.0.11 down", FLOOD, "aaaa"])
    shutil.copytree(corpus.HEALTHY, log.parent / "healthy")
    analysis = analyze([log.parent], Options(formats_dirs=[str(formats)]))
    assert corpus.HEALTHY_CAUSE in {f.id for f in analysis.findings}
    (error,) = analysis.errors
    assert error.startswith("gw.log:2: the regex of format plc_gateway, message 'flood'.regex (")
    assert error.endswith("took over 0.05 s on this line (it backtracks): the line is read with the generic format")


def test_a_catastrophic_line_pattern_is_bounded_too(tmp_path: Path) -> None:
    formats, log = gateway(tmp_path, ["uplink 10.3.0.11 down", "x" * 3000 + "!"])
    text = (formats / "gw.toml").read_text().replace(r"(?P<body>.*)$'", r"(?P<body>(x+x+)+y|[^x].*)$'")
    (formats / "gw.toml").write_text(text)
    reader = LogFile(log, load_registry([formats]), format_name="plc_gateway")
    events = list(reader.events())
    assert [e.format for e in events] == ["plc_gateway/main/link_down", "generic/iso"]
    (problem,) = reader.problems()
    assert str(problem).startswith(f"{log}:2: the regex of format plc_gateway, format.line 'main'.regex (")


def test_a_format_whose_pattern_runs_out_of_time_on_the_first_lines_is_said_when_not_chosen(tmp_path: Path) -> None:
    formats, _ = gateway(tmp_path, [])
    text = (formats / "gw.toml").read_text()
    text = text.replace("^GW;", "^(?:(?:a+)+$|GW;").replace("(?P<body>.*)$'", "(?P<body>.*))$'")
    (formats / "gw.toml").write_text(text)
    log = tmp_path / "other.log"
    log.write_text("".join(f"{'a' * 5000}!\n" for i in range(5)))
    reader = LogFile(log, load_registry([formats]))
    assert reader.format.name != "plc_gateway"
    list(reader.events())
    (problem,) = reader.problems()
    assert str(problem).startswith(f"{log}: the regex of format plc_gateway, format.line 'main'.regex (")
    assert str(problem).endswith("(it backtracks) while the file's format was chosen")


def test_a_sample_that_runs_out_of_time_is_a_format_error(tmp_path: Path) -> None:
    formats, _ = gateway(tmp_path, [])
    text = (formats / "gw.toml").read_text().replace(";INFO;aaaa'", f";INFO;{FLOOD}'")
    (formats / "gw.toml").write_text(text)
    registry = load_registry([formats], collect=True)
    assert "plc_gateway" not in registry.formats
    assert any("format plc_gateway, message 'flood'.regex: the regex took over 0.05 s on one line" in str(e)
               for e in registry.errors)


def test_only_a_users_format_is_bounded(tmp_path: Path) -> None:
    builtin = default_registry().get("mosquitto")
    assert all(isinstance(lp.regex, re.Pattern) for lp in builtin.lines)
    copy = tmp_path / "mosquitto.toml"
    copy.write_text(Path(builtin.file).read_text())
    user = load_format(copy)
    assert all(isinstance(lp.regex, BoundedPattern) for lp in user.lines)
    assert all(isinstance(m.regex, BoundedPattern) for m in user.messages)


def test_an_uncaught_timeout_is_one_line_naming_the_pattern(tmp_path: Path) -> None:
    formats, _ = gateway(tmp_path, [])
    fmt = load_registry([formats]).get("plc_gateway")
    with pytest.raises(DefinitionError) as caught:
        match_line(fmt, f"GW;2026-11-23T14:20:00;INFO;{FLOOD}", default_registry().evidence)
    assert str(caught.value).startswith(f"{formats / 'gw.toml'}:")
    assert "[format plc_gateway, message 'flood'.regex]: the regex took over 0.05 s on one line" in str(caught.value)


def test_the_bound_is_what_the_readme_says() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"{patterns.PATTERN_TIMEOUT:g} s" in readme and f"after {patterns.SET_ASIDE_AFTER} such lines" in readme


@pytest.mark.parametrize("name", sorted(default_registry().formats))
def test_a_number_too_long_for_int_stays_text(name: str) -> None:
    """Every digit run of every sample made 5,000 digits long (int() refuses over 4,300): the line
    is read, the number kept as text (found by benchmarks/hostile.py --patterns)."""
    registry = default_registry()
    fmt = registry.get(name)
    for sample in fmt.samples:
        line = re.sub(r"\d+", "7" * 5000, sample.line)
        match_line(fmt, line, registry.evidence)


def test_every_vocabulary_phrase_is_found_case_blind_through_the_named_list() -> None:
    """The plain phrases of parsers/vocab/ sit in a `regex` named list: each, in any case, inside a
    line, is found by its reason and by the vocabulary's quick search."""
    checked = 0
    for vocab in default_registry().evidence.vocabularies:
        for reason in vocab.reasons:
            for phrase in reason.patterns:
                if set(phrase) & set(".^$*+?{}[]|()\\"):
                    continue
                for text in (f"x: {phrase.upper()} (y)", f"x: {phrase.lower()}"):
                    assert reason.regex.search(text) and vocab.quick.search(text), (vocab.field, phrase)
                checked += 1
    assert checked > 100
