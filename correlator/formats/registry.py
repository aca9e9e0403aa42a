"""All formats the tool knows: the built-in ones, then the user's folders (a user's file with the
same format name replaces the built-in one). Loading checks every sample of every format, so a
format that does not do what its samples say never runs; `collect=True` gathers every error
instead of stopping at the first, for `correlator formats validate`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from correlator import startup_cache
from correlator.definitions import definition_files, line_in
from correlator.errors import DefinitionError
from correlator.formats.definition import Format, LinePattern, load_format
from correlator.formats.evidence import Evidence, load_evidence
from correlator.formats.layout import LayoutVocabulary, learn, load_layouts
from correlator.formats.parse import LineMatch, match_line
from correlator.formats.patterns import SET_ASIDE_AFTER, PatternTimeout
from correlator.resources import builtin_dir

#: How many of a file's first non-empty lines detection looks at.
DETECT_LINES = 60
#: The most a line scores in detection (`Registry._score`): a known message with a time.
_MOST = 2.5
#: A format that reads this share of the first lines is taken as it is; below it (or when only the
#: generic fallback reads them), a layout learned from the lines is tried with every catalogue.
EXPLAINED = 0.9


@dataclass
class Registry:
    formats: dict[str, Format]
    evidence: Evidence
    errors: list[DefinitionError] = field(default_factory=list)
    layouts: LayoutVocabulary | None = None

    @property
    def fallback(self) -> Format | None:
        for fmt in self.formats.values():
            if fmt.fallback:
                return fmt
        return None

    def get(self, name: str) -> Format:
        try:
            return self.formats[name]
        except KeyError:
            known = ", ".join(sorted(self.formats))
            raise DefinitionError(f"no format named {name!r} (known: {known})") from None

    def detect(self, lines: Sequence[str], timed_out: list[PatternTimeout] | None = None) -> tuple[Format, float]:
        """The format that explains most of `lines` (first ones of a file) and the share of lines
        it explained. Matching a catalogue message counts more than matching only a line prefix,
        so 'timestamp then text' formats do not win over the one that knows the messages.

        A layout learned from the lines themselves (`formats/layout.py`) is then tried with every
        format's catalogue; when it explains the lines better, the format is used with the learned
        pattern added after its own, so a Python `logging` layout nobody listed still reaches
        paho's or asyncua's messages instead of the generic fallback.

        A line on which a user's pattern runs out of time scores nothing for its format (the
        PatternTimeout goes to `timed_out`); a few such lines end the format's turn, so detection
        costs at most SET_ASIDE_AFTER bounds per format."""
        slow = [] if timed_out is None else timed_out
        sample = [line for line in lines if line.strip()][:DETECT_LINES]
        best: Format | None = None
        best_score = -1.0
        best_share = 0.0
        scored: dict[str, list[float]] = {}
        for fmt in sorted(self.formats.values(), key=lambda f: (f.fallback, -f.priority, f.name)):
            if fmt.fallback and not fmt.bounded and best_score >= _MOST * len(sample) * 0.5 + fmt.priority / 1000.0:
                # the fallback cannot win (a known message with a time on every line, at half
                # weight, is the most it scores) and only a win would read its scores (`_learned`
                # tries the other formats); a built-in one has no pattern that may run out of time
                # to report. Reading each line with it was 0.3 ms a small log, 17 of the 59 ms the
                # busy plant's 57 client logs took to detect.
                continue
            per_line = self._scores(fmt, sample, slow)
            scored[fmt.name] = per_line
            hits = sum(1 for value in per_line if value)
            score = sum(per_line) * (0.5 if fmt.fallback else 1.0)
            score += fmt.priority / 1000.0 if hits else 0.0
            if score > best_score:
                best, best_score, best_share = fmt, score, hits / len(sample) if sample else 0.0
        if best is None or best.fallback or self._explained(best, sample, scored[best.name]) < EXPLAINED:
            best_known = sum(1 for value in scored[best.name] if value >= 2.0) if best is not None else 0
            learned = self._learned(sample, scored, best_score, best_known, slow)
            if learned is not None:
                return learned
        if best is None or best_score <= 0:
            fallback = self.fallback
            if fallback is None:
                raise DefinitionError("no format matches and there is no fallback format")
            return fallback, 0.0
        return best, best_share

    @staticmethod
    def _explained(fmt: Format, sample: list[str], per_line: list[float]) -> float:
        """Share of the lines `fmt` reads, a continuation of a multi-line record counting as read."""
        if not sample:
            return 0.0
        read = sum(1 for value, text in zip(per_line, sample, strict=True)
                   if value or (fmt.multiline and _continues(fmt, text)))
        return read / len(sample)

    def _scores(self, fmt: Format, sample: list[str], slow: list[PatternTimeout], first: int = 0) -> list[float]:
        """Per line of `sample`, how well `fmt` reads it (`first`: the line pattern to try first).
        A line a user's pattern runs out of time on scores 0, and after SET_ASIDE_AFTER such lines
        so does the rest (as the parser sets such a pattern aside)."""
        out = []
        timeouts = 0
        for text in sample:
            score = self._score(fmt, text, slow, first)
            if score < 0:
                timeouts += 1
                if timeouts >= SET_ASIDE_AFTER:
                    break
            out.append(max(score, 0.0))
        return out + [0.0] * (len(sample) - len(out))

    def _score(self, fmt: Format, text: str, slow: list[PatternTimeout], first: int = 0) -> float:
        """How well `fmt` reads `text`: 2 a known message, 1 a line pattern only (or a catch-all
        message: `Error: ...` is anybody's), +0.5 a time; 0 nothing, -1 a user's pattern ran out of
        time (at most `_MOST`)."""
        found = self._match(fmt, text, slow, first)
        if not isinstance(found, LineMatch):
            return -1.0 if found is False else 0.0
        known = found.message is not None and not found.message.generic
        return (2.0 if known else 1.0) + (0.5 if found.ts is not None else 0.0)

    def _trial(self, fmt: Format, own: list[float], sample: list[str], slow: list[PatternTimeout],
               first: int) -> list[float] | None:
        """Per line, its own score or else what `fmt` (with a learned head at `first`) makes of it;
        None when a user's pattern runs out of time."""
        out = []
        for value, text in zip(own, sample, strict=True):
            score = value or self._score(fmt, text, slow, first)
            if score < 0:
                return None
            out.append(score)
        return out

    def _match(self, fmt: Format, text: str, slow: list[PatternTimeout], first: int = 0) -> LineMatch | bool | None:
        """match_line, or False when a user's pattern ran out of time (kept in `slow`)."""
        try:
            return match_line(fmt, text, self.evidence, start=first)
        except PatternTimeout as exc:
            slow.append(exc)
            return False

    def _learned(self, sample: list[str], scored: dict[str, list[float]], to_beat: float,
                 known_to_beat: int, slow: list[PatternTimeout]) -> tuple[Format, float] | None:
        """The best format with learned layouts added, when it beats `to_beat`. A line its own
        patterns read keeps its own score (they are tried first); the learned layouts are added one
        by one while each reads more (a file often mixes two: the library's logger and the
        application's); and the format must then know more bodies than the best format without a
        learned head, so a learned head never makes a format win on lines whose messages it does
        not know."""
        if self.layouts is None or not sample:
            return None
        candidates = learn(sample, self.layouts)
        if not candidates:
            return None
        best: Format | None = None
        for fmt in self.formats.values():
            if fmt.fallback or not fmt.messages:
                continue
            own = scored[fmt.name]
            per_line, chosen = own, list[LinePattern]()
            for pattern in candidates:
                derived = with_learned(fmt, [*chosen, pattern], self.layouts)
                trial = self._trial(derived, own, sample, slow, len(fmt.lines))
                if trial is None:
                    break  # a user's pattern ran out of time: this format learns nothing more
                if sum(trial) > sum(per_line):
                    chosen.append(pattern)
                    per_line = trial
            if not chosen:
                continue
            score = sum(per_line) + fmt.priority / 1000.0
            known = sum(1 for value in per_line if value >= 2.0)
            if score > to_beat + 0.5 and known > max(known_to_beat, sum(1 for value in own if value >= 2.0)):
                to_beat, known_to_beat = score, known
                best = with_learned(fmt, chosen, self.layouts)
        if best is None:
            return None
        read = sum(1 for text in sample if isinstance(self._match(best, text, slow), LineMatch))
        return best, read / len(sample)


def _continues(fmt: Format, text: str) -> bool:
    """Whether `text` is a continuation line of `fmt` (not when a user's pattern runs out of time)."""
    try:
        return fmt.continuation is not None and fmt.continuation.match(text) is not None
    except PatternTimeout:
        return False


def with_learned(fmt: Format, patterns: list[LinePattern], layouts: LayoutVocabulary) -> Format:
    """`fmt` with learned line patterns after its own, and the level words of every stack. A
    shallow copy: the catalogue and its compiled alternations are shared, not built again."""
    derived = copy.copy(fmt)
    derived.lines = [*fmt.lines, *patterns]
    derived.levels = {**layouts.level_map, **fmt.levels}
    return derived


def check_samples(fmt: Format, evidence: Evidence) -> list[DefinitionError]:
    """Every sample must yield its declared kind and exactly its declared fields, and every line
    and message pattern must be exercised by at least one sample."""
    errors = []
    used_lines: set[str] = set()
    used_messages: set[str] = set()

    def error(message: str, where: str, at: tuple[str | int, ...]) -> None:
        errors.append(DefinitionError(message, file=fmt.file, line=line_in(fmt.file, at),
                                      context=f"format {fmt.name}, {where}"))

    for sample in fmt.samples:
        try:
            found = match_line(fmt, sample.line, evidence, tz=UTC, year=2026)
        except PatternTimeout as exc:
            error(f"{exc.pattern.what}: {exc.message}: {sample.line!r}", sample.where, sample.at)
            continue
        if found is None:
            error(f"sample matches no line pattern: {sample.line!r}", sample.where, sample.at)
            continue
        used_lines.add(found.line_pattern.name)
        if found.message is not None:
            used_messages.add(found.message.name)
        if sample.message is not None and (found.message is None or found.message.name != sample.message):
            got = found.message.name if found.message else "no message pattern"
            error(f"sample is matched by {got}, not by message {sample.message!r}: {sample.line!r}", sample.where,
                  sample.at)
            continue
        if found.kind != sample.kind:
            error(f"sample yields kind {found.kind!r}, declares {sample.kind!r}", sample.where, sample.at)
        if found.fields != sample.fields:
            missing = {k: v for k, v in sample.fields.items() if found.fields.get(k, object()) != v}
            extra = {k: v for k, v in found.fields.items() if k not in sample.fields}
            error(f"sample yields other fields than it declares: declared but not yielded {missing}, "
                  f"yielded but not declared {extra}", sample.where, sample.at)
    errors += _check_routine(fmt, evidence)
    for index, lp in enumerate(fmt.lines):
        if lp.name not in used_lines:
            error("line pattern has no sample that matches it", f"format.line '{lp.name}'", ("format", "line", index))
    for index, message in enumerate(fmt.messages):
        if message.name not in used_messages:
            error("message pattern has no sample that matches it", f"message '{message.name}'", ("message", index))
    return errors


def _check_routine(fmt: Format, evidence: Evidence) -> list[DefinitionError]:
    """A routine pattern must be narrower than its message: every sample line the bulk reader
    would count as that message's must be parsed as that message, and at least one must be."""
    spec = fmt.routine
    if spec is None:
        return []
    errors = []
    automaton = spec.automaton
    for index, name in enumerate(spec.names):
        where = f"format {fmt.name}, message '{name}'.routine"
        counted = 0
        for sample in fmt.samples:
            if automaton.run(sample.line.encode("utf-8")) != index:
                continue
            counted += 1
            try:
                found = match_line(fmt, sample.line, evidence, tz=UTC, year=2026)
            except PatternTimeout:
                found = None  # said by check_samples
            if found is None or found.message is None or found.message.name != name:
                errors.append(DefinitionError(f"the routine pattern counts a line its message does not parse: "
                                              f"{sample.line!r}", file=fmt.file, context=where,
                                              line=line_in(fmt.file, sample.at)))
        if not counted:
            errors.append(DefinitionError("the routine pattern matches none of the format's samples",
                                          file=fmt.file, context=where, line=line_in(fmt.file, ("format", "routine"))))
    return errors


def format_files(extra_dirs: Sequence[str | Path] | None = None) -> list[Path]:
    return definition_files("parsers", extra_dirs)


def load_registry(extra_dirs: Sequence[str | Path] | None = None, *, collect: bool = False) -> Registry:
    """The formats of the built-in folder and `extra_dirs` (and CORRELATOR_PARSERS), checked.
    Unless `collect`, the result is kept between runs (correlator/startup_cache.py): loading takes
    longer than reading a big log's non-routine lines, and is the same while the files are."""
    if collect:
        return _load_registry(extra_dirs, collect=True)
    files = format_files(extra_dirs)
    vocab = builtin_dir("parsers") / "vocab"
    return startup_cache.cached("formats", [*sorted(vocab.glob("*.toml")), *files],
                                lambda: _compiled_ahead(_load_registry(extra_dirs, files=files)), Registry)


def _compiled_ahead(registry: Registry) -> Registry:
    """`registry` with every regex that is otherwise compiled when first needed compiled now, so
    the start-up cache keeps them: a run from the cache then compiles none (a folder's analysis
    compiled about 70, 0.06 s)."""
    for fmt in registry.formats.values():
        fmt.compile_ahead()
    for vocabulary in registry.evidence.vocabularies:
        vocabulary.compile_ahead()
    return registry


def _load_registry(extra_dirs: Sequence[str | Path] | None = None, *, collect: bool = False,
                   files: list[Path] | None = None) -> Registry:
    evidence = load_evidence(builtin_dir("parsers") / "vocab")
    layouts = load_layouts(builtin_dir("parsers") / "vocab" / "layouts.toml")
    formats: dict[str, Format] = {}
    errors: list[DefinitionError] = []
    builtin = builtin_dir("parsers")
    for file in format_files(extra_dirs) if files is None else files:
        try:
            fmt = load_format(file)
        except DefinitionError as exc:
            if not collect:
                raise
            errors.append(exc)
            continue
        # the built-in formats' samples are run by `correlator rules validate` (CI) and the tests,
        # not on every start: running them compiles every message alternation a log may never use
        problems = check_samples(fmt, evidence) if collect or not file.is_relative_to(builtin) else []
        if problems:
            if not collect:
                raise problems[0]
            errors.extend(problems)
            continue
        formats[fmt.name] = fmt
    return Registry(formats, evidence, errors, layouts)


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """The built-in formats plus those named by CORRELATOR_PARSERS, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_registry()
    return _DEFAULT
