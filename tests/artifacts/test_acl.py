"""ACL parsing and the access check (semantics confirmed against a real broker in
test_acl_vs_broker.py; here the details of decisions, fixes and bad input)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from correlator.artifacts.acl import _matches, parse_acl, parse_acl_text

SEED_ACL = """\
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


def test_seed_acl_sparkplug_state_topics() -> None:
    acl = parse_acl_text(SEED_ACL, "acl")
    assert acl.problems == []
    assert acl.usernames == ["MyEACM", "SparkplugViewer", "HMI"]
    assert [(e.line, e.user, e.access, e.topic) for e in acl.section("HMI")] == [
        (10, "HMI", "readwrite", "STATE/+"), (11, "HMI", "readwrite", "spBv1.0/#")]

    # Sparkplug 3.0 host state lives under spBv1.0/, so MyEACM may publish it ...
    ok = acl.check("MyEACM", "eacm-1", "spBv1.0/STATE/scada", "write")
    assert ok.allowed and ok.entry is not None and ok.entry.location == "acl:3"
    # ... but the 2.2 topic STATE/<host> is read-only for MyEACM: a near miss with the exact fix.
    denied = acl.check("MyEACM", "eacm-1", "STATE/scada", "write")
    assert not denied.allowed and denied.entry is None
    assert [e.line for e in denied.near_misses] == [2]
    assert denied.fix == "topic readwrite STATE/+" and denied.fix_section == "acl:2"
    assert "grants only read" in denied.reason


def test_unknown_user_gets_nothing_and_fix_names_the_section() -> None:
    acl = parse_acl_text(SEED_ACL, "acl")
    decision = acl.check("edge-07", "edge-07", "spBv1.0/G/NDATA/edge-07", "write")
    assert not decision.allowed
    assert "no entries for user 'edge-07'" in decision.reason
    assert decision.fix == "topic write spBv1.0/G/NDATA/edge-07"
    assert decision.fix_section == "user edge-07"


def test_anonymous_section_applies_only_without_username() -> None:
    acl = parse_acl_text("topic read public/#\n\nuser alice\ntopic readwrite alice/#\n", "acl")
    assert acl.check(None, "c1", "public/a", "read").allowed
    assert not acl.check("alice", "c1", "public/a", "read").allowed
    anon = acl.check(None, "c1", "alice/x", "write")
    assert not anon.allowed and anon.fix_section == "anonymous section (before the first user line)"


def test_deny_is_checked_first_and_reported() -> None:
    acl = parse_acl_text("user u\ntopic readwrite a/#\ntopic deny a/secret\n", "acl")
    decision = acl.check("u", "c", "a/secret", "read")
    assert not decision.allowed and decision.entry is not None and decision.entry.line == 3
    assert decision.fix_section == "acl:3"
    assert acl.check("u", "c", "a/other", "read").allowed
    assert acl.check("u", "c", "a", "write").allowed  # 'a/#' matches its parent


def test_dollar_topics_and_sys_writes() -> None:
    acl = parse_acl_text("user u\ntopic readwrite #\ntopic read $SYS/#\n", "acl")
    assert not acl.check("u", "c", "$custom/x", "read").allowed
    assert acl.check("u", "c", "$SYS/broker/uptime", "read").allowed
    sys_write = acl.check("u", "c", "$SYS/broker/uptime", "write")
    assert not sys_write.allowed and sys_write.fix is None and "$SYS" in sys_write.reason
    assert not acl.check("u", "c", "$share/g/t", "write").allowed


def test_patterns_substitution_and_dangerous_names() -> None:
    acl = parse_acl_text("user admin\ntopic readwrite admin/#\npattern readwrite dev/%c/%u/#\n"
                         "pattern read all/%c\n", "acl")
    assert acl.check("bob", "edge1", "dev/edge1/bob/t", "write").allowed
    assert not acl.check("bob", "edge1", "dev/edge2/bob/t", "write").allowed
    assert acl.check(None, "edge1", "all/edge1", "read").allowed
    assert not acl.check(None, "edge1", "dev/edge1/%u/t", "write").allowed  # %u patterns skipped
    danger = acl.check("b+b", "edge1", "all/edge1", "read")
    assert not danger.allowed and "'+' or '#'" in danger.reason
    assert acl.check("admin", "x#", "admin/t", "write").allowed  # own section is checked first


def test_empty_acl_denies_everything() -> None:
    acl = parse_acl_text("# nothing yet\n", "acl")
    assert acl.problems == [] and acl.entries == []
    assert not acl.check("alice", "c", "t", "read").allowed


def test_check_rejects_filters_and_bad_actions() -> None:
    acl = parse_acl_text(SEED_ACL, "acl")
    with pytest.raises(ValueError):
        acl.check("HMI", "c", "STATE/+", "write")
    with pytest.raises(ValueError):
        acl.check("HMI", "c", "STATE/x", "subscribe")  # type: ignore[arg-type]


