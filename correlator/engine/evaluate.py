"""The incremental rules engine: events in one at a time, findings out as they appear and grow.

Batch analysis and live tailing feed it the same way. State is bounded: sequence partials and
threshold windows expire with event time, absences fire once their deadline passes, and a key's
state is dropped as soon as its window closes. A match ("hit") is weighed by the rule's artifact
checks (confirm, refute or keep) and then folded into one Finding per root cause and group.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from correlator.check_result import CONNECTION_TIME, JUDGED_AT_ESTIMATE, CheckResult, CheckStatus
from correlator.engine.remedy import explain, fill_step
from correlator.engine.rules import Match, Rule, Step, side_of
from correlator.errors import InputError
from correlator.formats.patterns import PATTERN_TIMEOUT, SET_ASIDE_AFTER, BoundedPattern, PatternTimeout
from correlator.formats.scan import FirstLines
from correlator.kinds import kind_vocabulary
from correlator.model import ANONYMOUS_IDS, Event, severity_rank
from correlator.report_model import EvidenceRef, Finding

#: How many evidence lines a finding keeps from the start and from the end of its occurrences.
EVIDENCE_HEAD = 6
EVIDENCE_TAIL = 4
#: Most connection ids a finding remembers for attributing clients.
MAX_CONNECTIONS = 1000
#: Kinds that begin a connection attempt, on either side (role `attempt_start` in
#: parsers/vocab/kinds.toml): lines outside any stitched connection are counted by the attempt
#: they follow (see `Engine._count`).
ATTEMPT_STARTS = kind_vocabulary().with_role("attempt_start")
#: Units (connections, attempts) per finding and side remembered to count occurrences (see `_count`).
SIDE_UNITS = 4096
#: Most partial sequences kept per rule and key (a flood of step-one events must not grow memory).
MAX_PARTIALS = 32
#: How many client ids the engine remembers the user name of (a broker logs the user only at CONNECT).
MAX_IDENTITIES = 50_000
#: Connections whose first line with a time of its own the engine remembers (see `_context`).
MAX_CONNECTION_TIMES = 50_000
#: Keys (connections, client ids, sources) one match keeps state for at most: a match waiting a day
#: for a client's first PUBLISH must not grow with millions of client ids. Beyond it the oldest
#: key's state is dropped, and counted (`Engine.dropped`).
MAX_KEYS = 10_000
#: Findings one rule makes at most (one per group): beyond it, new groups fold into one more
#: finding of that rule, whose group says so (`Engine.folded`).
MAX_GROUPS = 1000
#: Names (clients, users, hosts) a finding lists at most; the rest are counted in `omitted`.
MAX_NAMES = 100
#: Names beyond MAX_NAMES a finding tells apart to count them (as hashes); past it, "at least".
MAX_OMITTED = 50_000
#: Evidence lines a finding remembers having seen, so a line is not listed twice.
MAX_SEEN = 4096
#: The group of the finding beyond MAX_GROUPS.
OVERFLOW_GROUP = "<more groups>"
_ANONYMOUS_IDS = ANONYMOUS_IDS


class Facts(Protocol):
    def check(self, name: str, events: list[Event], context: dict[str, Any]) -> CheckResult: ...

    def can_hold(self, name: str) -> bool:
        """Whether the check could ever come out true (with the artifacts at hand)."""
        ...


class NoFacts:
    """No artifacts were given: no check can run, so log rules stand on the logs alone."""

    def check(self, name: str, events: list[Event], context: dict[str, Any]) -> CheckResult:
        return CheckResult.not_run(name, "no artifacts were given")

    def can_hold(self, name: str) -> bool:
        return False


@dataclass
class _Partial:
    next: int
    events: list[Event]
    start: float


@dataclass
class _MatchState:
    match: Match
    partials: dict[tuple[Any, ...], list[_Partial]] = field(default_factory=dict)
    pending: dict[tuple[Any, ...], tuple[Event, float]] = field(default_factory=dict)
    windows: dict[tuple[Any, ...], deque[Event]] = field(default_factory=dict)
    fired: set[tuple[Any, ...]] = field(default_factory=set)
    deadlines: list[tuple[float, int, tuple[Any, ...]]] = field(default_factory=list)
    """Absence deadlines as a heap (deadline, order, key): stale entries are skipped."""
    swept: float = float("-inf")
    """Event time of the last sweep of expired sequence partials and threshold windows."""
    dropped: int = 0
    """Keys whose state was dropped because MAX_KEYS were held."""
    aside: bool = False
    """A pattern of the match ran out of time on SET_ASIDE_AFTER lines: it is offered no more."""

    def keyed(self) -> dict[tuple[Any, ...], Any]:
        """The per-key state this match type holds."""
        kind = self.match.type
        return self.partials if kind == "sequence" else self.windows if kind == "threshold" else self.pending

    def make_room(self) -> None:
        """Before a new key: at MAX_KEYS, drop the oldest key's state (insertion order)."""
        keyed = self.keyed()
        if len(keyed) >= MAX_KEYS:
            oldest = next(iter(keyed))
            del keyed[oldest]
            self.fired.discard(oldest)
            self.dropped += 1


def _doubt(finding: Finding) -> None:
    """A finding that rests on a check the input could not make (`require_if_known` or
    `unless_known` with no artifact to decide it) is one step less sure than its sides alone say:
    the logs agree that something failed, not which of the look-alikes it was."""
    finding.confidence = "medium" if finding.confidence == "high" else "low"
    finding.confidence_reason += "; nothing in the input tells it from the look-alikes named with it"


