"""Live tailing loses and duplicates nothing: every test writes numbered lines and checks the exact
sequence received per followed path, through bursts, rotations, truncations and new files, and
against a real mosquitto that writes its own log while it is rotated."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from correlator.errors import InputError
from correlator.sources.lines import TRUNCATION_MARK, iter_lines
from correlator.sources.tail import LineBatch, Tailer, TailEvent, _pread_portable
from lab.broker import Mosquitto

WAIT = 15.0  # generous upper bound for a condition; tests finish as soon as it holds


class Collector:
    """The consumer: records every batch and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.batches: list[LineBatch] = []
        self.lines: dict[Path, list[bytes]] = defaultdict(list)

    def __call__(self, batch: LineBatch) -> None:
        with self.cond:
            self.batches.append(batch)
            self.lines[batch.path].extend(line for _, line in batch.lines)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                counts = {str(p): len(v) for p, v in self.lines.items()}
                pytest.fail(f"timed out waiting for {what}; lines so far: {counts}")

    def wait_count(self, path: Path, count: int, timeout: float = WAIT) -> None:
        self.wait(lambda: len(self.lines[path]) >= count, f"{count} lines of {path.name}", timeout)

    def events(self, path: Path) -> list[TailEvent]:
        with self.cond:
            return [b.event for b in self.batches if b.path == path and b.event is not None]


def numbered(tag: str, start: int, count: int) -> list[bytes]:
    return [b"%s line %07d" % (tag.encode(), i) for i in range(start, start + count)]


def append(path: Path, lines: list[bytes]) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(line + b"\n" for line in lines))


@pytest.fixture(params=["inotify", "polling"])
def observer(request: pytest.FixtureRequest) -> bool:
    """Whether to use the polling observer: both must pass, the fallback is not second class."""
    return bool(request.param == "polling")


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def make_tailer(collector: Collector) -> Iterator[Callable[..., Tailer]]:
    made: list[Tailer] = []

    def make(**options: object) -> Tailer:
        tailer = Tailer(collector, poll_interval=0.25, **options)  # type: ignore[arg-type]
        made.append(tailer)
        return tailer

    yield make
    for tailer in made:
        tailer.stop()


# --------------------------------------------------------------------------- plain appending


def test_bursts_from_another_thread_arrive_complete_in_order_with_offsets(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer], observer: bool) -> None:
    path = tmp_path / "burst.log"
    path.write_bytes(b"")
    tailer = make_tailer(polling=observer)
    tailer.add_file(path)
    tailer.start()
    assert tailer.observer_kind == ("polling" if observer else "inotify")
    expected = numbered("b", 0, 50_000)

    def writer() -> None:
        # Uneven writes, and lines cut across writes, as a buffered logger produces them.
        blob = b"".join(line + b"\n" for line in expected)
        with open(path, "ab", buffering=0) as handle:
            pos = 0
            step = 1
            while pos < len(blob):
                size = (step * 7919) % 60_000 + 1
                handle.write(blob[pos:pos + size])
                pos += size
                step += 1
                if step % 20 == 0:
                    time.sleep(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join()
    collector.wait_count(path, len(expected))
    tailer.stop()
    assert collector.lines[path] == expected
    offsets = [offset for batch in collector.batches for offset, _ in batch.lines]
    assert offsets == [i * (len(expected[0]) + 1) for i in range(len(expected))]


def test_start_at_end_skips_old_lines_but_keeps_the_line_being_written(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer]) -> None:
    path = tmp_path / "end.log"
    append(path, numbered("old", 0, 100))
    with open(path, "ab") as handle:
        handle.write(b"half of a li")
    tailer = make_tailer()
    tailer.add_file(path)
    tailer.start()
    collector.wait(lambda: TailEvent.OPENED in collector.events(path), "the opened event")
    with open(path, "ab") as handle:
        handle.write(b"ne\n")
    append(path, numbered("new", 0, 10))
    collector.wait_count(path, 11)
    tailer.stop()
    assert collector.lines[path] == [b"half of a line", *numbered("new", 0, 10)]


