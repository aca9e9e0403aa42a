"""Every rule's own test cases, the rule language's errors, and the engine's state handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.engine.evaluate import Engine
from correlator.engine.rules import load_rule, load_rules
from correlator.engine.selftest import make_event, run_test
from correlator.errors import DefinitionError

RULES, _ = load_rules()
CASES = [(rule, test) for rule in RULES for test in rule.tests]


@pytest.mark.parametrize(("rule", "test"), CASES, ids=[f"{r.id}:{t.name}" for r, t in CASES])
def test_rule_case(rule: object, test: object) -> None:
    outcome = run_test(rule, test)  # type: ignore[arg-type]
    assert outcome.passed, f"{outcome.rule}: '{outcome.test}' expected fires={outcome.expected}"


def test_every_rule_has_cases_that_fire_and_that_do_not() -> None:
    for rule in RULES:
        fires = {t.fires for t in rule.tests}
        assert fires == {True, False}, rule.id


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


HEAD = '[rule]\nid = "x.y"\ntitle = "t"\nseverity = "high"\nexplanation = "e"\n'


@pytest.mark.parametrize(("body", "message"), [
    ("", "at least one [[match]] is needed"),
    ('[[match]]\ntype = "sequence"\nsteps = [{ where = { kind = "a.b" } }]\n', "at least two steps"),
    ('[[match]]\ntype = "event"\nwhere = { kind = { regex = "(" } }\n', "regex does not compile"),
    ('[[match]]\ntype = "event"\nwhere = { kind = { near = 1 } }\n', "unknown operator(s) near"),
    ('[[match]]\ntype = "threshold"\ncount = 1\nwhere = { kind = "a.b" }\n', "'count' must be an integer"),
    ('[[match]]\ntype = "absence"\nby = "client_id"\nwithin = "soon"\nfirst = { where = { kind = "a" } }\n'
     'missing = { where = { kind = "b" } }\n', "is not a duration"),
    ('[[match]]\ntype = "telepathy"\n', "'type' must be one of"),
])
def test_rule_errors_name_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, HEAD + body)
    with pytest.raises(DefinitionError) as info:
        load_rule(path)
    assert message in str(info.value)
    assert str(path) in str(info.value) and "rule x.y" in str(info.value)


def _engine(tmp_path: Path, body: str) -> Engine:
    return Engine([load_rule(_write(tmp_path, HEAD + body))])


def test_sequence_joins_keys_named_differently_and_respects_window(tmp_path: Path) -> None:
    engine = _engine(tmp_path, '''
[[match]]
type = "sequence"
maxspan = "5s"
steps = [
  { where = { kind = "client.try" }, by = "local_port" },
  { where = { kind = "net.accept" }, by = "peer_port" },
]
''')
    events = [make_event({"source": "client:a", "kind": "client.try", "local_port": 1, "t": 0}, 0, ""),
              make_event({"kind": "net.accept", "peer_port": 2, "t": 1}, 1, ""),
              make_event({"kind": "net.accept", "peer_port": 1, "t": 2}, 2, ""),
              make_event({"source": "client:a", "kind": "client.try", "local_port": 3, "t": 3}, 3, ""),
              make_event({"kind": "net.accept", "peer_port": 3, "t": 30}, 4, "")]
    engine.feed_many(events)
    (finding,) = engine.findings()
    assert finding.count == 1
    assert [e.line for e in finding.evidence] == [1, 3]


def test_sequence_until_cancels(tmp_path: Path) -> None:
    engine = _engine(tmp_path, '''
[[match]]
type = "sequence"
by = "connection"
steps = [{ where = { kind = "net.accept" } }, { where = { kind = "mqtt.disconnect" } }]
until = { where = { kind = "mqtt.connect" } }
''')
    engine.feed_many([make_event({"kind": "net.accept", "connection": "c1"}, 0, ""),
                      make_event({"kind": "mqtt.connect", "connection": "c1"}, 1, ""),
                      make_event({"kind": "mqtt.disconnect", "connection": "c1"}, 2, "")])
    assert engine.findings() == []


def test_absence_fires_only_after_its_deadline(tmp_path: Path) -> None:
    engine = _engine(tmp_path, '''
[[match]]
type = "absence"
by = "connection"
within = "10s"
first = { where = { kind = "net.accept" } }
missing = { where = { kind = "mqtt.connect" } }
''')
    engine.feed_many([make_event({"kind": "net.accept", "connection": "c1", "t": 0}, 0, ""),
                      make_event({"kind": "net.accept", "connection": "c2", "t": 1}, 1, ""),
                      make_event({"kind": "mqtt.connect", "connection": "c2", "t": 2}, 2, "")])
    assert engine.findings() == []
    engine.feed(make_event({"kind": "other", "t": 11}, 3, ""))
    (finding,) = engine.findings()
    assert [e.line for e in finding.evidence] == [1]


def test_threshold_counts_per_key_and_forgets_old_windows(tmp_path: Path) -> None:
    engine = _engine(tmp_path, '''
[rule.x]
[[match]]
type = "threshold"
by = "client_id"
count = 3
within = "10s"
where = { kind = "mqtt.takeover" }
'''.replace("[rule.x]\n", ""))
    spec = {"kind": "mqtt.takeover"}
    engine.feed_many([make_event({**spec, "client_id": "a", "t": t}, i, "") for i, t in enumerate((0, 1, 20))])
    engine.feed_many([make_event({**spec, "client_id": "b", "t": t}, i, "") for i, t in enumerate((21, 22, 23))])
    (finding,) = engine.findings()
    assert finding.clients == {"b"} and finding.count == 1
    state = engine._states[0][1]
    engine.advance_to(1_700_000_100)
    assert state.windows == {}  # bounded: closed windows are dropped


def test_a_check_without_its_artifacts_can_never_hold_and_its_matches_are_not_run() -> None:
    from correlator.engine.facts import Artifacts
    from correlator.sources.bundle import open_bundle

    samples = Path(__file__).resolve().parent.parent / "sample_logs"
    assert not Artifacts().can_hold("acl_denies_publish")
    assert not Artifacts().can_hold("no_such_check")
    with open_bundle([samples / "publish_denied"]) as bundle:
        with_acl = Artifacts.from_bundle(bundle)
    assert with_acl.can_hold("acl_denies_publish") and not with_acl.can_hold("opcua_cert_rejected")
    acl = [r for r in RULES if r.id == "acl.publish_denied"]
    required = [m for r in acl for m in r.matches if m.require]
    assert required  # the connect + publish sequence
    running = {id(state.match) for _, state in Engine(acl, Artifacts())._states}
    assert not running & {id(m) for m in required}
    assert {id(state.match) for _, state in Engine(acl, with_acl)._states} >= {id(m) for m in required}


def test_a_backtracking_rule_pattern_is_stopped_and_named_with_its_file_and_rule(tmp_path: Path) -> None:
    """A rule's regex runs under the formats' time bound: `(?:[^,]|[^,]{2})+[,;]$` backtracks
    exponentially on every broker line without a comma (on Python's `re`, a 90-character line would
    take longer than the universe's age). Each such line is reported with the log's file and line and
    the rule's file, line and id; after three the match is set aside, and the sample's own cause is
    still found."""
    from correlator.analysis import Options, analyze

    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "test.backtracks.toml").write_text(
        HEAD.replace('"x.y"', '"test.backtracks"')
        + '[[match]]\ntype = "event"\nwhere = { side = "broker", raw = { regex = "^(?:[^,]|[^,]{2})+[,;]$" } }\n')
    samples = Path(__file__).resolve().parent.parent / "sample_logs"
    analysis = analyze([samples / "connection_refused"], Options(rules_dirs=[str(folder)]))
    stopped = [e for e in analysis.errors if "test.backtracks" in e]
    assert len(stopped) == 2, analysis.errors
    rule_file = f"{folder / 'test.backtracks.toml'}:8"
    assert stopped[0].startswith("broker/mosquitto.log:") and "took over 0.05 s on this line" in stopped[0]
    assert f"the regex of rule test.backtracks, match[0].where.raw.regex ({rule_file})" in stopped[0]
    assert "ran out of time on 3 lines: its match is set aside" in stopped[1]
    assert "net.connection_refused" in {f.id for f in analysis.findings}
    assert "test.backtracks" not in {f.id for f in analysis.findings}


def test_a_passage_can_stand_in_for_a_value_the_input_lacks() -> None:
    """`when = "name"` says a passage only with the value, `when = "!name"` only without it: a rule
    words what the artifacts would show instead of filling a sentence with placeholders."""
    from correlator.engine.remedy import Passage, explain

    passages = [Passage("Always."), Passage("Thumbprint {thumb}.", "thumb"), Passage("No PKI folder here.", "!thumb")]
    assert explain(passages, {"thumb": "AB12"}) == "Always.\nThumbprint AB12."
    assert explain(passages, {}) == "Always.\nNo PKI folder here."
