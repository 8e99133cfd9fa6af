"""Restart policy and backoff: pure decisions, time passed in.

``always`` restarts on any exit (clean included), ``on-failure`` on a non-zero exit or a
signal, ``never`` never. The delay is ``backoff`` doubled for each consecutive restart
that did not stay up ``STABLE_AFTER_S`` seconds, capped at ``MAX_BACKOFF_S``. After
``max_restarts`` consecutive failed restarts the service is failed and stays down.
"""

from __future__ import annotations

from dataclasses import dataclass

from systemg.manifest.model import RestartPolicy

STABLE_AFTER_S = 60.0
MAX_BACKOFF_S = 300.0


@dataclass(frozen=True, slots=True)
class ExitInfo:
    code: int | None = None  # exit status, when it exited
    signal: int | None = None  # terminating signal, when killed
    oom_killed: bool = False
    at: float = 0.0  # epoch seconds

    @property
    def clean(self) -> bool:
        return self.code == 0 and self.signal is None and not self.oom_killed

    def describe(self) -> str:
        if self.oom_killed:
            return "oom-killed"
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        if self.code is None:
            return "exited (status unknown: the process was adopted)"
        return f"exited with code {self.code}"


@dataclass(frozen=True, slots=True)
class RestartDecision:
    restart: bool
    delay_s: float = 0.0
    consecutive: int = 0  # consecutive unstable restarts after this decision
    failed: bool = False  # the restart budget is spent


def wants_restart(policy: RestartPolicy, exit_info: ExitInfo) -> bool:
    match policy:
        case RestartPolicy.ALWAYS:
            return True
        case RestartPolicy.ON_FAILURE:
            return not exit_info.clean
        case RestartPolicy.NEVER:
            return False


def decide(
    policy: RestartPolicy,
    exit_info: ExitInfo,
    *,
    uptime_s: float,
    consecutive: int,
    backoff_ms: int,
    max_restarts: int | None,
) -> RestartDecision:
    """What to do after an unrequested exit.

    ``consecutive`` counts earlier restarts that did not stay up; a run that lasted
    ``STABLE_AFTER_S`` resets it, so a service that crashes once a day always restarts
    after the base delay.
    """
    if not wants_restart(policy, exit_info):
        return RestartDecision(restart=False, consecutive=consecutive)
    if uptime_s >= STABLE_AFTER_S:
        consecutive = 0
    if max_restarts is not None and consecutive >= max_restarts:
        return RestartDecision(restart=False, consecutive=consecutive, failed=True)
    # The exponent is bounded: 2**1024 does not fit a float (OverflowError inside the exit
    # callback would leave the unit stuck), and 2**20 already exceeds the cap for any
    # non-zero backoff of 1 ms or more.
    delay = min(MAX_BACKOFF_S, (backoff_ms / 1000.0) * (2 ** min(consecutive, 20)))
    return RestartDecision(restart=True, delay_s=delay, consecutive=consecutive + 1)