def test_start_from_beginning_reads_everything(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer]) -> None:
    path = tmp_path / "begin.log"
    append(path, numbered("old", 0, 1000))
    tailer = make_tailer(from_beginning=True)
    tailer.add_file(path)
    tailer.start()
    append(path, numbered("new", 0, 10))
    collector.wait_count(path, 1010)
    tailer.stop()
    assert collector.lines[path] == numbered("old", 0, 1000) + numbered("new", 0, 10)
    assert collector.events(path) == [TailEvent.OPENED]


def test_partial_line_waits_for_its_newline_and_stop_drains(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer]) -> None:
    path = tmp_path / "partial.log"
    path.write_bytes(b"")
    tailer = make_tailer()
    tailer.add_file(path)
    tailer.start()
    with open(path, "ab", buffering=0) as handle:
        handle.write(b"first\r\nsec")
        collector.wait_count(path, 1)
        handle.write(b"ond\nthi")
        collector.wait_count(path, 2)
        handle.write(b"rd\n" + b"".join(line + b"\n" for line in numbered("x", 0, 5000)) + b"unfinished")
    tailer.stop()  # no waiting: stop() itself reads everything written so far
    assert collector.lines[path] == [b"first", b"second", b"third", *numbered("x", 0, 5000)]


def test_file_that_does_not_exist_yet_is_read_from_its_start(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer]) -> None:
    path = tmp_path / "later" / "app.log"
    tailer = make_tailer()
    tailer.add_file(path)
    tailer.start()
    path.parent.mkdir()
    append(path, numbered("l", 0, 50))
    collector.wait_count(path, 50)
    tailer.stop()
    assert collector.lines[path] == numbered("l", 0, 50)


# --------------------------------------------------------------------------------- rotations


class Writer(threading.Thread):
    """An application logging numbered lines through its own file handle, as a daemon does.
    `rotate` runs between two lines while the writer is paused, and may replace the handle."""

    def __init__(self, path: Path, total: int, every: int,
                 rotate: Callable[[int, Writer], None]) -> None:
        super().__init__()
        self.path = path
        self.total = total
        self.every = every
        self.rotate = rotate
        self.handle = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in run()
        self.lines = numbered("w", 0, total)
        self.next = 0

    def run(self) -> None:
        try:
            while self.next < self.total:
                if self.next and self.next % self.every == 0:
                    self.rotate(self.next // self.every, self)
                self.write_next()
                if self.next % 500 == 0:
                    time.sleep(0.002)  # let the tailer see the file in many states
        finally:
            self.handle.close()

    def write_next(self) -> None:
        self.handle.write(self.lines[self.next] + b"\n")
        self.next += 1

    def reopen(self) -> None:
        self.handle.close()
        self.handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in run()


def test_rename_and_create_rotation_reads_old_file_to_its_end_first(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer], observer: bool) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"")

    def rotate(n: int, writer: Writer) -> None:
        # Rotate while the tailer is still behind, but not by a whole rotation period: two
        # rotations between two looks are a separate test.
        collector.wait_count(path, writer.next - writer.every // 2)
        os.rename(path, tmp_path / f"app.log.{n}")
        # Like a daemon before its SIGHUP: a few more lines go to the renamed file ...
        for _ in range(3):
            writer.write_next()
        writer.reopen()  # ... then it creates the new file and continues there

    tailer = make_tailer(polling=observer)
    tailer.add_file(path)
    tailer.start()
    writer = Writer(path, 20_000, 4_000, rotate)
    writer.start()
    writer.join()
    collector.wait_count(path, 20_000)
    tailer.stop()
    assert collector.lines[path] == numbered("w", 0, 20_000)
    assert collector.events(path) == [TailEvent.OPENED] + [TailEvent.ROTATED] * 4
    on_disk = [line for n in range(1, 5) for _, line in iter_lines(tmp_path / f"app.log.{n}")]
    assert on_disk + [line for _, line in iter_lines(path)] == numbered("w", 0, 20_000)


def test_old_file_keeps_growing_after_the_rename_until_the_writer_reopens(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer]) -> None:
    path = tmp_path / "daemon.log"
    path.write_bytes(b"")
    tailer = make_tailer()
    tailer.add_file(path)
    tailer.start()
    handle = open(path, "ab", buffering=0)  # noqa: SIM115
    try:
        handle.write(b"a1\n")
        collector.wait_count(path, 1)
        os.rename(path, tmp_path / "daemon.log.1")
        path.write_bytes(b"")  # logrotate's `create`: the new file exists before the daemon uses it
        handle.write(b"a2\n")
        collector.wait_count(path, 2)  # still read from the renamed file
        handle.write(b"a3\n")
    finally:
        handle.close()
    append(path, [b"b1", b"b2"])  # the daemon reopened after its signal
    collector.wait_count(path, 5)
    tailer.stop()
    assert collector.lines[path] == [b"a1", b"a2", b"a3", b"b1", b"b2"]
    ids = [batch.file_id for batch in collector.batches if batch.lines]
    assert len(set(ids)) == 2 and ids == sorted(ids, key=ids.index)


