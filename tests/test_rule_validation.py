"""The rule validators (engine/validate.py) and `correlator rules validate|test`: every broken rule
in tests/bad_rules/ is rejected with its file and line, every error is reported in one run, and
the built-in rules pass."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from correlator.engine.rules import load_rule, load_rules
from correlator.engine.validate import known, validate
from correlator.errors import DefinitionError
from correlator.formats.registry import default_registry

BAD = sorted((Path(__file__).parent / "bad_rules").glob("*.toml"))
BUILTIN, _ = load_rules()


def _errors_of(path: Path) -> list[DefinitionError]:
    """What loading and then validating one rule file (beside the built-in rules) says."""
    try:
        rule = load_rule(path)
    except DefinitionError as exc:
        return [exc]
    rules = [*BUILTIN, rule]
    return validate([rule], known(rules, default_registry()))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_rule_is_rejected_with_file_and_line(path: Path) -> None:
    text = path.read_text()
    expected = re.search(r"^# expect: (.*)$", text, re.M).group(1)  # type: ignore[union-attr]
    line = int(re.search(r"^# line: (\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
    errors = _errors_of(path)
    assert errors, f"{path.name} was accepted"
    matching = [e for e in errors if expected in e.message]
    assert matching, [str(e) for e in errors]
    assert matching[0].file == str(path) and matching[0].line == line, str(matching[0])
    assert str(matching[0]).startswith(f"{path}:{line}")


def test_builtin_rules_pass_every_validator() -> None:
    assert validate(BUILTIN, known(BUILTIN, default_registry())) == []


def test_validate_command_reports_every_error_of_every_file(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "correlator", "rules", "validate", "--rules-dir",
                             str(Path(__file__).parent / "bad_rules")], capture_output=True, text=True)
    assert result.returncode == 1
    for path in BAD:
        assert f"{path}:" in result.stdout, path.name  # one broken file does not hide the others
    assert "no [[test]] with fires = true" in result.stdout and "no [[test]] with fires = false" in result.stdout
    good = subprocess.run([sys.executable, "-m", "correlator", "rules", "validate"], capture_output=True, text=True)
    assert good.returncode == 0, good.stdout
    assert ", 0 errors" in good.stdout


def test_a_rule_naming_an_unknown_check_is_refused_when_rules_load(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text((Path(__file__).parent / "bad_rules" / "unknown_require.toml").read_text())
    with pytest.raises(DefinitionError, match="unknown check 'listener_is_plaintext'"):
        load_rules([tmp_path])
    rules, errors = load_rules([tmp_path], collect=True)
    assert "test.unknown_require" not in {r.id for r in rules}
    assert "tls.server_cert_expired" in {r.id for r in rules}  # the others still load
    assert errors[0].line == 11


def test_rules_test_with_no_cases_is_not_a_pass(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text((Path(__file__).parent / "bad_rules" / "no_tests.toml").read_text())
    result = subprocess.run([sys.executable, "-m", "correlator", "rules", "test", "--rules-dir", str(tmp_path),
                             "test.no_tests"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "NONE test.no_tests: the rule has no [[test]] cases" in result.stdout
    assert "nothing is proven" in result.stdout
