"""The one result every check returns: certificate checks (`artifacts.cert_checks`), the live
probe's judgement of a presented chain, and the artifact checks the rules name
(`engine.facts`), which are built on the certificate checks.

In the style of sslyze's scan-command attempts: a frozen record whose `status` keeps apart what a
report must never blur, so "it could not look" is never read as "it looked and all was well":

- PASSED ("ok"): the check ran and did not find what it looks for;
- PROBLEM ("problem"): the check ran and found it (with a root-cause id where one applies);
- NOT_RUN ("not_run"): the check could not run; `message` says why (no CA given, no time known,
  no certificate of that kind in the bundle).

Every check looks for something wrong, and is named for it (`expired`, `server_cert_expired`,
`acl_denies_publish`, `listener_is_plain`), so PROBLEM is the outcome a rule's `on_true` acts
on, PASSED its `on_false` and NOT_RUN its `on_unknown`.

Checks never read the wall clock: the time they judge at is given to them, by the surface
(`certs --at`, the probe's moment) or by the analysis (the failure's time, the log's last line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from correlator.report_model import EvidenceRef

#: Default warning window for cert.expiring_soon (ROOT_CAUSES.md).
EXPIRY_WINDOW = timedelta(days=30)

Severity = Literal["info", "warning", "error"]


#: A check's value saying it judged certificates at an estimated time (no line of the failure, nor
#: of its connection, had a time of its own): the engine says so in the finding and lowers its
#: confidence.
JUDGED_AT_ESTIMATE = "judged_at_estimate"
#: The context key the engine fills with the broker-aligned time of the connection a match's lines
#: belong to when those lines carry no time of their own (an untimed client paired with the
#: broker's connection): checks judge certificates at it instead of at the estimate.
CONNECTION_TIME = "connection_time"


class CheckStatus(StrEnum):
    """Whether a check ran, and what it found. The values are the JSON's words."""

    PASSED = "ok"
    PROBLEM = "problem"
    NOT_RUN = "not_run"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one subject.

    `subject` says where the checked thing came from ('file' or 'file#index'); `details` holds
    the check's own measurements (days left, both host-name verdicts, the chain built), JSON-ready;
    `evidence` the artifact facts a finding may quote (file, line, what it says); `values` the
    names a rule's explanation and fix are filled in with (a certificate's subject and file, the
    ACL line to add)."""

    check: str
    status: CheckStatus
    message: str = ""
    subject: str = ""
    cause: str | None = None
    severity: Severity = "info"
    details: Mapping[str, Any] = field(default_factory=dict)
    evidence: tuple[EvidenceRef, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, check: str, message: str = "", **fields: Any) -> CheckResult:
        return cls(check, CheckStatus.PASSED, message, **fields)

    @classmethod
    def problem(cls, check: str, message: str = "", **fields: Any) -> CheckResult:
        return cls(check, CheckStatus.PROBLEM, message, **fields)

    @classmethod
    def not_run(cls, check: str, why: str, **fields: Any) -> CheckResult:
        return cls(check, CheckStatus.NOT_RUN, why, **fields)

    def named(self, check: str) -> CheckResult:
        """This result under the name of the check that was asked (checks build theirs nameless).
        `dataclasses.replace` does this too, at twice the cost: it took a quarter of the engine's
        time on a storm of refused logins, whose every line runs three checks. A copy of the
        frozen record's fields is cheaper still than its `__init__` (one `object.__setattr__` per
        field)."""
        named = object.__new__(CheckResult)
        fields = named.__dict__
        fields.update(self.__dict__)
        fields["check"] = check
        return named

    @property
    def is_problem(self) -> bool:
        return self.status is CheckStatus.PROBLEM

    @property
    def ran(self) -> bool:
        return self.status is not CheckStatus.NOT_RUN

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "severity": self.severity,
            "cause": self.cause,
            "subject": self.subject,
            "message": self.message,
            "details": dict(self.details),
        }
