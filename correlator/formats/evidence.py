r"""Finds failure evidence anywhere in a message, whatever stack wrote it.

Vocabularies in `parsers/vocab/` map the words of OpenSSL, Python, Java, .NET, Go and Node onto
one reason per failure (field `tls_reason`, `mqtt_reason`, `net_error`), the words of OPC UA
stacks that give no status code onto `opcua_reason` (which then hides any TLS reason: OPC UA
failures never feed the MQTT TLS rules), and recognise OPC UA status codes by name or hex
(`opcua_status`). One rule can then serve every client. A cheap
union regex rejects the common line that has no evidence before any ordered search runs.

The vocabularies are compiled by the `regex` module: most phrases are plain words, and those go
into one named list (`\L<phrases>`) that is matched as a set, with the few real patterns beside it.
On case-blind unions of a hundred phrases `regex` searches a line two to three times as fast as
`re` (`benchmarks/hostile.py --patterns` measures it on every sample log's lines).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import regex

from correlator.errors import DefinitionError
from correlator.model import FieldValue

#: A status by name: `BadCertificateUntrusted`, or Eclipse Milo's `Bad_CertificateUntrusted`.
_OPCUA_NAME = re.compile(r"\b(Bad_?[A-Z][A-Za-z]+)\b")
_OPCUA_HEX = re.compile(r"\b0x([0-9A-Fa-f]{8})\b")
#: Files of parsers/vocab/ that are not phrase vocabularies (read by their own loaders).
NOT_PHRASES = frozenset({"layouts.toml", "kinds.toml", "placeholders.toml"})
#: Distinct texts whose evidence is remembered (see `Evidence.extract`).
EXTRACT_MEMO = 8192


@dataclass(frozen=True)
class Reason:
    id: str
    title: str
    patterns: tuple[str, ...]
    """The reason's phrases and patterns as written (case-blind)."""
    probe_with_cert: str | None = None
    """The cause `correlator probe` names when its handshake ends with this reason and it sent a
    client certificate (the reason's `probe_cause_with_cert`, else `probe_cause`)."""
    probe_without_cert: str | None = None
    """The same when it sent none (`probe_cause_without_cert`, else `probe_cause`)."""
    file: Path = Path()
    where: str = ""

    @cached_property
    def regex(self) -> regex.Pattern[str]:
        """Compiled when a line first passes its vocabulary's union (`Vocabulary.quick`), which
        already proved that it compiles: most analyses never need most reasons, and compiling
        them all was a good part of every start."""
        return _compile(self.file, self.where, self.patterns)


@dataclass(frozen=True)
class Vocabulary:
    """One phrase vocabulary: an ordered list of reasons that fill one field."""

    field: str
    kind: str
    reasons: tuple[Reason, ...]
    quick: regex.Pattern[str]
    file: str
    alert: regex.Pattern[str] | None = None
    """Words saying the reason was the peer's alert (`alert_markers`), for the field tls_alert."""

    def compile_ahead(self) -> None:
        """Every reason's regex compiled now (for the start-up cache: see `Reason.regex`). A reason
        whose patterns do not compile stays lazy, to be reported where it is first needed."""
        for reason in self.reasons:
            try:
                reason.regex  # noqa: B018 - a cached property: compiled and kept
            except DefinitionError:
                continue

    def find(self, text: str) -> Reason | None:
        if self.quick.search(text) is None:
            return None
        for reason in self.reasons:
            if reason.regex.search(text):
                return reason
        return None


