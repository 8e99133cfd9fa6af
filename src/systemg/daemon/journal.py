"""Supervisor events, one line each, in ``supervisor.log`` (``<logs>/supervisor.log``).

Format: ``<UTC ISO-8601 µs>Z <LEVEL> <message>``. The journal owns the file: it opens it
for append itself and rotates it like a service log (``rotate.RotatingFile``: ``max_bytes``
10 MiB, ``max_files`` 5, ``.1``..``.N``). Each event is one unbuffered ``write``, and an
event is never split across two files, so a crash never leaves half a line and
``tail -f supervisor.log`` shows events as they happen.

A write that fails (the log disk is full) never reaches the caller: the lost lines are
counted, and the first event that can be written again is preceded by
``WARN  supervisor.log: N lines (B bytes) dropped: <reason>``.

**stderr.** What Python itself prints (a fatal traceback, a warning) goes to fd 2, not
through the journal. A daemonized supervisor (``spawn/detach.py``) has fd 2 on this same
file, so after each rotation the journal points fd 2 at the fresh file too (``dup2``):
a traceback lands in the current ``supervisor.log``, never in a deleted backup. (Those
writes can make a file exceed ``max_bytes`` by their size; the next event then rotates.)
When fd 2 is something else — ``sysg supervise`` run in a terminal or by systemd — it is
left alone, and events go to the file only: a terminal or pipe that stops reading must
never block the supervisor's one thread.

``Journal()`` without a path writes to a stream (default stderr), as a fallback for code
constructed without the supervisor's journal; nothing is counted there, but a line a full
disk cut short is still taken back (``ftruncate``) when the stream is a regular file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from systemg.daemon.rotate import Dropped, RotatingFile
from systemg.manifest.model import DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_FILES


def utc_stamp(now: float) -> str:
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


class Journal:
    def __init__(
        self,
        path: Path | None = None,
        *,
        max_bytes: int = DEFAULT_LOG_MAX_BYTES,
        max_files: int = DEFAULT_LOG_MAX_FILES,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._file: RotatingFile | None = None
        self._fd = -1
        self._stderr_here = False
        if path is None:
            self._fd = (stream or sys.stderr).fileno()
            return
        self._stderr_here = _same_file(2, path)
        self._file = RotatingFile(
            path,
            max_bytes=max_bytes,
            max_files=max_files,
            shared=True,
            notice=self._notice,
            on_open=self._on_open,
        )
        with contextlib.suppress(OSError):
            self._file.open()  # if it fails, every event retries (and counts the loss)

    @property
    def dropped(self) -> Dropped | None:
        """Events lost since the last one that could be written."""
        return None if self._file is None else self._file.dropped

    def _line(self, level: str, message: str) -> bytes:
        return f"{utc_stamp(self._clock())} {level:<5} {message}\n".encode("utf-8", "replace")

    def _emit(self, level: str, message: str) -> None:
        line = self._line(level, message)
        if self._file is not None:
            self._file.write(line, split=False)
            return
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            if len(view) < len(line):  # a full disk took part of the line: take it back
                with contextlib.suppress(OSError):
                    st = os.fstat(self._fd)
                    if stat.S_ISREG(st.st_mode):
                        os.ftruncate(self._fd, st.st_size - (len(line) - len(view)))

    def _notice(self, dropped: Dropped) -> bytes:
        name = self._file.path.name if self._file is not None else "journal"
        return self._line(
            "WARN",
            f"{name}: {dropped.lines} lines ({dropped.bytes} bytes) dropped: {dropped.reason}",
        )

    def _on_open(self, fd: int) -> None:
        if self._stderr_here:
            with contextlib.suppress(OSError):
                os.dup2(fd, 2)

    def info(self, message: str) -> None:
        self._emit("INFO", message)

    def warn(self, message: str) -> None:
        self._emit("WARN", message)

    def error(self, message: str) -> None:
        self._emit("ERROR", message)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
