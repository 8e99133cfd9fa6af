"""Keyed timers on the real ``Loop`` with a controlled clock; slack coalesces deadlines."""

from __future__ import annotations

import pytest

from systemg.daemon.loop import Loop
from systemg.daemon.timers import TimerKind, Timers, coalesced


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_coalesced_moves_to_the_nearest_grid_point() -> None:
    assert coalesced(10.0, 0.25) == 10.0
    assert coalesced(10.01, 0.25) == 10.0  # re-armed just after a grid point: no drift
    assert coalesced(10.125, 0.25) == 10.25
    assert coalesced(10.24, 0.25) == 10.25
    assert coalesced(0.0, 1.0) == 0.0


@pytest.mark.parametrize("start", [100.003, 100.1, 100.249, 100.25])
def test_timers_set_at_scattered_moments_come_due_together(start: float) -> None:
    clock = Clock(start)
    loop = Loop(clock=clock)
    try:
        timers = [Timers(loop) for _ in range(3)]
        whens = []
        for i, t in enumerate(timers):
            clock.now = start + i * 0.01  # set 10 ms apart
            t.set(TimerKind.PROBE, 1.0, lambda: None, slack_s=0.25)
            when = t.pending(TimerKind.PROBE)
            assert when is not None
            assert abs(when - (clock.now + 1.0)) <= 0.125 + 1e-9
            whens.append(round(when, 9))
        assert len(set(whens)) <= 2  # three deadlines within 20 ms: one or two grid points
        plain = Timers(loop)
        plain.set(TimerKind.PROBE, 1.0, lambda: None)
        assert plain.pending(TimerKind.PROBE) == pytest.approx(clock.now + 1.0)
    finally:
        loop.close()
