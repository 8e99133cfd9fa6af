"""Keyed, typed timers: at most one pending timer per key, each reset or cancelled alone.

A unit has several clocks running at once — readiness, the stop's SIGKILL deadline,
backoff, and (next) the watchdog, probe interval and cron schedule. Each is a ``TimerKind``;
``Timers.set(kind, delay, callback)`` replaces the pending timer of that kind (a watchdog
ping resets the watchdog and nothing else), ``cancel(kind)`` removes one, ``cancel_all()``
removes every one (a unit that stops). Expiry of a replaced or cancelled timer never runs
its callback.

A timer may be given ``slack_s``: it then fires at the multiple of ``slack_s`` on the loop
clock nearest its deadline (``coalesced``: at most ``slack_s / 2`` early or late, so a
periodic timer re-armed right after a grid point keeps its period on average). Many
periodic timers set at scattered moments — 100 liveness probes — then come due in the same
loop turns and wake the supervisor a few times per period instead of once per timer (as
the kernel's timer slack and systemd's ``AccuracySec=`` do).

Built on ``Loop.call_later``; holds no state but its own pending timers.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable

from systemg.daemon.loop import Loop, Timer


class TimerKind(enum.StrEnum):
    READY = "ready"  # the 250 ms readiness rule
    START = "start"  # start_timeout: readiness (notify / health check) must pass by then
    KILL = "kill"  # stop_timeout elapsed: SIGKILL
    BACKOFF = "backoff"  # restart delay
    WATCHDOG = "watchdog"
    PROBE = "probe"
    SCHEDULE = "schedule"


class Timers:
    def __init__(self, loop: Loop) -> None:
        self._loop = loop
        self._pending: dict[TimerKind, Timer] = {}

    def set(
        self,
        kind: TimerKind,
        delay_s: float,
        callback: Callable[[], None],
        *,
        slack_s: float = 0.0,
    ) -> None:
        """Arm ``kind`` to fire in ``delay_s`` seconds (moved by up to ``slack_s / 2`` onto
        a shared grid), replacing any pending one."""
        self.cancel(kind)
        if slack_s > 0:
            now = self._loop.clock()
            delay_s = max(0.0, coalesced(now + delay_s, slack_s) - now)

        def fire() -> None:
            if self._pending.get(kind) is timer:
                del self._pending[kind]
                callback()

        timer = self._loop.call_later(delay_s, fire)
        self._pending[kind] = timer

    def cancel(self, kind: TimerKind) -> None:
        timer = self._pending.pop(kind, None)
        if timer is not None:
            timer.cancel()

    def cancel_all(self) -> None:
        for timer in self._pending.values():
            timer.cancel()
        self._pending.clear()

    def pending(self, kind: TimerKind) -> float | None:
        """When ``kind`` fires (loop clock), or None."""
        timer = self._pending.get(kind)
        return None if timer is None else timer.when

    def __contains__(self, kind: object) -> bool:
        return kind in self._pending


def coalesced(deadline: float, slack_s: float) -> float:
    """The multiple of ``slack_s`` nearest ``deadline`` (same clock; halves round up)."""
    return math.floor(deadline / slack_s + 0.5) * slack_s