class GatedCollector(Collector):
    """A consumer that can hold the worker inside the callback, so a test can change the files
    while the tailer is certainly not looking: rotations 'between two looks', deterministically."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.blocked = threading.Event()

    def __call__(self, batch: LineBatch) -> None:
        if not self.gate.is_set():
            self.blocked.set()
            self.gate.wait()
        super().__call__(batch)

    def hold(self, trigger: Callable[[], None]) -> None:
        """Close the gate, cause a batch with `trigger`, return once the worker waits in it."""
        self.blocked.clear()
        self.gate.clear()
        trigger()
        assert self.blocked.wait(WAIT), "the worker never reached the gate"


@pytest.fixture
def gated() -> Iterator[GatedCollector]:
    collector = GatedCollector()
    yield collector
    collector.gate.set()


def test_two_renames_before_the_tailer_looks_lose_nothing(tmp_path: Path, gated: GatedCollector) -> None:
    """The log is rotated twice while the worker is held; the file that held the name only in
    between is found through inotify's rename events. Whether that event reaches the worker
    before it looks at the name again is a race, so only completeness, uniqueness and each
    file's own order are promised here."""
    path = tmp_path / "fast.log"
    append(path, [b"a1"])
    tailer = Tailer(gated, from_beginning=True)
    tailer.add_file(path)
    tailer.start()
    try:
        gated.wait_count(path, 1)
        gated.hold(lambda: append(path, [b"a2"]))
        os.rename(path, tmp_path / "fast.log.1")
        append(path, [b"b1", b"b2"])
        os.rename(path, tmp_path / "fast.log.2")
        append(path, [b"c1"])
        gated.gate.set()
        gated.wait_count(path, 5)
    finally:
        gated.gate.set()
        tailer.stop()
    got = gated.lines[path]
    assert sorted(got) == [b"a1", b"a2", b"b1", b"b2", b"c1"]
    assert got[:2] == [b"a1", b"a2"] and got.index(b"b1") < got.index(b"b2")


