"""`correlator probe HOST:PORT`: connect to a broker the way a client would and name what fails,
with the same root-cause ids the log analysis uses.

Exit code: 0 when the probe found nothing wrong, 1 when it named a problem, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from correlator.artifacts.probe import ProbeResult, parse_target, probe
from correlator.cli.cmd_certs import check_line, validity_text
from correlator.errors import ProbeError

ORDER = 35


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("probe", help="live TLS/MQTT check of a broker",
                            description="TCP connect, TLS handshake (the broker's chain is captured even when it "
                            "would not verify, then checked), optionally an MQTT CONNECT.")
    parser.add_argument("target", metavar="HOST:PORT", help="broker address (port defaults to 8883, or 1883 "
                        "with --plain)")
    parser.add_argument("--ca", type=Path, help="CA file or folder the client trusts (default: system CAs)")
    parser.add_argument("--cert", type=Path, help="client certificate (PEM)")
    parser.add_argument("--key", type=Path, help="client private key (PEM; never printed)")
    parser.add_argument("--key-password", help="password of the client key")
    parser.add_argument("--servername", help="host name the client dials and sends as SNI (default: HOST)")
    parser.add_argument("--username", help="MQTT user name (implies --mqtt)")
    parser.add_argument("--password", help="MQTT password (implies --mqtt)")
    parser.add_argument("--client-id", help="MQTT client id (default: correlator-probe-<pid>)")
    parser.add_argument("--mqtt", action="store_true", help="send an MQTT 3.1.1 CONNECT and report the CONNACK")
    parser.add_argument("--plain", action="store_true", help="no TLS: plain MQTT (implies --mqtt)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="per step (default 5)")
    parser.add_argument("--format", dest="output", choices=("text", "json"), default="text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    host, port = parse_target(args.target, 1883 if args.plain else 8883)
    if args.key and not args.cert:
        raise ProbeError("--key needs --cert")
    mqtt = args.mqtt or args.plain or args.username is not None or args.password is not None
    result = probe(host, port, tls=not args.plain, ca=args.ca, cert=args.cert, key=args.key,
                   key_password=args.key_password, servername=args.servername, mqtt=mqtt,
                   username=args.username, password=args.password, client_id=args.client_id,
                   timeout=args.timeout)
    if args.output == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_result(result)
    return 0 if result.ok else 1


def print_result(result: ProbeResult) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    marks = {"ok": "[green]✔[/]", "failed": "[red]✘[/]", "not_run": "[dim]–[/]"}
    console.print(f"[bold]probe {escape(result.host)}:{result.port}[/]"
                  + (f"  [dim](TLS, name {escape(result.servername or '')})[/]" if result.tls else "  [dim](plain)[/]"))
    console.print(f"  {marks[result.tcp]} TCP connect")
    if result.tls:
        detail = f" {result.tls_version} {result.cipher}" if result.tls_version else ""
        error = f"  [red]{escape(result.tls_error)}[/]" if result.tls_error and result.tls_handshake != "ok" else ""
        console.print(f"  {marks[result.tls_handshake]} TLS handshake{escape(detail)}{error}")
    for cert in result.chain:
        console.print(f"      [dim]presented #{cert.index}[/] {escape(cert.subject)}  {validity_text(cert, result.at)}")
    for check in result.checks:
        if check.status != "ok":
            console.print("  " + check_line(check))
    passed = [c.check for c in result.checks if c.status == "ok"]
    if passed:
        console.print(f"    [green]✔[/] [dim]{escape(', '.join(passed))}[/]")
    if result.tls_handshake == "ok" and result.tls_error:
        console.print(f"  [red]✘[/] after the handshake: [red]{escape(result.tls_error)}[/]")
    if result.mqtt is not None:
        code = "" if result.mqtt.return_code is None else f" CONNACK {result.mqtt.return_code}"
        meaning = result.mqtt.meaning or "not sent (the connection ended first)"
        console.print(f"  {marks[result.mqtt.status]} MQTT CONNECT{code} {escape(meaning)}")
    for note in result.notes:
        console.print(f"  [dim]{escape(note)}[/]")
    console.print()
    if result.ok:
        console.print("[green bold]no problem found[/]")
        return
    count = len(result.problems)
    console.print(f"[red bold]{count} problem{'s' if count != 1 else ''}[/]" + (
        f" [dim](a client reports the first: {escape(result.cause)})[/]" if result.cause and count > 1 else ""))
    for problem in result.problems:
        cause = f"[bold]{escape(problem.cause)}[/]  " if problem.cause else ""
        console.print(f"  [red]✘[/] {cause}{escape(problem.message)}")
