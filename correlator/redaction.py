"""Secrets a bundle may hold, removed where text enters the tool: private keys, password hashes and
passwords. Nothing downstream (the timeline, the findings, every report, the API, its SQLite file,
the TUI) ever holds them, so no surface needs to remember to hide them.

Logs quote secrets by accident: a script dumps a PEM key over thirty lines, echoes a password
file line, logs a connection string with `password=...`. A key is a *block*, so redaction of a
log is stateful: `LineRedactor` is fed the lines of one file in order and removes every line of a
key from its BEGIN line to its END line (or to the first line that is no part of a key, when the
dump was cut). `redact` does the same for one piece of text that may span lines (an evidence line,
an error message).

A bundle's own key and password files are read by their artifact parsers, which keep only what
checks need (fingerprints, user names); they are never read as logs (see
`correlator.sources.bundle.classify`).
"""

from __future__ import annotations

import re

KEY_REMOVED = "[private key removed]"
HASH_REMOVED = "[password hash removed]"
PASSWORD_REMOVED = "[password removed]"
REMOVED = " removed]"
"""What every marker ends with: a surface that keeps text aside can tell redacted text cheaply."""

_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")
#: A whole key in one text (PKCS#8, encrypted PKCS#8, PKCS#1 RSA, SEC1 EC, OpenSSH, DSA ...), or
#: its head up to the end of the text when the text holds no END line.
_KEY_BLOCK = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
                        re.S)
#: A line inside a key: base64, an RFC 1421 header (Proc-Type, DEK-Info) or blank.
_KEY_BODY = re.compile(r"\s*(?:[A-Za-z0-9+/=]*|[A-Za-z-]+: .*)\s*")
#: The base64 tail of a line a logger prefixed (`2026-... DEBUG MIIEvQIBADAN...`).
_KEY_TAIL = re.compile(r"[A-Za-z0-9+/=]{16,}\s*$")

_DIGIT = re.compile(r"[0-9]")
#: Password hashes in crypt's modular format: mosquitto's $6$ (sha512-crypt) and $7$ (PBKDF2),
#: bcrypt ($2a$/$2b$/$2y$), yescrypt ($y$), argon2 ($argon2id$v=19$m=...,t=...,p=...$salt$hash),
#: scrypt, and PBKDF2 as Django writes it (pbkdf2_sha256$iterations$salt$hash).
_HASH = re.compile(r"(?:\$(?:argon2(?:id|i|d)|[0-9a-z]{1,8})\$|\bpbkdf2_sha[0-9]+\$)[A-Za-z0-9+/=.,$-]{16,}")
#: `password=x`, `pw: x`, `"pass": "x"`, `remote_password=x`, `mqtt_pwd='x'`: the key ends in a
#: password word and is followed by `=` or `:`; the value is quoted or runs to a separator.
_PASSWORD_PAIR = re.compile(
    r"""(?i)(?<![A-Za-z0-9])((?:[A-Za-z0-9]+[_.-])*(?:password|passwort|passwd|pass|pwd|pw)["']?\s*[=:]\s*)"""
    r"""("[^"]*"|'[^']*'|(?!\[password removed\])[^\s,;&"'}\])]+)""")
#: mosquitto.conf's bridge password, which takes a blank, not `=`.
_CONF_PASSWORD = re.compile(r"(?im)^(\s*remote_password\s+)(\S.*)$")
#: Credentials in a URL: mqtts://user:secret@host.
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)")


def _maybe(text: str) -> bool:
    """Cheap first look (a few string searches, no regex): most log lines need nothing more."""
    if "$" in text or "://" in text or "PRIVATE KEY-----" in text:
        return True
    low = text.lower()
    return "pass" in low or "pw" in low


def may_hold_secret(raw: bytes) -> bool:
    """`_maybe` on a line's bytes (the bulk reader's look before it decodes): a line it says no
    to is one `redact` leaves as it is."""
    if b"$" in raw or b"://" in raw or b"PRIVATE KEY-----" in raw:
        return True
    low = raw.lower()
    return b"pass" in low or b"pw" in low


def redact(text: str) -> str:
    """`text` without private keys, password hashes and passwords; idempotent."""
    if not _maybe(text):
        return text
    if "PRIVATE KEY-----" in text:
        text = _KEY_END.sub(KEY_REMOVED, _KEY_BLOCK.sub(KEY_REMOVED, text))  # and an END line on its own
    if "$" in text:
        text = _HASH.sub(HASH_REMOVED, text)
    text = _PASSWORD_PAIR.sub(_keep_key, text)
    if "remote_password" in text:
        text = _CONF_PASSWORD.sub(lambda m: m.group(1) + PASSWORD_REMOVED, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + PASSWORD_REMOVED + m.group(3), text)
    return text


#: A value that stands for a password in documentation (`keyfile_password=...`, `<password>`).
_STAND_IN = re.compile(r"\.{3}|…|\*+|<[^>]*>|\{[^}]*\}")


def _keep_key(match: re.Match[str]) -> str:
    value = match.group(2)
    if value in ("", '""', "''") or value.endswith(REMOVED) or _STAND_IN.fullmatch(value):
        return match.group(0)
    return match.group(1) + PASSWORD_REMOVED


class LineRedactor:
    """`redact` for the lines of one file read in order: a key's lines after its BEGIN line are
    emptied (the BEGIN line carries the marker), so a key dumped over many lines leaves one
    marker and blank lines, and the line numbers of everything else stay true."""

    __slots__ = ("column", "in_key", "prefix")

    def __init__(self) -> None:
        self.in_key = False
        self.column = 0
        """Where the BEGIN line's key started: a logger's prefix is as wide on every line."""
        self.prefix = ""
        """The BEGIN line's prefix, digits as 0: each line of the dump has it, bar its time."""

    def line(self, text: str) -> str:
        if self.in_key:
            end = _KEY_END.search(text)
            if end is not None:
                self.in_key = False
                return redact(text[end.end():])
            if _KEY_BODY.fullmatch(text):
                return ""
            column = self.column
            if (column and text[column:].strip() and _KEY_BODY.fullmatch(text[column:])
                    and _DIGIT.sub("0", text[:column]) == self.prefix):
                return text[:column] + KEY_REMOVED
            if _KEY_TAIL.search(text):
                return _KEY_TAIL.sub(KEY_REMOVED, text)
            self.in_key = False  # the dump was cut: this line is the log again
        if not _maybe(text):
            return text
        begin = _KEY_BEGIN.search(text)
        if begin is not None and not _KEY_END.search(text, begin.end()):
            self.in_key = True
            self.column = begin.start()
            self.prefix = _DIGIT.sub("0", text[:self.column])
        return redact(text)

