"""The wheel is what a user installs: it must carry parsers/ and rules/ inside the package, expose
only `correlator`, and run the CLI on a sample from a fresh virtual environment."""

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


def test_installed_wheel_runs_the_cli_on_a_sample(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=600,
                   capture_output=True)
    result = subprocess.run([str(env_dir / "bin" / "correlator"), "analyze", str(ROOT / "sample_logs" / "mixed"),
                             "--format", "json"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 4, result.stderr  # the worst finding is high
    assert '"tls.client_cert_expired"' in result.stdout
    where = subprocess.run([str(python), "-c", "import correlator.resources as r; print(r.builtin_dir('rules'))"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "_builtin" in where  # found inside the installed package, not in a checkout