class Evidence:
    """All vocabularies plus the OPC UA status table, applied to message text."""

    def __init__(self, vocabularies: list[Vocabulary], opcua: dict[str, str]) -> None:
        self.vocabularies = vocabularies
        self.opcua_by_name = opcua
        self.opcua_by_hex = {code.lower(): name for name, code in opcua.items()}
        self.fields = (*(v.field for v in vocabularies), "tls_alert", "opcua_status", "opcua_status_code")
        self._memo: dict[str, tuple[dict[str, FieldValue], str | None]] = {}
        self._rank = {(v.field, reason.id): i for v in vocabularies for i, reason in enumerate(v.reasons)}

    def sharper(self, field: str, new: FieldValue, old: FieldValue) -> bool:
        """Whether reason `new` of `field` says more than `old`: a vocabulary lists its specific
        reasons before its generic ones ("certificate has expired" before "certificate verify
        failed"), so the earlier one is the sharper."""
        a, b = self._rank.get((field, str(new))), self._rank.get((field, str(old)))
        return a is not None and b is not None and a < b

    def extract(self, text: str) -> tuple[dict[str, FieldValue], str | None]:
        """Fields found in `text`, and the kind the first vocabulary that matched suggests.

        Remembered per text: a failing system writes the same error text thousands of times, and
        the vocabularies' case-blind searches over hundreds of phrases cost tens of microseconds
        a line. The memo is emptied when full; callers get their own copy of the fields."""
        memo = self._memo
        found = memo.get(text)
        if found is None:
            found = self._extract(text)
            if len(memo) >= EXTRACT_MEMO:
                memo.clear()
            memo[text] = found
        return dict(found[0]), found[1]

    def _extract(self, text: str) -> tuple[dict[str, FieldValue], str | None]:
        found: dict[str, FieldValue] = {}
        kind: str | None = None
        for vocab in self.vocabularies:
            reason = vocab.find(text)
            if reason is not None:
                found[vocab.field] = reason.id
                if kind is None:
                    kind = vocab.kind
                if vocab.alert is not None:
                    found["tls_alert"] = vocab.alert.search(text) is not None
        if "opcua_reason" in found:
            # an OPC UA stack's own words ("Certificate has expired or is not yet valid.") are
            # about its secure channel, never an MQTT TLS handshake
            found.pop("tls_reason", None)
            found.pop("tls_alert", None)
            if kind == "tls.error":
                kind = "opcua.error"
        status = self._opcua(text)
        if status is not None:
            # An OPC UA status names the failure in OPC UA's own terms; the same message's
            # "certificate has expired" is not a TLS handshake failure and must not feed TLS rules.
            found.pop("tls_reason", None)
            found.pop("tls_alert", None)
            found["opcua_status"] = status
            found["opcua_status_code"] = self.opcua_by_name[status]
            if kind in (None, "tls.error"):
                kind = "opcua.status"
        return found, kind

    def _opcua(self, text: str) -> str | None:
        if "Bad" in text:
            for match in _OPCUA_NAME.finditer(text):
                name = match.group(1).replace("_", "", 1)
                if name in self.opcua_by_name:
                    return name
        if "0x" in text:
            for match in _OPCUA_HEX.finditer(text):
                name = self.opcua_by_hex.get("0x" + match.group(1).lower())
                if name is not None:
                    return name
        return None

    def title(self, field: str, reason_id: str) -> str:
        """Plain words for a reason id, for reports."""
        for vocab in self.vocabularies:
            if vocab.field == field:
                for reason in vocab.reasons:
                    if reason.id == reason_id:
                        return reason.title
        return reason_id


_META = frozenset(".^$*+?{}[]|()\\")


def _compile(file: Path, where: str, patterns: Sequence[str]) -> regex.Pattern[str]:
    """One case-blind regex that finds any of `patterns`: the plain phrases as one named list,
    the real patterns as alternatives beside it."""
    phrases = [p for p in patterns if p and not _META & set(p)]
    others = [f"(?:{p})" for p in patterns if p not in phrases]
    source = "|".join([r"\L<phrases>"] * bool(phrases) + others)
    try:
        return regex.compile(source, regex.I | regex.V0, phrases=phrases)
    except regex.error as exc:
        raise DefinitionError(f"regex does not compile: {exc}", file=file, context=where) from exc


def _probe_cause(file: Path, where: str, entry: dict[str, object], key: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise DefinitionError(f"{key} must be a root-cause id string", file=file, context=where)
    return value


def load_vocabulary(file: Path) -> Vocabulary:
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DefinitionError(f"cannot read vocabulary: {exc}", file=file) from exc
    for key in ("field", "kind", "reason"):
        if key not in data:
            raise DefinitionError(f"missing key {key!r}", file=file)
    reasons = []
    for index, entry in enumerate(data["reason"]):
        where = f"reason[{index}]"
        if not isinstance(entry, dict) or not {"id", "patterns"} <= entry.keys():
            raise DefinitionError("a reason needs 'id' and 'patterns'", file=file, context=where)
        patterns = tuple(str(p) for p in entry["patterns"])
        both = _probe_cause(file, where, entry, "probe_cause")
        reasons.append(Reason(str(entry["id"]), str(entry.get("title", entry["id"])), patterns,
                              _probe_cause(file, where, entry, "probe_cause_with_cert") or both,
                              _probe_cause(file, where, entry, "probe_cause_without_cert") or both, file, where))
    try:
        quick = _compile(file, "all patterns", [p for r in reasons for p in r.patterns])
    except DefinitionError:
        for reason in reasons:  # the reason whose pattern does not compile says so itself
            _compile(file, reason.where, reason.patterns)
        raise
    markers = data.get("alert_markers")
    alert = _compile(file, "alert_markers", markers) if markers else None
    return Vocabulary(data["field"], data["kind"], tuple(reasons), quick, str(file), alert)


def load_evidence(vocab_dir: Path) -> Evidence:
    """Vocabularies in file-name order (so tls before net before mqtt is the author's choice)."""
    vocabularies = []
    opcua: dict[str, str] = {}
    for file in sorted(vocab_dir.glob("*.toml")):
        if file.name in NOT_PHRASES:
            continue
        if file.name == "opcua_status.toml":
            try:
                opcua = dict(tomllib.loads(file.read_text(encoding="utf-8"))["status"])
            except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
                raise DefinitionError(f"cannot read OPC UA status table: {exc}", file=file) from exc
        else:
            vocabularies.append(load_vocabulary(file))
    order = {"tls_reason": 0, "net_error": 1, "mqtt_reason": 2}
    vocabularies.sort(key=lambda v: order.get(v.field, 9))
    return Evidence(vocabularies, opcua)
