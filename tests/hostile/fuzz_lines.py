"""Coverage-guided fuzzing of the line reader with atheris (libFuzzer): any bytes, split at any
points, through the UTF-16/32 sniffing and decoding, must give the same lines as splitting the
whole at once, and never raise.

    pip install atheris          # a wheel exists for CPython 3.11 on Linux x86_64
    python tests/hostile/fuzz_lines.py -runs=100000
"""

from __future__ import annotations

import io
import sys

import atheris

with atheris.instrument_imports():
    from correlator.sources.lines import LineSplitter, _Recoded, text_encoding


def split_whole(data: bytes) -> list[tuple[int, bytes]]:
    splitter = LineSplitter(max_line=64)
    return splitter.feed(data) + splitter.flush()


def test_one_input(blob: bytes) -> None:
    provider = atheris.FuzzedDataProvider(blob)
    cuts = sorted(provider.ConsumeIntListInRange(provider.ConsumeIntInRange(0, 8), 0, 256))
    data = provider.ConsumeBytes(provider.remaining_bytes())
    splitter = LineSplitter(max_line=64)
    pieces: list[tuple[int, bytes]] = []
    last = 0
    for cut in [*cuts, len(data)]:
        cut = min(cut, len(data))
        if cut >= last:
            pieces += splitter.feed(data[last:cut])
            last = cut
    pieces += splitter.flush()
    assert pieces == split_whole(data), (cuts, data)
    encoding = text_encoding(data)
    if encoding is not None:
        recoded = _Recoded(io.BytesIO(data), encoding)
        while recoded.read(7):
            pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
