"""``cli/logseek.py``: the binary search agrees with a linear scan on random files."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from systemg.cli import logseek
from systemg.cli.logseek import first_after, first_at_or_after


def stamp(i: int) -> bytes:
    """Time ``i`` milliseconds after 02:00 (monotone for the whole day)."""
    sec, ms = divmod(i, 1000)
    return b"2026-05-14T%02d:%02d:%02d.%06dZ" % (
        2 + sec // 3600,
        sec // 60 % 60,
        sec % 60,
        ms * 1000,
    )


def reader(data: bytes, reads: list[int] | None = None) -> logseek.ReadAt:
    def read_at(offset: int, length: int) -> bytes:
        if reads is not None:
            reads.append(length)
        return data[offset : offset + length]

    return read_at


# A file: non-decreasing timestamps, some lines not in the stored format (a traceback
# written by hand), lines of random length, maybe a last line without its newline.
line = st.tuples(
    st.integers(min_value=0, max_value=3),  # how far the time moves on
    st.booleans(),  # placeable?
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")),
)


def build(
    rows: list[tuple[int, bool, bytes]], partial: bytes
) -> tuple[bytes, list[tuple[int, int]]]:
    data, placed, t = b"", [], 0
    for step, ok, text in rows:
        t += step
        if ok:
            placed.append((len(data), t))
            data += stamp(t) + b" stdout " + text + b"\n"
        else:
            data += b"  at " + text + b"\n"
    return data + partial, placed


def linear(placed: list[tuple[int, int]], size: int, key: bytes, strict: bool) -> int:
    for start, t in placed:
        if stamp(t) > key or (not strict and stamp(t) == key):
            return start
    return size


@settings(max_examples=300, deadline=None)
@given(
    st.lists(line, max_size=80),
    st.sampled_from([b"", b"2026-05-14T03:00:00.000000Z stdout being writ", b"junk"]),
    st.integers(min_value=-1, max_value=250),
    st.sampled_from([7, 64, 4096]),
)
def test_search_matches_a_linear_scan(
    rows: list[tuple[int, bool, bytes]], partial: bytes, at: int, block: int
) -> None:
    data, placed = build(rows, partial)
    key = stamp(at).decode() if at >= 0 else "0000"
    original = logseek.BLOCK
    logseek.BLOCK = block  # small blocks: lines longer than a read
    try:
        got = first_at_or_after(reader(data), len(data), key)
        after = first_after(reader(data), len(data), key)
    finally:
        logseek.BLOCK = original
    assert got == linear(placed, len(data), key.encode(), strict=False)
    assert after == linear(placed, len(data), key.encode(), strict=True)
    assert got == len(data) or got == 0 or data[got - 1 : got] == b"\n"


def test_a_large_file_is_searched_in_few_small_reads() -> None:
    data = b"".join(stamp(i) + b" stdout %058d\n" % i for i in range(200_000))  # ~18 MB
    reads: list[int] = []
    key = stamp(199_990).decode()
    got = first_at_or_after(reader(data, reads), len(data), key)
    assert data[got:].startswith(stamp(199_990))
    assert len(reads) < 100
    assert sum(reads) < 100 * logseek.BLOCK


def test_empty_and_no_match() -> None:
    assert first_at_or_after(reader(b""), 0, stamp(1).decode()) == 0
    data = stamp(1) + b" stdout a\n"
    assert first_at_or_after(reader(data), len(data), stamp(2).decode()) == len(data)
    assert first_at_or_after(reader(data), len(data), stamp(0).decode()) == 0
    assert first_after(reader(data), len(data), stamp(1).decode()) == len(data)
