"""The TUI's figures: first screen, memory and scrolling with a two-million-line timeline, and the
time from a line appended to a log to its finding on screen.

Every figure is given with a baseline measured in the same run, as a ratio:

- first screen: `correlator tui` on a 2,000,000-line broker log (the screen comes up while the
  bundle is read on a worker thread) against the same app on a 20-line log;
- memory: the timeline store holding 2,000,000 rows (offsets, not lines) against the same lines
  kept as Python strings (what a timeline that keeps lines would hold), and the store's bytes per row;
- scrolling: rendering a full screen (40 rows, text read back from the file at its offset, cold
  cache) at random places in 2,000,000 rows against the same in a 20-row timeline;
- filtering 2,000,000 rows (on a worker thread in the app) against one pass over the rows;
- search on 1,000,000 lines (a healthy broker's traffic with 6 refused logins in it): `/` typed
  into the app until the cursor is on the first hit and the hits are counted, and until it says
  "not found", each in a fresh app (its offset index cold), the needle given at once and typed key
  by key (timed from the last key: the searches of the shorter prefixes are cancelled), against
  lnav on the same file in the same run. lnav cannot time a search alone, so its search time is the difference between
  `lnav -n -q -c ';SELECT count(*) FROM mosquitto_log' -c '/NEEDLE' -c ':next-mark search' FILE`
  (load, index every line, search, move to the first hit) and the same without the last two
  commands, the median of 5 runs each, with the mosquitto format benchmarks/analyze.py installs
  (`-q`: lnav -n otherwise prints the whole file after its commands, which took 10-30 s here and
  drowned the search; `:write-screen-to` cost as much);
- finding on screen: a refused TLS handshake appended to a followed broker log, until the finding's
  count changes in the findings table, against LiveAnalysis's own callback reporting it (no
  screen), with LiveAnalysis's default stitch window (0.3 s), watch's (0.1 s) and a shorter one (0.05 s);
- first finding of a big bundle: `correlator tui` on the busy plant of benchmarks/busy_plant.py
  (a real mosquitto with `log_type all` and fifty live clients, 1,000,000 broker lines, its first
  failures a third of the way in) until the first finding is drawn, and until the whole timeline
  is (every line placed), against lnav indexing the same broker log in the same run (as
  benchmarks/analyze.py measures it), median of 3; `--every-line` adds one run of the TUI reading
  every line as an event (as it did before the fast reader). The machine's load average is printed
  beside it: the figure is only as good as the cores it got.
- first finding watching a big existing log: `correlator watch` on the same busy plant (its files
  read from their start, then followed) until the first finding is drawn, and until the whole
  timeline is (the routine lines of the first read placed), median of 3, with the CPU seconds the
  process used (the figure to trust on a loaded machine), against one run of the watch reading the
  existing lines through the tailer, one Python object per line (as it did before it read them
  with the bulk reader; `--watch-before 0` leaves it out), and lnav as above.

    .venv/bin/python benchmarks/tui.py [--lines 2000000] [--search-lines 1000000] [--appends 8]
                                       [--plant-lines 1000000] [--every-line] [--watch-before 1]
                                       [--only timeline|search|latency|bundle|watch]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from textual.widgets import Input

from correlator.live_analysis import LiveAnalysis, LiveUpdate
from correlator.model import Event
from correlator.report_model import Finding
from correlator.sources.early import EarlyReads
from correlator.tui.app import CorrelatorApp, ScreenSettings, create_app
from correlator.tui.event_store import EventStore, Filter
from correlator.tui.histogram import CountFeed, StoreCounts
from correlator.tui.sources import BundleEventSource, LiveEventSource, SourceStatus
from correlator.tui.widgets import FindingsTable, Timeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
import busy_plant
from analyze import LNAV_FORMAT

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_logs" / "server_cert_expired"
SIZE = (120, 40)


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def write_log(path: Path, lines: int) -> None:
    """A mosquitto log: the sample's lines over and over, one epoch second per 50 lines."""
    body = [line.split(": ", 1)[1] for line in (SAMPLE / "broker" / "mosquitto.log").read_text().splitlines()
            if ": " in line]
    start = 1795444800
    with path.open("w") as out:
        chunk = []
        for i in range(lines):
            chunk.append(f"{start + i // 50}: {body[i % len(body)]}\n")
            if len(chunk) == 100_000:
                out.write("".join(chunk))
                chunk = []
        out.write("".join(chunk))


