"""Pasted snippets, the way support tickets carry logs: real lines from sample_logs/ wrapped in each
paste artifact (fences, indentation, quotes, emphasis, prompts, container columns, bare lines)
must still be diagnosed as the plain files are, from the CLI (`analyze -`) and the API
(text/plain)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from correlator.analysis import Options, analyze
from correlator.formats.registry import default_registry
from correlator.report_model import Analysis
from correlator.sources.paste import recognisable, unwrap

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
BROKER = (SAMPLES / "bad_credentials" / "broker" / "mosquitto.log").read_text().splitlines()
CLIENT = (SAMPLES / "bad_credentials" / "clients" / "edge-10.log").read_text().splitlines()


def _fenced(lines: list[str]) -> list[str]:
    return ["```", *lines, "```"]


def _indented(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


def _quoted(lines: list[str]) -> list[str]:
    return ["> " + line for line in lines]


def _reply_quoted(lines: list[str]) -> list[str]:
    """Quoted again in an e-mail reply: `> > ` and `>> ` levels."""
    return [("> > " if n % 2 else ">> ") + line for n, line in enumerate(lines)]


def _emphasised(lines: list[str]) -> list[str]:
    return [f"**{line}**" if "not authorised" in line else line for line in lines]


def _prompted(lines: list[str]) -> list[str]:
    return ["root@gw-01:~# tail -n 60 /var/log/mosquitto/mosquitto.log", *lines]


def _issue_comment(lines: list[str]) -> list[str]:
    """All at once, as a GitHub comment carries them."""
    return _fenced(_prompted(_emphasised(lines)))


def _bare(lines: list[str]) -> list[str]:
    """Retyped without the timestamp (or `log_timestamp false`)."""
    return [line.split(": ", 1)[1] if ": " in line else line for line in lines]


def _vagrant(lines: list[str]) -> list[str]:
    return ["    default: " + line for line in lines]


def _kubectl(lines: list[str]) -> list[str]:
    return ["[pod/mosquitto-7d9f6c5b8-x2x4k/mosquitto] " + line for line in lines]


def _compose_one(lines: list[str]) -> list[str]:
    return ["mosquitto-1  | " + line for line in lines]


def _tool(*command: str) -> Callable[[list[str]], list[str]]:
    """The lines as a command prints them (the real `grep -n`, `cat -n`, `nl`)."""
    def run(lines: list[str]) -> list[str]:
        done = subprocess.run(list(command), input="\n".join(lines) + "\n", capture_output=True, text=True,
                              check=True)
        return done.stdout.splitlines()
    return run


def _grep_context(lines: list[str]) -> list[str]:
    """`grep -n -C1` of the refusals: numbered matches (`12:`), context (`12-`), `--` between groups."""
    return _tool("grep", "-n", "-C1", "-e", "CONNACK", "-e", "not authorised", "-e", "New connection")(lines)


WRAPPERS: dict[str, Callable[[list[str]], list[str]]] = {
    "code fence": _fenced, "indentation": _indented, "quote marks": _quoted, "reply quotes": _reply_quoted,
    "emphasis": _emphasised,
    "shell prompt": _prompted, "issue comment": _issue_comment, "bare lines": _bare, "vagrant": _vagrant,
    "kubectl --prefix": _kubectl, "compose column": _compose_one,
    "grep -n": _tool("grep", "-n", ""), "grep -n -C1": _grep_context, "cat -n": _tool("cat", "-n"),
    "nl": _tool("nl", "-ba"),
}


@pytest.mark.parametrize("artifact", list(WRAPPERS))
def test_broker_lines_in_a_paste_keep_the_catalogue(tmp_path: Path, artifact: str) -> None:
    paste = tmp_path / "ticket-4711.txt"
    paste.write_text("\n".join(WRAPPERS[artifact](BROKER)) + "\n")
    analysis = analyze([paste])
    assert {f.id for f in analysis.findings} >= {"auth.bad_credentials"}
    (source,) = analysis.sources
    assert (source.info.format, source.info.source, source.info.unparsed) == ("mosquitto", "broker", 0)
    finding = next(f for f in analysis.findings if f.id == "auth.bad_credentials")
    assert any(e.side == "broker" and "not authorised" in e.text and "**" not in e.text for e in finding.evidence)


def test_a_compose_log_is_split_into_its_services(tmp_path: Path) -> None:
    """Two services interleaved in one `docker compose logs` paste: each is a source with its own
    role, the broker's lines broker-side, and the evidence keeps the pasted file's line numbers."""
    lines = ["$ docker compose logs --no-color", *(f"mosquitto-1  | {line}" for line in BROKER[:30])]
    lines[8:8] = [f"edge-10-1    | {line}" for line in CLIENT]
    paste = tmp_path / "compose.txt"
    paste.write_text("\n".join(lines) + "\n")
    analysis = analyze([paste])
    roles = {s.info.path: (s.info.source, s.info.format, s.info.unparsed) for s in analysis.sources}
    assert roles == {f"{paste} [mosquitto-1]": ("broker", "mosquitto", 0),
                     f"{paste} [edge-10-1]": ("client:edge-10-1", "python_logging", 0)}
    finding = next(f for f in analysis.findings if f.id == "auth.bad_credentials")
    assert finding.sides == {"broker", "client"}
    for evidence in finding.evidence:
        assert evidence.line is not None
        assert lines[evidence.line - 1].endswith(evidence.text)


def test_a_real_log_is_never_unwrapped() -> None:
    """A format that reads the file as it is wins: wrapper.log's `INFO   | jvm 1 |` column is the
    Java Service Wrapper's, not a container's. A log's own leading numbers (epoch seconds, a year)
    repeat, so they are no line numbers."""
    assert unwrap(BROKER).changed is False
    assert unwrap(CLIENT).changed is False
    lines = ["INFO   | jvm 1    | 2026/11/23 14:20:00 | I [MqttServerConnection] [14:20:00.101] [MQTT-1]: up"] * 5
    assert unwrap(lines).prefix == ""


def test_a_log_with_its_own_bar_field_is_no_compose_paste(tmp_path: Path) -> None:
    """The README's gateway log (`GW|time|LEVEL|text`) starts every line with one name and a bar,
    as one service's compose paste would; compose pads its names to one column before ` | ` and
    numbers its containers (`mosquitto-1`), so neither `GW|` nor `GW | ` is taken for its column,
    and the gateway's own format reads the file as it is."""
    gateway = ["GW|2026-11-23T14:20:00|ERROR|uplink 10.3.0.11 down", "GW|2026-11-23T14:20:05|INFO|uplink 10.3.0.11 up"]
    assert unwrap(gateway * 3).prefix == ""
    assert unwrap([line.replace("|", " | ") for line in gateway] * 3).prefix == ""
    from test_formats import _user_format

    _user_format(tmp_path / "formats")
    log = tmp_path / "gw.log"
    log.write_text("\n".join(gateway) + "\n")
    analysis = analyze([log], Options(formats_dirs=[str(tmp_path / "formats")]))
    (source,) = analysis.sources
    assert (source.info.path, source.info.format, source.info.unparsed) == (str(log), "plc_gateway", 0)


