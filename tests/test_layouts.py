"""Layouts found, not assumed: a file's head (time, level, logger, thread) is learned from its first
lines, and the catalogue that knows the bodies is applied through it. Real lines come from
sample_logs/paho_logging_layouts (paho-mqtt 2.2 in five Python logging layouts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from correlator.formats.layout import load_layouts, read_head
from correlator.formats.parse import match_line
from correlator.formats.registry import default_registry
from correlator.resources import builtin_dir

REGISTRY = default_registry()
LAYOUTS = load_layouts(builtin_dir("parsers") / "vocab" / "layouts.toml")
SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
SAMPLE = SAMPLES / "paho_logging_layouts"


def _lines(name: str) -> list[str]:
    return (SAMPLE / "clients" / f"{name}.log").read_text().splitlines()


@pytest.mark.parametrize("client", ["edge-40", "viewer-41", "edge-42", "edge-43", "hmi-44"])
def test_every_paho_layout_reaches_pahos_catalogue(client: str) -> None:
    """Whatever the layout, the file is python_logging's and paho's CONNECT is read with its
    client id and flags, its time and its logger: never the generic fallback."""
    lines = _lines(client)
    fmt, share = REGISTRY.detect(lines)
    assert (fmt.name, share) == ("python_logging", 1.0)
    connect = next(line for line in lines if "Sending CONNECT" in line)
    found = match_line(fmt, connect, REGISTRY.evidence)
    assert found is not None and found.message is not None
    assert found.message.name == "paho_connect"
    assert found.fields["client_id"] == client
    assert found.fields["logger"] == "paho.mqtt.client"
    assert found.level == "debug"
    assert found.ts is not None


@pytest.mark.parametrize("client", ["edge-40", "edge-42", "edge-43"])
def test_layouts_no_format_lists_are_learned(client: str) -> None:
    """No colon after the logger, thread names in parentheses, `name; LEVEL; time;`: no
    hard-coded pattern reads these; the learned one does."""
    fmt, _ = REGISTRY.detect(_lines(client))
    assert fmt.lines[-1].name == "learned"
    assert all(lp.name != "learned" for lp in REGISTRY.get("python_logging").lines)


def test_learned_layout_keeps_the_thread() -> None:
    lines = _lines("edge-42")
    fmt, _ = REGISTRY.detect(lines)
    found = match_line(fmt, lines[0], REGISTRY.evidence)
    assert found is not None and found.fields["thread"] == "MainThread"


@pytest.mark.parametrize(("line", "parts"), [
    # Paho C's trace (MQTT_C_CLIENT_TRACE)
    ("20261123 141130.773 (140043) (1)> MQTTClient_connect:1064", ["time:paho_c", "field", "field"]),
    # Go's log with microseconds, a bracketed component
    ("2026/11/23 14:11:30.123456 [client]   Connect()", ["time:slashes", "field"]),
    # java.util.logging's first line of a two-line record
    ("Nov 23, 2026 2:11:30 PM org.eclipse.paho.client.mqttv3.internal.ClientState checkForActivity",
     ["time:jul", "logger"]),
    # and its second line
    ("SEVERE: paho12345: Timed out as no activity", ["level", "logger"]),
    # logback's default
    ("14:11:30.123 [MQTT Call: edge-07] ERROR o.e.p.c.m.i.ClientState - lost", ["time:time_of_day", "field",
                                                                                 "level", "logger"]),
    # journald short-precise
    ("Nov 23 14:11:30.123456 gw mosquitto[812]: Client edge-07 disconnected.", ["time:syslog", "logger"]),
    # .NET Serilog's file sink
    ("2026-11-23 14:11:30.123 +01:00 [ERR] Connecting failed", ["time:iso", "level", "logger"]),
])
def test_heads_of_other_stacks(line: str, parts: list[str]) -> None:
    head = read_head(line, LAYOUTS)
    assert head is not None and [what for _, what, _ in head.parts] == parts


def test_a_line_without_time_or_level_has_no_head() -> None:
    assert read_head("Build level: 2023-02-28T22:09:12Z", LAYOUTS) is None
    assert read_head("connecting to broker", LAYOUTS) is None


def test_generic_fallback_never_takes_a_date_inside_a_message() -> None:
    generic = REGISTRY.get("generic")
    assert match_line(generic, "Build level: 2023-02-28T22:09:12Z", REGISTRY.evidence) is None
    found = match_line(generic, "mosquitto-1  | 2026-11-23T14:11:30Z error: boom", REGISTRY.evidence)
    assert found is not None and found.time_text == "2026-11-23T14:11:30Z"


def test_expected_names_the_affected_clients_by_id() -> None:
    spec = json.loads((SAMPLE / "expected.json").read_text())
    assert spec["affected_clients"] == ["edge-40", "edge-42", "viewer-41"]


def test_paho_c_trace_times_and_placeholders() -> None:
    """Paho C's own trace file carries `20261203 214312.952`; a trace through the program's
    callback carries the 19700101 placeholder, which dates nothing (the lines are estimated)."""
    folder = SAMPLES / "paho_c_clients" / "clients"
    timed = (folder / "edge-50.log").read_text().splitlines()
    fmt, _ = REGISTRY.detect(timed)
    assert fmt.name == "paho_c"
    refused = next(line for line in timed if "<- CONNACK rc: 5" in line)
    found = match_line(fmt, refused, REGISTRY.evidence)
    assert found is not None and found.ts is not None and found.ts > 1.7e9
    assert (found.kind, found.fields["client_id"], found.fields["mqtt_reason"]) == (
        "mqtt.connack_refused", "edge-50", "not_authorized")
    banner = next(line for line in timed if line.startswith("Build level:"))
    built = match_line(fmt, banner, REGISTRY.evidence)
    assert built is not None and built.ts is None and built.kind == "client.start"
    placeholder = next(line for line in (folder / "viewer-51.log").read_text().splitlines()
                       if "-> PUBLISH" in line)
    found = match_line(fmt, placeholder, REGISTRY.evidence)
    assert found is not None and found.time_text.startswith("19700101") and found.ts is None


def test_go_log_with_level_prefixes_is_learned() -> None:
    """Paho Go's loggers with `[DEBUG] ` prefixes before Go's date: the head (level, time,
    component) is learned; the application's own lines (level, time) are a second learned head."""
    lines = (SAMPLES / "go_paho_clients" / "clients" / "edge-60.log").read_text().splitlines()
    fmt, share = REGISTRY.detect(lines)
    assert (fmt.name, share) == ("go_paho", 1.0)
    assert [lp.name for lp in fmt.lines].count("learned") >= 2
    failure = next(line for line in lines if line.startswith("[ERROR]") and "x509" in line)
    found = match_line(fmt, failure, REGISTRY.evidence)
    assert found is not None and found.level == "error" and found.fields["thread"] == "client"
    assert found.fields["tls_reason"] == "unknown_ca"
    start = match_line(fmt, lines[0], REGISTRY.evidence)
    assert start is not None and start.kind == "client.start" and start.fields["client_id"] == "edge-60"