def events_of(path: Path) -> Iterator[list[Event]]:
    """The log's lines as events with their real offsets (parsing is the parser benchmark's business)."""
    offset, number = 0, 0
    with path.open("rb") as handle:
        while True:
            block = handle.readlines(1 << 22)
            if not block:
                return
            chunk = []
            for raw in block:
                number += 1
                text = raw.decode().rstrip("\n")
                level = "error" if "Error" in text else "info"
                chunk.append(Event(ts=float(text.split(":", 1)[0]) + (number % 50) / 50, time_text="",
                                   source="broker" if number % 4 else "client:edge-02", file=str(path),
                                   line=number, kind="tls.error" if level == "error" else "other", raw=text,
                                   level=level, offset=offset, fields={"client_id": f"edge-{number % 9:02d}"}))
                offset += len(raw)
            yield chunk


# -- first screen --------------------------------------------------------------------------------


async def _first_screen(log: Path) -> tuple[float, float]:
    """Seconds to the first frame (status, findings, an empty timeline saying it is reading: the
    app answers keys; the app starts its source right after that frame is out, so the source's
    start marks it) and to the first frame with timeline rows."""
    started = time.perf_counter()
    source = BundleEventSource([log])
    frame: list[float] = []
    start = source.start

    def start_marked(changed: Callable[[], None]) -> None:
        frame.append(time.perf_counter() - started)
        start(changed)

    source.start = start_marked  # type: ignore[method-assign]
    app = create_app(ScreenSettings(tick=3600), source)
    async with app.run_test(size=SIZE) as pilot:
        timeline = app.query_one(Timeline)
        while timeline.count == 0:
            await pilot.pause(0.005)
        await pilot.pause()  # the frame with the rows is drawn
        rows = time.perf_counter() - started
    source.wait(120)  # the read stops at its next batch; never let it compete with the next figure
    return frame[0], rows


def first_screen(big: Path, small: Path) -> None:
    asyncio.run(_first_screen(small))  # warm imports and CSS
    base = [asyncio.run(_first_screen(small)) for _ in range(3)]
    ours = [asyncio.run(_first_screen(big)) for _ in range(3)]
    size = f"{big.stat().st_size / 1e6:.0f} MB ({lines_of(big):,} lines)"
    for index, what in ((0, "first screen"), (1, "first rows")):
        a = statistics.median(o[index] for o in ours)
        b = statistics.median(o[index] for o in base)
        print(f"{what:<17} {a * 1000:8.0f} ms with {size}; 20-line log {b * 1000:.0f} ms; ratio {a / b:.2f}")


def lines_of(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 22), b""))


# -- memory, scrolling, filtering -----------------------------------------------------------------


def memory(big: Path) -> EventStore:
    """The store's columns against the lines as str (sys.getsizeof plus the list's pointers); the
    process's RSS growth while filling is printed too, for the whole picture."""
    gc.collect()
    before = rss()
    store = EventStore()
    tenth = 0
    for chunk in events_of(big):
        store.extend(chunk)
        if not tenth and len(store) >= len(chunk) * 2:
            tenth = rss() - before
    rows = len(store)
    grown = rss() - before
    ours = store.nbytes()
    with big.open() as handle:
        base = sum(sys.getsizeof(line.rstrip("\n")) + 8 for line in handle)
    print(f"memory            {ours / 1e6:8.1f} MB for {rows:,} rows ({ours / rows:.1f} B/row, text read back "
          f"by offset); keeping the lines {base / 1e6:.1f} MB; ratio {ours / base:.2f}; process RSS grew "
          f"{grown / 1e6:.0f} MB")
    return store


def _screenful(app_store: EventStore, tops: list[int]) -> float:
    """Median ms to render one screen at each top row, through the real widget."""
    async def run() -> float:
        source = _Fixed(app_store)
        app = create_app(ScreenSettings(tick=3600), source)
        times = []
        async with app.run_test(size=SIZE) as pilot:
            timeline = app.query_one(Timeline)
            await pilot.press("t")
            await pilot.pause()
            for top in tops:
                timeline.go(min(top, timeline.count - 1))
                await pilot.pause()
                timeline._scroll_to_cursor(True)
                app_store._cache.clear()
                started = time.perf_counter()
                for y in range(timeline.size.height):
                    timeline.render_line(y)
                times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    return asyncio.run(run())