@pytest.mark.parametrize("refill", [50, 5000], ids=["refilled-less", "refilled-beyond-our-offset"])
def test_copytruncate_while_the_tailer_is_behind_reads_the_rest_from_the_copy(
        tmp_path: Path, gated: GatedCollector, refill: int) -> None:
    """Lines appended before the truncation that the tailer had not read yet are only in the
    copy; and a file refilled past our old position must still be seen as truncated."""
    path = tmp_path / "ct.log"
    copy = tmp_path / "ct.log.1"
    append(path, numbered("a", 0, 100))
    tailer = Tailer(gated, from_beginning=True)
    tailer.add_file(path)
    tailer.start()
    try:
        gated.wait_count(path, 100)
        gated.hold(lambda: append(path, numbered("a", 100, 1)))
        append(path, numbered("a", 101, 99))  # unread when the truncation comes
        with open(path, "ab") as handle:
            handle.write(b"a half line that the copy completes")
        shutil.copyfile(path, copy)
        os.truncate(path, 0)
        append(path, numbered("c", 0, refill))
        gated.gate.set()
        gated.wait_count(path, 201 + refill)
    finally:
        gated.gate.set()
        tailer.stop()
    assert gated.lines[path] == [*numbered("a", 0, 200), b"a half line that the copy completes",
                                 *numbered("c", 0, refill)]
    assert gated.events(path) == [TailEvent.OPENED, TailEvent.TRUNCATED]
    copy_id = (copy.stat().st_dev, copy.stat().st_ino)
    assert any(batch.file_id == copy_id and batch.lines for batch in gated.batches)


def test_truncation_without_a_copy_starts_over_without_duplicates(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer]) -> None:
    path = tmp_path / "cut.log"
    append(path, numbered("a", 0, 10))
    tailer = make_tailer(from_beginning=True)
    tailer.add_file(path)
    tailer.start()
    collector.wait_count(path, 10)
    os.truncate(path, 0)
    append(path, numbered("b", 0, 5))
    collector.wait_count(path, 15)
    tailer.stop()
    assert collector.lines[path] == numbered("a", 0, 10) + numbered("b", 0, 5)
    assert collector.events(path) == [TailEvent.OPENED, TailEvent.TRUNCATED]
    assert [offset for batch in collector.batches for offset, _ in batch.lines][10:] == [i * 15 for i in range(5)]


class OpeningCollector(Collector):
    """Opens each batch's `reader` while the callback runs, as a consumer reading lines back does."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[tuple[tuple[int, int], tuple[int, int]]] = []

    def __call__(self, batch: LineBatch) -> None:
        fd = os.open(batch.reader, os.O_RDONLY)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        with self.cond:
            self.opened.append((batch.file_id, (st.st_dev, st.st_ino)))
        super().__call__(batch)


def test_copytruncate_of_a_file_read_to_its_end_says_where_its_lines_are_now(tmp_path: Path) -> None:
    """The copy holds the lines read before the cut and nothing more: a batch of no lines from the
    copy says so (a consumer reads those lines back from the copy, not the truncated file), and
    every batch's reader opens the very file it names, the copy too."""
    path = tmp_path / "ct.log"
    copy = tmp_path / "ct.log.1"
    append(path, numbered("a", 0, 10))
    collector = OpeningCollector()
    tailer = Tailer(collector, poll_interval=0.25, from_beginning=True)
    try:
        tailer.start()
        tailer.add_file(path)
        collector.wait_count(path, 10)
        shutil.copyfile(path, copy)
        os.truncate(path, 0)
        append(path, numbered("b", 0, 5))
        collector.wait_count(path, 15)
    finally:
        tailer.stop()
    copy_id = (copy.stat().st_dev, copy.stat().st_ino)
    path_id = (path.stat().st_dev, path.stat().st_ino)
    told = [(b.file_id, b.event, b.lines) for b in collector.batches]
    assert (copy_id, None, []) in told
    assert [file_id for file_id, _, _ in told if file_id != path_id] == [copy_id]
    assert all(named == opened for named, opened in collector.opened)
    assert collector.lines[path] == numbered("a", 0, 10) + numbered("b", 0, 5)


