"""The shared line splitter: every byte of input is accounted for, offsets point at the line in the
(decompressed) file, and the result does not depend on how the input was chunked."""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.errors import InputError
from correlator.sources.lines import (
    TRUNCATION_MARK,
    LineSplitter,
    compression_of,
    iter_chunks,
    iter_lines,
    open_log,
    read_chunks,
)


def reference(data: bytes, *, flush: bool = True) -> list[tuple[int, bytes]]:
    """The obvious, slow definition the fast splitter must agree with (no truncation)."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    pieces = data.split(b"\n")
    last = pieces.pop()
    for piece in pieces:
        out.append((offset, piece[:-1] if piece.endswith(b"\r") else piece))
        offset += len(piece) + 1
    if flush and last:
        out.append((offset, last[:-1] if last.endswith(b"\r") else last))
    return out


def feed_in_pieces(data: bytes, sizes: list[int], *, max_line: int = 1 << 20,
                   flush: bool = True) -> list[tuple[int, bytes]]:
    splitter = LineSplitter(max_line=max_line)
    out: list[tuple[int, bytes]] = []
    pos = 0
    for size in sizes:
        out += splitter.feed(data[pos:pos + size])
        pos += size
    out += splitter.feed(data[pos:])
    if flush:
        out += splitter.flush()
    return out


def test_plain_lines_with_offsets(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"one\ntwo\n\nfour\n")
    assert list(iter_lines(path)) == [(0, b"one"), (4, b"two"), (8, b""), (9, b"four")]


def test_crlf_is_stripped_but_a_lone_cr_inside_a_line_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "win.log"
    path.write_bytes(b"a\r\nb\rc\r\nlast\r")
    assert list(iter_lines(path)) == [(0, b"a"), (3, b"b\rc"), (8, b"last")]


def test_crlf_split_between_two_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"abc\r") == []
    assert splitter.feed(b"\ndef\r\n") == [(0, b"abc"), (5, b"def")]


def test_partial_last_line_is_held_back_until_its_newline() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"first\nsec") == [(0, b"first")]
    assert splitter.pending == 3 and splitter.line_start == 6
    assert splitter.feed(b"ond") == []
    assert splitter.feed(b"\nthird") == [(6, b"second")]
    assert splitter.line_start == 13
    assert splitter.flush() == [(13, b"third")]
    assert splitter.flush() == []


def test_partial_last_line_in_batch_mode_depends_on_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "cut.log"
    path.write_bytes(b"whole\nhalf a li")
    assert list(iter_lines(path)) == [(0, b"whole"), (6, b"half a li")]
    assert list(iter_lines(path, flush=False)) == [(0, b"whole")]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")
    assert list(iter_lines(path)) == []
    assert list(iter_chunks(path)) == []


def test_bad_bytes_pass_through_untouched(tmp_path: Path) -> None:
    raw = [b"\xff\xfe invalid utf-8 \xc3", b"nul\x00inside", b"latin-1 caf\xe9", "ünïcode".encode()]
    path = tmp_path / "bad.log"
    path.write_bytes(b"\n".join(raw) + b"\n")
    assert [line for _, line in iter_lines(path)] == raw


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress],
                         ids=["gzip", "bzip2", "xz"])
def test_compressed_files_are_detected_by_magic_not_name(tmp_path: Path, compress: object) -> None:
    data = b"".join(b"%d: line number %d\r\n" % (i, i) for i in range(20_000))
    assert callable(compress)
    path = tmp_path / "rotated.log.1"  # no telling extension
    path.write_bytes(compress(data))
    assert list(iter_lines(path, chunk_size=4096)) == reference(data)
    with open_log(path) as stream:
        assert stream.read() == data


def test_compression_sniffing() -> None:
    assert compression_of(gzip.compress(b"x")) == "gzip"
    assert compression_of(bz2.compress(b"x")) == "bzip2"
    assert compression_of(lzma.compress(b"x")) == "xz"
    assert compression_of(b"BZh is how this plain line starts") is None
    assert compression_of(b"") is None


def test_gzip_with_two_members_reads_both(tmp_path: Path) -> None:
    path = tmp_path / "two.gz"
    path.write_bytes(gzip.compress(b"a\nb\n") + gzip.compress(b"c\n"))
    assert [line for _, line in iter_lines(path)] == [b"a", b"b", b"c"]


def test_cut_off_gzip_yields_the_lines_before_the_damage_then_names_the_file(tmp_path: Path) -> None:
    data = b"".join(b"line %06d\n" % i for i in range(50_000))
    path = tmp_path / "cut.log.gz"
    blob = gzip.compress(data)
    path.write_bytes(blob[: len(blob) // 2])
    got: list[tuple[int, bytes]] = []
    with pytest.raises(InputError) as raised:
        for chunk in iter_chunks(path, chunk_size=8192):
            got.extend(chunk)
    assert str(path) in str(raised.value)
    assert got, "lines before the damage are delivered"
    expected = reference(data)
    # Whole lines up to the damage; the last one may be the fragment that was readable.
    assert got[:-1] == expected[: len(got) - 1]
    assert got[-1][0] == expected[len(got) - 1][0]
    assert expected[len(got) - 1][1].startswith(got[-1][1])


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.log"):
        list(iter_lines(tmp_path / "nope.log"))


def test_long_line_is_cut_and_the_following_lines_survive(tmp_path: Path) -> None:
    long = b"x" * 5000
    data = b"before\n" + long + b"\nafter\n" + long + b"\r\nend"
    path = tmp_path / "long.log"
    path.write_bytes(data)
    for chunk_size in (7, 100, 1000, 4096, 1 << 20):
        got = list(iter_lines(path, max_line=1000, chunk_size=chunk_size))
        assert got == [
            (0, b"before"),
            (7, b"x" * 1000 + TRUNCATION_MARK),
            (5008, b"after"),
            (5014, b"x" * 1000 + TRUNCATION_MARK),
            (10016, b"end"),
        ], chunk_size


def test_long_line_memory_is_bounded_while_its_newline_has_not_arrived() -> None:
    splitter = LineSplitter(max_line=100)
    out = splitter.feed(b"y" * 60)
    out += splitter.feed(b"y" * 60)  # now past the cap: the head goes out, the rest is skipped
    assert out == [(0, b"y" * 100 + TRUNCATION_MARK)]
    assert splitter.pending == 0
    for _ in range(100):
        assert splitter.feed(b"y" * 1000) == []
        assert splitter.pending == 0
    assert splitter.feed(b"yy\nnext\n") == [(100_123, b"next")]
    assert splitter.truncated == 1


def test_a_line_exactly_at_the_cap_is_kept_whole() -> None:
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"0123456789\n0123456789A\n") == [
        (0, b"0123456789"), (11, b"0123456789" + TRUNCATION_MARK)]


def test_chunked_api_gives_lists_in_file_order(tmp_path: Path) -> None:
    data = b"".join(b"%d\n" % i for i in range(100_000))
    path = tmp_path / "many.log"
    path.write_bytes(data)
    chunks = list(iter_chunks(path, chunk_size=65536))
    assert len(chunks) > 1 and all(chunks)
    assert [line for chunk in chunks for line in chunk] == reference(data)


def test_read_chunks_continues_from_an_offset(tmp_path: Path) -> None:
    path = tmp_path / "resume.log"
    path.write_bytes(b"aaa\nbbb\nccc\n")
    with open(path, "rb") as stream:
        stream.seek(4)
        got = [line for chunk in read_chunks(stream, offset=4) for line in chunk]
    assert got == [(4, b"bbb"), (8, b"ccc")]


def test_random_chunking_agrees_with_the_reference() -> None:
    rng = random.Random(7)
    words = [b"", b"a", b"bb\r", b"\r", b"ccc" * 20, b"\xff\x00", b"d\re"]
    data = b"\n".join(rng.choice(words) for _ in range(3000))
    for _ in range(50):
        sizes = [rng.randint(1, 80) for _ in range(rng.randint(0, 400))]
        assert feed_in_pieces(data, sizes) == reference(data)
        assert feed_in_pieces(data, sizes, flush=False) == reference(data, flush=False)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400).map(lambda b: b.replace(b"Q", b"\n").replace(b"R", b"\r")),
       sizes=st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_any_chunking_agrees_with_the_reference(data: bytes, sizes: list[int]) -> None:
    assert feed_in_pieces(data, sizes) == reference(data)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600).map(lambda b: b.replace(b"Q", b"\n")),
       sizes=st.lists(st.integers(min_value=1, max_value=70), max_size=30))
def test_capped_lines_never_lose_the_following_lines(data: bytes, sizes: list[int]) -> None:
    expected = []
    for offset, line in reference(data):
        expected.append((offset, line if len(line) <= 16 else line[:16] + TRUNCATION_MARK))
    assert feed_in_pieces(data, sizes, max_line=16) == expected
