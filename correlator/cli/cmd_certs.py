"""`correlator certs FILES...`: what the certificates and keys in some files say, and what is wrong
with them for a given host, CA and time, readable at a glance at 3 a.m.

Exit code: 0 when nothing is wrong, 1 when a check found a problem (or a file did not load), 2 on a
usage error (bad option, nothing loadable at all).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from correlator.artifacts.cert_checks import EXPIRY_WINDOW, Inspection, inspect
from correlator.artifacts.certs import CertFacts, LoadResult, load_paths
from correlator.check_result import CheckResult, CheckStatus
from correlator.errors import ArtifactError
from correlator.time_input import parse_time

ORDER = 30

#: Symbols per status, so the eye finds problems before it reads words.
MARKS = {CheckStatus.PASSED: "[green]✔[/]", CheckStatus.PROBLEM: "[red]✘[/]", "warning": "[yellow]⚠[/]",
         CheckStatus.NOT_RUN: "[dim]–[/]"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("certs", help="inspect certificate and key files against a host, a CA and a time",
                            description="Loads certificates (PEM, DER, PKCS#12; files and folders) and keys, "
                            "prints their facts and checks them: validity at --at, host name (libmosquitto and "
                            "strict clients), chain to --ca, key match, weak keys and signatures, purpose.")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="certificate/key files or folders (the first certificate of a file is its leaf)")
    parser.add_argument("--host", help="the host name or IP address clients dial")
    parser.add_argument("--ca", action="append", default=[], type=Path, metavar="CA",
                        help="CA file or folder the peer trusts (repeatable)")
    parser.add_argument("--key", action="append", default=[], type=Path, metavar="KEY",
                        help="private key file to match against the certificates (repeatable; never printed)")
    parser.add_argument("--password", help="password of encrypted keys and PKCS#12 files")
    parser.add_argument("--at", default="now", metavar="TIME",
                        help="check validity at this time (ISO 8601 or epoch seconds, UTC unless a zone is "
                             "given; default now)")
    parser.add_argument("--role", choices=("server", "client"), default="server",
                        help="how the certificates are used (default: server)")
    parser.add_argument("--window", type=int, default=EXPIRY_WINDOW.days, metavar="DAYS",
                        help=f"warn when a certificate expires within DAYS (default {EXPIRY_WINDOW.days})")
    parser.add_argument("--format", dest="output", choices=("text", "json"), default="text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    at = parse_time(args.at, "--at")
    loaded = load_paths(args.files, password=args.password)
    key_result = load_paths(args.key, password=args.password) if args.key else LoadResult()
    trust_result = load_paths(args.ca) if args.ca else LoadResult()
    if args.ca and not trust_result.certs:
        raise trust_result.errors[0] if trust_result.errors else ArtifactError(
            "holds no CA certificate", file=", ".join(map(str, args.ca)))
    if not loaded.certs and not loaded.keys and not key_result.keys:
        raise loaded.errors[0] if loaded.errors else ArtifactError("no certificate found", file=str(args.files[0]))
    found = inspect(loaded.certs, at, role=args.role, host=args.host, trust=trust_result.certs,
                    keys=[*loaded.keys, *key_result.keys], window=timedelta(days=args.window),
                    errors=[*loaded.errors, *key_result.errors, *trust_result.errors])
    if args.output == "json":
        print(json.dumps(found.to_dict(), indent=2))
    else:
        _print_text(args, found, trust_result.certs)
    return 0 if found.ok else 1


def mark(result: CheckResult) -> str:
    if result.is_problem and result.severity != "error":
        return MARKS["warning"]
    return MARKS[result.status]


def check_line(result: CheckResult) -> str:
    """One check as one line of rich markup: mark, check name, message, cause id."""
    from rich.markup import escape

    cause = f" [bold]\\[{escape(result.cause)}][/]" if result.cause else ""
    style = "red" if result.is_problem and result.severity == "error" else (
        "yellow" if result.is_problem else "dim" if not result.ran else "")
    message = f"[{style}]{escape(result.message)}[/]" if style else escape(result.message)
    return f"  {mark(result)} {result.check:<14} {message}{cause}"


def validity_text(cert: CertFacts, at: datetime, window: timedelta = EXPIRY_WINDOW) -> str:
    """Dates with what they mean at `at`: days left (yellow within the warning `window`), or how
    long ago it expired."""
    span = f"{cert.not_before:%Y-%m-%d %H:%M} → {cert.not_after:%Y-%m-%d %H:%M} UTC"
    if at > cert.not_after:
        return f"{span}  [red bold]EXPIRED {(at - cert.not_after).total_seconds() / 86400:.1f} days ago[/]"
    if at < cert.not_before:
        return f"{span}  [red bold]NOT YET VALID for {(cert.not_before - at).total_seconds() / 86400:.1f} days[/]"
    days = (cert.not_after - at).total_seconds() / 86400
    colour = "yellow" if days <= window.total_seconds() / 86400 else "green"
    return f"{span}  [{colour}]{days:.0f} days left[/]"


def facts_lines(cert: CertFacts, at: datetime, window: timedelta = EXPIRY_WINDOW) -> list[tuple[str, str]]:
    from rich.markup import escape

    sans = [*(f"DNS:{d}" for d in cert.san_dns), *(f"IP:{i}" for i in cert.san_ip),
            *(f"URI:{u}" for u in cert.san_uri)]
    ca = "yes" if cert.is_ca else "no" if cert.is_ca is False else "no basicConstraints"
    if cert.is_ca and cert.path_length is not None:
        ca += f" (path length {cert.path_length})"
    rows = [
        ("subject", escape(cert.subject)),
        ("issuer", escape(cert.issuer) + ("  (self-signed)" if cert.self_signed else "")),
        ("valid", validity_text(cert, at, window)),
        ("SAN", escape(", ".join(sans)) if sans else "[yellow]none[/] (clients that check only the SAN fail)"),
        ("key", f"{escape(cert.key_type)} {cert.key_size or ''}".strip()),
        ("signature", escape(cert.signature_algorithm)),
        ("usage", escape(", ".join([*cert.key_usage, *cert.extended_key_usage]) or "unrestricted")),
        ("CA", ca),
        ("serial", cert.serial),
        ("SHA-1", f"{cert.sha1}  (OPC UA thumbprint)"),
        ("SHA-256", cert.sha256),
    ]
    return rows


def _print_text(args: argparse.Namespace, found: Inspection, trust: Sequence[CertFacts]) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    at = found.at
    context = [f"at {at:%Y-%m-%d %H:%M:%S} UTC", f"role {args.role}"]
    if args.host:
        context.append(f"host {args.host}")
    if trust:
        context.append(f"{len(trust)} CA certificate(s) from {', '.join(map(str, args.ca))}")
    console.print(f"[dim]{escape(' · '.join(context))}[/]")
    for report in found.reports:
        cert = report.cert
        kind = "leaf" if report.leaf else "CA" if cert.is_ca else "certificate"
        console.print()
        console.print(f"[bold]{escape(cert.where)}[/]  {escape(cert.label)}  [dim]({kind}, {cert.source_format})[/]")
        for label, value in facts_lines(cert, at, timedelta(days=args.window)):
            console.print(f"  [dim]{label:<10}[/] {value}")
        shown = [r for r in report.results if r.status is not CheckStatus.PASSED]
        passed = [r.check for r in report.results if r.status is CheckStatus.PASSED]
        for result in shown:
            console.print(check_line(result))
        if passed:
            console.print(f"  {MARKS[CheckStatus.PASSED]} [dim]{escape(', '.join(passed))}[/]")
    for key in found.keys:
        state = "opened" if key.state == "loaded" else key.state.replace("_", " ")
        console.print(f"\n[bold]{escape(key.where)}[/]  private key {escape(key.key_type or '')} "
                      f"{key.key_size or ''} [dim]({state}; never printed)[/]")
    if found.extra:
        console.print()
        for result in found.extra:
            console.print(check_line(result))
    for error in found.errors:
        console.print(f"[red]✘ cannot load[/] {escape(error)}")
    console.print()
    if not found.ok:
        what = f": {', '.join(found.causes)}" if found.causes else ""
        count = len(found.problems) + len(found.errors)
        console.print(f"[red bold]{count} problem{'s' if count != 1 else ''}{escape(what)}[/]")
    else:
        console.print("[green bold]no problems found[/]")
