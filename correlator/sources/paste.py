"""Logs the way support tickets carry them: pasted into a markdown issue, an e-mail or a terminal.

A pasted excerpt wears artifacts around its lines that no log format knows: the markdown code
fence and four-space indentation, `> ` quoting, line numbers (`grep -n`, `cat -n`, an editor's
gutter), `**emphasis**` on the line that matters, the shell prompt and command that printed it
(`$ docker compose logs mosquitto`), a column naming the container or machine each line came from
(docker compose `mosquitto-1  | `, kubectl `logs --prefix` `[pod/mosquitto-7d9f/mosquitto] `,
Vagrant `    default: `, grep's `FILE:` over several files), and the `==> FILE <==` headers of
`tail` or `head` given several files. A compose log interleaves several services, and a tail or a
grep several files: each is a source with its own role.

`unwrap` peels these off the lines of a file whose format does not already read it, and splits a
prefixed log into one stream per container. Only what most lines share is taken for a prefix, so
a log line that happens to contain `|` or `:` is never cut.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from correlator.formats.registry import DETECT_LINES, EXPLAINED, Registry
from correlator.sources.bundle import Bundle
from correlator.sources.files import base_name

#: A code fence line (``` or ~~~, with or without a language).
_FENCE = re.compile(r"^\s*(?:```|~~~)[\w+-]*\s*$")
#: A shell prompt with the command after it: `$ cmd`, `# cmd`, `user@host:~$ cmd`, `PS C:\> cmd`,
#: `C:\dir> cmd`. Only the command names a log reader can be: a prompt line is not a log line.
_PROMPT = re.compile(
    r"^\s*(?:(?:\([\w.-]+\)\s*)?[\w.-]+@[\w.-]+(?::[^$#\s]*)?\s*[$#%]|[$#%]|PS [A-Z]:\\[^>]*>|[A-Z]:\\[^>]*>)\s+"
    r"(?:sudo\s+)?(?:docker|podman|kubectl|oc|journalctl|tail|cat|less|more|grep|zcat|head|vagrant|mosquitto\S*|"
    r"python\S*|node|npm|java|go|dotnet|systemctl|sed|awk|Get-Content|type)\b")
#: Markdown or e-mail quoting, nested as replies nest it (`> > `, `>> `).
_QUOTE = re.compile(r"^(?:> ?)+")
#: A line-number column: `grep -n` (`12:`, and `12-` on its context lines), `cat -n` and `nl` (the
#: number right-aligned, then a tab), a viewer's or an editor's gutter (`12 | `, `12│`). Taken only
#: when the numbers rise from line to line: a log's own leading numbers (epoch seconds, the hour
#: of a time, a year) repeat.
_NUMBERED = re.compile(r"^\s*(?P<n>\d{1,7})(?::|-|\t| ?[|\u2502] ?)(?P<rest>.*)$")
#: `grep -C`'s line between two groups of context.
_GREP_GAP = "--"
#: Markdown emphasis and inline code marks around (part of) a line.
_EMPHASIS = re.compile(r"\*\*|__(?=\S)|(?<=\S)__|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])|`")
#: Container and machine columns: (kind, regex with `name` and `rest`).
_PREFIXES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("compose", re.compile(r"^(?P<name>[A-Za-z0-9][\w.-]*?) +\|\s?(?P<rest>.*)$")),
    ("kubectl", re.compile(r"^\[pod/(?P<pod>[^/\]\s]+)/(?P<name>[^\]\s]+)\]\s(?P<rest>.*)$")),
    ("vagrant", re.compile(r"^\s*(?P<name>[A-Za-z][\w-]*): (?P<rest>.*)$")),
    # grep over several files: `broker/mosquitto.log:LINE`, `...log-LINE` on -C context lines (the
    # line numbers of -n are then each file's own column, peeled off per stream)
    ("grep", re.compile(r"^(?P<name>[^\s:]*[\w-]\.(?:log|txt|out|err)(?:\.\d+)?)[:-](?P<rest>.*)$")),
)
#: The header `tail` and `head` print before each file when given several (`tail -n 50 *.log`).
_TAIL_HEADER = re.compile(r"^==> (?P<name>.+) <==\s*$")
#: A prefix is taken when at least this share of the (non-blank) lines carry it.
PREFIX_SHARE = 0.8
#: Docker compose's replica number ends a container's name: `mosquitto-1`, `plant_edge_2`.
_REPLICA = re.compile(r"[-_]\d+$")
#: Level words that a compose-like column must not be (java wrapper.log writes `INFO   | jvm 1 |`).
_LEVEL_WORDS = frozenset({"trace", "debug", "info", "notice", "warn", "warning", "error", "fatal", "critical",
                          "status", "severe"})


@dataclass
class Unwrapped:
    """What `unwrap` made of a file: its lines per stream (one when nothing split it), and what
    it peeled off (for the source report)."""

    streams: dict[str, list[str]] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    prefix: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.artifacts)


def unwrap(lines: list[str]) -> Unwrapped:
    """Peel the paste artifacts off `lines`; split them by container when a column names it.
    Every stream keeps every line's place (a line of another stream, or a dropped fence or
    prompt, is left blank), so evidence still names the line of the pasted file."""
    found = Unwrapped()
    kept = _drop_frames(lines, found)
    kept = _unquote(kept, found)
    kept = _unnumber(kept, found)
    kept = _dedent(kept, found)
    kept = _plain(kept, found)
    streams = _split(kept, found)
    found.streams = {name: _dedent(_plain(_unnumber(body, found) if name else body, found), found)
                     for name, body in streams.items()}
    found.artifacts = list(dict.fromkeys(found.artifacts))
    return found


def _drop_frames(lines: list[str], found: Unwrapped) -> list[str]:
    kept = []
    for line in lines:
        if _FENCE.match(line):
            found.artifacts.append("code fence")
            kept.append("")
        elif _PROMPT.match(line):
            found.artifacts.append("shell prompt")
            kept.append("")
        else:
            kept.append(line)
    return kept


def _unquote(lines: list[str], found: Unwrapped) -> list[str]:
    text = [line for line in lines if line.strip()]
    if text and sum(1 for line in text if _QUOTE.match(line)) >= PREFIX_SHARE * len(text):
        found.artifacts.append("quote marks")
        return [_QUOTE.sub("", line, count=1) for line in lines]
    return lines


def _unnumber(lines: list[str], found: Unwrapped) -> list[str]:
    matches = [_NUMBERED.match(line) for line in lines]
    text = sum(1 for line in lines if line.strip() and line.strip() != _GREP_GAP)
    numbers = [int(match.group("n")) for match in matches if match is not None]
    if len(numbers) < 3 or len(numbers) < PREFIX_SHARE * text:
        return lines
    if any(later <= earlier for earlier, later in pairwise(numbers)):
        return lines
    found.artifacts.append("line numbers")
    return [match.group("rest") if match is not None else "" if line.strip() == _GREP_GAP else line
            for line, match in zip(lines, matches, strict=True)]


def _dedent(lines: list[str], found: Unwrapped) -> list[str]:
    text = [line for line in lines if line.strip()]
    if not text:
        return lines
    indent = min(len(line) - len(line.lstrip(" \t")) for line in text)
    if indent < 2:
        return lines
    found.artifacts.append("indentation")
    return [line[indent:] if line.strip() else "" for line in lines]


def _plain(lines: list[str], found: Unwrapped) -> list[str]:
    out = []
    for line in lines:
        if "*" in line or "`" in line or "__" in line:
            cleaned = _EMPHASIS.sub("", line)
            if cleaned != line:
                found.artifacts.append("markdown emphasis")
                line = cleaned
        out.append(line)
    return out


def _split(lines: list[str], found: Unwrapped) -> dict[str, list[str]]:
    text = [line for line in lines if line.strip()]
    if text and _TAIL_HEADER.match(text[0]):
        return _tail_sections(lines, found)
    for kind, regex in _PREFIXES:
        matches = [regex.match(line) for line in text]
        names = Counter(match.group("name") for match in matches if match is not None)
        if not text or sum(names.values()) < PREFIX_SHARE * len(text):
            continue
        if any(name.lower() in _LEVEL_WORDS for name in names):
            continue
        if kind == "vagrant" and len(names) > 3:
            continue  # `word: text` on most lines with many words is a log's own wording
        if kind == "compose" and not _compose(matches, names):
            continue
        found.artifacts.append(f"{kind} prefix")
        found.prefix = kind
        streams: dict[str, list[str]] = {name: [] for name in names}
        last: str | None = None
        for line in lines:
            match = regex.match(line)
            if match is not None:
                last = match.group("name")
            for name, body in streams.items():
                if name != last:
                    body.append("")
                else:  # a wrapped line without the column stays with the container before it
                    body.append(match.group("rest") if match is not None else line)
        return streams
    return {"": lines}


def _tail_sections(lines: list[str], found: Unwrapped) -> dict[str, list[str]]:
    """`tail`/`head` of several files: each `==> NAME <==` section is a stream of its own, named
    by the file (its path as printed, so two hosts' mosquitto.log stay apart); a file printed twice
    (`tail -f` switching back to it) continues its stream."""
    found.artifacts.append("tail headers")
    found.prefix = "tail"
    streams: dict[str, list[str]] = {}
    current: str | None = None
    for index, line in enumerate(lines):
        header = _TAIL_HEADER.match(line)
        if header is not None:
            current = header.group("name").strip()
            streams.setdefault(current, [""] * index)
        for name, body in streams.items():
            body.append(line if name == current and header is None else "")
    return streams


def _compose(matches: list[re.Match[str] | None], names: Counter[str]) -> bool:
    """Whether a `NAME | ` column is docker compose's: it pads every name to one width, so the
    bar stands in one column, and it names containers with their replica number or several of
    them. A log's own `GW|...` or `GW | ...` field is neither."""
    bars = {match.string.index("|", match.end("name")) for match in matches if match is not None}
    return len(bars) == 1 and (len(names) > 1 or all(_REPLICA.search(name) for name in names))


#: A file larger than this is not read whole to be unwrapped (pastes are small; a big log with a
#: prefix on every line is read as it is).
MAX_PASTE_BYTES = 32 * 1024 * 1024


def write_streams(unwrapped: Unwrapped, folder: Path, stem: str) -> list[tuple[Path, str]]:
    """The streams as files in `folder`, named so a log's source name is its container's (or the
    pasted file's own stem when nothing split it); with the suffix each display name gets."""
    out = []
    stems = Counter(Path(name).stem for name in unwrapped.streams)
    for name, body in unwrapped.streams.items():
        # a tailed file's stream is named by its file (edge-10.log: client edge-10), unless two
        # files of one name (two hosts' mosquitto.log) need their paths to stay apart
        own = Path(name).stem if name.endswith(".log") and stems[Path(name).stem] == 1 else name
        path = folder / f"{_safe(own) if name else stem}.log"
        path.write_text("\n".join(body) + "\n", encoding="utf-8")
        out.append((path, f" [{name}]" if name else ""))
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name) or "stream"