class _Fixed:
    """A finished store with no findings: the timeline alone."""

    live = False

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.errors: list[str] = []

    def start(self, changed: Callable[[], None]) -> None:
        changed()

    def stop(self) -> None:
        pass

    def findings(self) -> list[Finding]:
        return []

    def source_info(self) -> list[SourceStatus]:
        return []

    def lines_per_second(self) -> float:
        return 0.0

    def counts(self) -> list[CountFeed]:
        return [StoreCounts(self.store)]

    def status(self) -> str:
        return "done"


def scrolling(store: EventStore, small: Path) -> None:
    rng = random.Random(7)
    tops = [rng.randrange(len(store)) for _ in range(20)]
    ours = _screenful(store, tops)
    tiny = EventStore()
    for chunk in events_of(small):
        tiny.extend(chunk)
    base = _screenful(tiny, [0] * 20)
    print(f"screenful         {ours:8.2f} ms at random rows of {len(store):,}; in 20 rows {base:.2f} ms; "
          f"ratio {ours / base:.2f}")


def filtering(store: EventStore) -> None:
    started = time.perf_counter()
    rows = store.matches(Filter(client="edge-03", min_level="info"))
    ours = time.perf_counter() - started
    started = time.perf_counter()
    total = 0
    for value in store.level:
        total += value
    base = time.perf_counter() - started
    print(f"filter            {ours * 1000:8.0f} ms over {len(store):,} rows ({len(rows or ()):,} kept, worker "
          f"thread); one pass over a column {base * 1000:.0f} ms; ratio {ours / base:.2f}")


# -- search -----------------------------------------------------------------------------------------

HIT = "not authorised"
MISS = "certificate revoked"


