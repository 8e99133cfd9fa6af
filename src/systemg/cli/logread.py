"""One-shot reads of ``sysg logs`` with a ``Query``: a time range, a pattern, streams.

A service's history is its rotated backups oldest to newest (``.N`` … ``.1``) then the
active file; timestamps never decrease along it. Two ways through it:

* ``forward``: every kept line from the range's start, oldest first, lazily. In each file
  ``--since`` and ``--until`` are found by binary search (``logseek.py``), so a range near
  the end of a 1 GiB file reads the few blocks of the search and the range itself; the
  files wholly after ``--until`` are not opened.
* ``last_n``: the newest ``n`` kept lines, reading backwards from the end (or from where
  a ``Follower`` starts) in 64 KiB blocks, file after file, until ``n`` are found or the
  range's start is passed — so ``-n`` costs the lines it shows, whatever the file size.

``merge`` / ``merged_last_n`` interleave services by capture time; per service the file
order is kept (a line that does not parse sorts with the line before it).

Only complete lines are read: bytes after a file's last newline (a write in progress)
are left for the next read or the follower.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from systemg.cli.logfiles import Entry, LogLine, ServiceLogFile
from systemg.cli.logquery import Query
from systemg.cli.logseek import first_after, first_at_or_after

BLOCK = 64 * 1024
CHUNK = 1024 * 1024  # forward reads


@dataclass(frozen=True, slots=True)
class Held:
    """The active file as a follower holds it open: read it up to ``end`` only."""

    fd: int
    end: int


def history(log: ServiceLogFile) -> list[Path]:
    """The service's files oldest first: ``.N`` … ``.1``, then the active file."""
    return [*reversed(list(log.backups())), log.path]


def _complete_end(fd: int, size: int) -> int:
    """One past the last newline before ``size`` (0 if there is none)."""
    pos = size
    while pos > 0:
        step = min(BLOCK, pos)
        block = os.pread(fd, step, pos - step)
        nl = block.rfind(b"\n")
        if nl >= 0:
            return pos - step + nl + 1
        pos -= step
    return 0


def _bounds(fd: int, end: int, query: Query) -> tuple[int, int]:
    """``[start, stop)`` of the lines of ``query``'s range in ``fd``'s first ``end`` bytes."""

    def read_at(offset: int, length: int) -> bytes:
        return os.pread(fd, max(0, min(length, end - offset)), offset)

    start = first_at_or_after(read_at, end, query.since) if query.since else 0
    stop = first_after(read_at, end, query.until) if query.until else end
    return start, max(start, stop)


def _open(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # rotated away between listing and opening


def _parsed(log: ServiceLogFile, raw: bytes, query: Query) -> Entry | None:
    line = LogLine.parse(raw)
    if query.keeps(line.ts, line.stream, line.text):
        return Entry(log, line)
    return None


def _ranges(log: ServiceLogFile, query: Query) -> Iterator[tuple[int, int, int]]:
    """``(fd, start, stop)`` of the range in each file of ``log``'s history, oldest first;
    each fd is closed when the next is asked for. The files wholly after ``--until`` are
    not opened."""
    for path in history(log):
        fd = _open(path)
        if fd is None:
            continue
        try:
            end = _complete_end(fd, os.fstat(fd).st_size)
            start, stop = _bounds(fd, end, query)
            yield fd, start, stop
        finally:
            os.close(fd)
        if stop < end:
            return  # --until ends in this file: the newer ones are all after it


def _chunks(fd: int, start: int, stop: int) -> Iterator[bytes]:
    pos = start
    while pos < stop:
        chunk = os.pread(fd, min(CHUNK, stop - pos), pos)
        if not chunk:
            return
        pos += len(chunk)
        yield chunk


def forward(log: ServiceLogFile, query: Query) -> Iterator[Entry]:
    """Every line of ``log``'s history that ``query`` keeps, oldest first."""
    for fd, start, stop in _ranges(log, query):
        rest = b""
        for chunk in _chunks(fd, start, stop):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            for raw in data[: cut - 1].split(b"\n") if cut else ():
                entry = _parsed(log, raw, query)
                if entry is not None:
                    yield entry


def forward_bytes(log: ServiceLogFile, query: Query) -> Iterator[bytes]:
    """The stored bytes of ``log``'s history in ``query``'s time range, in chunks of whole
    lines: ``forward`` for a query with no pattern and no streams, printed as stored, at
    copy speed (no line is parsed; the range ends are where the searches put them)."""
    assert query.grep is None
    assert not query.streams
    for fd, start, stop in _ranges(log, query):
        yield from _chunks(fd, start, stop)


def _lines_backward(fd: int, start: int, stop: int) -> Iterator[bytes]:
    """The lines of ``[start, stop)`` (``stop`` a line end), newest first."""
    pos, rest = stop, b""
    while pos > start:
        step = min(BLOCK, pos - start)
        pos -= step
        data = os.pread(fd, step, pos) + rest
        lines = data.split(b"\n")
        # The first piece may be cut (its start is in the block before), unless at start.
        rest = lines[0] if pos > start else b""
        body = lines[1:] if pos > start else lines
        if body and body[-1] == b"":
            body = body[:-1]  # after the final newline
        yield from reversed(body)
        if pos == start and rest:
            yield rest


def last_n(log: ServiceLogFile, query: Query, n: int, held: Held | None = None) -> list[Entry]:
    """The newest ``n`` lines of ``log``'s history that ``query`` keeps, oldest first.

    With ``held``, the active file is the follower's open file up to where it starts, so
    a line appended (or a rotation) meanwhile is neither missed nor shown twice."""
    if n <= 0:
        return []
    found: list[Entry] = []
    files = list(reversed(history(log)))  # newest first
    for i, path in enumerate(files):
        own = held is not None and i == 0
        fd = held.fd if held is not None and own else _open(path)
        if fd is None:
            continue
        try:
            end = held.end if held is not None and own else os.fstat(fd).st_size
            end = _complete_end(fd, end)
            start, stop = _bounds(fd, end, query)
            for raw in _lines_backward(fd, start, stop):
                entry = _parsed(log, raw, query)
                if entry is not None:
                    found.append(entry)
                    if len(found) >= n:
                        return found[::-1]
        finally:
            if not own:
                os.close(fd)
        if start > 0:
            break  # --since starts in this file: the older ones are all before it
    return found[::-1]


def _keyed(entries: Iterable[Entry]) -> Iterator[tuple[str, Entry]]:
    last = ""
    for entry in entries:
        last = entry.line.ts or last
        yield last, entry


def merge(streams: Iterable[Iterable[Entry]]) -> Iterator[Entry]:
    """Interleave per-service streams (each in time order) by capture time, stably."""
    for _, entry in heapq.merge(*(_keyed(s) for s in streams), key=lambda pair: pair[0]):
        yield entry


def merged_last_n(
    logs: Iterable[ServiceLogFile],
    query: Query,
    n: int,
    held: dict[str, Held] | None = None,
) -> list[Entry]:
    """The newest ``n`` kept lines across ``logs``, merged by capture time."""
    if n <= 0:
        return []
    per = [last_n(log, query, n, (held or {}).get(log.label)) for log in logs]
    return list(merge(per))[-n:]
