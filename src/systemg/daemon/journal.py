"""Supervisor events, one line each, on the supervisor's stderr (which is ``supervisor.log``).

Format: ``<UTC ISO-8601 µs>Z <LEVEL> <message>``. Writes are unbuffered and whole-line, so
a crash never leaves half a line, and ``tail -f supervisor.log`` shows events as they happen.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO


def utc_stamp(now: float) -> str:
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


class Journal:
    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.time):
        self._fd = (stream or sys.stderr).fileno()
        self._clock = clock

    def _emit(self, level: str, message: str) -> None:
        line = f"{utc_stamp(self._clock())} {level:<5} {message}\n"
        try:
            os.write(self._fd, line.encode("utf-8", "replace"))
        except OSError:
            pass

    def info(self, message: str) -> None:
        self._emit("INFO", message)

    def warn(self, message: str) -> None:
        self._emit("WARN", message)

    def error(self, message: str) -> None:
        self._emit("ERROR", message)
