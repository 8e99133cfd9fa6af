"""Restart policy and backoff decisions (pure: time is an argument)."""

from __future__ import annotations

import pytest

from systemg.daemon.restart import (
    MAX_BACKOFF_S,
    STABLE_AFTER_S,
    ExitInfo,
    decide,
    wants_restart,
)
from systemg.manifest.model import RestartPolicy

CLEAN = ExitInfo(code=0)
FAILING = ExitInfo(code=1)
KILLED = ExitInfo(signal=9)
OOM = ExitInfo(signal=9, oom_killed=True)


@pytest.mark.parametrize(
    ("policy", "info", "expected"),
    [
        (RestartPolicy.ALWAYS, CLEAN, True),
        (RestartPolicy.ALWAYS, FAILING, True),
        (RestartPolicy.ALWAYS, KILLED, True),
        (RestartPolicy.ON_FAILURE, CLEAN, False),
        (RestartPolicy.ON_FAILURE, FAILING, True),
        (RestartPolicy.ON_FAILURE, KILLED, True),
        (RestartPolicy.ON_FAILURE, OOM, True),
        (RestartPolicy.NEVER, CLEAN, False),
        (RestartPolicy.NEVER, FAILING, False),
        (RestartPolicy.NEVER, KILLED, False),
    ],
)
def test_policy_table(policy: RestartPolicy, info: ExitInfo, expected: bool) -> None:
    assert wants_restart(policy, info) is expected


def test_delay_doubles_per_consecutive_restart() -> None:
    delays = []
    consecutive = 0
    for _ in range(6):
        d = decide(
            RestartPolicy.ALWAYS,
            FAILING,
            uptime_s=0.1,
            consecutive=consecutive,
            backoff_ms=1000,
            max_restarts=None,
        )
        assert d.restart
        delays.append(d.delay_s)
        consecutive = d.consecutive
    assert delays == [1, 2, 4, 8, 16, 32]


def test_delay_is_capped() -> None:
    d = decide(
        RestartPolicy.ALWAYS,
        FAILING,
        uptime_s=0,
        consecutive=40,
        backoff_ms=1000,
        max_restarts=None,
    )
    assert d.delay_s == MAX_BACKOFF_S == 300


@pytest.mark.parametrize(("uptime", "delay"), [(STABLE_AFTER_S - 0.01, 8.0), (STABLE_AFTER_S, 1.0)])
def test_stable_run_resets_the_doubling(uptime: float, delay: float) -> None:
    d = decide(
        RestartPolicy.ON_FAILURE,
        FAILING,
        uptime_s=uptime,
        consecutive=3,
        backoff_ms=1000,
        max_restarts=None,
    )
    assert d.delay_s == delay


def test_max_restarts_spent_is_failed() -> None:
    d = decide(
        RestartPolicy.ALWAYS, FAILING, uptime_s=0, consecutive=2, backoff_ms=0, max_restarts=2
    )
    assert (d.restart, d.failed) == (False, True)


def test_max_restarts_zero_never_restarts() -> None:
    d = decide(
        RestartPolicy.ALWAYS, FAILING, uptime_s=0, consecutive=0, backoff_ms=0, max_restarts=0
    )
    assert d.failed


def test_no_restart_is_not_failed() -> None:
    d = decide(
        RestartPolicy.NEVER, FAILING, uptime_s=0, consecutive=0, backoff_ms=0, max_restarts=0
    )
    assert (d.restart, d.failed) == (False, False)


def test_exit_descriptions() -> None:
    assert CLEAN.describe() == "exited with code 0"
    assert KILLED.describe() == "killed by signal 9"
    assert OOM.describe() == "oom-killed"
    assert not KILLED.clean
    assert CLEAN.clean


@pytest.mark.parametrize(("backoff_ms", "delay"), [(0, 0.0), (1, MAX_BACKOFF_S), (1000, 300.0)])
def test_a_very_long_crash_loop_does_not_overflow(backoff_ms: int, delay: float) -> None:
    # backoff 0 crash-loops fast: 2**1024 used to raise OverflowError in the exit handler.
    d = decide(
        RestartPolicy.ALWAYS,
        FAILING,
        uptime_s=0,
        consecutive=5000,
        backoff_ms=backoff_ms,
        max_restarts=None,
    )
    assert (d.restart, d.delay_s, d.consecutive) == (True, delay, 5001)
