"""Keyed, typed timers: at most one pending timer per key, each reset or cancelled alone.

A unit has several clocks running at once — readiness, the stop's SIGKILL deadline,
backoff, and (next) the watchdog, probe interval and cron schedule. Each is a ``TimerKind``;
``Timers.set(kind, delay, callback)`` replaces the pending timer of that kind (a watchdog
ping resets the watchdog and nothing else), ``cancel(kind)`` removes one, ``cancel_all()``
removes every one (a unit that stops). Expiry of a replaced or cancelled timer never runs
its callback.

Built on ``Loop.call_later``; holds no state but its own pending timers.
"""

from __future__ import annotations

import enum
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

    def set(self, kind: TimerKind, delay_s: float, callback: Callable[[], None]) -> None:
        """Arm ``kind`` to fire in ``delay_s`` seconds, replacing any pending one."""
        self.cancel(kind)

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