def test_copytruncate_while_the_writer_keeps_appending(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer], observer: bool) -> None:
    path = tmp_path / "ct.log"
    path.write_bytes(b"")

    def rotate(n: int, writer: Writer) -> None:
        # logrotate copytruncate: copy, then cut the file the writer keeps open (O_APPEND).
        collector.wait_count(path, writer.next - writer.every // 2)
        shutil.copyfile(path, tmp_path / f"ct.log.{n}")
        os.truncate(path, 0)

    tailer = make_tailer(polling=observer)
    tailer.add_file(path)
    tailer.start()
    writer = Writer(path, 20_000, 4_000, rotate)
    writer.start()
    writer.join()
    collector.wait_count(path, 20_000)
    tailer.stop()
    assert collector.lines[path] == numbered("w", 0, 20_000)
    assert collector.events(path).count(TailEvent.TRUNCATED) == 4


def test_delete_and_recreate(tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer],
                             observer: bool) -> None:
    path = tmp_path / "gone.log"
    path.write_bytes(b"")
    tailer = make_tailer(polling=observer)
    tailer.add_file(path)
    tailer.start()
    expected: list[bytes] = []
    for round_ in range(4):
        lines = numbered(f"r{round_}", 0, 2000)
        expected += lines
        append(path, lines[:1000])
        # Once the tailer holds the file open, deleting it loses nothing: the open descriptor
        # keeps the bytes (the second half is written just before the delete, unread yet).
        # A file created and deleted between two looks is gone for every reader.
        collector.wait_count(path, len(expected) - 1000)
        append(path, lines[1000:])
        path.unlink()
    path.write_bytes(b"last\n")
    expected.append(b"last")
    collector.wait_count(path, len(expected))
    tailer.stop()
    assert collector.lines[path] == expected
    assert collector.events(path).count(TailEvent.ROTATED) == 4


# ----------------------------------------------------------------------------------- folders


def test_folder_picks_up_new_matching_files_only(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer], observer: bool) -> None:
    existing = tmp_path / "existing.log"
    append(existing, numbered("old", 0, 10))
    tailer = make_tailer(polling=observer)
    tailer.add_folder(tmp_path, "*.log")
    tailer.start()
    collector.wait(lambda: TailEvent.OPENED in collector.events(existing), "existing.log opened")
    append(existing, numbered("e", 0, 5))
    names = ["a.log", "b.log", "c.txt"]
    for name in names:
        append(tmp_path / name, numbered(name, 0, 3000))
    for name in ("a.log", "b.log"):
        collector.wait_count(tmp_path / name, 3000)
    collector.wait_count(existing, 5)
    tailer.stop()
    assert collector.lines[existing] == numbered("e", 0, 5)
    for name in ("a.log", "b.log"):
        assert collector.lines[tmp_path / name] == numbered(name, 0, 3000)
    assert tmp_path / "c.txt" not in collector.lines


def test_folder_rotation_with_a_pattern_that_matches_the_rotated_name(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer]) -> None:
    path = tmp_path / "svc.log"
    append(path, numbered("a", 0, 100))
    tailer = make_tailer(from_beginning=True)
    tailer.add_folder(tmp_path, "svc*")
    tailer.start()
    collector.wait_count(path, 100)
    os.rename(path, tmp_path / "svc.1.log")  # matches the pattern too: it must not be read again
    append(path, numbered("b", 0, 100))
    collector.wait_count(path, 200)
    tailer.stop()
    assert collector.lines[path] == numbered("a", 0, 100) + numbered("b", 0, 100)
    assert tmp_path / "svc.1.log" not in collector.lines


def _ends_with(collector: Collector, path: Path, last: list[bytes]) -> bool:
    return collector.lines[path][-len(last):] == last


