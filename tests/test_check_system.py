"""One certificate-check system (issue 11 item 3): one frozen CheckResult with a status enum for
every check; the rules' artifact checks ask the certificate checks at an injected time, with one
expiry window; the probe reads its TLS reasons from the vocabulary files."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import pkgutil
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import correlator
from correlator.artifacts import cert_checks, probe
from correlator.artifacts.certs import CertFacts, KeyFacts, load_bytes, load_file
from correlator.check_result import CheckResult, CheckStatus
from correlator.engine import facts
from correlator.engine.facts import Artifacts
from correlator.engine.rules import load_rules
from correlator.formats.evidence import load_vocabulary
from correlator.model import Event
from correlator.resources import builtin_dir
from lab import pki

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PACKAGE = Path(correlator.__file__).parent


def cert(issued: pki.Issued, path: str) -> CertFacts:
    return load_bytes(issued.cert.public_bytes(serialization.Encoding.PEM), path=path).certs[0]


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca(not_before=NOW - timedelta(days=400), key_kind="ec")


def event(at: datetime) -> Event:
    return Event(ts=at.timestamp(), time_text="", source="broker", file="broker/mosquitto.log", line=7,
                 kind="tls.error", raw="OpenSSL Error[0]: ... certificate expired")


def test_one_check_result_class_in_the_package() -> None:
    """The engine's mutable CheckResult(status: str) and the certificate checks' frozen one were
    two classes of one name: now every check module uses the one in the ground layer."""
    defined = []
    for info in pkgutil.walk_packages([str(PACKAGE)], "correlator."):
        if info.name.startswith(("correlator.tui", "correlator.api")):
            continue
        source = Path(importlib.util.find_spec(info.name).origin or "").read_text()  # type: ignore[union-attr]
        defined += [info.name for node in ast.walk(ast.parse(source))
                    if isinstance(node, ast.ClassDef) and node.name == "CheckResult"]
    assert defined == ["correlator.check_result"]
    assert dataclasses.is_dataclass(CheckResult) and CheckResult.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert {s.value for s in CheckStatus} == {"ok", "problem", "not_run"}


def test_every_rule_check_returns_the_one_result(ca: pki.Issued) -> None:
    arts = Artifacts(certs=[cert(pki.make_leaf("broker", ca, sans=["broker"], key_kind="ec",
                                               not_before=NOW - timedelta(days=10)), "certs/server.pem")],
                     now=NOW)
    for name in facts.CHECKS:
        result = arts.check(name, [event(NOW)], {"listener_port": 8883})
        assert isinstance(result, CheckResult) and isinstance(result.status, CheckStatus), name
        assert result.check == name
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.message = "changed"  # type: ignore[misc]


def test_checks_never_read_the_clock() -> None:
    for module in (cert_checks, facts):
        assert "datetime.now" not in Path(module.__file__ or "").read_text(), module.__name__


def test_expiring_soon_is_judged_at_the_injected_time_with_the_one_window(ca: pki.Issued) -> None:
    """A certificate 20 days from its end on the analysis's day: warned about within the window
    cert_checks declares, not within a second one, and not at all without a time."""
    soon = cert(pki.make_leaf("broker", ca, key_kind="ec", not_before=NOW - timedelta(days=300),
                              not_after=NOW + timedelta(days=20)), "certs/server.pem")
    result = Artifacts(certs=[soon], now=NOW).check("cert_expiring_soon", [], {})
    assert result.status is CheckStatus.PROBLEM
    assert result.values["expiring"].endswith(" on 2026-12-13 12:00:00 UTC, in 20 days")
    assert Artifacts(certs=[soon], now=NOW - timedelta(days=30)).check(
        "cert_expiring_soon", [], {}).status is CheckStatus.PASSED
    assert Artifacts(certs=[soon], now=NOW, window=timedelta(days=7)).check(
        "cert_expiring_soon", [], {}).status is CheckStatus.PASSED
    assert Artifacts().window == cert_checks.EXPIRY_WINDOW
    unknown = Artifacts(certs=[soon]).check("cert_expiring_soon", [], {})
    assert unknown.status is CheckStatus.NOT_RUN and "no time" in unknown.message


def test_validity_checks_ask_cert_checks_at_the_failure(ca: pki.Issued, monkeypatch: pytest.MonkeyPatch) -> None:
    expired = cert(pki.make_leaf("broker", ca, key_kind="ec", not_before=NOW - timedelta(days=100),
                                 not_after=NOW - timedelta(days=3)), "certs/server.pem")
    arts = Artifacts(certs=[expired], now=NOW + timedelta(days=999))
    at_failure = arts.check("server_cert_expired", [event(NOW)], {})
    assert at_failure.status is CheckStatus.PROBLEM
    assert at_failure.evidence[0].text.endswith("is before the failure at 2026-11-23 12:00:00 UTC")
    before = arts.check("server_cert_expired", [event(NOW - timedelta(days=4))], {})
    assert before.status is CheckStatus.PASSED
    asked: list[datetime] = []
    real = cert_checks.check_expired

    def spy(c: CertFacts, at: datetime, role: cert_checks.Role = "server") -> CheckResult:
        asked.append(at)
        return real(c, at, role)

    monkeypatch.setattr(cert_checks, "check_expired", spy)
    arts.check("server_cert_expired", [event(NOW)], {})
    arts.check("client_cert_expired", [event(NOW)], {})
    assert asked and set(asked) == {NOW}


def test_a_name_only_in_the_cn_is_a_mismatch_for_strict_clients(ca: pki.Issued) -> None:
    """The vendor recipe (IP in the CN, no subjectAltName): libmosquitto accepts it, Python and
    the other strict clients refuse it, so the mismatch check is true and says so. It used to
    read the (libmosquitto, strict) verdicts the wrong way round and call it valid."""
    vendor = cert(pki.make_leaf("192.168.1.21", ca, key_kind="ec", not_before=NOW - timedelta(days=1)),
                  "certs/server.pem")
    result = Artifacts(certs=[vendor], now=NOW).check("server_hostname_mismatch", [event(NOW)],
                                                        {"dial_host": "192.168.1.21"})
    assert result.status is CheckStatus.PROBLEM
    assert "libmosquitto accepts it through the CN" in result.evidence[0].text
    assert result.values["wanted_san"] == "IP:192.168.1.21"


def test_the_probe_reads_its_tls_reasons_from_the_vocabulary(tmp_path: Path) -> None:
    assert not hasattr(probe, "_TLS_REASONS")
    vocab = tmp_path / "tls_reasons.toml"
    vocab.write_text('field = "tls_reason"\nkind = "tls.error"\n\n'
                     '[[reason]]\nid = "cert_expired"\nprobe_cause_with_cert = "tls.client_cert_expired"\n'
                     "patterns = ['zertifikat abgelaufen']\n\n"
                     '[[reason]]\nid = "handshake_failure"\nprobe_cause_with_cert = "tls.version_mismatch"\n'
                     'probe_cause_without_cert = "tls.client_cert_missing"\npatterns = [\'handshake failure\']\n')
    loaded = load_vocabulary(vocab)
    assert probe.tls_cause("TLS: zertifikat abgelaufen", True, loaded) == "tls.client_cert_expired"
    assert probe.tls_cause("TLS: zertifikat abgelaufen", False, loaded) is None
    assert probe.tls_cause("sslv3 alert handshake failure", False, loaded) == "tls.client_cert_missing"
    assert probe.tls_cause("sslv3 alert handshake failure", True, loaded) == "tls.version_mismatch"


@pytest.mark.parametrize(("text", "sent", "cause"), [
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", False, "tls.protocol_mismatch"),
    ("[SSL: RECORD_LAYER_FAILURE] record layer failure (_ssl.c:1006)", False, "tls.protocol_mismatch"),
    ("[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required (_ssl.c:2580)", False,
     "tls.client_cert_missing"),
    ("[SSL: SSLV3_ALERT_CERTIFICATE_EXPIRED] sslv3 alert certificate expired (_ssl.c:2580)", True,
     "tls.client_cert_expired"),
    ("[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580)", True, "tls.client_cert_untrusted"),
    ("[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate (_ssl.c:2580)", True,
     "tls.client_cert_untrusted"),
    ("[SSL: SSLV3_ALERT_UNSUPPORTED_CERTIFICATE] sslv3 alert unsupported certificate (_ssl.c:2580)", True,
     "tls.client_cert_untrusted"),
    ("[SSL: SSLV3_ALERT_CERTIFICATE_UNKNOWN] sslv3 alert certificate unknown (_ssl.c:2580)", True,
     "tls.client_cert_untrusted"),
    ("[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure (_ssl.c:1006)", False,
     "tls.client_cert_missing"),
    ("[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure (_ssl.c:1006)", True, "tls.version_mismatch"),
    ("[SSL: UNSUPPORTED_PROTOCOL] unsupported protocol (_ssl.c:1006)", False, "tls.version_mismatch"),
    ("[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version (_ssl.c:1006)", False, "tls.version_mismatch"),
    ("[SSL: NO_PROTOCOLS_AVAILABLE] no protocols available (_ssl.c:1006)", False, "tls.version_mismatch"),
    ("[SSL: TLSV1_ALERT_INSUFFICIENT_SECURITY] tlsv1 alert insufficient security (_ssl.c:1006)", False,
     "tls.version_mismatch"),
    ("[SSL: SSLV3_ALERT_CERTIFICATE_EXPIRED] sslv3 alert certificate expired (_ssl.c:2580)", False, None),
])
def test_python_ssl_errors_name_the_causes_the_probe_always_named(text: str, sent: bool, cause: str | None) -> None:
    assert probe.tls_cause(text, sent) == cause


def test_every_probe_cause_in_the_vocabulary_is_a_rule() -> None:
    data = tomllib.loads((builtin_dir("parsers") / "vocab" / "tls_reasons.toml").read_text())
    named = {r[k] for r in data["reason"] for k in ("probe_cause", "probe_cause_with_cert",
                                                    "probe_cause_without_cert") if k in r}
    rules, _ = load_rules([])
    assert named and named <= {r.id for r in rules}


def test_key_checks_ask_cert_checks(ca: pki.Issued, tmp_path: Path) -> None:
    client = pki.make_leaf("edge-07", ca, usage=("client",), key_kind="ec", not_before=NOW - timedelta(days=1))
    other = pki.make_leaf("edge-08", ca, usage=("client",), key_kind="ec", not_before=NOW - timedelta(days=1))
    pki.write_key(tmp_path / "right.key", client.key)
    pki.write_key(tmp_path / "wrong.key", other.key)
    pki.write_key(tmp_path / "locked.key", client.key, password=b"pw")
    leaf = cert(client, "certs/edge-07.pem")

    def keys(*names: str) -> list[KeyFacts]:
        return [load_file(tmp_path / name).keys[0] for name in names]

    def run(*names: str) -> CheckResult:
        return Artifacts(certs=[leaf], keys=keys(*names), now=NOW).check("client_key_problem", [], {})

    assert run("right.key").status is CheckStatus.PASSED
    wrong = run("wrong.key")
    assert wrong.status is CheckStatus.PROBLEM and "no key in the bundle belongs to" in wrong.message
    locked = run("locked.key")
    assert locked.status is CheckStatus.PROBLEM
    assert "encrypted and no password was given" in locked.message  # cert_checks.check_key_loaded's words


def test_every_reason_of_the_built_in_vocabularies_compiles() -> None:
    """A reason's own regex is compiled when a line first needs it (its vocabulary's union, which
    holds every phrase, compiles at load): each of them must compile, and find its own phrases."""
    from correlator.formats.registry import default_registry

    for vocab in default_registry().evidence.vocabularies:
        for reason in vocab.reasons:
            plain = [p for p in reason.patterns if p.replace(" ", "").isalnum()]
            assert all(reason.regex.search(p) for p in plain), (vocab.file, reason.id)


def test_an_analysis_of_logs_alone_never_imports_cryptography(tmp_path: Path) -> None:
    """cryptography takes about a tenth of a second to import: only a bundle with certificates,
    keys or PKI folders pays for it (correlator/lazy.py); the one with them still finds the
    expired certificate."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1] / "sample_logs" / "mixed"
    # one fresh interpreter analyses the logs alone, then the whole bundle (its start-up paid once)
    script = ("import sys; from correlator.analysis import analyze\n"
              "for path in sys.argv[1:]:\n"
              "    a = analyze([path]); print('cryptography' in sys.modules, sorted({f.id for f in a.findings}))")
    (tmp_path / "mosquitto.log").write_bytes((root / "broker" / "mosquitto.log").read_bytes())
    logs, whole = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(root)], capture_output=True,
                                 text=True, check=True).stdout.splitlines()
    assert logs.startswith("False ")
    assert whole.startswith("True ") and "tls.client_cert_expired" in whole
