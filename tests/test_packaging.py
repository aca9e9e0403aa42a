"""The wheel is what a user installs: it must carry parsers/ and rules/ inside the package, expose
only `correlator` (no test harness), import every module with only its declared dependencies, and
run the CLI on a sample from a fresh virtual environment."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (found,) = out.glob("*.whl")
    return found


def test_wheel_carries_data_and_only_the_correlator_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"correlator"}
    assert "correlator/_builtin/parsers/mosquitto.toml" in names
    assert "correlator/_builtin/parsers/vocab/tls_reasons.toml" in names
    assert "correlator/_builtin/rules/tls.server_cert_expired.toml" in names
    assert not any(name.startswith(("rules/", "parsers/", "tests/")) for name in names)
    # nothing of tests/ under the package either: no lab harness, test module or conftest
    files = [name.rsplit("/", 1)[-1] for name in names]
    assert not [name for name in names if "/lab/" in name]
    assert not [name for name in files if name.startswith("test_") or name == "conftest.py"]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel and its declared dependencies only (no dev extras:
    no paho-mqtt, no asyncua, no pytest); returns its bin folder."""
    env_dir = tmp_path_factory.mktemp("venv")
    # no pip of its own (ensurepip takes longer than the install): the test run's pip installs into
    # it (`--python`), without compiling every file of every dependency ahead (an import compiles
    # what it uses)
    venv.EnvBuilder(with_pip=False).create(env_dir)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "-q",
                    "--no-compile", str(wheel)], check=True, timeout=600, capture_output=True)
    return env_dir / "bin"


_IMPORT_EVERY_MODULE = """
import importlib, pkgutil, correlator
print("ok correlator")
for found in pkgutil.walk_packages(correlator.__path__, "correlator."):
    if found.name.rsplit(".", 1)[-1] == "__main__":
        continue  # runs the CLI when imported; the tests run it as `python -m correlator`
    try:
        importlib.import_module(found.name)
    except Exception as error:
        print(f"{found.name}: {error!r}")
    else:
        print(f"ok {found.name}")
"""


def test_every_module_of_the_installed_wheel_imports(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run([str(installed / "python"), "-c", _IMPORT_EVERY_MODULE], capture_output=True, text=True,
                            check=True, timeout=300, cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert [line for line in lines if not line.startswith("ok ")] == []
    imported = {line.removeprefix("ok ") for line in lines}
    local = {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
             for path in (ROOT / "correlator").rglob("*.py") if path.stem != "__main__"}
    assert imported == local  # every module of the package was found in the wheel and imported
    version = subprocess.run([str(installed / "python"), "-m", "correlator", "--help"], capture_output=True,
                             text=True, timeout=60, cwd=tmp_path)
    assert version.returncode == 0 and "analyze" in version.stdout


def test_installed_wheel_runs_the_cli_on_a_sample(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run([str(installed / "correlator"), "analyze", str(ROOT / "sample_logs" / "mixed"),
                             "--format", "json"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 4, result.stderr  # the worst finding is high
    assert '"tls.client_cert_expired"' in result.stdout
    where = subprocess.run([str(installed / "python"), "-c",
                            "import correlator.resources as r; print(r.builtin_dir('rules'))"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "_builtin" in where  # found inside the installed package, not in a checkout
