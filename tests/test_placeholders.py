"""No unfilled placeholder, ever: when the input lacks a value, the text says in words what is
missing and what to add, in every explanation and fix step."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from correlator.analysis import analyze
from correlator.engine.remedy import explain, fill_step, placeholders
from correlator.engine.rules import load_rules

RULES, _ = load_rules([])
SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
_LEFT = re.compile(r"<[a-z_]+>|\{[a-z_]+\}")


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_a_rule_with_nothing_known_says_what_is_missing(rule: object) -> None:
    explanation = explain(rule.explanation, {})  # type: ignore[attr-defined]
    assert not _LEFT.search(explanation), explanation
    if any("{" in p.text for p in rule.explanation if not p.when):  # type: ignore[attr-defined]
        assert "\nNot in the input: " in explanation
    for template in rule.remediation:  # type: ignore[attr-defined]
        # no template placeholder may be left, in the words or in the command
        step = fill_step(template, {template.when: "x"} if template.when else {})
        assert step is not None
        for text in (step.text, step.command):
            assert not re.search(r"\{[a-z_]+\}|<(?:" + "|".join(placeholders()) + ")>", text), text


def test_every_placeholder_the_rules_use_is_described() -> None:
    used = {name for rule in RULES
            for text in (*(p.text for p in rule.explanation), *(s.text for s in rule.remediation),
                         *(s.command for s in rule.remediation))
            for name in re.findall(r"\{([a-z_]+)\}", text)}
    always = {"count", "source_name", "clock_of", "offset_text", "pairs", "anonymous_tls_ports", "old_tls_ports",
              "old_tls_versions", "expiring"}
    assert used - always - set(placeholders()) == set()


def test_a_missing_password_file_is_said_in_words(tmp_path: Path) -> None:
    """bad_credentials without the broker's password file: the explanation says the file is
    missing and what it would tell, where it once showed <user_verdict>."""
    folder = tmp_path / "bundle"
    shutil.copytree(SAMPLES / "bad_credentials", folder, ignore=shutil.ignore_patterns("passwd", "expected.json"))
    analysis = analyze([folder])
    finding = next(f for f in analysis.findings if f.id == "auth.bad_credentials")
    assert "<" not in finding.explanation.replace("</", "")
    assert "The password file is not in the bundle" in finding.explanation
    assert "add it (password_file in mosquitto.conf)" in finding.explanation


def test_an_insecure_setting_is_said_in_the_rules_words_for_each_kind_found(tmp_path: Path) -> None:
    """config.insecure says each kind of problem the broker's configuration shows in the passage
    its rule declares for it, and leaves out the passages of what it does not show."""
    folder = tmp_path / "bundle"
    shutil.copytree(SAMPLES / "cert_judged_at_estimate", folder)
    insecure = next(f for f in analyze([folder]).findings if f.id == "config.insecure")
    assert insecure.explanation.startswith("Listener 36077 has TLS but lets anonymous clients in")
    assert "older than 1.2" not in insecure.explanation
    conf = folder / "broker" / "mosquitto.conf"
    conf.write_text(conf.read_text().replace("require_certificate false", "require_certificate true")
                    + "tls_version tlsv1.1\n")
    insecure = next(f for f in analyze([folder]).findings if f.id == "config.insecure")
    assert insecure.explanation == ("Listener 36077 accepts TLS older than 1.2 (tls_version tlsv1.1): "
                                    "RFC 8996 deprecates TLS 1.0 and 1.1.")
    assert [(s.kind, s.command) for s in insecure.remediation] == [("config", "tls_version tlsv1.2")]
