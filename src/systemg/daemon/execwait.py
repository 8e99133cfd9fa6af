"""A launch whose exec is not confirmed yet (``launch(..., confirm=False)``).

Performance (bench/README.md, "privileged spawn"): a service with privileges to apply is a
clone of the spawn helper that runs its ordered steps (cgroup, rlimits, nice, affinity,
capabilities, identity, ...) in Python and then execs, ~2 ms; the supervisor used to wait
for all of it on the child's fault pipe, one service at a time. Now the unit is ``starting``
with its pid at once (``Spawned(execed=False)``) and the fault pipe is watched on the loop
by an ``ExecWait``:

- EOF with no record: it reached exec (``on_exec``: the unit gets ``Execed``, from which its
  uptime and the 250 ms rule count).
- a ``(step, errno)`` record: the very ``SpawnError`` a waited-for spawn raised (``error``,
  and ``on_fault`` to journal it). The child exits 127 by itself; its exit is applied as
  ``SpawnFailed`` (``ProcessSide._on_exit``), so the unit fails — no restart, the same message
  — only once its process is gone and cleaned up.
- nothing within ``PRE_EXEC_TIMEOUT_S``: the child's group is killed, with ``error`` the
  stuck-spawn error; its exit fails the unit the same way.

The exit of a child settles its ``ExecWait`` first (``close``): the record is written before
the child exits, so an exit never hides a fault, and nothing of it outlives the process.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from systemg.errors import SpawnError
from systemg.spawn.fault import RECORD
from systemg.spawn.launcher import PRE_EXEC_TIMEOUT_S, Child, exec_result, stuck_error
from systemg.spawn.plan import SpawnPlan

if TYPE_CHECKING:
    from systemg.daemon.loop import Loop


class ExecWait:
    """Watches one child's fault pipe until it says how the exec went."""

    def __init__(
        self,
        loop: Loop,
        plan: SpawnPlan,
        child: Child,
        on_exec: Callable[[], None],
        on_fault: Callable[[SpawnError], None],
    ) -> None:
        self.loop = loop
        self.plan = plan
        self.pid = child.pid
        self.fd = child.exec_fd
        self.on_exec = on_exec
        self.on_fault = on_fault
        self.data = b""
        self.error: SpawnError | None = None
        self.done = False
        os.set_blocking(self.fd, False)
        loop.add_reader(self.fd, self.settle)
        self.timer = loop.call_later(PRE_EXEC_TIMEOUT_S, self._stuck)

    def settle(self) -> None:
        """Read what the pipe holds; finish at EOF or once a whole record is in."""
        while not self.done:
            try:
                chunk = os.read(self.fd, RECORD.size)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            self.data += chunk
            if not chunk or len(self.data) >= RECORD.size:
                self._finish(exec_result(self.plan, self.data))

    def close(self) -> None:
        """The process is gone: read what it wrote, and stop watching in any case (a copy
        of the write end held elsewhere must not keep the timer or the fd alive)."""
        self.settle()
        if not self.done:
            self._finish(None, quiet=True)

    def _stuck(self) -> None:
        if self.done:
            return
        for kill in (os.killpg, os.kill):  # it called setsid: pgid = pid; not reaped yet
            with contextlib.suppress(OSError):
                kill(self.pid, signal.SIGKILL)
        self._finish(stuck_error(self.plan))

    def _finish(self, error: SpawnError | None, *, quiet: bool = False) -> None:
        self.done = True
        self.timer.cancel()
        self.loop.remove(self.fd)
        os.close(self.fd)
        self.error = error
        if quiet:
            return
        if error is None:
            self.on_exec()
        else:
            self.on_fault(error)