def test_folder_copytruncate_copy_under_a_matching_name_is_not_a_new_log(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer], observer: bool) -> None:
    """Issue 16: `mosquitto-1.log` made by copytruncate in a folder watched for `*.log` was read as
    a new log (6,402 duplicate events). Its first bytes are those of the log we read: a copy."""
    path = tmp_path / "mosquitto.log"
    append(path, numbered("a", 0, 500))
    tailer = make_tailer(polling=observer)
    tailer.add_folder(tmp_path, "*.log")
    tailer.start()
    collector.wait(lambda: TailEvent.OPENED in collector.events(path), "mosquitto.log opened")
    append(path, numbered("b", 0, 500))
    collector.wait_count(path, 500)
    for n in (1, 2):
        append(path, numbered(f"c{n}", 0, 100))  # perhaps unread at the cut: the copy has them
        shutil.copyfile(path, tmp_path / f"mosquitto-{n}.log")
        os.truncate(path, 0)
        append(path, numbered(f"d{n}", 0, 300))
        collector.wait(partial(_ends_with, collector, path, numbered(f"d{n}", 299, 1)), f"round {n}")
    time.sleep(0.6)  # two more passes: a late discovery of the copies would show now
    tailer.stop()
    expected = [*numbered("b", 0, 500), *numbered("c1", 0, 100), *numbered("d1", 0, 300),
                *numbered("c2", 0, 100), *numbered("d2", 0, 300)]
    assert collector.lines[path] == expected
    assert {p.name for p in collector.lines} == {"mosquitto.log"}


def test_folder_rename_to_a_matching_name_is_not_read_again_even_when_it_grew(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer]) -> None:
    path = tmp_path / "mosquitto.log"
    append(path, numbered("a", 0, 100))
    tailer = make_tailer(from_beginning=True)
    tailer.add_folder(tmp_path, "*.log")
    tailer.start()
    collector.wait_count(path, 100)
    with open(path, "ab") as old:  # the writer holds the old file open across the rename
        os.rename(path, tmp_path / "mosquitto-1.log")
        append(path, numbered("b", 0, 100))
        collector.wait_count(path, 200)
        old.write(b"late line for the old file\n")
    time.sleep(0.6)
    tailer.stop()
    assert tmp_path / "mosquitto-1.log" not in collector.lines
    assert collector.lines[path][:200] == numbered("a", 0, 100) + numbered("b", 0, 100)


def test_folder_ignores_compressed_rotations_that_match_the_pattern(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer]) -> None:
    tailer = make_tailer()
    tailer.add_folder(tmp_path, "broker*")
    tailer.start()
    (tmp_path / "broker.log.2.gz").write_bytes(gzip.compress(b"old\n" * 100))
    append(tmp_path / "broker.log", [b"live"])
    collector.wait_count(tmp_path / "broker.log", 1)
    tailer.stop()
    assert list(collector.lines) == [tmp_path / "broker.log"]


def test_crlf_and_overlong_lines_are_split_as_in_batch_reading(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer]) -> None:
    path = tmp_path / "win.log"
    path.write_bytes(b"")
    tailer = make_tailer(max_line=100)
    tailer.add_file(path)
    tailer.start()
    with open(path, "ab", buffering=0) as handle:
        handle.write(b"a\r\n" + b"x" * 150)
        collector.wait_count(path, 2)  # the head of the long line goes out before its newline
        handle.write(b"x" * 150 + b"\r\nb\r\n")
    collector.wait_count(path, 3)
    tailer.stop()
    assert collector.lines[path] == [b"a", b"x" * 100 + TRUNCATION_MARK, b"b"]
    assert [offset for batch in collector.batches for offset, _ in batch.lines] == [0, 3, 305]


def test_files_added_while_running_and_multiple_files_stay_separate(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer]) -> None:
    one, two = tmp_path / "one.log", tmp_path / "two.log"
    append(one, [b"old"])
    tailer = make_tailer()
    tailer.add_file(one)
    tailer.start()
    append(two, [b"before it was added"])
    tailer.add_file(two)
    collector.wait(lambda: TailEvent.OPENED in collector.events(two), "two.log opened")
    append(one, numbered("1", 0, 500))
    append(two, numbered("2", 0, 500))
    collector.wait_count(one, 500)
    collector.wait_count(two, 500)
    tailer.stop()
    assert collector.lines[one] == numbered("1", 0, 500)
    assert collector.lines[two] == numbered("2", 0, 500)


# ------------------------------------------------------------------------------ robustness


