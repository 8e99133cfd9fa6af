"""Progress of one start/stop/restart request, streamed to its client as coalesced events.

A request sent with ``progress: true`` gets ``{"kind": "progress", ...}`` event lines
before its reply (``protocol.messages``): how many of its units are done, the last few
phase changes and the first few units still pending (a waiting one names the dependencies
it waits for). The CLI draws them as one line rewritten in place (``cli/progress.py``).

Cheap by construction, on the supervisor's one thread: a phase change only records what
changed and arms one timer; the event is built when the timer fires, at most once per
``INTERVAL_S`` whatever the number of changes in between (a start of 100 services sends a
handful of events, not 100 or one per millisecond), each carrying at most ``MAX_ITEMS``
names. The feed ends with the request (``close``) or when the client goes away.

What "done" means per verb (``is_done``, pure): ``start``: the unit settled (up, failed,
blocked, ...); ``stop``: no process left; ``restart``: settled and not left down by this
restart (a unit stopped to be started again is pending until it is). A restart counts only
the units it touched (seen stopping or starting since the request came).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from systemg.daemon.phases import ALIVE, SETTLED, TRANSITIONAL, Phase

if TYPE_CHECKING:
    from systemg.daemon.loop import Timer
    from systemg.daemon.operations import Operations
    from systemg.daemon.supervisor import Unit

INTERVAL_S = 0.1
MAX_ITEMS = 3
VERBS = ("start", "stop", "restart")


def is_done(verb: str, phase: Phase, *, left_down: bool = False) -> bool:
    """Has a unit in ``phase`` finished its part of a ``verb`` request?"""
    if verb == "stop":
        return phase not in ALIVE
    if verb == "restart" and left_down:
        return False
    return phase in SETTLED


class Feed:
    """Progress events of one request on ``send`` (a ``Responder.event``)."""

    def __init__(
        self,
        ops: Operations,
        verb: str,
        units: Callable[[], list[Unit]],
        send: Callable[[dict[str, Any]], None],
    ) -> None:
        self.ops, self.sup, self.verb = ops, ops.sup, verb
        self.units, self.send = units, send
        self.left_down: set[str] = set()  # restart: stopped by it, not started again yet
        self.touched: set[str] = set()  # restart: the units it changed
        self.recent: list[tuple[str, str]] = []  # (service, phase), newest last
        self.timer: Timer | None = None
        self.last_sent: float | None = None
        self.closed = False
        self.sup.phase_listeners.append(self._on_phase)
        self._arm()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self._on_phase in self.sup.phase_listeners:
            self.sup.phase_listeners.remove(self._on_phase)

    def _on_phase(self, unit: Unit, before: Phase) -> None:
        phase = unit.state.phase
        if self.verb == "restart":
            if phase in TRANSITIONAL:
                self.touched.add(unit.key)
            if phase is Phase.STOPPING:
                self.left_down.add(unit.key)
            elif phase is not Phase.STOPPED:
                self.left_down.discard(unit.key)
        self.recent = [*self.recent[-(MAX_ITEMS - 1) :], (unit.service.name, str(phase))]
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None or self.closed:
            return
        now = self.sup.clock()
        delay = 0.0 if self.last_sent is None else self.last_sent + INTERVAL_S - now
        self.timer = self.sup.loop.call_later(max(0.0, delay), self._fire)

    def _fire(self) -> None:
        self.timer = None
        if self.closed:
            return
        event = self.event()
        if event["total"] == 0:
            return  # a restart that has touched nothing yet: nothing to show
        self.last_sent = self.sup.clock()
        self.send(event)

    def event(self) -> dict[str, Any]:
        units = self.units()
        if self.verb == "restart":
            units = [u for u in units if u.key in self.touched]
        done = 0
        pending: list[dict[str, Any]] = []
        for unit in units:
            if is_done(self.verb, unit.state.phase, left_down=unit.key in self.left_down):
                done += 1
            elif len(pending) < MAX_ITEMS:
                pending.append(self._pending(unit))
        recent = [{"service": s, "state": p} for s, p in self.recent]
        self.recent = []
        return {
            "kind": "progress",
            "verb": self.verb,
            "total": len(units),
            "done": done,
            "recent": recent,
            "pending": pending,
        }

    def _pending(self, unit: Unit) -> dict[str, Any]:
        item: dict[str, Any] = {"service": unit.service.name, "state": str(unit.state.phase)}
        runtime = self.sup.projects.get(unit.project_id)
        if unit.state.phase is Phase.WAITING and runtime is not None:
            completed = unit.service.completed_deps
            item["waiting_for"] = [
                d
                for d in unit.service.depends_on
                if d in runtime.units
                and not self.ops.satisfied(runtime.units[d], completed=d in completed)
            ]
        return item
