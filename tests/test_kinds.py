"""The kind vocabulary (parsers/vocab/kinds.toml): complete, read by formats, rules, the stitcher
and the engine, and strict about what it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.engine.rules import load_rules
from correlator.errors import DefinitionError
from correlator.formats.registry import default_registry
from correlator.kinds import kind_vocabulary, load_kinds
from correlator.resources import builtin_dir

VOCABULARY = kind_vocabulary()


def _rule_kinds(where: object) -> set[str]:
    """The kinds a rule's predicate tables name (equality, list, eq, in), found anywhere in them."""
    found: set[str] = set()
    if isinstance(where, dict):
        for key, value in where.items():
            if key == "kind":
                if isinstance(value, str):
                    found.add(value)
                elif isinstance(value, list):
                    found.update(v for v in value if isinstance(v, str))
                elif isinstance(value, dict):
                    found.update(_rule_kinds({"kind": value.get("eq")}) | _rule_kinds({"kind": value.get("in")}))
            else:
                found |= _rule_kinds(value)
    elif isinstance(where, list):
        for item in where:
            found |= _rule_kinds(item)
    return found


def test_every_kind_a_builtin_format_or_evidence_vocabulary_emits_is_declared() -> None:
    registry = default_registry()
    emitted = {m.kind for fmt in registry.formats.values() for m in fmt.messages}
    emitted |= {s.kind for fmt in registry.formats.values() for s in fmt.samples}
    emitted |= {v.kind for v in registry.evidence.vocabularies}
    assert len(emitted) > 70
    assert emitted - set(VOCABULARY.kinds) == set()


def test_every_kind_has_a_meaning_and_only_known_roles() -> None:
    for kind in VOCABULARY.kinds.values():
        assert kind.meaning
        assert kind.roles <= set(VOCABULARY.roles)
    for role, meaning in VOCABULARY.roles.items():
        assert meaning, role
        assert VOCABULARY.with_role(role) or VOCABULARY.conditional(role), f"role {role} is played by no kind"


def test_the_key_problem_rule_matches_the_kind_mosquitto_clients_really_emit() -> None:
    """tls.client_key_problem once matched `tls.key_error`, which no format emits."""
    rules = {r.id: r for r in load_rules()[0]}
    rule = rules["tls.client_key_problem"]
    kinds = set().union(*(s.kinds or frozenset() for m in rule.matches for s in m.steps))
    assert "tls.key_error" not in kinds
    assert "client.tls_config_error" in kinds
    fmt = default_registry().formats["mosquitto_clients"]
    assert any(m.kind == "client.tls_config_error" for m in fmt.messages)


def test_every_kind_a_builtin_rule_names_is_declared() -> None:
    import tomllib

    for file in sorted(builtin_dir("rules").glob("*.toml")):
        data = tomllib.loads(file.read_text(encoding="utf-8"))
        named = _rule_kinds(data.get("match", [])) | _rule_kinds(data.get("test", []))
        assert named - set(VOCABULARY.kinds) == set(), file.name


def test_stitching_roles_come_from_the_vocabulary() -> None:
    from correlator.engine.evaluate import ATTEMPT_STARTS
    from correlator.timeline.connections import BROKER_UNNAMED, CLIENT_STEPS, CLIENT_TERMINAL
    from correlator.timeline.pipeline import ANCHOR_KINDS

    assert CLIENT_STEPS == {"net.connecting": 0, "net.connect": 1, "net.connected": 1, "tls.connected": 2,
                            "mqtt.connecting": 3, "mqtt.connect": 3, "opcua.connect": 0, "opcua.connecting": 1}
    assert "tls.error" in BROKER_UNNAMED and "tls.error" in CLIENT_TERMINAL
    assert VOCABULARY.with_role("attempt_start") == ATTEMPT_STARTS
    assert {"net.accept", "mqtt.takeover", "broker.stop", *CLIENT_STEPS} <= ANCHOR_KINDS
    assert not {"mqtt.will", "mqtt.publish", "mqtt.packet"} & ANCHOR_KINDS


@pytest.mark.parametrize(("body", "message", "line"), [
    ('[role.opens]\nmeaning = "x"\n[kind."net.accept"]\nmeaning = "y"\nroles = ["open"]\n', "unknown role 'open'", 5),
    ('[role.step]\nmeaning = "x"\n\n[kind."net.connecting"]\nmeaning = "y"\nroles = ["step"]\n',
     "'step' role and a 'step' number go together", 4),
    ('[kind."net.accept"]\nroles = []\n', "a kind needs its 'meaning'", 1),
    ('[kind.NetAccept]\nmeaning = "y"\n', "must look like area.name", 1),
    ('[kind."net.accept"]\nmeaning = "y"\nrole = "opens"\n', "unknown key(s) role", 3),
])
def test_a_broken_vocabulary_names_file_and_line(tmp_path: Path, body: str, message: str, line: int) -> None:
    file = tmp_path / "kinds.toml"
    file.write_text(body)
    with pytest.raises(DefinitionError) as info:
        load_kinds(file)
    assert message in str(info.value)
    assert info.value.file == str(file) and info.value.line == line
