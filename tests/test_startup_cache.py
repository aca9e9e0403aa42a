"""The start-up cache (correlator/startup_cache.py): a start from the cache finds exactly what a
cold start finds, and a cache that is stale, damaged or hostile is never used (and is replaced)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from correlator import startup_cache
from correlator.analysis import analyze
from correlator.formats import registry as registry_module
from correlator.formats.registry import Registry, load_registry

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
#: Incidents whose logs between them use every kind of format: mosquitto, paho, Go, Node-RED,
#: asyncua and open62541, syslog, a gateway's clock.
INCIDENTS = ["mixed", "go_paho_clients", "node_red_untrusted_ca", "opcua_server_cert_changed_open62541",
             "paho_logging_layouts", "syslog_variants", "gateway_clock", "multi_broker_acl"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "correlator"


def _kept(cache: Path) -> list[Path]:
    return sorted(cache.glob("formats-*.pickle"))


def _cold_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the loads that read the format files (not the cache)."""
    calls: list[int] = []
    real = registry_module._load_registry

    def counting(*args: object, **kwargs: object) -> Registry:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(registry_module, "_load_registry", counting)
    return calls


def _report(registry: Registry, incident: str) -> str:
    report = dict(analyze([SAMPLES / incident], registry=registry).to_dict())
    report.pop("made_at")
    return json.dumps(report, sort_keys=True)


def test_a_start_from_the_cache_finds_what_a_cold_start_finds(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cold_loads = _cold_loads(monkeypatch)
    cold = load_registry()
    assert len(_kept(cache)) == 1 and len(cold_loads) == 1
    warm = load_registry()
    assert len(cold_loads) == 1, "the second start read the format files again"
    assert warm is not cold and list(warm.formats) == list(cold.formats)
    # kept compiled: a run from the cache compiles none of the formats' message alternations
    assert all(word in fmt._combined for fmt in warm.formats.values() for word in [*fmt.by_word, None])
    for incident in INCIDENTS:
        assert _report(warm, incident) == _report(cold, incident), incident


def test_a_user_s_formats_are_kept_under_their_own_key(cache: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's format (its patterns under a time bound) is kept too; editing it makes a new key."""
    folder = tmp_path / "formats"
    folder.mkdir()
    mine = folder / "paho_c.toml"  # replaces the built-in one: a user's, bounded format
    shutil.copy(Path(__file__).resolve().parent.parent / "parsers" / "paho_c.toml", mine)
    cold_loads = _cold_loads(monkeypatch)
    cold = load_registry([folder])
    assert cold.formats["paho_c"].bounded
    assert _report(load_registry([folder]), "paho_c_clients") == _report(cold, "paho_c_clients")
    assert len(cold_loads) == 1
    mine.write_text(mine.read_text() + "\n# edited\n")
    load_registry([folder])
    assert len(cold_loads) == 2 and len(_kept(cache)) == 2


def test_a_damaged_cache_is_rebuilt(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _report(load_registry(), "mixed")
    (kept,) = _kept(cache)
    key = kept.stem.removeprefix("formats-")
    data = kept.read_bytes()
    cold_loads = _cold_loads(monkeypatch)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    for broken in (bytes(flipped), data[:-100], b""):
        kept.write_bytes(broken)
        assert _report(load_registry(), "mixed") == expected
        # written again, whole (not byte for byte the first: pickle's sharing of equal patterns
        # follows `re`'s own cache)
        assert isinstance(startup_cache.load("formats", key), Registry), "the damaged cache was not written again"
    assert len(cold_loads) == 3


def test_a_cache_that_names_anything_else_is_refused(cache: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A pickle with a valid digest that would call a function outside the registry's classes
    is never run, and one others may write is not read."""
    load_registry()
    (kept,) = _kept(cache)
    witness = tmp_path / "ran"
    payload = pickle.dumps(_Hostile(str(witness)))
    kept.write_bytes(startup_cache._MAGIC + hashlib.sha256(payload).digest() + payload)
    cold_loads = _cold_loads(monkeypatch)
    assert isinstance(load_registry(), Registry)
    assert not witness.exists() and len(cold_loads) == 1
    os.chmod(kept, 0o666)
    assert startup_cache.load("formats", kept.stem.removeprefix("formats-")) is None


class _Hostile:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return os.rename, (os.devnull, self.path)


def test_a_stale_cache_of_other_code_is_not_used(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_registry()
    monkeypatch.setattr(startup_cache, "__version__", "0.0.0-other")
    cold_loads = _cold_loads(monkeypatch)
    load_registry()
    assert len(cold_loads) == 1 and len(_kept(cache)) == 2