def write_search_log(path: Path, lines: int) -> None:
    """A healthy busy broker (sample_logs/healthy_noisy's lines, replayed with moving epoch
    seconds) with six refused logins spread through it, as the issue's file had."""
    healthy = [line.split(": ", 1)[1] for line in (REPO / "sample_logs" / "healthy_noisy" / "broker" /
                                                    "mosquitto.log").read_text().splitlines() if ": " in line]
    refused = "Client <unknown> disconnected, not authorised."
    start = 1795444800
    at = {lines * k // 7 for k in range(1, 7)}
    with path.open("w") as out:
        chunk = []
        for i in range(lines):
            chunk.append(f"{start + i // 50}: {refused if i in at else healthy[i % len(healthy)]}\n")
            if len(chunk) == 100_000:
                out.write("".join(chunk))
                chunk = []
        out.write("".join(chunk))


async def _search_once(store: EventStore, needle: str, typed: bool = False) -> tuple[float, int]:
    """Seconds from the needle typed to its answer on screen (cursor on the first hit and the hits
    counted, or 'not found'), in a fresh app, and the hits. `typed`: key by key, as a person types
    (each key starts a search that the next one cancels), timed from the last key."""
    app = create_app(ScreenSettings(tick=3600), _Fixed(store))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t", "g", "slash")
        await pilot.pause()
        if typed:
            await pilot.press(*needle[:-1])
            started = time.perf_counter()  # from the last key: the searches before it are cancelled
            await pilot.press(needle[-1])
        else:
            started = time.perf_counter()
            app.query_one("#search", Input).value = needle
        while app.hits.positions is None or app.hits.needle != needle:
            await asyncio.sleep(0.001)
        drawn = asyncio.Event()
        app.call_after_refresh(drawn.set)
        await drawn.wait()
        return time.perf_counter() - started, len(app.hits.positions)


def _lnav_seconds(lnav: str, env: dict[str, str], *args: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([lnav, "-n", *args], env=env, check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def searching(tmp: Path, lines: int) -> None:
    log = tmp / "search" / "mosquitto.log"
    log.parent.mkdir()
    write_search_log(log, lines)
    store = EventStore()
    for chunk in events_of(log):
        store.extend(chunk)
    ours = {}
    for needle in (HIT, MISS):
        runs = [asyncio.run(_search_once(store, needle)) for _ in range(3)]
        ours[needle] = (statistics.median(t for t, _ in runs), runs[0][1])
        typed = [asyncio.run(_search_once(store, needle, typed=True)) for _ in range(3)]
        ours["typed " + needle] = (statistics.median(t for t, _ in typed), typed[0][1])
    store.close()
    lnav = shutil.which("lnav")
    theirs: dict[str, float] = {}
    if lnav:
        home = tmp / "home"
        (home / ".lnav" / "formats" / "installed").mkdir(parents=True)
        (home / ".lnav" / "formats" / "installed" / "mosquitto_log.json").write_text(json.dumps(LNAV_FORMAT))
        env = dict(os.environ, HOME=str(home))
        index = ("-q", "-c", ";SELECT count(*) FROM mosquitto_log")
        base = _lnav_seconds(lnav, env, *index, str(log), runs=5)
        for needle in (HIT, MISS):
            found = _lnav_seconds(lnav, env, *index, "-c", f"/{needle}", "-c", ":next-mark search", str(log), runs=5)
            theirs[needle] = max(0.0, found - base)
        print(f"lnav -n on {lines:,} lines: {base:.2f} s to load and index every line (not part of its search figures)")
    for key, needle, what in ((HIT, HIT, "first hit"), (MISS, MISS, "not found"),
                              ("typed " + HIT, HIT, "typed, hit"), ("typed " + MISS, MISS, "typed, none")):
        seconds, hits = ours[key]
        line = f"search {what:<11}{seconds * 1000:8.0f} ms for {needle!r} in {lines:,} lines ({hits} hits)"
        if needle in theirs:
            other = theirs[needle]
            line += f"; lnav {other * 1000:.0f} ms; ratio {seconds / other:.2f}" if other else "; lnav ~0 ms"
        print(line)


# -- finding on screen --------------------------------------------------------------------------------


def _incident(tmp: Path) -> tuple[Path, list[str]]:
    folder = tmp / f"incident-{time.monotonic_ns()}"
    shutil.copytree(SAMPLE, folder)
    log = folder / "broker" / "mosquitto.log"
    lines = log.read_text().splitlines(keepends=True)
    for client in (folder / "clients").iterdir():
        client.write_text("")
    alert = next(line for line in lines if "alert certificate expired" in line)
    start = next(i for i, line in enumerate(lines) if "New connection" in line)
    log.write_text("".join(lines[:start]))
    return log, [alert.split(": ", 1)[1]]


def _append(log: Path, text: str) -> None:
    with log.open("a") as out:
        out.write(f"{int(time.time())}: {text}")


async def _screen_latency(tmp: Path, appends: int, window: float) -> list[float]:
    log, (alert,) = _incident(tmp)
    source = LiveEventSource([log.parent.parent], stitch_window=window)
    app = create_app(ScreenSettings(tick=3600, notify_new=False), source)
    out = []
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(FindingsTable)
        timeline = app.query_one(Timeline)
        while timeline.count == 0:
            await pilot.pause(0.01)
        await pilot.pause(0.5)

        def shown() -> int:
            return sum(f.count for f in app.ordered if f.id == "tls.server_cert_expired") if table.keys else 0

        for _ in range(appends):
            before = shown()
            started = time.perf_counter()
            _append(log, alert)
            while shown() == before:
                await asyncio.sleep(0.002)
            drawn = asyncio.Event()
            app.call_after_refresh(drawn.set)  # the frame with the new count is out
            await drawn.wait()
            out.append(time.perf_counter() - started)
            await asyncio.sleep(0.2)
    return out


def _callback_latency(tmp: Path, appends: int, window: float) -> list[float]:
    log, (alert,) = _incident(tmp)
    counts: list[int] = [0]
    moved = threading.Event()

    def on_update(update: LiveUpdate) -> None:
        for finding in update.findings:
            if finding.id == "tls.server_cert_expired" and finding.count != counts[0]:
                counts[0] = finding.count
                moved.set()

    out = []
    with LiveAnalysis([log.parent.parent], on_update=on_update, stitch_window=window):
        time.sleep(1.0)
        for _ in range(appends):
            moved.clear()
            started = time.perf_counter()
            _append(log, alert)
            moved.wait(5)
            out.append(time.perf_counter() - started)
            time.sleep(0.2)
    return out


def finding_on_screen(tmp: Path, appends: int) -> None:
    for window in (0.3, 0.1, 0.05):
        base = statistics.median(_callback_latency(tmp, appends, window))
        ours = asyncio.run(_screen_latency(tmp, appends, window))
        print(f"finding on screen {statistics.median(ours) * 1000:8.0f} ms median, {max(ours) * 1000:.0f} ms worst "
              f"(stitch window {window}s); LiveAnalysis callback {base * 1000:.0f} ms; "
              f"ratio {statistics.median(ours) / base:.2f}")


# -- first finding of a big bundle ---------------------------------------------------------------------


async def _first_drawn(app: CorrelatorApp, started: float) -> tuple[float, str]:
    """Seconds from `started` until the first finding is drawn on the app's screen, and its id."""
    table = app.query_one(FindingsTable)
    while not table.keys:
        await asyncio.sleep(0.005)
    drawn = asyncio.Event()
    app.call_after_refresh(drawn.set)
    await drawn.wait()
    return time.perf_counter() - started, table.keys[0].split("|")[0]


async def _bundle_read(folder: Path) -> tuple[float, float, str]:
    """Seconds from the app's start to the first finding drawn and to the whole timeline drawn,
    and the first finding's id."""
    started = time.perf_counter()
    # as `correlator tui` does: a big log's scan starts before the screen, the read ends it
    source = BundleEventSource([folder], early=EarlyReads([folder]).__enter__())
    app = create_app(ScreenSettings(tick=3600, notify_new=False), source)
    async with app.run_test(size=SIZE) as pilot:
        first, name = await _first_drawn(app, started)
        while source.status() != "done" or source.store.pending is not None:
            await pilot.pause(0.01)
        await pilot.pause()
        whole = time.perf_counter() - started
    source.wait(120)
    return first, whole, name


def first_finding(plant_lines: int, every_line: bool, tmp: Path) -> None:
    from correlator.tui import sources

    folder = busy_plant.ensure(plant_lines)
    log = folder / "broker" / "mosquitto.log"
    lines = busy_plant.line_count(log)
    asyncio.run(_bundle_read(SAMPLE))  # warm imports, CSS and the scan database
    load = os.getloadavg()
    runs = [asyncio.run(_bundle_read(folder)) for _ in range(3)]
    first = statistics.median(r[0] for r in runs)
    whole = statistics.median(r[1] for r in runs)
    lnav = shutil.which("lnav")
    theirs = None
    if lnav:
        home = tmp / "home-bundle"
        (home / ".lnav" / "formats" / "installed").mkdir(parents=True)
        (home / ".lnav" / "formats" / "installed" / "mosquitto_log.json").write_text(json.dumps(LNAV_FORMAT))
        env = dict(os.environ, HOME=str(home))
        theirs = _lnav_seconds(lnav, env, "-c", ";SELECT count(*) FROM mosquitto_log", str(log))
    after = os.getloadavg()
    files = len([p for p in folder.rglob("*") if p.is_file()])
    what = f"{lines:,}-line busy plant ({log.stat().st_size / 1e6:.0f} MB broker log, {files} files)"
    peer = f"; lnav indexes the broker log in {theirs:.2f} s; ratio {first / theirs:.2f}" if theirs else ""
    print(f"first finding     {first * 1000:8.0f} ms ({runs[0][2]}) on screen for a {what}{peer}")
    peer = f"; ratio to lnav {whole / theirs:.2f}" if theirs else ""
    print(f"whole timeline    {whole * 1000:8.0f} ms, every line placed{peer}")
    if every_line:
        keep = sources.keeps_lines
        sources.keeps_lines = lambda: False
        try:
            old = asyncio.run(_bundle_read(folder))
        finally:
            sources.keeps_lines = keep
        print(f"every line parsed {old[0] * 1000:8.0f} ms to the first finding, {old[1] * 1000:.0f} ms to the whole "
              f"timeline (the TUI before the fast reader); ratio {first / old[0]:.2f} and {whole / old[1]:.2f}")
    print(f"load average      {load[0]:.2f} before, {after[0]:.2f} after (2 cores: above 2 the figures are slowed)")


# -- first finding watching a big existing log ----------------------------------------------------------


async def _watch_read(folder: Path) -> tuple[float, float, float, str]:
    """Seconds from the app's start to the first finding drawn and to the whole timeline drawn,
    the CPU seconds the process used until then, and the first finding's id."""
    started, cpu = time.perf_counter(), time.process_time()
    source = LiveEventSource([folder])
    app = create_app(ScreenSettings(tick=3600, notify_new=False), source)
    async with app.run_test(size=SIZE) as pilot:
        first, name = await _first_drawn(app, started)
        lines = busy_plant.line_count(folder / "broker" / "mosquitto.log")
        while not source.analysis.caught_up or source.store.pending is not None or \
                sum(s.lines for s in source.source_info() if s.name == "broker") < lines:
            await pilot.pause(0.01)
        await pilot.pause()
        whole = time.perf_counter() - started
        used = time.process_time() - cpu
    return first, whole, used, name


def first_finding_watching(plant_lines: int, before_runs: int, tmp: Path) -> None:
    from correlator.tui import sources

    folder = busy_plant.ensure(plant_lines)
    log = folder / "broker" / "mosquitto.log"
    lines = busy_plant.line_count(log)
    asyncio.run(_watch_read(SAMPLE))  # warm imports, CSS and the scan database
    load = os.getloadavg()
    runs = [asyncio.run(_watch_read(folder)) for _ in range(3)]
    first, whole, cpu = (statistics.median(r[i] for r in runs) for i in range(3))
    old = None
    if before_runs:
        keep = sources.keeps_lines
        sources.keeps_lines = lambda: False  # the bulk reader is not offered: every line through the tailer
        try:
            olds = [asyncio.run(_watch_read(folder)) for _ in range(before_runs)]
        finally:
            sources.keeps_lines = keep
        old = tuple(statistics.median(r[i] for r in olds) for i in range(3))
    lnav = shutil.which("lnav")
    theirs = None
    if lnav:
        home = tmp / "home-watch"
        (home / ".lnav" / "formats" / "installed").mkdir(parents=True, exist_ok=True)
        (home / ".lnav" / "formats" / "installed" / "mosquitto_log.json").write_text(json.dumps(LNAV_FORMAT))
        env = dict(os.environ, HOME=str(home))
        theirs = _lnav_seconds(lnav, env, "-c", ";SELECT count(*) FROM mosquitto_log", str(log))
    after = os.getloadavg()
    what = f"{lines:,}-line busy plant ({log.stat().st_size / 1e6:.0f} MB broker log)"
    peer = f"; lnav indexes the broker log in {theirs:.2f} s; ratio {first / theirs:.2f}" if theirs else ""
    print(f"watch: first finding {first * 1000:8.0f} ms ({runs[0][3]}) on screen watching a {what}{peer}")
    print(f"watch: whole timeline {whole * 1000:7.0f} ms, every line placed; CPU {cpu:.2f} s")
    if old is not None:
        print(f"watch, every line through the tailer: first finding {old[0] * 1000:.0f} ms, whole timeline "
              f"{old[1] * 1000:.0f} ms, CPU {old[2]:.2f} s (before the bulk first read); ratio {first / old[0]:.2f}, "
              f"CPU {cpu / old[2]:.2f}")
    print(f"load average      {load[0]:.2f} before, {after[0]:.2f} after (2 cores: above 2 the figures are slowed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--appends", type=int, default=8)
    parser.add_argument("--search-lines", type=int, default=1_000_000)
    parser.add_argument("--plant-lines", type=int, default=1_000_000)
    parser.add_argument("--every-line", action="store_true", help="also time the TUI reading every line as an event")
    parser.add_argument("--watch-before", type=int, default=1,
                        help="runs of the watch reading every existing line through the tailer (0: none)")
    parser.add_argument("--only", choices=("timeline", "search", "latency", "bundle", "watch"),
                        help="run one part of the figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="correlator-tui-bench-") as folder:
        tmp = Path(folder)
        big, small = tmp / "big" / "mosquitto.log", tmp / "small" / "mosquitto.log"
        big.parent.mkdir()
        small.parent.mkdir()
        if args.only in (None, "bundle"):
            first_finding(args.plant_lines, args.every_line, tmp)
        if args.only in (None, "watch"):
            first_finding_watching(args.plant_lines, args.watch_before, tmp)
        if args.only in (None, "search"):
            searching(tmp, args.search_lines)
        if args.only in (None, "timeline"):
            write_log(big, args.lines)
            write_log(small, 20)
            first_screen(big, small)
            store = memory(big)
            scrolling(store, small)
            filtering(store)
            store.close()
            del store
            gc.collect()
        if args.only in (None, "latency"):
            finding_on_screen(tmp, args.appends)


if __name__ == "__main__":
    main()
