"""One exception family for everything a user can get wrong, so the CLI can print it in one line.

Every error carries where it happened (file, line, and for definitions the format or rule and the
key), because "invalid regex" without a location is useless at 3 a.m.
"""

from __future__ import annotations

from pathlib import Path

from correlator.redaction import redact


class CorrelatorError(Exception):
    """Base of every error the tool reports to a user (never a bug: bugs stay plain exceptions)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        context: str | None = None,
    ) -> None:
        self.message = redact(message)  # a message may quote the line it is about
        self.file = str(file) if file is not None else None
        self.line = line
        self.context = context
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.context:
            where = f"{where} [{self.context}]" if where else f"[{self.context}]"
        return f"{where}: {self.message}" if where else self.message


class DefinitionError(CorrelatorError):
    """A format or rule file is wrong: bad TOML, a missing key, a regex that does not compile,
    a sample that does not yield what it declares."""


class InputError(CorrelatorError):
    """An input file or bundle cannot be read or is unsafe to extract."""


class ArtifactError(CorrelatorError):
    """A certificate, key, config, ACL, password file or PKI folder cannot be loaded."""


class ProbeError(CorrelatorError):
    """A live probe could not be carried out (bad address, bad option)."""


class TimeInputError(CorrelatorError):
    """A time given as an option or query parameter is not one `correlator.time_input` reads."""
