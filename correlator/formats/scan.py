"""The first tier of reading: whole blocks of a log classified at C speed, so routine lines never
reach Python one by one.

A format declares which of its messages are routine (`routine = '...'` beside a message's regex:
a narrower pattern for the same lines) and the line prefix whose time is read in bulk
(`[format.routine]`). The scanner compiles that declaration once into a deterministic automaton
over bytes. From it come:

- `Classifier`: one regex that matches every line the automaton does NOT accept, at exactly one
  place per line (the first byte where the line leaves the routine language, or its premature
  end). With Hyperscan that pattern is scanned over a whole block and reports only the rare
  non-routine lines (match callbacks into Python cost more than a regex step, so the pattern is
  the complement, never the routine lines themselves). Matching is on end offsets: start-of-match
  tracking (`HS_FLAG_SOM_LEFTMOST`) crashed on a 187 MB block.
- `RoutineScan.counts`: the routine lines of a block counted per message and second, by running
  the same automaton a few bytes deep over all line starts at once with numpy (the message is
  decided within the first bytes of a line) and reading the epoch seconds of the prefix as digits.

Without Hyperscan and numpy the pure-Python path does the same with the standard `re` engine
(one match object per routine line: slower, same findings), so every platform gets the same
answer. An unknown line is never routine: anything the automaton does not accept goes to the full
parser.

The declaration is limited to what an automaton with no loops other than a state's own
(`[^ ]+`, `[0-9]+`) can say, and two routine messages may never accept the same line; both are
checked when the format loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import queue
import re
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from correlator.startup_cache import cache_folder

# The regex parser's private modules: typeshed lists them for some Python versions and not others,
# so a typed import would need a type: ignore that is "unused" on half the machines.
sre_c: Any = importlib.import_module("re._constants")
sre_parse: Any = importlib.import_module("re._parser")

NEWLINE = 10
CR = 13
_ALL = ((1 << 256) - 1) & ~(1 << NEWLINE)
"""Every byte but the newline: what a line may hold."""
_DIGITS = sum(1 << c for c in b"0123456789")
_SPACE = sum(1 << c for c in b" \t\r\x0b\x0c")
_WORD = sum(1 << c for c in b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_CATEGORIES = {
    sre_c.CATEGORY_DIGIT: _DIGITS, sre_c.CATEGORY_NOT_DIGIT: _ALL & ~_DIGITS,
    sre_c.CATEGORY_SPACE: _SPACE, sre_c.CATEGORY_NOT_SPACE: _ALL & ~_SPACE,
    sre_c.CATEGORY_WORD: _WORD, sre_c.CATEGORY_NOT_WORD: _ALL & ~_WORD,
}
#: Threads scanning blocks of one file: Hyperscan and numpy run without the GIL, so two cores help.
WORKERS = min(2, os.cpu_count() or 1)
#: Blocks handed to the scanning threads ahead of the one the reader waits for: with only one per
#: thread, a thread idles while the caller parses the block it got and reads the next one.
AHEAD = WORKERS + 2


class ScanPatternError(ValueError):
    """A routine declaration the scanner cannot compile (said with the reason)."""


# --------------------------------------------------------------------------- regex -> automaton


class _Nfa:
    """Thompson automaton over byte sets (ints used as 256-bit masks)."""

    def __init__(self) -> None:
        self.edges: list[list[tuple[int, int]]] = []
        self.eps: list[list[int]] = []
        self.tag: dict[int, int] = {}

    def state(self) -> int:
        self.edges.append([])
        self.eps.append([])
        return len(self.edges) - 1

    def build(self, nodes: Any, start: int) -> int:
        """Add the parsed regex `nodes` after `start`; return the end state."""
        at = start
        for op, arg in nodes:
            at = self._node(op, arg, at)
        return at

    def _set(self, op: Any, arg: Any) -> int:
        if op is sre_c.LITERAL:
            return self._byte(arg)
        if op is sre_c.NOT_LITERAL:
            return _ALL & ~self._byte(arg)
        if op is sre_c.ANY:
            return _ALL
        if op is sre_c.IN:
            mask, negate = 0, False
            for item_op, item in arg:
                if item_op is sre_c.NEGATE:
                    negate = True
                elif item_op is sre_c.LITERAL:
                    mask |= self._byte(item)
                elif item_op is sre_c.RANGE:
                    low, high = item
                    if high > 127:
                        raise ScanPatternError("only ASCII ranges can be scanned")
                    mask |= sum(1 << c for c in range(low, high + 1))
                elif item_op is sre_c.CATEGORY and item in _CATEGORIES:
                    mask |= _CATEGORIES[item]
                else:
                    raise ScanPatternError(f"unsupported class item {item_op}")
            return (_ALL & ~mask) if negate else (mask & _ALL)
        raise ScanPatternError(f"unsupported {op}")

    @staticmethod
    def _byte(code: int) -> int:
        if code > 127:
            raise ScanPatternError("only ASCII characters can be scanned")
        return 1 << code

    def _node(self, op: Any, arg: Any, at: int) -> int:
        if op in (sre_c.LITERAL, sre_c.NOT_LITERAL, sre_c.ANY, sre_c.IN):
            end = self.state()
            self.edges[at].append((self._set(op, arg), end))
            return end
        if op is sre_c.SUBPATTERN:
            return self.build(arg[-1], at)
        if op is sre_c.BRANCH:
            end = self.state()
            for alternative in arg[1]:
                self.eps[self.build(alternative, at)].append(end)
            return end
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            low, high, item = arg
            for _ in range(low):
                at = self.build(item, at)
            if high is sre_c.MAXREPEAT:
                loop = self.state()
                self.eps[at].append(loop)
                self.eps[self.build(item, loop)].append(loop)
                return loop
            end = self.state()
            for _ in range(high - low):
                self.eps[at].append(end)
                at = self.build(item, at)
            self.eps[at].append(end)
            return end
        raise ScanPatternError(f"unsupported regex element {op} (anchors, look-arounds and back-references "
                               "cannot be scanned)")

    def closure(self, states: frozenset[int]) -> frozenset[int]:
        seen = set(states)
        todo = list(states)
        while todo:
            for nxt in self.eps[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return frozenset(seen)


@dataclass
class Automaton:
    """A deterministic automaton for a line: `delta[s][byte]` (-1: the line is not routine),
    `accepts[s]` the message index a line ending in `s` is (-1: none), `decided[s]` the only
    message still possible from `s` (-1: several or none)."""

    delta: list[list[int]]
    accepts: list[int]
    decided: list[int]

    @cached_property
    def loops(self) -> list[int]:
        """Per state, the bytes that keep it where it is (a mask)."""
        return [sum(1 << b for b, t in enumerate(row) if t == s) for s, row in enumerate(self.delta)]

    @cached_property
    def chain(self) -> tuple[int, int]:
        """(steps, state): how far every accepted line walks the same states from the start (the
        fixed-width prefix), so bulk work can begin there."""
        state, steps = 0, 0
        while self.decided[state] < 0 and not self.loops[state] and self.accepts[state] < 0:
            targets = _successors(self.delta, state)
            if len(targets) != 1:
                break
            state = targets.pop()
            steps += 1
        return steps, state

    def run(self, line: bytes | bytearray) -> int:
        """The message `line` is, or -1: the reference every faster path must agree with. A line
        accepted but for a carriage return at its end is that message: the line splitter strips
        it (a log written on Windows, or through a CRLF pipe), so a CRLF-ended routine line is
        counted in blocks as when the lines are read one by one (live). `compile_automaton`
        refuses a declaration where that would be ambiguous (an accepted state going on by CR)."""
        state = 0
        delta = self.delta
        for at, byte in enumerate(line):
            following = delta[state][byte]
            if following < 0:
                return self.accepts[state] if byte == CR and at == len(line) - 1 else -1
            state = following
        return self.accepts[state]


def compile_automaton(patterns: Sequence[str]) -> Automaton:
    """The union of `patterns` (one per message, each for a whole line) as a DFA, checked to have
    no loops but self-loops and no line that two patterns both accept."""
    nfa = _Nfa()
    start = nfa.state()
    for index, pattern in enumerate(patterns):
        try:
            parsed = sre_parse.parse(pattern)
        except re.error as exc:
            raise ScanPatternError(f"bad regex {pattern!r}: {exc}") from exc
        first = nfa.state()
        nfa.eps[start].append(first)
        nfa.tag[nfa.build(parsed, first)] = index
    states: dict[frozenset[int], int] = {}
    order: list[frozenset[int]] = []
    delta: list[list[int]] = []

    def number(subset: frozenset[int]) -> int:
        if subset not in states:
            states[subset] = len(order)
            order.append(subset)
        return states[subset]

    number(nfa.closure(frozenset({start})))
    done = 0
    while done < len(order):
        subset = order[done]
        row = [-1] * 256
        targets: dict[int, set[int]] = {}
        for state in subset:
            for mask, target in nfa.edges[state]:
                for byte in _bits(mask):
                    targets.setdefault(byte, set()).add(target)
        cache: dict[frozenset[int], int] = {}
        for byte, found in targets.items():
            key = frozenset(found)
            if key not in cache:
                cache[key] = number(nfa.closure(key))
            row[byte] = cache[key]
        delta.append(row)
        done += 1
    accepts = []
    for subset in order:
        tags = {nfa.tag[s] for s in subset if s in nfa.tag}
        if len(tags) > 1:
            names = " and ".join(patterns[t] for t in sorted(tags))
            raise ScanPatternError(f"two routine patterns accept the same line: {names}")
        accepts.append(tags.pop() if tags else -1)
    for state, message in enumerate(accepts):
        if message >= 0 and delta[state][CR] >= 0:
            raise ScanPatternError(f"a routine pattern may go on after its line's end with a carriage return "
                                   f"({patterns[message]}): a CRLF line could not be told apart")
    delta, accepts = _minimal(delta, accepts)
    automaton = Automaton(delta, accepts, _decided(delta, accepts))
    _check_loops(automaton)
    return automaton


def _minimal(delta: list[list[int]], accepts: list[int]) -> tuple[list[list[int]], list[int]]:
    """The same automaton with equivalent states merged (Moore's refinement: states that accept
    the same message and go to equivalent states on every byte are one), numbered from the start
    in breadth-first order. The subset construction leaves such twins: after a repeated class,
    the state of its first character and that of its loop (`m[0-9]+,`). Each twin doubled the rest
    of the complement pattern: on the busy plant's broker log the mosquitto format's complement
    went from two patterns (13.9k and 14.8k characters, 474 MB/s) to one of 7.4k (606 MB/s)."""
    # bytes every state treats alike are one column (a few dozen instead of 256)
    columns: dict[tuple[int, ...], int] = {}
    for byte in range(256):
        columns.setdefault(tuple(row[byte] for row in delta), byte)
    rows = [[row[byte] for byte in columns.values()] for row in delta]
    label: dict[int, int] = {}
    classes = [label.setdefault(a, len(label)) for a in accepts]
    count = len(label)
    while True:
        lookup = [*classes, -1]  # a missing edge (-1) reads the last entry: no class
        signatures: dict[tuple[int, tuple[int, ...]], int] = {}
        refined = [signatures.setdefault((classes[state], tuple(map(lookup.__getitem__, row))), len(signatures))
                   for state, row in enumerate(rows)]
        classes = refined
        if len(signatures) == count:
            break
        count = len(signatures)
    first: dict[int, int] = {}
    for state, group in enumerate(classes):
        first.setdefault(group, state)
    number = {classes[0]: 0}
    queue = [classes[0]]
    for group in queue:
        for target in delta[first[group]]:
            if target >= 0 and classes[target] not in number:
                number[classes[target]] = len(number)
                queue.append(classes[target])
    out_delta = [[-1] * 256 for _ in number]
    out_accepts = [-1] * len(number)
    for group, index in number.items():
        state = first[group]
        out_delta[index] = [number[classes[t]] if t >= 0 else -1 for t in delta[state]]
        out_accepts[index] = accepts[state]
    return out_delta, out_accepts


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _successors(delta: list[list[int]], state: int) -> set[int]:
    return {t for t in delta[state] if t >= 0 and t != state}


def _decided(delta: list[list[int]], accepts: list[int]) -> list[int]:
    possible: list[set[int] | None] = [None] * len(delta)

    def reach(state: int) -> set[int]:
        found = possible[state]
        if found is None:
            found = possible[state] = set()
            if accepts[state] >= 0:
                found.add(accepts[state])
            for nxt in _successors(delta, state):
                found |= reach(nxt)
        return found

    return [next(iter(s)) if len(s := reach(i)) == 1 else -1 for i in range(len(delta))]


def _check_loops(automaton: Automaton) -> None:
    """Only self-loops: then the complement is a finite nest of alternatives (see `complement`)."""
    colour = [0] * len(automaton.delta)

    def visit(state: int) -> None:
        colour[state] = 1
        for nxt in _successors(automaton.delta, state):
            if colour[nxt] == 1:
                raise ScanPatternError("a routine pattern repeats a group (only a single character class may "
                                       "repeat, like [^ ]+ or [0-9]+)")
            if colour[nxt] == 0:
                visit(nxt)
        colour[state] = 2

    visit(0)


def _klass(mask: int) -> str:
    """A byte mask as a character class both Hyperscan and `re` read the same way (negated when
    that is shorter; a negated class always lists the newline, so it never crosses lines)."""
    negate = bin(mask).count("1") > 128
    if negate:
        mask = ((1 << 256) - 1) & ~mask
    runs: list[tuple[int, int]] = []
    for byte in _bits(mask):
        if runs and runs[-1][1] == byte - 1:
            runs[-1] = (runs[-1][0], byte)
        else:
            runs.append((byte, byte))
    parts = [_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in runs]
    if not negate and len(parts) == 1 and runs[0][0] == runs[0][1]:
        return parts[0] if runs[0][0] in _PLAIN else f"[{parts[0]}]"
    return ("[^" if negate else "[") + "".join(parts) + "]"


_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,:'_")


def _char(byte: int) -> str:
    return chr(byte) if byte in _PLAIN else f"\\x{byte:02x}"


def _outs(automaton: Automaton, state: int) -> dict[int, int]:
    """The other states `state` leads to, each with the bytes that lead there."""
    outs: dict[int, int] = {}
    for byte, target in enumerate(automaton.delta[state]):
        if target >= 0 and target != state and byte != NEWLINE:
            outs[target] = outs.get(target, 0) | (1 << byte)
    return outs


#: Characters Hyperscan takes in one pattern.
HS_PATTERN_LIMIT = 16_000


def complement(automaton: Automaton, limit: int = HS_PATTERN_LIMIT) -> list[str]:
    """Regexes (multi-line mode) that together match every line the automaton rejects, once per
    line: at the first byte that leaves the routine language, or at the line's premature end.
    Split into patterns of at most `limit` characters (Hyperscan's bound), as large as the split
    makes them fit: fewer, larger patterns scan faster. Measured on the busy plant's broker log:
    two patterns of 12-13k characters 500 MB/s, three of 5-10k (fragments of at most 6k, the
    split before) 330 MB/s.

    A line accepted but for a carriage return before its newline is accepted too (`Automaton.run`):
    at the same speed with this split (with the one before, a fifth slower)."""
    memo: dict[int, str] = {}

    def head(state: int) -> tuple[str, list[str]]:
        loop = automaton.loops[state]
        bad = _ALL & ~loop & ~sum(_outs(automaton, state).values())
        if automaton.accepts[state] < 0:
            own = [_klass(bad)] if bad else []
            own.append("$")
        else:  # the line may end here, in a newline or a carriage return and a newline
            bad &= ~(1 << CR)
            own = ([_klass(bad)] if bad else []) + [r"\x0d[^\n]"]
        return (_klass(loop) + "*" if loop else ""), own

    def leave(state: int) -> str:
        if state not in memo:
            stay, branches = head(state)
            branches = branches + [_klass(mask) + leave(t) for t, mask in _outs(automaton, state).items()]
            memo[state] = stay + (branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")")
        return memo[state]

    def alternatives(branches: list[str]) -> str:
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    def split(state: int, path: str, small: int) -> tuple[str | None, list[str]]:
        """The deviations from `state` on as one fragment when it is `small`, else the fragment
        of what stays small plus whole patterns (with their path from the line start) for the
        rest. One fragment for a long chain of states: one pattern per state is far slower."""
        text = leave(state)
        if len(text) <= small:
            return text, []
        stay, branches = head(state)
        extra: list[str] = []
        for target, mask in _outs(automaton, state).items():
            fragment, more = split(target, path + stay + _klass(mask), small)
            extra += more
            if fragment is not None:
                branches.append(_klass(mask) + fragment)
        if not branches:
            return None, extra
        fragment = stay + alternatives(branches)
        if len(fragment) > small:
            return None, [path + fragment, *extra]
        return fragment, extra

    patterns: list[str] = []
    for small in range(limit - 1000, 0, -1000):  # the largest fragments whose patterns all fit
        fragment, patterns = split(0, "^", small)
        patterns = (["^" + fragment] if fragment is not None else []) + patterns
        if max(map(len, patterns)) <= limit:
            break
    return patterns


def positive(automaton: Automaton) -> str:
    """A regex (multi-line mode) for exactly the lines the automaton accepts, in classes that
    never hold a newline (a `[^ ]` in the declaration would cross lines in `re`)."""
    memo: dict[int, str] = {}

    def walk(state: int) -> str:
        if state in memo:
            return memo[state]
        loop = automaton.loops[state]
        outs = _outs(automaton, state)
        branches = [r"\x0d?$"] if automaton.accepts[state] >= 0 else []  # CRLF: see `Automaton.run`
        branches += [_klass(mask) + walk(target) for target, mask in outs.items()]
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        memo[state] = (_klass(loop) + "*" if loop else "") + body
        return memo[state]

    return walk(0)


def key_place(automaton: Automaton) -> tuple[int, int] | None:
    """Where a line of this one-message automaton holds its first free field: the fixed number of
    bytes before it (each step has one way on), and the byte that ends it (every way out of the
    field's states is that byte, to one state, and no line ends inside it). None when the shape
    has no such place."""
    delta = automaton.delta
    path, widths = [0], []  # the states of the fixed steps, and how many bytes lead each one on
    while not automaton.loops[path[-1]]:
        targets = {t for t in delta[path[-1]] if t >= 0}
        if len(targets) != 1:
            break
        widths.append(sum(1 for t in delta[path[-1]] if t >= 0))
        path.append(targets.pop())
    steps = len(path) - 1
    while steps and widths[steps - 1] > 1:  # the field's first bytes are a class too: back to its start
        steps -= 1
    state, end = path[steps], path[-1]
    near = [end, *(t for t in delta[end] if t >= 0)]
    looping = next((s for s in near if automaton.loops[s]), None)
    if looping is None:
        return None
    for sep in sorted({b for b, t in enumerate(delta[looping]) if t >= 0 and t != looping}):
        inside, todo, exits = {state}, [state], set()
        while todo:
            current = todo.pop()
            if automaton.accepts[current] >= 0:
                break
            for byte, target in enumerate(delta[current]):
                if target < 0:
                    continue
                if byte == sep:
                    exits.add(target)
                elif target not in inside:
                    inside.add(target)
                    todo.append(target)
        else:
            if len(exits) == 1 and not exits & inside:
                return steps, sep
    return None


# --------------------------------------------------------------------------- the declaration


@dataclass
class RoutineSpec:
    """What a format declares routine, compiled: which line pattern, how its prefix reads, and per
    message its narrow pattern, kind and name."""

    format: str
    line: str
    """The format's line pattern whose lines can be routine (the full parser reads the rest)."""
    prefix: str
    """The regex of the line's start, beginning with the epoch seconds as `[0-9]{N}`."""
    digits: int
    names: list[str]
    kinds: list[str]
    bodies: list[str]
    levels: list[str]
    fields: list[frozenset[str]]
    """Per message, the fields its lines would carry as events."""

    @cached_property
    def automaton(self) -> Automaton:
        return compile_automaton(self.lines)

    @cached_property
    def patterns(self) -> tuple[str, ...]:
        """The complement of the automaton as Hyperscan patterns (`complement`): made when the
        formats are loaded, so the start-up cache keeps them (8-12 ms a start otherwise)."""
        return tuple(complement(self.automaton))

    @cached_property
    def key_places(self) -> tuple[KeyPlace | None, ...]:
        """Per message, where its lines hold their first free field (`key_place`), for the
        thinning (sources/thinning.py): made when the formats are loaded, so the start-up cache
        keeps them (each is an automaton of its own, 2-3 ms a start otherwise)."""
        return tuple(key_place(compile_automaton([line])) for line in self.lines)

    @property
    def lines(self) -> list[str]:
        """Per message, the regex of its whole line: the prefix and the body (a carriage return
        may follow: see `Automaton.run`)."""
        return [f"{self.prefix}(?:{body})" for body in self.bodies]

    @cached_property
    def _restricted(self) -> dict[tuple[int, ...], RoutineSpec]:
        return {}

    def restricted(self, kinds: frozenset[str], fields: frozenset[str]) -> RoutineSpec | None:
        """The spec without the messages a rule reads line by line: those of the `kinds` its steps
        name, and those carrying a field one of its kind-less steps tests (None: nothing left).
        One spec per choice of messages, so its automaton and classifiers are built once."""
        keep = tuple(i for i, kind in enumerate(self.kinds) if kind not in kinds and not self.fields[i] & fields)
        if not keep:
            return None
        if len(keep) == len(self.kinds):
            return self
        found = self._restricted.get(keep)
        if found is None:
            found = self._restricted[keep] = RoutineSpec(
                self.format, self.line, self.prefix, self.digits, [self.names[i] for i in keep],
                [self.kinds[i] for i in keep], [self.bodies[i] for i in keep], [self.levels[i] for i in keep],
                [self.fields[i] for i in keep])
        return found


@dataclass(frozen=True)
class FirstLines:
    """Lines of `kind` that rules need only as the first of their key (the values of the `by`
    fields) after a line of one of the `resets` kinds: the rest are counted as routine (see
    `Engine.first_lines`, and the reader in correlator/sources/files.py)."""

    kind: str
    by: tuple[str, ...]
    resets: frozenset[str]


_PREFIX = re.compile(r"^\[0-9\]\{(\d+)\}")


def epoch_digits(prefix: str) -> int:
    """How many epoch digits start the prefix (it must begin with `[0-9]{N}`)."""
    found = _PREFIX.match(prefix)
    if found is None:
        raise ScanPatternError("the routine prefix must begin with the epoch seconds as [0-9]{N}")
    return int(found.group(1))


# --------------------------------------------------------------------------- classification


@dataclass
class RoutineCounts:
    """Routine lines kept as numbers: per message kind, and per second of their own time."""

    lines: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    seconds: dict[int, int] = field(default_factory=dict)
    alarming: int = 0
    keep: bool = False
    """Also say where each routine line is (`BlockScan.where`), for a surface that draws every
    line (the TUI): only the Hyperscan classifier does (it has them at hand as arrays)."""

    def add(self, kind: str, n: int) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + n
        self.lines += n

    def add_second(self, second: int, n: int) -> None:
        self.seconds[second] = self.seconds.get(second, 0) + n

    def remove(self, kind: str, second: int) -> None:
        """One line counted here after all is parsed instead (a second left with none is gone,
        as if never counted)."""
        self.add(kind, -1)
        left = self.seconds[second] - 1
        if left:
            self.seconds[second] = left
        else:
            del self.seconds[second]

    def merge(self, other: RoutineCounts) -> None:
        for kind, n in other.kinds.items():
            self.add(kind, n)
        for second, n in other.seconds.items():
            self.add_second(second, n)
        self.alarming += other.alarming

    @property
    def first(self) -> int | None:
        return min(self.seconds) if self.seconds else None

    @property
    def last(self) -> int | None:
        return max(self.seconds) if self.seconds else None


Found = list[tuple[int, int]]
"""(start, end) byte ranges in a block of the lines that are not routine."""


@dataclass(frozen=True)
class RoutineLines:
    """The routine lines of one block, as numpy arrays in block order: where each starts in the
    block, its index among the block's lines, its epoch second, and its message (an index into
    `kinds` and `levels`, the classifier's spec's)."""

    starts: Any
    numbers: Any
    seconds: Any
    messages: Any
    kinds: Sequence[str]
    levels: Sequence[str]

Block = bytes | bytearray
"""Whole lines ending in a newline (the reader's blocks are bytearrays, read in place)."""


@dataclass
class BlockScan:
    """One block classified: its non-routine lines with their line indexes in the block (so the
    reader numbers them without counting newlines again), where the lines of the classifier's
    `marked` messages start (routine, counted: the few of them a rule needs are read from there,
    sources/thinning.py), and how many lines the block holds."""

    found: Found = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    marks: list[int] = field(default_factory=list)
    mark_rows: list[int] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    """The marks' keys (the text at the classifier's `key` place), each once."""
    key_first: list[int] = field(default_factory=list)
    """Per key, the position in `marks` of its first mark."""
    key_ids: Any = None
    """Per mark, the index of its key (a numpy array), from which `key_marks` is made."""
    lines: int = 0
    where: RoutineLines | None = None
    """With `RoutineCounts.keep`: where the block's routine lines are."""
    _key_marks: list[list[int]] | None = field(default=None, repr=False)

    @property
    def key_marks(self) -> list[list[int]]:
        """Per key, the positions in `marks` of its marks, in order: made when first asked for
        (the thinning asks only in a block where some key waits for its first mark since its
        reset; grouping every block's marks by key was a third of the keys' cost, 0.37 ms of
        2.9 ms a block of the busy plant's broker log)."""
        if self._key_marks is None:
            self._key_marks = [] if self.key_ids is None else _grouped(self.key_ids, len(self.keys))
        return self._key_marks

    @key_marks.setter
    def key_marks(self, value: list[list[int]]) -> None:
        self._key_marks = value


def _grouped(ids: Any, count: int) -> list[list[int]]:
    """The positions of `ids` (a numpy array of indexes below `count`) grouped by index, in order."""
    import numpy as np

    order = np.argsort(ids, kind="stable")
    bounds = np.cumsum(np.bincount(ids, minlength=count))[:-1]
    return [part.tolist() for part in np.split(order, bounds)]


class KnownEnds(Protocol):
    """Where Hyperscan's complement scan of a file's blocks ended its matches, found before the
    reader got there (correlator/sources/early.py): `ends(base, block)` gives them for the block
    at byte `base`, or None when they are not known (the reader scans the block itself)."""

    def ends(self, base: int, block: Block) -> Sequence[int] | None: ...


KeyPlace = tuple[int, int]
"""Where a marked line's key is: the bytes before it from the line's start, and the byte ending it
(`key_place`)."""


class Classifier:
    """Splits a block (whole lines, ending in a newline) into its non-routine lines and routine
    counts. `engine` says which way: 'hyperscan' or 'python'."""

    engine = "python"

    def __init__(self, spec: RoutineSpec, max_line: int, marked: frozenset[int] = frozenset(),
                 key: KeyPlace | None = None) -> None:
        """`marked`: messages (indexes in the spec) whose lines' starts each scan gives in its
        `marks`, with their keys read at `key` (when given)."""
        self.spec = spec
        self.max_line = max_line
        self.marked = marked
        self.key = key

    def _key_ids(self, block: Block, out: BlockScan, marks: Sequence[int]) -> list[int]:
        """The keys of the lines starting at `marks`, read one by one, as indexes into
        `out.keys` (new keys added)."""
        assert self.key is not None
        skip, sep = self.key
        ids = {key: index for index, key in enumerate(out.keys)}
        found = []
        for start in marks:
            key = bytes(block[start + skip:block.find(sep, start + skip)])
            index = ids.get(key)
            if index is None:
                index = ids[key] = len(out.keys)
                out.keys.append(key)
            found.append(index)
        return found

    @cached_property
    def routine(self) -> re.Pattern[bytes]:
        """The routine messages as one `re` alternation, group `m<index>` per message, matching
        a routine line from its start (built when first scanned with: the Hyperscan path never
        needs it)."""
        alternatives = "|".join(f"(?P<m{i}>{positive(compile_automaton([line]))})"
                                for i, line in enumerate(self.spec.lines))
        return re.compile(f"^(?:{alternatives})".encode(), re.M)

    def routine_lines(self, block: Block) -> Iterator[tuple[int, int, int]]:
        """(start, end, message index) of each routine line of `block`, in order, one `re` scan of
        the whole block: the pure-Python classification, which the live reader of appended lines
        (correlator/sources/routine.py) shares, so a line is routine live exactly when here."""
        max_line = self.max_line
        for match in self.routine.finditer(block):
            start, end = match.span()
            if end - start <= max_line:  # the full reader cuts a longer line: not this message any more
                yield start, end, int(match.lastgroup[1:])  # type: ignore[index]

    def scan(self, block: Block, counts: RoutineCounts) -> Found:
        """The non-routine lines of `block`; the routine ones are added to `counts`."""
        return self.scan_block(block, counts).found

    def scan_block(self, block: Block, counts: RoutineCounts) -> BlockScan:
        """`block` classified; its routine lines are added to `counts`."""
        out = BlockScan()
        at = row = 0
        kinds = self.spec.kinds
        digits = self.spec.digits
        per_kind = [0] * len(kinds)
        seconds = counts.seconds
        marked = self.marked
        for start, end, index in self.routine_lines(block):
            if start > at:
                row = _lines(block, at, start, row, out)
            at = end + 1
            per_kind[index] += 1
            if index in marked:
                out.marks.append(start)
                out.mark_rows.append(row)
            row += 1
            second = int(block[start:start + digits])
            seconds[second] = seconds.get(second, 0) + 1
        if at < len(block):
            row = _lines(block, at, len(block), row, out)
        out.lines = row
        if self.key is not None and out.marks:
            key_marks: list[list[int]] = [[] for _ in out.keys]
            for at, index in enumerate(self._key_ids(block, out, out.marks)):
                if index == len(key_marks):
                    key_marks.append([])
                key_marks[index].append(at)
            out.key_marks = key_marks
            out.key_first = [places[0] for places in key_marks]
        for index, n in enumerate(per_kind):
            if n:
                counts.add(kinds[index], n)
        return out

    def scan_blocks(self, blocks: Iterable[tuple[int, Block]], counts: RoutineCounts,
                    known: KnownEnds | None = None) -> Iterator[tuple[int, Block, BlockScan]]:
        """`scan_block` over a file's blocks, in order: (offset, block, its classification).
        `known`: the complement scan's ends found ahead, which only the Hyperscan classifier reads."""
        for base, block in blocks:
            yield base, block, self.scan_block(block, counts)


def _lines(block: Block, start: int, end: int, row: int, out: BlockScan) -> int:
    """The lines in block[start:end] (which ends at a newline or the block's end) into `out`,
    the first being line `row`; returns the row after them."""
    while start < end:
        stop = block.find(b"\n", start, end)
        if stop < 0:
            stop = end
        out.found.append((start, stop))
        out.rows.append(row)
        row += 1
        start = stop + 1
    return row


@dataclass(frozen=True)
class _Branch:
    """A step of the decision: the byte at `column` of a line (its start at `column` 0) takes it
    to `children[table[byte]]`. A child is a message index (decided), a _Branch, or None: the
    rest is decided line by line (a looping state came first)."""

    column: int
    table: Any
    children: tuple[int | _Branch | None, ...]


def _decision(automaton: Automaton, state: int, column: int, budget: list[int]) -> int | _Branch | None:
    """How the message of an accepted line is told from the state it is in at `column`: bytes a
    state has only one way on from are never read (an accepted line holds that byte), so only the
    columns where the messages part are gathered."""
    delta = automaton.delta
    while True:
        if automaton.decided[state] >= 0:
            return automaton.decided[state]
        if automaton.loops[state] or budget[0] <= 0:
            return None
        targets = _successors(delta, state)
        if len(targets) == 1 and automaton.accepts[state] < 0:
            state = targets.pop()
            column += 1
            continue
        budget[0] -= 1
        children: list[int | _Branch | None] = []
        index: dict[int, int] = {}
        table = [len(targets) + 1] * 256  # a byte no accepted line holds here: not reached
        for byte, target in enumerate(delta[state]):
            if target >= 0 and target != state:
                if target not in index:
                    index[target] = len(children)
                    children.append(_decision(automaton, target, column + 1, budget))
                table[byte] = index[target]
        if automaton.accepts[state] >= 0:  # the line may end here: its newline (or CR) is at `column`
            table[NEWLINE] = table[CR] = len(children)
            children.append(automaton.accepts[state])
        return _Branch(column, table, tuple(children))


_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5)
"""Odd 64-bit multipliers mixing a key's four words into one hash (`HyperscanClassifier._keys`)."""


class HyperscanClassifier(Classifier):
    """Hyperscan finds the non-routine lines through the complement pattern (rare matches, so
    rare callbacks); numpy counts the routine ones per message and second."""

    engine = "hyperscan"

    def __init__(self, spec: RoutineSpec, max_line: int, marked: frozenset[int] = frozenset(),
                 key: KeyPlace | None = None) -> None:
        super().__init__(spec, max_line, marked, key)
        import hyperscan
        import numpy

        self._np = numpy
        # the masks keeping a little-endian word's first 0-8 bytes (`_keys`)
        self._low_bytes = numpy.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=numpy.uint64)
        automaton = spec.automaton
        self._db = complement_database(spec)
        # a scratch serves one scan at a time: one per worker thread
        self._scratches: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._scratches.put(hyperscan.Scratch(self._db))
        self._cloned = False
        skip, first = automaton.chain
        decision = _decision(automaton, first, skip, [256])
        self._tree = self._arrays(decision)

    def _arrays(self, node: int | _Branch | None) -> int | _Branch | None:
        if not isinstance(node, _Branch):
            return node
        return _Branch(node.column, self._np.array(node.table, dtype=self._np.intp),
                       tuple(self._arrays(child) for child in node.children))

    def scan_blocks(self, blocks: Iterable[tuple[int, Block]], counts: RoutineCounts,
                    known: KnownEnds | None = None) -> Iterator[tuple[int, Block, BlockScan]]:
        """Blocks scanned on both cores: Hyperscan and numpy let go of the GIL, so while the
        caller parses one block's few lines, the next ones are scanned (in order, at most
        `AHEAD` blocks ahead, each with its own scratch and counts). A block whose complement
        scan `known` holds is not scanned again: only its lines are counted."""
        if WORKERS < 2:
            for base, block in blocks:
                yield base, block, self.scan_block(block, counts, known.ends(base, block) if known else None)
            return
        if not self._cloned:
            scratch = self._scratches.get()
            self._scratches.put(scratch)
            for _ in range(WORKERS - 1):
                self._scratches.put(scratch.clone())
            self._cloned = True
        pending: deque[tuple[int, Block, Future[tuple[BlockScan, RoutineCounts]]]] = deque()

        def ready() -> tuple[int, Block, BlockScan]:
            first, data, job = pending.popleft()
            result, part = job.result()
            counts.merge(part)
            return first, data, result

        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="scan") as pool:
            try:
                try:
                    for base, block in blocks:
                        pending.append((base, block, pool.submit(self._scan_alone, base, block, counts.keep,
                                                                  known)))
                        if len(pending) >= AHEAD:
                            yield ready()
                except Exception:
                    while pending:  # what was read before the reader failed comes out first
                        yield ready()
                    raise
                while pending:
                    yield ready()
            finally:  # the caller stopped early (a look-ahead has read enough)
                for _, _, job in pending:
                    job.cancel()

    def _scan_alone(self, base: int, block: Block, keep: bool, known: KnownEnds | None,
                    ) -> tuple[BlockScan, RoutineCounts]:
        counts = RoutineCounts(keep=keep)
        return self.scan_block(block, counts, known.ends(base, block) if known is not None else None), counts

    def scan_block(self, block: Block, counts: RoutineCounts, ends: Sequence[int] | None = None) -> BlockScan:
        """`block` classified; `ends`: its complement scan's, when already known."""
        np = self._np
        if ends is None:
            scratch = self._scratches.get()
            try:
                ends = complement_ends(self._db, block, scratch)
            finally:
                self._scratches.put(scratch)
        data = np.frombuffer(block, dtype=np.uint8)
        newlines = np.flatnonzero(data == NEWLINE)
        starts = np.empty(len(newlines), dtype=np.int64)
        starts[0:1] = 0
        starts[1:] = newlines[:-1] + 1
        out = BlockScan(lines=len(newlines))
        # lines the parser reads: over-long ones, and those a deviation ends in (inside the line or
        # at its newline: the last line starting at or before the match's end). A mask, not
        # np.union1d: that sorts, and its first call imports numpy.ma (20 ms of a start).
        odd_mask = (newlines - starts) > self.max_line
        if ends:
            odd_mask[np.searchsorted(starts, np.array(ends, dtype=np.int64), side="right") - 1] = True
        odd = np.flatnonzero(odd_mask)
        if len(odd):
            rows = odd.tolist()
            out.rows = rows
            out.found = list(zip(starts[odd].tolist(), newlines[odd].tolist(), strict=True))
            routine = np.flatnonzero(~odd_mask)
        else:
            routine = None
        self._count(block, data, starts, routine, counts, out)
        return out

    def _count(self, block: Block, data: Any, starts: Any, routine: Any, counts: RoutineCounts,
               out: BlockScan) -> None:
        """Per message and second, all at once: the message from the few columns where the
        messages part (`_decision`), the seconds as runs of equal epoch digits, each run's digits
        read once (a log is in time order, so a block holds few runs)."""
        np = self._np
        spec = self.spec
        rows = routine if routine is not None else np.arange(len(starts))
        if not len(rows):
            return
        per_message = [0] * len(spec.kinds)
        # kept places: each row's message (read back by the TUI); -1 for rows that are not routine
        messages = np.full(len(starts), -1, dtype=np.int32) if counts.keep else None
        marked: list[Any] = []
        todo: list[tuple[int | _Branch | None, Any]] = [(self._tree, rows)]
        while todo:
            node, part = todo.pop()
            if isinstance(node, _Branch):
                step = node.table[data[starts[part] + node.column]]
                tally = None
                for index, child in enumerate(node.children):
                    if messages is None and isinstance(child, int) and child not in self.marked:
                        # a message that is only counted: how many lines, not which (one pass
                        # for all such children instead of a comparison and a copy for each)
                        if tally is None:
                            tally = np.bincount(step, minlength=len(node.children)).tolist()
                        per_message[child] += tally[index]
                        continue
                    chosen = part[step == index]
                    if len(chosen):
                        todo.append((child, chosen))
            elif node is None:  # decided past a loop: line by line (a long shared stretch)
                late = []
                for row in part.tolist():
                    start = int(starts[row])
                    message = spec.automaton.run(block[start:block.index(b"\n", start)])
                    per_message[message] += 1
                    if messages is not None:
                        messages[row] = message
                    if message in self.marked:
                        late.append(row)
                if late:
                    marked.append(np.array(late, dtype=np.int64))
            else:
                per_message[node] += len(part)
                if messages is not None:
                    messages[part] = node
                if node in self.marked:
                    marked.append(part)
        if marked:  # in file order, as the thinning reads them
            chosen = np.sort(np.concatenate(marked))
            out.marks = starts[chosen].tolist()
            out.mark_rows = chosen.tolist()
            if self.key is not None:
                self._keys(block, starts[chosen], out)
        for message, n in enumerate(per_message):
            if n:
                counts.add(spec.kinds[message], n)
        seconds = self._seconds(block, starts[rows] if routine is not None else starts, counts)
        if messages is not None:
            out.where = RoutineLines(starts[rows], rows, seconds, messages[rows], spec.kinds, spec.levels)

    def _keys(self, block: Block, starts: Any, out: BlockScan) -> None:
        """The marks' keys all at once: the 32 bytes at each key's place as four 8-byte words,
        cut at the key's end byte, told apart by a hash of the words (a few thousand lines of
        some dozens of clients a block; sorting the 32-byte rows themselves took twice as long),
        checked against the words themselves, which decide when two keys share a hash; a key that
        does not end within them is read line by line."""
        np = self._np
        assert self.key is not None
        skip, sep = self.key
        width = 32
        places = starts + skip
        fits = places + width <= len(block)
        words = np.ndarray((max(len(block) - 7, 0),), dtype=np.uint64, buffer=block, strides=(1,))
        at = np.where(fits, places, 0)
        window = np.empty((len(starts), width // 8), dtype=np.uint64)
        for column in range(width // 8):
            window[:, column] = words[at + 8 * column] if len(words) else 0
        text = window.view(np.uint8).reshape(len(starts), width)
        ends = text == sep
        short = fits & ends.any(axis=1)
        length = np.where(short, ends.argmax(axis=1), width)
        if sys.byteorder == "little":
            # what follows the key is not the key: each word keeps its bytes before the key's end
            for column in range(width // 8):
                window[:, column] &= self._low_bytes[np.clip(length - 8 * column, 0, 8)]
        else:
            text[np.arange(width) >= length[:, None]] = 0
        text[:, width - 1] = length  # nor is a key its own text with a NUL added
        rows = np.flatnonzero(short)
        ids = np.zeros(len(starts), dtype=np.int64)
        if len(rows):
            kept = window[rows]
            mixed = kept[:, 0] * np.uint64(_MIX[0])
            for column in range(1, width // 8):
                mixed ^= kept[:, column] * np.uint64(_MIX[column])
            _, first, inverse = np.unique(mixed, return_index=True, return_inverse=True)
            inverse = inverse.ravel()
            if not (kept == kept[first][inverse]).all():
                _, first, inverse = np.unique(kept.view(np.dtype((np.void, width))).ravel(),
                                              return_index=True, return_inverse=True)
                inverse = inverse.ravel()
            out.keys = [bytes(text[rows[i], :length[rows[i]]]) for i in first.tolist()]
            out.key_first = rows[first].tolist()
            ids[rows] = inverse
        long = np.flatnonzero(~short)
        if len(long):
            found = self._key_ids(block, out, starts[long].tolist())
            ids[long] = found
            first_of = out.key_first
            for mark, index in zip(long.tolist(), found, strict=True):
                if index == len(first_of):  # a key first seen here
                    first_of.append(mark)
                elif mark < first_of[index]:
                    first_of[index] = mark
        out.key_ids = ids  # grouped by key when the thinning asks (BlockScan.key_marks)

    def _seconds(self, block: Block, starts: Any, counts: RoutineCounts) -> Any:
        """Routine lines per second: the epoch digits of every line compared as two 8-byte words
        (the first eight digits, and the eight ending at the last), so only where they change is
        a second read as a number. With `counts.keep`, each line's second (numpy), else None."""
        np = self._np
        digits = self.spec.digits
        table = counts.seconds
        if len(block) < 8 or digits > 16:
            each = [int(block[start:start + digits]) for start in starts.tolist()]
            for second in each:
                table[second] = table.get(second, 0) + 1
            return np.array(each, dtype=np.int64) if counts.keep else None
        words = np.ndarray((len(block) - 7,), dtype=np.uint64, buffer=block, strides=(1,))
        last = len(block) - 8
        first = words[np.minimum(starts, last)]
        change = first[1:] != first[:-1]
        if digits > 8:
            change |= np.diff(words[np.minimum(starts + (digits - 8), last)]) != 0
        clamped = starts > last  # a line in the block's last 8 bytes: a run of its own
        if clamped[-1]:
            change |= clamped[1:] | clamped[:-1]
        bounds = np.flatnonzero(change) + 1
        edges = [0, *bounds.tolist(), len(starts)]
        runs = np.diff(edges)
        found = []
        for start, run in zip(starts[edges[:-1]].tolist(), runs.tolist(), strict=True):
            second = int(block[start:start + digits])
            table[second] = table.get(second, 0) + run
            found.append(second)
        return np.repeat(np.array(found, dtype=np.int64), runs) if counts.keep else None


def complement_ends(db: Any, block: Block | memoryview, scratch: Any) -> list[int]:
    """Where the matches of the complement database `db` (`complement_database`) in `block` end:
    one place in each line that is not routine. `scratch` serves one scan at a time."""
    ends: list[int] = []

    def record(_id: int, _start: int, end: int, _flags: int, _context: Any) -> None:
        ends.append(end)  # a deviation's end: the line it is in is not routine

    db.scan(block, match_event_handler=record, scratch=scratch)
    return ends


def complement_database(spec: RoutineSpec) -> Any:
    """The Hyperscan database of `spec`'s complement (`complement`), shared by every classifier
    of the spec and the scans started ahead (correlator/sources/early.py). Needs no numpy."""
    return _database(spec.patterns)


_DATABASES: dict[tuple[str, ...], Any] = {}
_DATABASES_LOCK = threading.Lock()


def _database(patterns: tuple[str, ...]) -> Any:
    """The compiled Hyperscan database for `patterns`: kept for the process, and on disk (the
    user's cache folder) because compiling takes longer than scanning a big log. A database is
    read-only while scanning, so threads share it, each with its own scratch."""
    import hyperscan

    with _DATABASES_LOCK:
        found = _DATABASES.get(patterns)
        if found is not None:
            return found
        digest = hashlib.sha256("\0".join((getattr(hyperscan, "__version__", ""), *patterns)).encode()).hexdigest()[:32]
        cache = cache_folder() / f"scan-{digest}.hsdb"
        db = None
        with contextlib.suppress(OSError, hyperscan.error):
            db = hyperscan.loadb(cache.read_bytes(), hyperscan.HS_MODE_BLOCK)
        if db is None:
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            flags = hyperscan.HS_FLAG_MULTILINE | hyperscan.HS_FLAG_ALLOWEMPTY
            db.compile(expressions=[p.encode() for p in patterns], ids=list(range(len(patterns))),
                       flags=[flags] * len(patterns))
            with contextlib.suppress(OSError):
                cache.parent.mkdir(parents=True, exist_ok=True)
                partial = cache.with_suffix(f".{os.getpid()}.tmp")
                partial.write_bytes(hyperscan.dumpb(db))
                partial.replace(cache)
        _DATABASES[patterns] = db
        return db


def hyperscan_available() -> bool:
    try:
        import hyperscan  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


ENGINES = ("auto", "hyperscan", "python", "off")


def keeps_lines() -> bool:
    """Whether the bulk reader here can say where each routine line is (`RoutineCounts.keep`): the
    Hyperscan classifier can, the pure-Python one cannot (a surface that draws every line then
    asks for every line as an event), and with the reader off every line is an event anyway."""
    engine = scan_engine()
    return engine == "off" or (engine != "python" and hyperscan_available())


def scan_engine() -> str:
    """The engine `CORRELATOR_SCAN` names: auto (Hyperscan when installed), hyperscan, python, or
    off (every line parsed, as before the bulk reader: for comparisons)."""
    engine = os.environ.get("CORRELATOR_SCAN", "auto").strip().lower() or "auto"
    if engine not in ENGINES:
        raise ValueError(f"CORRELATOR_SCAN must be one of {', '.join(ENGINES)}, not {engine!r}")
    return engine


_CLASSIFIERS: dict[tuple[int, int, str, frozenset[int], KeyPlace | None], tuple[RoutineSpec, Classifier]] = {}
_CLASSIFIERS_LOCK = threading.Lock()


def classifier(spec: RoutineSpec, max_line: int, engine: str | None = None,
               marked: frozenset[int] = frozenset(), key: KeyPlace | None = None) -> Classifier:
    """The classifier `engine` names (default: `scan_engine()`); 'auto' is the fastest here.
    Kept per spec for the process: a classifier is read-only while scanning (each scan takes a
    scratch of its own), so the look-ahead, every file of a format and a server's analyses share
    one instead of compiling it again."""
    engine = engine or scan_engine()
    python = engine == "python" or (engine == "auto" and not hyperscan_available())
    which = (id(spec), max_line, "python" if python else "hyperscan", marked, key)
    with _CLASSIFIERS_LOCK:
        found = _CLASSIFIERS.get(which)
        if found is None or found[0] is not spec:  # the spec itself is kept, so its id is not reused
            if len(_CLASSIFIERS) >= 64:  # a server loading users' formats again and again
                _CLASSIFIERS.clear()
            found = _CLASSIFIERS[which] = (spec, Classifier(spec, max_line, marked, key) if python
                                           else HyperscanClassifier(spec, max_line, marked, key))
        return found[1]