def test_subscription_delivery() -> None:
    acl = parse_acl_text("user v\ntopic read spBv1.0/G1/#\ntopic read STATE/+\n", "acl")
    assert acl.check_subscription("v", "c", "STATE/+").delivery == "all"
    assert acl.check_subscription("v", "c", "STATE/scada").delivery == "all"
    partial = acl.check_subscription("v", "c", "spBv1.0/#")
    assert partial.subscribe_granted and partial.delivery == "some"
    none = acl.check_subscription("v", "c", "other/#")
    assert none.subscribe_granted and none.delivery == "none"
    assert none.fix == "topic read other/#" and none.fix_section == "user v"
    with pytest.raises(ValueError):
        acl.check_subscription("v", "c", "a/#/b")


def test_bad_lines_are_collected_with_lines_and_the_rest_parses() -> None:
    text = ("user alice\n"                 # 1
            "topic\tread a/b\n"            # 2 tab
            "  # indented comment\n"       # 3
            "topic sometimes a/b\n"        # 4
            "topic read a/#/b\n"           # 5
            "user\n"                       # 6
            "topic\n"                      # 7
            "grant all\n"                  # 8
            "topic read ok/topic\r\n"      # 9 CRLF is fine
            "topic write with space/x\n")  # 10 (access 'write', topic 'with space/x')
    acl = parse_acl_text(text, "bad.acl")
    assert [p.line for p in acl.problems] == [2, 3, 4, 5, 6, 7, 8]
    assert "tab" in acl.problems[0].message and "comment" in acl.problems[1].message
    assert all(str(p).startswith("bad.acl:") and "\n" not in str(p) for p in acl.problems)
    assert [(e.line, e.access, e.topic) for e in acl.entries] == [(9, "read", "ok/topic"),
                                                                 (10, "write", "with space/x")]
    assert acl.check("alice", "c", "ok/topic", "read").allowed


def test_unreadable_binary_and_folder(tmp_path: Path) -> None:
    assert "cannot read" in str(parse_acl(tmp_path / "missing").problems[0])
    folder = tmp_path / "acl.d"
    folder.mkdir()
    assert len(parse_acl(folder).problems) == 1
    binary = tmp_path / "acl.bin"
    binary.write_bytes(bytes(range(256)))
    result = parse_acl(binary)
    assert result.entries == [] and "binary" in str(result.problems[0])
    assert str(result.problems[0]).startswith(f"{binary}:1:")


# -- property-based --------------------------------------------------------------------------

ACL_WORDS = ["user", "topic", "pattern", "read", "write", "readwrite", "deny", "#", "+", "a/b", "a/+/c",
             "%u", "%c/x", "$SYS/#", "", "\t", "a/#/b", "x"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(ACL_WORDS), max_size=4).map(" ".join), max_size=15),
       st.sampled_from([None, "alice", "a+b"]), st.sampled_from(["c1", "%c", "x#"]),
       st.sampled_from(["a/b", "$SYS/x", "x", "a/q/c", "alice/x"]), st.sampled_from(["read", "write"]))
def test_acl_parse_and_check_never_crash(lines: list[str], user: str | None, client: str, topic: str,
                                         action: str) -> None:
    acl = parse_acl_text("\n".join(lines), "fuzz.acl")
    decision = acl.check(user, client, topic, action)  # type: ignore[arg-type]
    assert isinstance(decision.allowed, bool) and decision.reason
    assert all(p.line is not None and 1 <= p.line <= len(lines) for p in acl.problems)
    for pattern in ("a/#", "+/b", "a/b"):
        assert acl.check_subscription(user, client, pattern).subscribe_granted


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_acl_parser_never_crashes_on_random_input(data: bytes | str) -> None:
    acl = parse_acl_text(data, "fuzz.acl")
    assert all("\n" not in str(p) for p in acl.problems)


LEVELS = st.sampled_from(["a", "b", "c", "sp", ""])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "+", ""]), min_size=1, max_size=4),
       st.booleans(), st.lists(LEVELS, min_size=1, max_size=4))
def test_topic_matching_agrees_with_paho(sub_levels: list[str], hash_end: bool, topic_levels: list[str]) -> None:
    sub = "/".join([*sub_levels, "#"] if hash_end else sub_levels)
    topic = "/".join(topic_levels)
    if not topic:
        return  # an empty topic name is invalid; mosquitto matches nothing, paho's '+' would
    assert _matches(sub, topic) == topic_matches_sub(sub, topic)


def test_byte_order_mark_breaks_the_first_line() -> None:
    acl = parse_acl_text(b"\xef\xbb\xbfuser alice\r\ntopic read a\r\n", "acl")
    assert [p.line for p in acl.problems] == [1] and "byte order mark" in acl.problems[0].message
    assert [(e.user, e.topic) for e in acl.entries] == [(None, "a")]  # lands in the anonymous section
