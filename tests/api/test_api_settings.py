"""How the server is configured and started: options over environment over config file, no
token no network, the `serve` command end to end, and a core that never loads the web stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_helpers import HTTP_TIMEOUT

from correlator.api import load_settings
from correlator.errors import CorrelatorError
from lab.ports import free_port

TOKEN = "serve-test-token-0123456789"


def test_options_win_over_environment_over_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('port = 9001\nmax_analyses = 7\nmax_age_days = 3.5\ntoken = "from-file-0123456789"\n'
                      'cors_origins = ["http://dash.example"]\n')
    monkeypatch.setenv("CORRELATOR_MAX_ANALYSES", "9")
    settings = load_settings(config, port=9002, state_dir=tmp_path, host=None)
    assert settings.port == 9002  # option
    assert settings.max_analyses == 9  # environment
    assert settings.max_age_days == 3.5 and settings.cors_origins == ["http://dash.example"]  # file
    assert settings.token is not None and settings.token.get_secret_value() == "from-file-0123456789"
    assert "from-file" not in repr(settings), "the token never shows in logs or reprs"
    monkeypatch.setenv("CORRELATOR_CONFIG", str(config))
    assert load_settings().port == 9001
    config.write_text("max_age_days = 'old'\n")
    with pytest.raises(CorrelatorError, match="bad settings"):
        load_settings(config)
    with pytest.raises(CorrelatorError, match="config file not found"):
        load_settings(tmp_path / "missing.toml")


@pytest.mark.parametrize(("host", "token", "allowed"), [
    ("127.0.0.1", None, True), ("::1", None, True), ("localhost", None, True),
    ("0.0.0.0", None, False), ("192.0.2.7", None, False), ("0.0.0.0", "t0ken-0123456789ab", True)])
def test_no_token_no_network(tmp_path: Path, host: str, token: str | None, allowed: bool) -> None:
    settings = load_settings(host=host, token=token, state_dir=tmp_path)
    if allowed:
        settings.check_exposure()
    else:
        with pytest.raises(CorrelatorError, match="without a token"):
            settings.check_exposure()


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRELATOR_")}
    return {**env, "XDG_STATE_HOME": str(tmp_path / "xdg")}


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "correlator", "serve", "--host", "0.0.0.0"], capture_output=True,
                          text=True, env=_env(tmp_path), timeout=60, check=False)
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in done.stderr and "Traceback" not in done.stderr


def test_serve_command_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "broker.log"
    log.write_text("1795444795: mosquitto version 2.0.11 starting\n")
    server = subprocess.Popen([sys.executable, "-m", "correlator", "serve", "--port", str(port), "--state-dir",
                               str(tmp_path / "state"), str(log)], env={**_env(tmp_path), "CORRELATOR_TOKEN": TOKEN},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/live", headers={"Authorization": f"Bearer {TOKEN}"},
                                   timeout=HTTP_TIMEOUT)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["paths"] == [str(log)]
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/version", timeout=HTTP_TIMEOUT).status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert (tmp_path / "state" / "correlator.sqlite3").stat().st_mode & 0o777 == 0o600  # the umask is forced
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_the_core_and_the_cli_parser_do_not_load_the_web_stack() -> None:
    code = (
        "import sys\n"
        "import correlator.analysis, correlator.live_analysis, correlator.engine.evaluate\n"
        "import correlator.formats.registry\n"
        "import correlator.sources.bundle, correlator.sources.tail, correlator.timeline.merge\n"
        "import correlator.artifacts.cert_checks, correlator.artifacts.probe, correlator.reports.html\n"
        "import correlator.fleet.worker_loop, correlator.fleet.queue, correlator.fleet.agent  # worker, agent\n"
        "core = sorted(m for m in sys.modules if m.split('.')[0] in {'fastapi', 'starlette', 'uvicorn', 'textual'})\n"
        "from correlator.cli import build_parser\n"
        "build_parser()\n"
        "cli = sorted(m for m in sys.modules if m.split('.')[0] in {'fastapi', 'starlette', 'uvicorn'})\n"
        "print(core, cli)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[] []", done.stdout
