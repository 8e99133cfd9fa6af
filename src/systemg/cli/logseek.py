"""Finding a time in a log file without reading it: binary search on byte offsets.

A service log is written in capture order, so its timestamps never decrease from one line
to the next (``docs/logs.md``, stored line format). ``first_at_or_after`` finds the start
of the first line whose timestamp is ``>= key`` in about ``log2(size / block)`` reads of
one block each — some 30 small reads for a 1 GiB file — instead of reading the file.

Pure: the file is a ``read_at(offset, length) -> bytes`` function and its size, so the
unit tests run it on random files in memory.

Invariants:

* The result is always a line start (0, or one past a newline) or ``size``.
* From an arbitrary probe offset the search re-synchronises to the next line start;
  a line that does not start with a stored timestamp is passed over (it cannot be placed,
  so it belongs with the line before it), as is a last line without its newline (being
  written). When no placeable line follows a probe, the probe counts as "at or after".
* It returns exactly what a linear scan would (the first placeable line with ``ts >=
  key``), given non-decreasing timestamps; the test checks it against one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

BLOCK = 4096
TS_LEN = 27
_TS = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ")

ReadAt = Callable[[int, int], bytes]


def _placed_from(read_at: ReadAt, size: int, pos: int) -> tuple[int, bytes] | None:
    """The first line starting at or after ``pos`` that carries a timestamp: its start
    and that timestamp; ``None`` when none does before ``size``."""
    if pos > 0:
        # Re-synchronise: the line start after the newline at or after pos - 1.
        nl = _find_newline(read_at, size, pos - 1)
        if nl < 0:
            return None
        pos = nl + 1
    while pos < size:
        head = read_at(pos, TS_LEN + 1)
        if _TS.fullmatch(head) and _find_newline(read_at, size, pos) >= 0:
            return pos, head[:TS_LEN]
        nl = _find_newline(read_at, size, pos)
        if nl < 0:
            return None
        pos = nl + 1
    return None


def _find_newline(read_at: ReadAt, size: int, pos: int) -> int:
    """Offset of the first newline at or after ``pos`` (before ``size``), or -1."""
    while pos < size:
        chunk = read_at(pos, min(BLOCK, size - pos))
        if not chunk:
            return -1
        i = chunk.find(b"\n")
        if i >= 0:
            return pos + i
        pos += len(chunk)
    return -1


def first_at_or_after(read_at: ReadAt, size: int, key: str) -> int:
    """Start of the first line with timestamp ``>= key`` (``size`` if there is none)."""
    target = key.encode()
    lo, hi = 0, size  # the answer's probe offset is in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        found = _placed_from(read_at, size, mid)
        if found is None or found[1] >= target:
            hi = mid
        else:
            lo = found[0] + 1  # every probe up to that line's start finds it (or earlier)
    found = _placed_from(read_at, size, lo)
    if found is None:
        return size
    return found[0]


def first_after(read_at: ReadAt, size: int, key: str) -> int:
    """Start of the first line with timestamp ``> key`` (``size`` if none): the end of an
    inclusive ``--until``. A key is at most 27 bytes, so "> key" is ">= key + one byte"
    for every stored timestamp (``Z`` sorts after every digit)."""
    return first_at_or_after(read_at, size, key + "\x7f")
