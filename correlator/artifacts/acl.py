"""mosquitto ACL files (`acl_file`) and the question an on-call engineer asks of them: may this user
publish to (or receive from) this topic, which line decides it, and what line would fix it.

The semantics follow mosquitto 2.0's built-in check (src/security_default.c) and were confirmed
against a real 2.0.11 broker (tests/artifacts/test_acl_vs_broker.py):

- Lines before the first `user` line form the anonymous section: they apply only to clients that
  connect without a username. A user with no section of its own gets only the `pattern` lines.
- Within a section, and within the patterns, `deny` entries are checked before any grant,
  wherever they stand in the file. The user's own section is checked before the patterns, so a
  `topic` grant wins over a `pattern ... deny`, and a `topic deny` wins over everything.
- A topic starting with `$` is never matched by an entry that does not itself start with `$`
  (`#` does not grant `$SYS/...`). Publishing to `$SYS` is always refused, whatever the file says.
- `%u` patterns are skipped for clients without a username; `%c` and `%u` are replaced by the
  client id and username. A client id or username containing `+` or `#` is refused outright
  when the file has patterns.
- Nothing matching means denied.
- SUBSCRIBE is always granted (SUBACK success); each message is then checked for *read* on its
  concrete topic and silently dropped when denied. So "can user U subscribe to F" has no yes/no
  answer from the broker; `check_subscription` says whether all, some or none of the messages a
  filter covers would be delivered.

The parser mirrors mosquitto's tokenizer too, because the customer's file will be read by
mosquitto, not by us: only a line *starting* with `#` is a comment, fields are split on spaces
only (a tab makes the whole line one unknown word), and a line mosquitto rejects is reported as a
problem at its file and line while the rest of the file is still parsed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from correlator.artifacts.textfile import decode_artifact, keyword_hint
from correlator.errors import ArtifactError

Action = Literal["read", "write"]
Delivery = Literal["all", "some", "none"]

#: mosquitto's access bits (MOSQ_ACL_READ, MOSQ_ACL_WRITE); deny is 0 and handled apart.
_ACCESS_BITS: dict[str, int] = {"read": 1, "write": 2, "readwrite": 3, "deny": 0}
_ACTION_BITS: dict[str, int] = {"read": 1, "write": 2}


@dataclass(frozen=True, slots=True)
class AclEntry:
    """One `topic` or `pattern` line."""

    file: str
    line: int
    text: str
    """The line as written (trailing whitespace removed)."""
    kind: Literal["topic", "pattern"]
    access: str
    """'read', 'write', 'readwrite' or 'deny' ('readwrite' when the line names none)."""
    topic: str
    user: str | None
    """The `user` section a `topic` line belongs to (None: the anonymous section). Always None
    for patterns, which apply to every client."""

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def is_deny(self) -> bool:
        return self.access == "deny"

    def grants(self, action: Action) -> bool:
        return bool(_ACCESS_BITS[self.access] & _ACTION_BITS[action])


@dataclass(frozen=True, slots=True)
class UserSection:
    """Where a `user` line stands, so a fix can say under which line to add an entry."""

    name: str
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class AclDecision:
    """The answer to one access question, with the evidence for the report."""

    allowed: bool
    action: Action
    topic: str
    username: str | None
    client_id: str
    entry: AclEntry | None
    """The line that decided (a grant, or a deny); None when nothing matched or a built-in
    rule decided."""
    reason: str
    """One sentence for the person on call."""
    fix: str | None = None
    """The exact line to add (or change) to allow the access, None when allowed or not fixable
    in the ACL file."""
    fix_section: str | None = None
    """Where the fix goes: 'user <name>' (the section, created at the end of the file if
    absent), 'anonymous section (before the first user line)', or a file:line to edit."""
    near_misses: tuple[AclEntry, ...] = ()
    """Entries whose topic matches but which grant only the other direction (e.g. `read` when
    publishing), the usual typo behind a denial."""


@dataclass(frozen=True, slots=True)
class SubscriptionDecision:
    """What a subscriber gets for a topic filter under mosquitto 2.0: the SUBSCRIBE itself is
    always granted, and each message is filtered by the read check on its own topic."""

    subscribe_granted: bool
    delivery: Delivery
    """'all': every message the filter matches is delivered; 'some': an entry grants part of
    the filter (or a deny removes part); 'none': nothing the filter matches is readable."""
    filter: str
    username: str | None
    client_id: str
    granting: tuple[AclEntry, ...]
    denying: tuple[AclEntry, ...]
    reason: str
    fix: str | None = None
    fix_section: str | None = None


@dataclass
class AclFile:
    """A parsed ACL file. `problems` holds every line mosquitto would refuse (it then refuses to
    start), each as a one-line ArtifactError with file and line."""

    path: str
    entries: list[AclEntry] = field(default_factory=list)
    users: list[UserSection] = field(default_factory=list)
    problems: list[ArtifactError] = field(default_factory=list)

    @property
    def patterns(self) -> list[AclEntry]:
        return [e for e in self.entries if e.kind == "pattern"]

    @property
    def usernames(self) -> list[str]:
        seen: dict[str, None] = {}
        for section in self.users:
            seen.setdefault(section.name, None)
        return list(seen)

    def section(self, username: str | None) -> list[AclEntry]:
        """The `topic` entries that apply to this user (None: anonymous), in file order."""
        return [e for e in self.entries if e.kind == "topic" and e.user == username]

    # -- the check ---------------------------------------------------------------------------

    def check(self, username: str | None, client_id: str, topic: str, action: Action) -> AclDecision:
        """May this client publish to (`write`) or receive a message on (`read`) this concrete
        topic? `topic` must be a topic name, not a filter: use `check_subscription` for filters."""
        if action not in _ACTION_BITS:
            raise ValueError(f"action must be 'read' or 'write', not {action!r}")
        if not topic or "+" in topic or "#" in topic:
            raise ValueError(f"{topic!r} is not a topic name (use check_subscription for filters)")

        def decide(allowed: bool, entry: AclEntry | None, reason: str, fix: str | None = None,
                   fix_section: str | None = None, near: Sequence[AclEntry] = ()) -> AclDecision:
            return AclDecision(allowed, action, topic, username, client_id, entry, reason, fix,
                               fix_section, tuple(near))

        if topic.startswith("$SYS") and action == "write":
            if _matches("$SYS/broker/connection/+/state", topic):
                return decide(True, None, "mosquitto lets clients write bridge state topics in $SYS")
            return decide(False, None,
                          "mosquitto refuses every client PUBLISH to $SYS, whatever the ACL says")
        if topic.startswith("$share"):
            return decide(False, None, "$share topics are only for subscriptions; a message cannot be "
                          "published to or delivered on one")

        who = f"user {username!r}" if username is not None else "anonymous clients"
        near: list[AclEntry] = []
        for entry in _ordered(self.section(username)):
            if topic.startswith("$") and not entry.topic.startswith("$"):
                continue
            if not _matches(entry.topic, topic):
                continue
            if entry.is_deny:
                return decide(False, entry, f"{entry.location} denies {who} all access to {topic!r}: "
                              f"{entry.text!r}", f"remove or narrow {entry.text!r}", entry.location)
            if entry.grants(action):
                return decide(True, entry, f"{entry.location} grants {who} {action} on {topic!r}: "
                              f"{entry.text!r}")
            near.append(entry)

        patterns = self.patterns
        if patterns:
            for label, value in (("username", username), ("client id", client_id)):
                if value is not None and ("+" in value or "#" in value):
                    return decide(False, None, f"mosquitto refuses clients whose {label} {value!r} contains "
                                  f"'+' or '#' when the ACL file has patterns")
        for entry in _ordered(patterns):
            if "%u" in entry.topic and username is None:
                continue
            expanded = _substitute(entry.topic, client_id, username)
            if not _matches(expanded, topic):
                continue
            if entry.is_deny:
                return decide(False, entry, f"{entry.location} (pattern, as {expanded!r}) denies {who} all "
                              f"access to {topic!r}", f"remove or narrow {entry.text!r}", entry.location)
            if entry.grants(action):
                return decide(True, entry, f"{entry.location} (pattern, as {expanded!r}) grants {who} "
                              f"{action} on {topic!r}: {entry.text!r}")
            near.append(entry)

        fix, section = self._fix_for(username, topic, action)
        if near:
            first = near[0]
            reason = (f"no ACL entry grants {who} {action} on {topic!r}; {first.location} matches the topic "
                      f"but grants only {first.access}: {first.text!r}")
            fix = f"{first.kind} readwrite {first.topic}"
            section = first.location
        elif not self.section(username) and not patterns:
            reason = (f"the ACL file has no entries for {who} and no patterns, so mosquitto denies "
                      f"{who} everything")
        else:
            reason = f"no ACL entry for {who} matches {topic!r}, so mosquitto denies the {action}"
        return decide(False, None, reason, fix, section, near)

    def check_subscription(self, username: str | None, client_id: str,
                           topic_filter: str) -> SubscriptionDecision:
        """What a SUBSCRIBE to `topic_filter` yields: always granted by mosquitto 2.0, and then
        all, some or none of the matching messages delivered."""
        if not _valid_filter(topic_filter):
            raise ValueError(f"{topic_filter!r} is not a valid topic filter")
        if not ("+" in topic_filter or "#" in topic_filter):
            single = self.check(username, client_id, topic_filter, "read")
            decider: tuple[AclEntry, ...] = (single.entry,) if single.entry else ()
            return SubscriptionDecision(True, "all" if single.allowed else "none", topic_filter, username,
                                        client_id, decider if single.allowed else (),
                                        () if single.allowed else decider, single.reason, single.fix,
                                        single.fix_section)

        applicable: list[tuple[AclEntry, str]] = [(e, e.topic) for e in self.section(username)]
        dangerous = any(v is not None and ("+" in v or "#" in v) for v in (username, client_id))
        if self.patterns and not dangerous:
            for entry in self.patterns:
                if "%u" in entry.topic and username is None:
                    continue
                applicable.append((entry, _substitute(entry.topic, client_id, username)))
        covering = [e for e, t in applicable if e.grants("read") and _covers(t, topic_filter)]
        overlapping = [e for e, t in applicable if e.grants("read") and _intersects(t, topic_filter)]
        # The user's own grants are checked before any pattern, so a pattern deny inside a region
        # the user's section grants never takes effect.
        own_grants = [e.topic for e in self.section(username) if e.grants("read")]
        denying = [e for e, t in applicable if e.is_deny and _intersects(t, topic_filter)
                   and not (e.kind == "pattern" and any(_covers(g, t) for g in own_grants))]
        who = f"user {username!r}" if username is not None else "anonymous clients"
        fix, section = self._fix_for(username, topic_filter, "read")
        if covering and not denying:
            return SubscriptionDecision(
                True, "all", topic_filter, username, client_id, tuple(covering), (),
                f"{covering[0].location} grants {who} read on all of {topic_filter!r}")
        if covering or overlapping:
            grant = (covering or overlapping)[0]
            why = (f"deny entries remove part of it ({', '.join(d.location for d in denying)})" if denying
                   else f"{grant.location} grants only part of it: {grant.text!r}")
            return SubscriptionDecision(
                True, "some", topic_filter, username, client_id, tuple(covering or overlapping),
                tuple(denying), f"the SUBSCRIBE to {topic_filter!r} is granted but {who} receives only "
                f"some of its messages: {why}", fix, section)
        return SubscriptionDecision(
            True, "none", topic_filter, username, client_id, (), tuple(denying),
            f"the SUBSCRIBE to {topic_filter!r} is granted but {who} may read none of its topics, so "
            f"mosquitto silently drops every message", fix, section)

    def _fix_for(self, username: str | None, topic: str, action: Action) -> tuple[str, str]:
        line = f"topic {action} {topic}"
        if username is None:
            return line, "anonymous section (before the first user line)"
        return line, f"user {username}"


# -- parsing ---------------------------------------------------------------------------------

def parse_acl(path: str | os.PathLike[str], *, display_name: str | None = None) -> AclFile:
    """Read an ACL file. An unreadable file is one problem and an empty result, never a raise,
    so one bad artifact does not stop the analysis of a bundle."""
    name = display_name or str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        acl = AclFile(name)
        acl.problems.append(ArtifactError(f"cannot read ACL file: {exc.strerror or exc}", file=name))
        return acl
    return parse_acl_text(data, name)


def parse_acl_text(data: str | bytes, name: str = "<acl>") -> AclFile:
    """Parse ACL text (bytes are decoded leniently; a NUL byte marks a binary file)."""
    acl = AclFile(name)
    text = decode_artifact(data)
    if text is None:
        acl.problems.append(ArtifactError("binary file, not an ACL file", file=name, line=1))
        return acl
    user: str | None = None
    for number, raw in enumerate(_lines(text), start=1):
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        fields = [f for f in line.split(" ") if f]
        if not fields:
            continue  # only spaces
        keyword = fields[0]
        if keyword in ("topic", "pattern"):
            if len(fields) < 2:
                acl.problems.append(ArtifactError(
                    f"{keyword} line without a topic: mosquitto refuses the file", file=name, line=number))
                continue
            if len(fields) == 2:
                access, topic = "readwrite", fields[1]
            else:
                access, topic = fields[1], _rest_after(line, 2)
            if access not in _ACCESS_BITS:
                acl.problems.append(ArtifactError(
                    f"invalid access {access!r} (read, write, readwrite or deny): mosquitto refuses the file",
                    file=name, line=number))
                continue
            if not _valid_filter(topic):
                acl.problems.append(ArtifactError(f"invalid ACL topic {topic!r}: mosquitto refuses the file",
                                                  file=name, line=number))
                continue
            kind: Literal["topic", "pattern"] = "topic" if keyword == "topic" else "pattern"
            acl.entries.append(AclEntry(name, number, line, kind, access, topic,
                                        user if kind == "topic" else None))
        elif keyword == "user":
            username = _rest_after(line, 1)
            if not username:
                acl.problems.append(ArtifactError("user line without a name: mosquitto refuses the file",
                                                  file=name, line=number))
                continue
            user = username
            acl.users.append(UserSection(username, name, number))
        else:
            shown = line if len(line) <= 60 else line[:57] + "..."
            hint = keyword_hint(keyword)

            acl.problems.append(ArtifactError(f"invalid line {shown!r}{hint}: mosquitto refuses the file",
                                              file=name, line=number))
    return acl


def _lines(text: str) -> Iterable[str]:
    # mosquitto reads with fgets: only \n ends a line (a \r before it is trailing whitespace).
    return text.split("\n") if text else []


def _rest_after(line: str, count: int) -> str:
    """The text after the first `count` space-separated words, spaces trimmed (mosquitto keeps
    inner spaces of a topic or user name)."""
    rest = line.lstrip(" ")
    for _ in range(count):
        cut = rest.find(" ")
        if cut < 0:
            return ""
        rest = rest[cut:].lstrip(" ")
    return rest.strip()


# -- topic matching (mosquitto_topic_matches_sub and friends) --------------------------------

def _valid_filter(topic: str) -> bool:
    """mosquitto_sub_topic_check: '+' and '#' only as whole levels, '#' only last."""
    if not topic or len(topic) > 65535:
        return False
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "+" in level and level != "+":
            return False
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
    return True


def _matches(sub: str, topic: str) -> bool:
    """Does topic name `topic` match filter `sub`, as mosquitto_topic_matches_sub decides."""
    if not sub or not topic or not _valid_filter(sub):
        return False
    if (sub[0] == "$") != (topic[0] == "$"):
        return False
    sub_levels = sub.split("/")
    topic_levels = topic.split("/")
    for i, level in enumerate(sub_levels):
        if level == "#":
            return True  # also matches the parent: 'a/#' matches 'a'
        if i >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[i]:
            return False
    return len(sub_levels) == len(topic_levels)


def _covers(acl: str, sub: str) -> bool:
    """Does every topic that filter `sub` matches also match filter `acl`?"""
    if not _valid_filter(acl):
        return False
    if acl[0] == "$" and sub[0] != "$":
        return False
    a, s = acl.split("/"), sub.split("/")
    for i, level in enumerate(a):
        if level == "#":
            return True
        if i >= len(s):
            return False
        if s[i] == "#":
            return False
        if level == "+":
            continue
        if s[i] == "+" or s[i] != level:
            return False
    return len(a) == len(s)


def _intersects(acl: str, sub: str) -> bool:
    """Is there a topic that both filters match?"""
    if not _valid_filter(acl):
        return False
    if (acl[0] == "$") != (sub[0] == "$"):
        return False  # a leading wildcard never matches a $ topic
    a, s = acl.split("/"), sub.split("/")
    for i in range(max(len(a), len(s))):
        x = a[i] if i < len(a) else None
        y = s[i] if i < len(s) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != "+" and y != "+" and x != y:
            return False
    return True


def _substitute(pattern: str, client_id: str, username: str | None) -> str:
    """Replace %c and %u left to right as mosquitto does (a %u stays literal without a
    username, though such patterns are skipped before this is called)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "%" and i < len(pattern) - 1:
            nxt = pattern[i + 1]
            if nxt == "c":
                out.append(client_id)
                i += 2
                continue
            if nxt == "u" and username is not None:
                out.append(username)
                i += 2
                continue
        out.append(pattern[i])
        i += 1
    return "".join(out)


def _ordered(entries: Sequence[AclEntry]) -> list[AclEntry]:
    """mosquitto puts each deny at the head of its list as it loads: denies first (latest first),
    then the grants in file order."""
    denies = [e for e in entries if e.is_deny]
    return list(reversed(denies)) + [e for e in entries if not e.is_deny]
