"""An append-only file that rotates between whole lines and never raises on a write.

Shared by the service logs (``logs.py``), ``supervisor.log`` (``journal.py``) and
``audit.log`` (``audit.py``), so all three rotate the same way: ``<file>.1`` is the newest
backup .. ``<file>.N`` the oldest. Callers hand ``write`` blocks of whole lines (each ending
in ``\\n``); the supervisor's single thread is the only caller.

Invariants:

* **Rotation never splits a line across files.** Before a write that would push a
  non-empty active file past ``max_bytes``, the block is cut at the last line boundary
  that still fits (``split=False``: not at all, the block is one record), the fitting
  lines are written, the file is rotated (``.k`` -> ``.k+1``, anything beyond
  ``.max_files`` deleted, active -> ``.1``, reopen; with ``max_files: 0`` the active file
  is simply deleted), and the rest continues in the fresh file. A single line larger than
  ``max_bytes`` is written whole into a fresh file, so only such a file can exceed
  ``max_bytes``. ``max_bytes <= 0`` disables rotation.
* **One ``os.write`` per block** (looping on short writes) unless it crosses a rotation
  boundary.
* **A failed write drops lines, never the caller.** ``write`` returns False instead of
  raising (disk full, EIO, a directory that vanished). What reached the file is kept only
  up to its last newline: a short write that stored part of a line is truncated back
  (``ftruncate``), so a file never holds a torn line, even when the disk fills mid-line.
  The lines that did not reach the file are counted in ``dropped`` (lines, bytes, the
  last error) until the next successful write, which is preceded — in the same write —
  by the owner's notice line ``notice(dropped)``; so a gap in a file is announced right
  where it is, with its size (``announced`` is that gap after the write that stored its
  notice; ``gaps`` counts gaps begun). ``write_errors`` counts failed writes,
  ``last_error`` keeps the last ``OSError``. A file that could not be (re)opened is
  retried on every write.
* **``shared=True``: other writers append too** (``supervisor.log`` is also the
  supervisor's stderr, where Python prints a fatal traceback): the size is re-read with
  ``fstat`` before each write instead of only being tracked, and ``on_open(fd)`` lets the
  owner point those writers at the fresh file after a rotation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Dropped:
    """What a file lost since its last successful write."""

    lines: int
    bytes: int
    error: OSError

    @property
    def reason(self) -> str:
        return self.error.strerror or str(self.error)


class RotatingFile:
    """``path`` opened for append (``O_APPEND``, close-on-exec), rotated at ``max_bytes``."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        max_files: int,
        mode: int = 0o600,
        group: int | None = None,
        shared: bool = False,
        notice: Callable[[Dropped], bytes] | None = None,
        on_open: Callable[[int], None] | None = None,
    ) -> None:
        """``group``: chown new files to it (``mode`` applies either way). ``notice``
        builds the line announcing a gap; without it gaps are only counted."""
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.mode = mode
        self.group = group
        self.shared = shared
        self.notice = notice
        self.on_open = on_open
        self.fd = -1
        self.size = 0
        self.write_errors = 0
        self.last_error: OSError | None = None
        self.dropped: Dropped | None = None
        self.announced: Dropped | None = None  # the gap whose notice the last write stored
        self.gaps = 0  # gaps started so far (a gap ends when its notice is stored)
        self._stored = 0  # offset in the current block up to which whole lines are stored
        self._torn = False  # a rollback ftruncate failed: retry it before the next write

    # --- public interface --------------------------------------------------------------
    def open(self) -> None:
        """Open (or create) the active file; raises ``OSError`` (the owner decides)."""
        fd = os.open(
            self.path,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOCTTY,
            self.mode,
        )
        try:
            if self.group is not None:
                os.fchown(fd, -1, self.group)
                os.fchmod(fd, self.mode)
            self.size = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        self.fd = fd
        if self.on_open is not None:
            self.on_open(fd)

    def write(self, block: bytes, *, split: bool = True) -> bool:
        """Append ``block`` (whole lines); True if all of it was stored. Never raises."""
        dropped = self.dropped
        head = self.notice(dropped) if dropped is not None and self.notice is not None else b""
        data = head + block if head else block
        self._stored = 0
        self.announced = None
        try:
            if self.fd < 0:  # never opened, or a rotation failed to reopen: try again
                self.open()
            if self._torn:
                # Never past the file's real end: it may have been emptied meanwhile
                # (`sysg logs --purge`), and growing it back would fill it with NULs.
                self.size = min(self.size, os.fstat(self.fd).st_size)
                os.ftruncate(self.fd, self.size)
                self._torn = False
            if self.shared:
                self.size = os.fstat(self.fd).st_size
            limit = self.max_bytes
            if limit > 0 and self.size + len(data) > limit:
                # About to rotate: first make sure the file really is that full (a purge
                # empties it behind our back; rotating then would be early). One fstat per
                # rotation, none per ordinary write.
                self.size = os.fstat(self.fd).st_size
            if limit <= 0 or self.size + len(data) <= limit:
                self._put(data, 0, len(data))
            elif split:
                self._write_rotating(data, limit)
            else:
                if self.size > 0:
                    self._rotate()
                self._put(data, 0, len(data))
        except OSError as exc:
            self._lost(data, len(head), exc)
            return False
        self.announced = dropped if head else None
        self.dropped = None
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # --- writing -------------------------------------------------------------------------
    def _write_rotating(self, data: bytes, limit: int) -> None:
        start = 0
        while start < len(data):
            room = limit - self.size
            if len(data) - start <= room:
                self._put(data, start, len(data))
                return
            # Largest run of whole lines that still fits in the active file.
            cut = data.rfind(b"\n", start, start + room) + 1 if room > 0 else 0
            if cut == 0:
                if self.size > 0:
                    self._rotate()
                    continue
                # Fresh file and the next line alone exceeds max_bytes: write it whole.
                cut = data.find(b"\n", start) + 1 or len(data)
            self._put(data, start, cut)
            start = cut
            if start < len(data):
                self._rotate()

    def _put(self, data: bytes, start: int, end: int) -> None:
        """Append ``data[start:end]``; on failure keep only its whole lines, then raise."""
        base = self.size
        pos = start
        view = memoryview(data)
        try:
            while pos < end:
                n = os.write(self.fd, view[pos:end])
                pos += n
                self.size += n
        except OSError:
            keep = data.rfind(b"\n", start, pos) + 1 if pos > start else 0
            keep = max(keep, start)
            if keep < pos:  # part of a line reached the file: cut it off again
                self.size = base + (keep - start)
                try:
                    os.ftruncate(self.fd, self.size)
                except OSError:
                    self._torn = True
            self._stored = keep
            raise
        self._stored = end

    def _lost(self, data: bytes, head: int, exc: OSError) -> None:
        """Count what of ``data`` (notice: its first ``head`` bytes) did not reach the file."""
        self.write_errors += 1
        self.last_error = exc
        stored = self._stored
        before = self.dropped
        if head and stored >= head:
            self.announced = before  # the notice itself got through: that gap is announced
            before = None
        start = max(stored, head)
        lines = data.count(b"\n", start)
        size = len(data) - start
        if before is not None:
            lines += before.lines
            size += before.bytes
        elif lines or size:
            self.gaps += 1
        self.dropped = Dropped(lines, size, exc) if lines or size else before

    # --- rotation ------------------------------------------------------------------------
    def _rotate(self) -> None:
        """Shift backups up by one, drop those beyond ``max_files``, reopen a fresh file."""
        keep = max(self.max_files, 0)
        self.close()
        self._drop_backups_beyond(keep)
        if keep == 0:
            _unlink(self.path)
        else:
            for k in range(keep - 1, 0, -1):
                src = self._backup(k)
                if src.exists():
                    os.replace(src, self._backup(k + 1))
            os.replace(self.path, self._backup(1))
        self.open()

    def _backup(self, k: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{k}")

    def _drop_backups_beyond(self, keep: int) -> None:
        # Also removes stale backups left by an earlier, larger max_files.
        pattern = re.compile(re.escape(self.path.name) + r"\.(\d+)")
        with os.scandir(self.path.parent) as entries:
            for entry in entries:
                match = pattern.fullmatch(entry.name)
                if match and int(match.group(1)) >= keep:
                    _unlink(Path(entry.path))


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