def test_a_compose_column_is_its_padded_names() -> None:
    """Compose's column: one service with its replica number, or several services padded to one
    width, each split into its own stream."""
    assert unwrap(_compose_one(BROKER[:10])).prefix == "compose"
    both = [f"mosquitto  | {line}" for line in BROKER[:10]] + [f"edge-10    | {line}" for line in CLIENT[:5]]
    assert set(unwrap(both).streams) == {"mosquitto", "edge-10"}
    ragged = [f"mosquitto | {line}" for line in BROKER[:10]] + [f"edge-10 | {line}" for line in CLIENT[:5]]
    assert unwrap(ragged).prefix == ""  # no compose pads names so: a log's own field


def test_nothing_recognisable() -> None:
    registry = default_registry()
    assert not recognisable("Hello, my broker does not work.\nPlease help!\n", registry)
    assert recognisable("\n".join(_issue_comment(BROKER[:10])), registry)


def test_analyze_reads_a_paste_from_stdin() -> None:
    text = "\n".join(_issue_comment(BROKER)) + "\n"
    done = subprocess.run([sys.executable, "-m", "correlator", "analyze", "-", "--format", "json"], input=text,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 4, done.stderr  # high: a refused login
    assert '"id": "auth.bad_credentials"' in done.stdout
    assert "stdin.log" in done.stdout


@pytest.mark.parametrize("command", [["tail", "-n", "+1"], ["grep", ""], ["grep", "-n", ""]])
def test_several_files_printed_together_are_one_source_per_file(tmp_path: Path, command: list[str]) -> None:
    """`tail -n +1 broker/mosquitto.log clients/*.log` (each file under its `==> FILE <==` header)
    or `grep [-n] PATTERN` over the same files (each line after its file's name, and its number)
    pasted whole, run with the real tools: each file is a source of its own, named by its file as
    the folder would name it, and the findings are the folder's; the evidence keeps the pasted
    file's line numbers."""
    folder = SAMPLES / "bad_credentials"
    files = ["broker/mosquitto.log", *sorted(str(p.relative_to(folder)) for p in (folder / "clients").glob("*.log"))]
    printed = subprocess.run([*command, *files], cwd=folder, capture_output=True, text=True, check=True).stdout
    paste = tmp_path / "ticket.txt"
    paste.write_text(printed)
    analysis = analyze([paste])
    roles = {s.info.path: (s.info.source, s.info.unparsed) for s in analysis.sources}
    assert roles[f"{paste} [broker/mosquitto.log]"] == ("broker", 0)
    assert roles[f"{paste} [clients/edge-10.log]"] == ("client:edge-10", 0)
    assert len(roles) == len(files)

    def found(a: Analysis) -> set[tuple[str, frozenset[str]]]:
        return {(f.id, frozenset(f.clients)) for f in a.findings}

    assert found(analysis) == found(analyze([folder])) != set()
    lines = printed.splitlines()
    quoted = [e for f in analysis.findings for e in f.evidence if e.side != "artifact"]
    assert quoted and all(e.line is not None and e.text in lines[e.line - 1] for e in quoted)