def _key(step: Step, event: Event) -> tuple[Any, ...] | None:
    values = []
    for name in step.by:
        value = event.connection if name == "connection" else event.get(name)
        if value is None or value == "" or value in _ANONYMOUS_IDS:
            return None
        values.append(value)
    return tuple(values)


class Engine:
    """Evaluates rules over an ordered event stream. `feed` returns the findings a given event
    created or changed; `findings()` is the current view, worst first."""

    def __init__(self, rules: Iterable[Rule], facts: Facts | None = None,
                 host_of: Callable[[list[Event]], str] | None = None) -> None:
        """`host_of` names the host a match's events belong to (correlator.hosts): findings are
        kept apart per host, and the artifact checks are asked with it (`host_name`)."""
        self.rules = list(rules)
        self.facts: Facts = facts or NoFacts()
        self.host_of = host_of
        # A match that requires a check the artifacts can never make true (an ACL check with no
        # ACL file) can never count: it is not evaluated at all (a busy log's every PUBLISH would
        # walk the ACL sequence for nothing).
        self._states: list[tuple[Rule, _MatchState]] = [
            (rule, _MatchState(match)) for rule in self.rules for match in rule.matches
            if match.type != "fact" and all(self.facts.can_hold(name) for name in match.require)]
        # Most events (publishes, pings) concern no rule: index the matches by the kinds (or, for
        # steps written on evidence fields, the field) their steps need, so an event is offered
        # only to the matches that can use it.
        self._any_kind: list[int] = []
        self._by_kind: dict[str, list[int]] = {}
        self._by_field: dict[str, list[int]] = {}
        for index, (_, state) in enumerate(self._states):
            steps = [*state.match.steps, *([state.match.until] if state.match.until else [])]
            if any(step.kinds is None and step.needs is None for step in steps):
                self._any_kind.append(index)
                continue
            for step in steps:
                if step.kinds is not None:
                    for kind in step.kinds:
                        self._by_kind.setdefault(kind, []).append(index)
                elif step.needs is not None:
                    self._by_field.setdefault(step.needs, []).append(index)
        self._for_kind: dict[tuple[str, tuple[str, ...]], list[tuple[Rule, _MatchState]]] = {}
        self._findings: dict[tuple[str, tuple[Any, ...]], Finding] = {}
        self._evidence_seen: dict[tuple[str, tuple[Any, ...]], OrderedDict[tuple[str, int | None], None]] = {}
        #: Findings whose first/last seen so far rest only on estimated times (see `_fold`).
        self._span_estimated: set[tuple[str, tuple[Any, ...]]] = set()
        #: Per finding and side: occurrences counted, and the units (connections, attempts) seen
        #: lately, so another line of one of them is not counted again (see `_count`).
        self._side_counts: dict[tuple[str, tuple[Any, ...]], dict[str, int]] = {}
        self._side_units: dict[tuple[str, tuple[Any, ...]], dict[str, OrderedDict[Any, None]]] = {}
        #: Attempts begun per source: lines outside any connection count by the attempt they follow.
        self._attempts: dict[str, int] = {}
        self._identities: OrderedDict[str, str] = OrderedDict()
        #: Connection id -> the time of its first line with a time of its own: an untimed client's
        #: lines in the same connection are judged at it, not at their estimate.
        self._connection_times: OrderedDict[str, float] = OrderedDict()
        #: Findings with at least one occurrence judged at a reliable time.
        self._judged_reliably: set[tuple[str, tuple[Any, ...]]] = set()
        # findings resting only on hits a `require_if_known` check could not decide (no artifact to
        # say): their rule's look-alikes are named beside them, since the log alone does not tell
        # them apart, and a look-alike with evidence of its own wins over them
        self._undecided: set[tuple[str, tuple[Any, ...]]] = set()
        self._groups: dict[str, int] = {}
        self._omitted: dict[tuple[tuple[str, tuple[Any, ...]], str], set[int]] = {}
        self._order = 0
        #: Occurrences folded into a rule's OVERFLOW_GROUP finding, per rule id.
        self.folded: dict[str, int] = {}
        self.watermark = float("-inf")
        self.events_seen = 0
        self.refuted: dict[str, int] = {}
        self._problems: list[InputError] = []
        self._timeouts: dict[BoundedPattern, int] = {}
        #: The last line made into evidence, and its record: the rules a line hits (a refused login
        #: is both a wrong password and a missing user name until the artifacts tell) share it.
        self._last_evidence: tuple[Event, EvidenceRef] | None = None
        #: Findings changed since their explanation and fix were last rendered (see `_render`).
        self._unrendered: dict[int, tuple[Rule, Finding]] = {}

    #: What an engine holds that its rules and facts make (a new engine of the same rules makes
    #: it again), or that does not outlive a batch: left out of `state()`. `_timeouts` counts a
    #: pattern's timeouts towards setting it aside; a restored engine counts them afresh.
    _MADE_BY_RULES = frozenset({"rules", "facts", "host_of", "_any_kind", "_by_kind", "_by_field", "_for_kind",
                                "_problems", "_timeouts"})

    def state(self) -> dict[str, Any]:
        """What the events fed so far made, for a checkpoint (fleet/checkpoints.py pickles it,
        naming the rules and matches it holds rather than copying them)."""
        return {name: value for name, value in vars(self).items() if name not in self._MADE_BY_RULES}

    def restore(self, state: dict[str, Any]) -> None:
        """Take up where the engine whose `state()` this is left off: this engine must have the
        same rules and facts (ValueError otherwise)."""
        states = state.get("_states")
        if not isinstance(states, list) or len(states) != len(self._states) or any(
                rule is not mine_rule or saved.match is not mine.match
                for (rule, saved), (mine_rule, mine) in zip(states, self._states, strict=True)):
            raise ValueError("the checkpoint was made with other rules")
        for name, value in state.items():
            setattr(self, name, value)
        self._for_kind.clear()  # it held the matches' states this engine had
        # keyed by the findings' ids, which unpickling changed
        self._unrendered = {id(finding): (rule, finding) for rule, finding in self._unrendered.values()}

    def needs(self) -> tuple[frozenset[str], frozenset[str]] | None:
        """What the runnable matches read line by line: the kinds their steps name and the fields
        their kind-less steps test (None: a step takes any line). The bulk reader counts the other
        routine lines instead of making them events."""
        if self._any_kind:
            return None
        return frozenset(self._by_kind), frozenset(self._by_field)

    def first_lines(self) -> dict[str, FirstLines]:
        """Kinds whose lines the runnable matches read only as the first of their key after a line
        of an earlier step: a kind that is nowhere but the plain last step of sequences (a CONNECT,
        then a PUBLISH of that client, as acl.publish_denied reads them). A partial match is
        consumed by the first such line, so its key's later lines change nothing until a line of
        an earlier step comes again; the bulk reader counts them as routine instead (see
        correlator/sources/files.py)."""
        uses: dict[str, list[tuple[Match, int]]] = {}
        for _, state in self._states:
            match = state.match
            for index, step in enumerate([*match.steps, *([match.until] if match.until else [])]):
                for kind in step.kinds or ():
                    uses.setdefault(kind, []).append((match, index))
        out: dict[str, FirstLines] = {}
        for kind, found in uses.items():
            by: tuple[str, ...] | None = None
            resets: set[str] = set()
            for match, index in found:
                steps = match.steps
                earlier = steps[:-1]
                if (match.type != "sequence" or index != len(steps) - 1 or not steps[-1].plain
                        or not steps[-1].by or any(s.kinds is None or s.by != steps[-1].by for s in earlier)
                        or (by is not None and by != steps[-1].by)):
                    break
                by = steps[-1].by
                for step in earlier:
                    resets |= step.kinds or set()
            else:
                if by is not None and kind not in resets:
                    out[kind] = FirstLines(kind, by, frozenset(resets))
        return out

    # -- input ---------------------------------------------------------------------------------

    def feed(self, event: Event) -> list[Finding]:
        changed: dict[int, Finding] = {}
        self._feed(event, changed)
        self._render()
        return list(changed.values())

    def _feed(self, event: Event, changed: dict[int, Finding]) -> None:
        """One event in; the findings it created or changed go into `changed` (by id), their
        explanations not yet rendered."""
        self.events_seen += 1
        if event.kind in ATTEMPT_STARTS:
            self._attempts[event.source] = self._attempts.get(event.source, 0) + 1
        user = event.fields.get("username")
        if user:
            client = event.fields.get("client_id")
            if isinstance(client, str) and client not in _ANONYMOUS_IDS:
                self._identities[client] = str(user)
                self._identities.move_to_end(client)
                if len(self._identities) > MAX_IDENTITIES:
                    self._identities.popitem(last=False)
        if event.connection and not event.estimated and event.connection not in self._connection_times:
            self._connection_times[event.connection] = event.ts
            if len(self._connection_times) > MAX_CONNECTION_TIMES:
                self._connection_times.popitem(last=False)
        if event.ts > self.watermark:
            for overdue in self._advance(event.ts):
                changed[id(overdue)] = overdue
            self.watermark = event.ts
        for rule, state in self._offered(event.kind, tuple(event.fields)):
            if state.aside:
                continue
            try:
                hits = self._evaluate(state, event)
            except PatternTimeout as exc:
                self._timed_out(exc, state, event)
                continue
            for events in hits:
                finding = self._hit(rule, events, state.match)
                if finding is not None:
                    changed[id(finding)] = finding

    def _timed_out(self, exc: PatternTimeout, state: _MatchState, event: Event) -> None:
        """A rule's pattern ran out of time on `event`'s line, which then does not match it: said
        at its first time, and again when it has done so on SET_ASIDE_AFTER lines and its match is
        set aside for the rest of the analysis (each such line costs the bound)."""
        pattern = exc.pattern
        count = self._timeouts[pattern] = self._timeouts.get(pattern, 0) + 1
        where = f"the regex of {pattern.what} ({pattern.place})"
        if count == 1:
            self._problems.append(InputError(
                f"{where} took over {PATTERN_TIMEOUT:g} s on this line (it backtracks): the line does not match it",
                file=event.file, line=event.line))
        if count >= SET_ASIDE_AFTER:
            state.aside = True
            self._problems.append(InputError(
                f"{where} ran out of time on {count} lines: its match is set aside for the rest of the analysis",
                file=event.file, line=event.line))

    def drain_problems(self) -> list[InputError]:
        """What went wrong matching since the last call (a rule's pattern that ran out of time),
        each an error naming the log's file and line and the rule's pattern with its file and line."""
        problems, self._problems = self._problems, []
        return problems

    def _offered(self, kind: str, fields: tuple[str, ...]) -> list[tuple[Rule, _MatchState]]:
        key = (kind, fields)
        offered = self._for_kind.get(key)
        if offered is None:
            indexes = {*self._any_kind, *self._by_kind.get(kind, ())}
            for name in fields:
                indexes.update(self._by_field.get(name, ()))
            if len(self._for_kind) > 4096:
                self._for_kind.clear()
            offered = self._for_kind[key] = [self._states[i] for i in sorted(indexes)]
        return offered

    def feed_many(self, events: Iterable[Event]) -> list[Finding]:
        """`feed` for a batch: the findings the batch created or changed, each rendered once."""
        changed: dict[int, Finding] = {}
        for event in events:
            self._feed(event, changed)
        self._render()
        return list(changed.values())

    def advance_to(self, now: float) -> list[Finding]:
        """Move event time forward without an event (live mode's clock tick, or a test's end), so
        absences whose deadline passed can fire."""
        changed = self._advance(now)
        self.watermark = max(self.watermark, now)
        self._render()
        return changed

    def finish(self, at: float | None = None) -> list[Finding]:
        """End of input: evaluate the rules that rest on artifacts alone (dated `at`, the time of
        the last event). Absences whose deadline was not reached stay silent: the log ended
        before we could know."""
        changed = []
        if at is not None:
            self.watermark = max(self.watermark, at)
        scopes: list[str] = getattr(self.facts, "scopes", lambda: [""])()
        for rule in self.rules:
            for match in rule.matches:
                if match.type == "fact" and match.check is not None:
                    for host in scopes:
                        result = self.facts.check(match.check, [], {"host_name": host})
                        if result.is_problem:
                            finding = self._fold(rule, [], list(result.evidence), dict(result.values),
                                                 confirmed=True, host=host)
                            changed.append(finding)
        self._render()
        return changed

    def overflow_notes(self) -> list[str]:
        """What the caps dropped or folded, in words for the report's notes."""
        notes = []
        dropped: dict[str, int] = {}
        for rule, state in self._states:
            if state.dropped:
                dropped[rule.id] = dropped.get(rule.id, 0) + state.dropped
        for rule_id, n in dropped.items():
            notes.append(f"{rule_id}: {n:,} partial matches were dropped unfinished: more than {MAX_KEYS:,} "
                         "connections, clients or sources were waiting for their next step at once")
        for rule_id, n in self.folded.items():
            notes.append(f"{rule_id}: {n:,} occurrences beyond its first {MAX_GROUPS:,} groups are folded into "
                         "one finding")
        return notes

    # -- matching ------------------------------------------------------------------------------

    def _evaluate(self, state: _MatchState, event: Event) -> list[list[Event]]:
        match = state.match
        if match.type == "event":
            return [[event]] if match.steps[0].where(event) else []
        if match.type == "threshold":
            return self._threshold(state, event)
        if match.type == "absence":
            first, missing = match.steps
            if missing.where(event):
                key = _key(missing, event)
                if key is not None:
                    state.pending.pop(key, None)
            if first.where(event):
                key = _key(first, event)
                if key is not None and key not in state.pending:
                    state.make_room()
                    deadline = event.ts + match.window
                    state.pending[key] = (event, deadline)
                    self._order += 1
                    heapq.heappush(state.deadlines, (deadline, self._order, key))
            return []
        return self._sequence(state, event)

    def _sequence(self, state: _MatchState, event: Event) -> list[list[Event]]:
        match = state.match
        fired: list[list[Event]] = []
        if match.until is not None and match.until.where(event):
            key = _key(match.until, event)
            if key is not None:
                state.partials.pop(key, None)
        for index in range(len(match.steps) - 1, 0, -1):
            step = match.steps[index]
            if not step.where(event):
                continue
            key = _key(step, event)
            partials = state.partials.get(key) if key is not None else None
            if not partials:
                continue
            for partial in list(partials):
                if partial.next != index or event.ts - partial.start > match.window:
                    continue
                partial.events.append(event)
                partial.next += 1
                if partial.next == len(match.steps):
                    fired.append(partial.events)
                    partials.remove(partial)
            if not partials:
                del state.partials[key]  # type: ignore[arg-type]
        first = match.steps[0]
        if first.where(event):
            key = _key(first, event)
            if key is not None:
                partials = state.partials.get(key)
                if partials is None:
                    state.make_room()
                    partials = state.partials[key] = []
                partials.append(_Partial(1, [event], event.ts))
                if len(partials) > MAX_PARTIALS:
                    del partials[0]
        return fired

    def _threshold(self, state: _MatchState, event: Event) -> list[list[Event]]:
        match = state.match
        step = match.steps[0]
        if not step.where(event):
            return []
        key = _key(step, event) if step.by else ()
        if key is None:
            return []
        window = state.windows.get(key)
        if window is None:
            state.make_room()
            window = state.windows[key] = deque()
        # expired state is swept now and then (see `_advance`): a key's own is dropped here
        while window and event.ts - window[0].ts > match.window:
            window.popleft()
        if not window:
            state.fired.discard(key)
        window.append(event)
        if key in state.fired:
            return [[event]]
        if len(window) >= match.count:
            state.fired.add(key)
            return [list(window)]
        return []

    def _advance(self, now: float) -> list[Finding]:
        """Event time moved to `now`: fire overdue absences (a heap: only the overdue are looked
        at), and drop expired state. Expired partials and windows are swept once per window of
        event time, not at every new second: a sweep walks every key, and a day-long window over
        thousands of clients would make each second cost them all. Until swept, expired state is
        inert (steps check the window, a threshold key drops its own), so results do not change."""
        changed = []
        for rule, state in self._states:
            match = state.match
            if match.type == "absence":
                deadlines = state.deadlines
                while deadlines and deadlines[0][0] < now:
                    deadline, _, key = heapq.heappop(deadlines)
                    entry = state.pending.get(key)
                    if entry is None or entry[1] != deadline:
                        continue  # the missing step came, or the key was dropped or re-armed
                    del state.pending[key]
                    finding = self._hit(rule, [entry[0]], match)
                    if finding is not None:
                        changed.append(finding)
                continue
            if now - state.swept < match.window:
                continue
            state.swept = now
            if match.type == "sequence" and state.partials:
                for key, partials in list(state.partials.items()):
                    partials[:] = [p for p in partials if now - p.start <= match.window]
                    if not partials:
                        del state.partials[key]
            elif match.type == "threshold" and state.windows:
                for key, window in list(state.windows.items()):
                    while window and now - window[0].ts > match.window:
                        window.popleft()
                    if not window:
                        del state.windows[key]
                        state.fired.discard(key)
        return changed

    # -- findings ------------------------------------------------------------------------------

    def _context(self, rule: Rule, events: list[Event]) -> dict[str, Any]:
        if len(events) == 1:  # most hits: one line, whose fields are the context as they are
            event = events[0]
            context = dict(event.fields)
            context.setdefault("source", event.source)
        else:
            context = {}
            for event in events:
                for name, value in event.fields.items():
                    context.setdefault(name, value)
                context.setdefault("source", event.source)
        client = context.get("client_id")
        if "username" not in context and isinstance(client, str) and client in self._identities:
            # the broker names the user only at CONNECT; a later denial still belongs to that user
            context["username"] = self._identities[client]
        if events and all(e.estimated for e in events):
            # lines with no time of their own (a file's time, a banner's): their connection's
            # broker-aligned time, where stitching tied them to one, is the failure's time
            known = [self._connection_times[e.connection] for e in events
                     if e.connection and e.connection in self._connection_times]
            if known:
                context[CONNECTION_TIME] = min(known)
        return context

    def _hit(self, rule: Rule, events: list[Event], match: Match | None = None) -> Finding | None:
        found = self._context(rule, events)
        context = dict(found)  # the checks' (with the host); the finding's is `found` and the values
        host = ""
        if self.host_of is not None:
            # named even when '': the checks then need not find the events' host again
            host = context["host_name"] = self.host_of(events)
        confirmed = False
        facts: list[EvidenceRef] = []
        values: dict[str, Any] = {}
        for name in match.require if match is not None else ():
            required = self.facts.check(name, events, context)
            if not required.is_problem:
                return None
            confirmed = True
            facts.extend(required.evidence)
            values.update(required.values)
        undecided = False
        for name in match.require_if_known if match is not None else ():
            required = self.facts.check(name, events, context)
            if required.status is CheckStatus.PASSED:
                return None  # the artifacts show otherwise; unknown: the log alone decides
            if required.is_problem:
                confirmed = True
                facts.extend(required.evidence)
            else:
                undecided = True
            values.update(required.values)
        for name in match.unless_known if match is not None else ():
            excluded = self.facts.check(name, events, context)
            if excluded.is_problem:
                return None  # the artifacts show the look-alike this line also fits
            if excluded.status is not CheckStatus.PASSED:
                undecided = True
        for check in rule.checks:
            result = self.facts.check(check.name, events, context)
            # a check looks for what is wrong: found is the rule's on_true, not found its on_false
            status = result.status
            effect = (check.on_true if status is CheckStatus.PROBLEM
                      else check.on_false if status is CheckStatus.PASSED else check.on_unknown)
            if effect == "refute":
                self.refuted[rule.id] = self.refuted.get(rule.id, 0) + 1
                return None
            if effect == "confirm" and result.evidence:
                # confirmed by the artifacts means an artifact says so: a check that read only the
                # logs (a CONNECT's flag) decides, but adds no artifact side to the finding
                confirmed = True
                facts.extend(result.evidence)
            values.update(result.values)
        return self._fold(rule, events, facts, values, confirmed=confirmed, host=host, context=found,
                          undecided=undecided)

    def _fold(self, rule: Rule, events: list[Event], facts: list[EvidenceRef], values: dict[str, Any], *,
              confirmed: bool, host: str = "", context: dict[str, Any] | None = None,
              undecided: bool = False) -> Finding:
        """`context` is `_context(rule, events)` where the caller made it already; `undecided`: a
        `require_if_known` check of the hit could not be made."""
        context = self._context(rule, events) if context is None else context
        context.update(values)
        group_values = tuple(context.get(name) for name in rule.group_by)
        # one host's failures never fold into another's: the host leads the key
        key = (rule.id, (host, *group_values))
        finding = self._findings.get(key)
        if finding is None and self._groups.get(rule.id, 0) >= MAX_GROUPS:
            # a rule split by client id over millions of clients: the rest fold into one finding
            self.folded[rule.id] = self.folded.get(rule.id, 0) + 1
            group_values = tuple(OVERFLOW_GROUP for _ in rule.group_by)
            key = (rule.id, (host, *group_values))
            finding = self._findings.get(key)
        # A line with no time of its own (dated by its file) would stretch the span by however long
        # the file was written after the failure: its time counts only until a timed line is seen.
        times = [e.ts for e in events if not e.estimated]
        estimated = not times
        if estimated:
            times = [e.ts for e in events]
        if finding is None:
            start = min(times) if times else self.watermark if self.watermark > float("-inf") else 0.0
            group = ", ".join(f"{n}={v}" for n, v in zip(rule.group_by, group_values, strict=True) if v is not None)
            if OVERFLOW_GROUP in group_values:
                group = f"every group beyond the first {MAX_GROUPS:,}"

            finding = Finding(id=rule.id, severity=rule.severity, title=rule.title, explanation="", group=group,
                              first_seen=start, last_seen=max(times) if times else start,
                              confirm_with=rule.confirm_with, tell_apart=rule.tell_apart, host=host)
            self._findings[key] = finding
            self._groups[rule.id] = self._groups.get(rule.id, 0) + 1
            if undecided:
                self._undecided.add(key)
            self._evidence_seen[key] = OrderedDict()
            if estimated and times:
                self._span_estimated.add(key)
        elif times and key in self._span_estimated and not estimated:
            self._span_estimated.discard(key)
            finding.first_seen, finding.last_seen = min(times), max(times)
        self._count(key, finding, events, rule.count)
        if times and (not estimated or key in self._span_estimated):
            finding.first_seen = min(finding.first_seen, min(times))
            finding.last_seen = max(finding.last_seen, max(times))
        if not context.keys() <= finding.context.keys():  # (an occurrence like the last adds nothing)
            for name, value in context.items():
                finding.context.setdefault(name, value)
        if events and not values.get(JUDGED_AT_ESTIMATE):
            # an occurrence judged at a reliable time: the finding no longer rests on an estimate
            self._judged_reliably.add(key)
        if key in self._judged_reliably:
            finding.context.pop(JUDGED_AT_ESTIMATE, None)
        if not undecided:
            self._undecided.discard(key)
        seen = self._evidence_seen[key]
        for event in events:
            side = side_of(event)
            finding.sides.add(side)
            if event.connection and len(finding.connections) < MAX_CONNECTIONS:
                finding.connections.add(event.connection)
            client = event.fields.get("client_id")
            if isinstance(client, str) and client not in _ANONYMOUS_IDS:
                self._name(key, finding, finding.clients, "clients", client)
            elif side == "client":
                self._name(key, finding, finding.clients, "clients", event.source.split(":", 1)[-1])
            user = (event.fields.get("username") or (self._identities.get(client) if isinstance(client, str) else None)
                    or values.get("username"))  # no line names the user: a check found it (a client's configuration)
            if isinstance(user, str) and user:
                self._name(key, finding, finding.users, "users", user)
            for host_field in ("peer_addr", "host"):
                named = event.fields.get(host_field) or (event.host if host_field == "host" else None)
                if isinstance(named, str) and named:
                    self._name(key, finding, finding.hosts, "hosts", named)
            ref = (event.file, event.line)
            if ref in seen:
                continue
            seen[ref] = None
            if len(seen) > MAX_SEEN:
                seen.popitem(last=False)
            last = self._last_evidence
            if last is not None and last[0] is event:
                evidence = last[1]  # the line another rule's finding took just now: one record for both
            else:
                evidence = EvidenceRef(side, event.file, event.line, event.head,
                                       event.ts, event.source, event.kind, event.estimated)
                self._last_evidence = (event, evidence)
            if len(finding.evidence) < EVIDENCE_HEAD + EVIDENCE_TAIL:
                finding.evidence.append(evidence)
            else:
                del finding.evidence[EVIDENCE_HEAD]
                finding.evidence.append(evidence)
        if facts:
            known = {(f.file, f.line) for f in finding.facts}
            for fact in facts:
                if (fact.file, fact.line) not in known:
                    known.add((fact.file, fact.line))
                    finding.facts.append(fact)
        if confirmed or finding.facts:
            finding.sides.add("artifact")
        self._unrendered[id(finding)] = (rule, finding)  # rated and rendered once per batch
        finding.revision += 1
        return finding

    def _render(self) -> None:
        """Fill in the explanation and fix of the findings changed since the last call. Every
        public way in (`feed`, `feed_many`, `advance_to`, `finish`, `findings`) ends with it, so a
        finding is rendered once per batch of events, not once per occurrence: in a storm of one
        failure every line is an occurrence of the same finding, and rendering cost more than
        the rest of a hit."""
        for rule, finding in self._unrendered.values():
            self._rate(finding)
            self._fill_text(rule, finding)
        self._unrendered.clear()

    def _fill_text(self, rule: Rule, finding: Finding) -> None:
        """The finding's explanation and fix, in the rule's words, from what it holds now."""
        context = self._render_context(finding)
        finding.explanation = explain(rule.explanation, context)
        finding.remediation = [step for step in (fill_step(t, context) for t in rule.remediation)
                               if step is not None]

    def _name(self, key: tuple[str, tuple[Any, ...]], finding: Finding, names: set[str], what: str,
              name: str) -> None:
        """Add a client, user or host to a finding: at most MAX_NAMES are listed, and the distinct
        others counted in `finding.omitted` (up to MAX_OMITTED of them told apart)."""
        if name in names:
            return
        if len(names) < MAX_NAMES:
            names.add(name)
            return
        beyond = self._omitted.setdefault((key, what), set())
        if len(beyond) < MAX_OMITTED:
            beyond.add(hash(name))
            finding.omitted[what] = len(beyond)

    def _count(self, key: tuple[str, tuple[Any, ...]], finding: Finding, events: list[Event], unit: str) -> None:
        """Count occurrences, not lines. Each side (broker, client, server) counts its own: with
        the rule's `count = "connection"` one per stitched connection, or, for lines no
        connection holds (OPC UA sessions are not stitched; an attempt the broker never saw), one
        per attempt of their source (the lines after a connect step or an accepted connection);
        with "event" one per match (five denied publishes in one session are five). The finding
        counts what the side that counted most saw: a failed handshake both the broker and the
        client logged, in two lines each, is one, and it stays one when the two sides could not
        be stitched. Only the last SIDE_UNITS units per side are remembered: the lines of one
        connection come close together."""
        counts = self._side_counts.get(key)
        if counts is None:
            counts = self._side_counts[key] = {}
        if not events:  # a fact about the artifacts alone
            counts["artifact"] = counts.get("artifact", 0) + 1
        if len(events) == 1:  # most hits: one line
            last_of = {side_of(events[0]): events[0]}
        else:
            last_of = {}
            for event in events:  # the side's last line (later ones overwrite)
                last_of[side_of(event)] = event
        for side, last in last_of.items():
            if unit != "event":
                unit_id = last.connection or (last.source, self._attempts.get(last.source, 0))
                units = self._side_units.get(key)
                if units is None:
                    units = self._side_units[key] = {}
                recent = units.get(side)
                if recent is None:  # (setdefault would build an OrderedDict per hit, to throw it away)
                    recent = units[side] = OrderedDict()
                if unit_id in recent:
                    recent.move_to_end(unit_id)
                    continue
                recent[unit_id] = None
                if len(recent) > SIDE_UNITS:
                    recent.popitem(last=False)
            counts[side] = counts.get(side, 0) + 1
        finding.count = max(counts.values(), default=0)

    @staticmethod
    def _render_context(finding: Finding) -> dict[str, Any]:
        context = dict(finding.context)
        context.update(clients=", ".join(sorted(finding.clients)), users=", ".join(sorted(finding.users)),
                       hosts=", ".join(sorted(finding.hosts)), count=finding.count)
        return context

    def _join_views(self, better: Finding, worse: Finding) -> bool:
        """The failure `worse` told too (the same lines, or the same connection seen from its
        other side: the broker's bare alert beside the client's own reason) joins `better` as
        evidence, and its side as one more view that agrees. Returns whether the sides grew (the
        confidence is then rated again)."""
        have = {(e.file, e.line) for e in better.evidence}
        extra = [e for e in worse.evidence if e.side != "artifact" and (e.file, e.line) not in have]
        extra = extra[:max(0, EVIDENCE_HEAD + EVIDENCE_TAIL - len(better.evidence))]
        if not extra:
            return False
        better.evidence = [*better.evidence, *extra]  # its own reason first, then the other view
        sides = {e.side for e in extra}
        if sides <= better.sides:
            return False
        better.sides |= sides
        self._rate(better)
        return True

    @staticmethod
    def _rate(finding: Finding) -> None:
        logs = finding.sides - {"artifact"}
        artifact = "artifact" in finding.sides
        both = len(logs) >= 2
        if both and artifact:
            finding.confidence, why = "high", "both sides of the connection and the artifacts agree"
        elif both or (logs and artifact):
            finding.confidence = "medium"
            why = ("both sides of the connection agree" if both
                   else f"the {next(iter(logs))} log and the artifacts agree")
        elif artifact:
            finding.confidence, why = "medium", "the artifacts alone show it"
        else:
            finding.confidence, why = "low", f"only the {next(iter(logs), 'log')} side shows it"
        estimate = finding.context.get(JUDGED_AT_ESTIMATE)
        if estimate:
            finding.confidence = "medium" if finding.confidence == "high" else "low"
            why += f"; {estimate}"
        finding.confidence_reason = why

    def _fold_partial_groups(self, view: dict[tuple[str, tuple[Any, ...]], Finding], rules: dict[str, Rule],
                             name_of: Callable[[str], str | None] | None) -> set[int]:
        """A finding whose group knows fewer values (the client's 'Publish 1 failed' names no topic,
        a bare mosquitto_pub line no client id) is the same failure as the one whose fuller group
        agrees with every value it has and that shares a client or a connection with it: it joins
        that one instead of standing beside it. Where several fuller findings fit, it stays on its
        own, since nothing says which one it belongs to. `name_of` names a stitched connection's
        client (its log's name), which the finding may not know yet. Returns the ids folded."""
        hidden: set[int] = set()

        def who(finding: Finding) -> set[str]:
            named = {name_of(conn) for conn in finding.connections} if name_of else set()
            return finding.clients | {name for name in named if name}

        groups: dict[str, list[tuple[tuple[Any, ...], Finding]]] = {}
        for (rule_id, values), finding in view.items():
            groups.setdefault(rule_id, []).append((values, finding))
        for rule_id, members in groups.items():
            rule = rules.get(rule_id)
            if rule is None or len(members) < 2:
                continue
            # the fullest partial groups first, so a chain ('' -> client -> client+topic) folds upwards
            known = {id(f): sum(v is not None for v in values) for values, f in members}
            keys = {id(f): (rule_id, values) for values, f in members}
            clients = {id(f): who(f) for _, f in members}
            for values, finding in sorted(members, key=lambda m: -known[id(m[1])]):
                if known[id(finding)] == len(values):
                    continue
                fits = [other for other_values, other in members
                        if other is not finding and id(other) not in hidden
                        and known[id(other)] > known[id(finding)]
                        and all(v is None or v == w for v, w in zip(values, other_values, strict=True))
                        and (clients[id(finding)] & clients[id(other)] or finding.connections & other.connections)]
                if len(fits) != 1:
                    continue
                self._merge(fits[0], finding, rule, keys[id(fits[0])], keys[id(finding)])
                clients[id(fits[0])] |= clients[id(finding)]
                hidden.add(id(finding))
        return hidden

    def _merge(self, into: Finding, other: Finding, rule: Rule, into_key: tuple[str, tuple[Any, ...]],
               other_key: tuple[str, tuple[Any, ...]]) -> None:
        """Fold `other` into `into` (view copies). Counts add up per side, and the side that
        counted most gives the number, as in `_count`."""
        sides = dict(self._side_counts.get(into_key, {}))
        for side, n in self._side_counts.get(other_key, {}).items():
            sides[side] = sides.get(side, 0) + n
        into.count = max(sides.values(), default=into.count + other.count)
        into.first_seen = min(into.first_seen, other.first_seen)
        into.last_seen = max(into.last_seen, other.last_seen)
        for name in ("clients", "users", "hosts", "sides", "connections"):
            getattr(into, name).update(getattr(other, name))
        for name in ("evidence", "facts"):
            mine = getattr(into, name)
            seen = {(e.file, e.line, e.text) for e in mine}
            mine.extend(e for e in getattr(other, name) if (e.file, e.line, e.text) not in seen)
        self._rate(into)
        into.explanation = explain(rule.explanation, self._render_context(into))

    def findings(self, name_of: Callable[[str], str | None] | None = None) -> list[Finding]:
        """Current findings, worst first, as a view (copies: the engine's own stay as evidence
        arrived). Look-alike causes are folded: where artifacts confirmed one cause, an unconfirmed
        look-alike sharing its evidence or a connection keeps only the clients the confirmed one does not explain
        (and names it as the alternative), or disappears when none are left; where neither is
        confirmed, one finding names both. A cause that `explains` another (a broker that never
        started explains why clients were refused) absorbs it."""
        self._render()
        rules = {rule.id: rule for rule in self.rules}
        view = {key: replace(f, clients=set(f.clients), users=set(f.users), hosts=set(f.hosts),
                             evidence=list(f.evidence), facts=list(f.facts), sides=set(f.sides),
                             alternatives=list(f.alternatives), connections=set(f.connections), omitted=dict(f.omitted))
                for key, f in self._findings.items()}
        undecided: set[int] = set()
        for key, finding in view.items():
            if key in self._undecided and "artifact" not in finding.sides:
                undecided.add(id(finding))
                finding.alternatives.extend(a for a in rules[finding.id].look_alike
                                            if a in rules and a not in finding.alternatives)
                _doubt(finding)
        hidden = self._fold_partial_groups(view, rules, name_of)
        grown: set[int] = set()  # findings that took clients from one they absorbed: rendered again
        by_id: dict[str, list[Finding]] = {}
        for finding in view.values():
            if id(finding) not in hidden:  # a folded partial group lives on in its fuller finding
                by_id.setdefault(finding.id, []).append(finding)
        for finding in view.values():
            rule = rules.get(finding.id)
            if rule is None or id(finding) in hidden:
                continue
            for explained in rule.explains:
                for other in by_id.get(explained, []):
                    if other.host != finding.host:
                        continue  # a broker that never started explains its own clients' failures only
                    hidden.add(id(other))
                    if not other.clients <= finding.clients:
                        finding.clients |= other.clients
                        grown.add(id(finding))
                    finding.count += other.count
            confirmed = "artifact" in finding.sides
            mine = {(e.file, e.line) for e in finding.evidence}
            for other_id in rule.look_alike:
                for other in by_id.get(other_id, []):
                    # the same failure: the same lines, or the same connection told by other lines
                    # (the broker's bare alert, the client's own reason for it)
                    if id(other) in hidden or not (mine & {(e.file, e.line) for e in other.evidence}
                                                   or finding.connections & other.connections):
                        continue
                    other_confirmed = "artifact" in other.sides
                    if confirmed and not other_confirmed:
                        other.clients -= finding.clients
                        if other.clients:
                            if finding.id not in other.alternatives:
                                other.alternatives.append(finding.id)
                        else:
                            hidden.add(id(other))
                    elif not confirmed and not other_confirmed:
                        # a cause its own evidence names wins over one the artifacts could not
                        # decide; then the cause more views agree on; then the rule's own priority
                        better, worse = sorted((finding, other),
                                               key=lambda f: (id(f) in undecided, -len(f.sides),
                                                              rules[f.id].priority, f.id))
                        hidden.add(id(worse))
                        if not worse.clients <= better.clients:
                            better.clients |= worse.clients
                            grown.add(id(better))
                        if self._join_views(better, worse) and id(better) in undecided:
                            _doubt(better)
                        # (a guess its evidence outweighed is no alternative worth naming)
                        if worse.id not in better.alternatives and (id(worse) not in undecided
                                                                    or id(better) in undecided):
                            better.alternatives.append(worse.id)
        visible = [f for f in view.values() if id(f) not in hidden]
        for finding in visible:
            if id(finding) in grown:  # its explanation named the clients it knew then
                self._fill_text(rules[finding.id], finding)
        return sorted(visible, key=lambda f: (-severity_rank(f.severity), -f.count, f.first_seen, f.id))