def unpaste(path: Path, registry: Registry, bundle: Bundle) -> list[tuple[Path, str]] | None:
    """The files to read instead of `path` when it is a paste: None when a format already reads
    its first lines (a real log is never touched) or unwrapping does not help; else each stream
    as a file in a scratch folder of the bundle, with the suffix its display name takes."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(64 * 1024)
    except OSError:
        return None
    first = [line for line in head.decode("utf-8", "replace").splitlines() if line.strip()][:DETECT_LINES]
    trial = unwrap(first)
    if not trial.changed or size > MAX_PASTE_BYTES:
        return None
    if not trial.prefix and not {"code fence", "shell prompt"} & set(trial.artifacts):
        # only artifacts a real log could hold (indentation, quotes, stars): unwrap when no format
        # reads the lines as they are and the unwrapped lines are read better
        fmt, share = registry.detect(first)
        if share >= EXPLAINED and not fmt.fallback:
            return None
        after = [registry.detect([line for line in body if line.strip()]) for body in trial.streams.values()]
        if not any(found > share or (fmt.fallback and not new.fallback) for new, found in after):
            return None
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    return write_streams(unwrap(lines), bundle.scratch(), base_name(path))


def recognisable(text: str, registry: Registry) -> bool:
    """Whether any line of a pasted text is one a format reads (after unwrapping): a body with none
    is not a log, and is refused rather than answered with an empty analysis."""
    lines = [line for line in text.splitlines() if line.strip()][:DETECT_LINES * 4]
    for body in unwrap(lines).streams.values():
        kept = [line for line in body if line.strip()]
        if kept and registry.detect(kept)[1] > 0:
            return True
    return False
