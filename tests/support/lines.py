"""Reading a child's stdout line by line with a deadline (no fixed sleeps)."""

from __future__ import annotations

import os
import select
import subprocess
import time


class LineReader:
    """Reads lines from a process's stdout with a deadline (no fixed sleeps)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buf = b""

    def lines(self, count: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while self.buf.count(b"\n") < count:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; got {self.buf!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 65536)
                assert chunk, f"EOF; got {self.buf!r}"
                self.buf += chunk
        *got, rest = self.buf.split(b"\n", count)
        self.buf = rest
        return [g.decode() for g in got]


def end(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` by its pid if it still runs, reap it and close its pipes."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
