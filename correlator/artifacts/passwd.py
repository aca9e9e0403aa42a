"""mosquitto password files (`password_file`): who exists, and nothing else.

mosquitto answers "not authorised" for an unknown user and for a wrong password alike; the user
list is what tells the two apart. The hashes are secrets: this module checks that each one has a
shape mosquitto 2.0 can use (a plain-text password, or a hash type it does not know, makes
mosquitto drop that user at start-up, so every login of that user fails) and then forgets it.
Only user names, line numbers and that yes/no survive parsing.

Parsing follows mosquitto's pwfile__parse: a line starting with '#' is a comment, a line without
':' is skipped, the user name is the text before the first ':' with blanks trimmed.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from correlator.artifacts.textfile import decode_artifact
from correlator.errors import ArtifactError


@dataclass(frozen=True, slots=True)
class PasswdUser:
    name: str
    file: str
    line: int
    usable: bool
    """False when mosquitto drops this entry at start-up (no hash, plain text, unknown hash type),
    so the user cannot log in whatever password the client sends."""

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class PasswordFile:
    path: str
    users: list[PasswdUser] = field(default_factory=list)
    problems: list[ArtifactError] = field(default_factory=list)

    @property
    def usernames(self) -> list[str]:
        return [u.name for u in self.users]

    def user(self, name: str) -> PasswdUser | None:
        """The entry mosquitto uses for this name (the first usable one), None if unknown."""
        matches = [u for u in self.users if u.name == name]
        usable = [u for u in matches if u.usable]
        found = usable or matches
        return found[0] if found else None

    def knows(self, name: str) -> bool:
        """True when the password file holds a usable entry for this user: a refused login by a
        known user means a wrong password, by an unknown one a user that does not exist."""
        entry = self.user(name)
        return entry is not None and entry.usable


def parse_passwd(path: str | os.PathLike[str], *, display_name: str | None = None) -> PasswordFile:
    """Read a password file; an unreadable file is a problem, not an exception."""
    name = display_name or str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        result = PasswordFile(name)
        result.problems.append(ArtifactError(f"cannot read password file: {exc.strerror or exc}", file=name))
        return result
    return parse_passwd_text(data, name)


def parse_passwd_text(data: str | bytes, name: str = "<password_file>") -> PasswordFile:
    result = PasswordFile(name)
    text = decode_artifact(data)
    if text is None:
        result.problems.append(ArtifactError("binary file, not a mosquitto password file", file=name, line=1))
        return result
    seen: set[str] = set()
    for number, raw in enumerate(text.split("\n"), start=1):
        if raw.startswith("#") or ":" not in raw:
            continue
        user, _, rest = raw.partition(":")
        user = user.strip()
        secret = rest.split(":", 1)[0].strip()
        if not user:
            result.problems.append(ArtifactError("entry without a user name", file=name, line=number))
            continue
        usable, why = _hash_usable(secret)
        del secret  # the hash is never kept
        if not usable:
            result.problems.append(ArtifactError(f"user {user!r}: {why}; mosquitto drops this entry, so "
                                                 f"'{user}' cannot log in", file=name, line=number))
        elif user in seen:
            result.problems.append(ArtifactError(f"user {user!r} appears more than once", file=name,
                                                 line=number))
        if usable:
            seen.add(user)
        result.users.append(PasswdUser(user, name, number, usable))
    return result


def _hash_usable(secret: str) -> tuple[bool, str]:
    """Whether mosquitto 2.0 (built with TLS) can use this hash: '$6$salt$hash' (sha512) or
    '$7$iterations$salt$hash' (pbkdf2-sha512), salt 12 bytes and hash 64 bytes in base64."""
    if not secret:
        return False, "no password hash"
    parts = secret.split("$")
    if len(parts) < 2 or parts[0] != "" or parts[1] not in ("6", "7"):
        return False, "the password is not a mosquitto hash (plain text? run mosquitto_passwd -U)"
    fields = parts[2:]
    if parts[1] == "7":
        # mosquitto reads the count as a C int: no count it accepts has more than ten digits
        if not fields or not re.fullmatch(r"0*[0-9]{1,10}", fields[0]) or not 1 <= int(fields[0]) < 2**31:
            return False, "invalid iteration count in the password hash"
        fields = fields[1:]
    if len(fields) < 2:
        return False, "truncated password hash"
    try:
        salt = base64.b64decode(fields[0], validate=True)
        digest = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        return False, "the password hash is not valid base64"
    if len(salt) != 12 or len(digest) != 64:
        return False, "the password hash has the wrong length"
    return True, ""