def test_a_failing_callback_is_raised_by_stop(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    append(path, [b"boom"])
    seen = threading.Event()

    def callback(batch: LineBatch) -> None:
        if batch.lines:
            seen.set()
            raise ValueError("consumer bug")

    tailer = Tailer(callback, from_beginning=True)
    tailer.add_file(path)
    tailer.start()
    assert seen.wait(WAIT)
    with pytest.raises(ValueError, match="consumer bug"):
        tailer.stop()


def test_start_and_stop_are_safe_to_repeat_and_race(tmp_path: Path, collector: Collector) -> None:
    path = tmp_path / "s.log"
    append(path, [b"x"])
    tailer = Tailer(collector, from_beginning=True)
    tailer.add_file(path)
    threads = [threading.Thread(target=tailer.start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stoppers = [threading.Thread(target=tailer.stop) for _ in range(4)]
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join()
    assert collector.lines[path] == [b"x"]
    with pytest.raises(RuntimeError):
        tailer.start()


def test_unreadable_file_is_reported_once_and_the_others_keep_flowing(
        tmp_path: Path, collector: Collector) -> None:
    broken = tmp_path / "loop.log"
    broken.symlink_to(broken)  # unreadable for root too: ELOOP
    good = tmp_path / "good.log"
    good.write_bytes(b"")
    errors: list[InputError] = []
    reported = threading.Event()

    def on_error(error: InputError) -> None:
        errors.append(error)
        reported.set()

    tailer = Tailer(collector, on_error=on_error, poll_interval=0.02)
    tailer.add_file(broken)
    tailer.add_file(good)
    tailer.start()
    assert reported.wait(WAIT)
    append(good, numbered("g", 0, 100))
    collector.wait_count(good, 100)
    # Many passes ran meanwhile (every 20 ms); the problem is still told only once.
    tailer.stop()
    assert len(errors) == 1 and str(broken) in str(errors[0])
    assert collector.lines[good] == numbered("g", 0, 100)


# ---------------------------------------------------------------------- a real mosquitto log


class Traffic(threading.Thread):
    """mosquitto_pub in a loop, so the broker writes connect/disconnect lines continuously."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.running = threading.Event()
        self.running.set()
        self.idle = threading.Event()
        self.done = threading.Event()
        self.sent = 0

    def run(self) -> None:
        while not self.done.is_set():
            if not self.running.is_set():
                self.idle.set()
                self.running.wait(0.05)
                continue
            self.idle.clear()
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-t", "t",
                            "-m", f"m{self.sent}", "-i", f"pub-{self.sent}"], check=True, timeout=10)
            self.sent += 1

    def pause(self) -> None:
        self.running.clear()
        assert self.idle.wait(WAIT)

    def wait_sent(self, count: int) -> None:
        deadline = time.monotonic() + WAIT
        while self.sent < count:
            assert time.monotonic() < deadline, "mosquitto_pub is not making progress"
            time.sleep(0.01)


def disk_lines(paths: list[Path]) -> list[bytes]:
    return [line for path in paths if path.exists() for _, line in iter_lines(path)]


BROKER_CONFIG = "listener {port0} 127.0.0.1\nallow_anonymous true\nlog_type all\n"


@pytest.mark.broker
def test_mosquitto_log_rotated_by_rename_and_sighup(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer],
        mosquitto_available: str) -> None:
    broker = Mosquitto(tmp_path, BROKER_CONFIG)
    log = broker.log_path
    rotated = [tmp_path / f"mosquitto.log.{n}" for n in (1, 2)]  # in the order they were made
    broker.start()
    traffic = Traffic(broker.port)
    try:
        tailer = make_tailer(from_beginning=True)
        tailer.add_file(log)
        tailer.start()
        traffic.start()
        for n, target in enumerate(rotated, start=1):
            traffic.wait_sent(8 * n)
            os.rename(log, target)  # the broker keeps writing to the renamed file ...
            traffic.wait_sent(8 * n + 3)
            broker.reopen_log()  # ... until SIGHUP makes it open a new one
        traffic.wait_sent(30)
    finally:
        traffic.done.set()
        traffic.join()
        broker.stop()
    expected = disk_lines([*rotated, log])
    collector.wait(lambda: collector.lines[log] == expected or len(collector.lines[log]) > len(expected),
                   "every line the broker wrote")
    tailer.stop()
    assert collector.lines[log] == expected
    assert len(expected) > 100 and any(b"pub-29" in line for line in expected)
    assert collector.events(log).count(TailEvent.ROTATED) == 2


@pytest.mark.broker
def test_mosquitto_log_rotated_by_copytruncate(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer],
        mosquitto_available: str) -> None:
    broker = Mosquitto(tmp_path, BROKER_CONFIG)
    log = broker.log_path
    copies = [tmp_path / f"mosquitto.log.{n}" for n in (1, 2)]
    broker.start()
    traffic = Traffic(broker.port)
    try:
        tailer = make_tailer(from_beginning=True)
        tailer.add_file(log)
        tailer.start()
        traffic.start()
        for n, copy in enumerate(copies, start=1):
            traffic.wait_sent(10 * n)
            # A line written between the copy and the cut exists nowhere (logrotate documents
            # it): hold the traffic and let the broker log the last disconnect first.
            traffic.pause()
            broker.wait_for_log(rf"Client pub-{traffic.sent - 1} disconnected", timeout=WAIT)
            shutil.copyfile(log, copy)
            os.truncate(log, 0)
            traffic.running.set()
        traffic.wait_sent(30)
    finally:
        traffic.done.set()
        traffic.join()
        broker.stop()
    expected = disk_lines([*copies, log])
    collector.wait(lambda: collector.lines[log] == expected or len(collector.lines[log]) > len(expected),
                   "every line the broker wrote")
    tailer.stop()
    assert collector.lines[log] == expected
    assert len(expected) > 100 and any(b"pub-29" in line for line in expected)
    assert collector.events(log).count(TailEvent.TRUNCATED) == 2


def test_the_portable_positional_read_matches_pread(tmp_path: Path) -> None:
    """Windows has no os.pread; the fallback must read the same bytes."""
    path = tmp_path / "p.log"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _pread_portable(fd, 4, 3) == os.pread(fd, 4, 3) == b"3456"
        assert _pread_portable(fd, 4, 8) == b"89" and _pread_portable(fd, 4, 20) == b""
    finally:
        os.close(fd)


def test_reading_and_tailing_never_import_a_ui() -> None:
    code = ("import sys, correlator.sources.lines, correlator.sources.tail; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'textual', 'fastapi', 'uvicorn'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_folder_followed_with_depth_follows_sub_folders_made_later(
        tmp_path: Path, collector: Collector, make_tailer: Callable[..., Tailer], observer: bool) -> None:
    """A bundle's host folder (and a folder inside it) made while the watch runs: its logs are
    read from their first line; a folder deeper than the depth is not followed."""
    tailer = make_tailer(polling=observer)
    tailer.add_folder(tmp_path, "*.log", depth=2)
    tailer.start()
    (tmp_path / "site-b" / "clients").mkdir(parents=True)
    (tmp_path / "site-b" / "clients" / "too" / "deep").mkdir(parents=True)
    near, far, deep = (tmp_path / "site-b" / "mosquitto.log", tmp_path / "site-b" / "clients" / "edge.log",
                       tmp_path / "site-b" / "clients" / "too" / "deep.log")
    for path in (near, far, deep):
        append(path, numbered(path.stem, 0, 3))
    collector.wait_count(near, 3)
    collector.wait_count(far, 3)
    append(far, numbered("more", 0, 2))
    collector.wait_count(far, 5)
    tailer.stop()
    assert collector.lines[near] == numbered("mosquitto", 0, 3)
    assert collector.lines[far] == numbered("edge", 0, 3) + numbered("more", 0, 2)
    assert deep not in collector.lines
