"""A launch whose exec is not confirmed yet (``launch(..., confirm=False)``).

Performance (bench/README.md, "privileged spawn"): a service with privileges to apply is a
clone of the spawn helper that runs its ordered steps (cgroup, rlimits, nice, affinity,
capabilities, identity, ...) in Python and then execs, ~2 ms; the supervisor used to wait
for all of it on the child's fault pipe, one service at a time. Now the unit is ``starting``
with its pid at once, as after a ``posix_spawn``, and the fault pipe is watched on the loop:

- EOF with no record: it reached exec. Nothing changes, except that the 250 ms rule
  (``ReadyElapsed``) does not count a unit up before that: one that comes first is held and
  applied then (``Supervisor._apply_one``).
- a ``(step, errno)`` record: the very ``SpawnError`` a waited-for spawn raised, applied as
  ``SpawnFailed`` — the unit fails (no restart) with the same message and journal line. The
  child exits 127; its exit is cleaned up as any other and not applied.
- nothing within ``PRE_EXEC_TIMEOUT_S``: the child (its group) is killed and the unit fails
  as a stuck spawn did.

The exit of a child whose pipe was not read yet reads it first (``settle``, from
``ProcessSide._on_exit``): the record is written before the child exits, so an exit never
hides a fault. A unit asked to stop meanwhile ends as the stop says; its fault is journaled.
Cron jobs and ``isolation.pid`` services are still waited for (``processes._launch``).
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING

from systemg.daemon import lifecycle as lc
from systemg.daemon.phases import Phase
from systemg.errors import SpawnError
from systemg.spawn.fault import RECORD
from systemg.spawn.launcher import PRE_EXEC_TIMEOUT_S, Child, exec_result, stuck_error
from systemg.spawn.plan import SpawnPlan

if TYPE_CHECKING:
    from systemg.daemon.supervisor import Supervisor
    from systemg.daemon.units import Unit

_FAILS = frozenset({Phase.STARTING, Phase.RUNNING})  # a fault fails the unit from these


class ExecWait:
    """Watches one child's fault pipe until it says how the exec went."""

    def __init__(self, sup: Supervisor, unit: Unit, plan: SpawnPlan, child: Child) -> None:
        self.sup = sup
        self.unit = unit
        self.plan = plan
        self.pid = child.pid
        self.fd = child.exec_fd
        self.data = b""
        self.ready_due = False  # a ReadyElapsed came before the exec: applied after it
        self.done = False
        os.set_blocking(self.fd, False)
        sup.loop.add_reader(self.fd, self.settle)
        self.timer = sup.loop.call_later(PRE_EXEC_TIMEOUT_S, self._stuck)

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

    def _stuck(self) -> None:
        if self.done:
            return
        for kill in (os.killpg, os.kill):  # it called setsid: pgid = pid
            with contextlib.suppress(OSError):
                kill(self.pid, signal.SIGKILL)
        self._finish(stuck_error(self.plan))

    def _finish(self, error: SpawnError | None) -> None:
        self.done = True
        self.timer.cancel()
        self.sup.loop.remove(self.fd)
        os.close(self.fd)
        unit = self.unit
        if unit.exec_wait is self:
            unit.exec_wait = None
        ours = unit.state.pid == self.pid
        now = self.sup.clock()
        if error is None:
            if self.ready_due and ours:
                self.sup.apply(unit, lc.ReadyElapsed(now))
            return
        diagnostic = error.diagnostics[0]
        self.sup.journal.error(f"{unit.key}: [{error.code}] {diagnostic.message}")
        if ours and unit.state.phase in _FAILS:
            unit.error = diagnostic
            self.sup.apply(unit, lc.SpawnFailed(diagnostic.message, now))
