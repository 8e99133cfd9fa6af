"""The lifecycle of one service as a pure state machine.

``transition(state, event, service) -> (state, effects)``: no clock (``now`` travels in
the event), no processes, no I/O. The supervisor feeds it what happened (a spawn, an
exit, a timer, a command) and carries out the effects it returns (spawn, signal the
process group, arm a timer, tell dependents). Tests replay event histories against it.

Phases::

    stopped --start--> starting --ready--> running
        ready = 250 ms alive (no readiness check), READY=1 (``notify``), or a passing
        ``health_check``; not ready by ``start_timeout`` (or the probe budget spent) →
        stopping → the restart policy decides, counting it as a failure
    stopped --start, a dependency not up--> waiting | blocked --dependencies up--> starting
    starting/running --exit, policy says restart--> backoff --delay--> starting
    starting/running --exit, no restart--> exited | killed | oom-killed | failed
    starting/running --stop--> stopping --exit--> stopped   (SIGKILL if stop_timeout passes)

A manual stop is never followed by a restart: the exit that a stop provokes is
recognised by the ``stopping`` phase, not by its exit code. A stop of a unit that has no
process (its spawn never happened) completes at once: no phase waits for an exit that
cannot come.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass, replace

from systemg.daemon.phases import ALIVE, Phase
from systemg.daemon.restart import ExitInfo, decide
from systemg.daemon.timers import TimerKind
from systemg.manifest.model import RestartPolicy, Service

__all__ = ["ALIVE", "Phase"]  # re-exported: the phase vocabulary lives in phases.py

READY_AFTER_S = 0.25


class StopReason(enum.StrEnum):
    MANUAL = "manual"
    DEPENDENCY = "dependency"  # a dependency crashed; start again when it is back
    RESTART = "restart"  # start again as soon as it is down
    UNREADY = "unready"  # readiness failed: once down, the restart policy decides
    WATCHDOG = "watchdog"  # no WATCHDOG=1 in time: SIGABRT; once down, the policy decides
    UNHEALTHY = "unhealthy"  # liveness failed `failures` times: once down, the policy decides
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class UnitState:
    phase: Phase = Phase.STOPPED
    pid: int | None = None
    started_at: float | None = None  # epoch seconds of the current process
    restarts: int = 0  # automatic restarts since the last manual start
    consecutive: int = 0  # restarts in a row that did not stay up
    last_exit: ExitInfo | None = None
    stop_reason: StopReason | None = None
    message: str = ""


# --- events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    now: float


@dataclass(frozen=True, slots=True)
class Wait:
    now: float


@dataclass(frozen=True, slots=True)
class Block:
    """A dependency is failed, backing off or blocked itself: settle as ``blocked``."""

    message: str
    now: float


@dataclass(frozen=True, slots=True)
class Spawned:
    pid: int
    now: float
    # False: the process exists but has not reached exec yet (a privileged spawn watched on
    # the loop, daemon/execwait.py); ``Execed`` follows, and only then the 250 ms rule runs.
    execed: bool = True


@dataclass(frozen=True, slots=True)
class Execed:
    """A ``Spawned(execed=False)`` process reached exec: its uptime and the 250 ms rule
    count from now."""

    now: float


@dataclass(frozen=True, slots=True)
class SpawnFailed:
    message: str
    now: float


@dataclass(frozen=True, slots=True)
class ReadyElapsed:
    now: float


@dataclass(frozen=True, slots=True)
class Ready:
    """READY=1 from a notify service, or its health check passed."""

    now: float


@dataclass(frozen=True, slots=True)
class NotReady:
    """Readiness failed: the probe budget is spent, or ``start_timeout`` passed."""

    message: str
    now: float


@dataclass(frozen=True, slots=True)
class WatchdogExpired:
    """A running notify service sent no ``WATCHDOG=1`` within ``watchdog``."""

    message: str
    now: float


@dataclass(frozen=True, slots=True)
class Unhealthy:
    """A running service's liveness probe failed ``failures`` times in a row."""

    message: str
    now: float


@dataclass(frozen=True, slots=True)
class Skipped:
    """Its ``skip`` (true, or a command that exited 0) says: do not launch it this time."""

    message: str
    now: float


@dataclass(frozen=True, slots=True)
class Exited:
    info: ExitInfo
    now: float


@dataclass(frozen=True, slots=True)
class Stop:
    reason: StopReason
    now: float


@dataclass(frozen=True, slots=True)
class KillElapsed:
    now: float


@dataclass(frozen=True, slots=True)
class BackoffElapsed:
    now: float


Event = (
    Start
    | Wait
    | Block
    | Spawned
    | Execed
    | SpawnFailed
    | ReadyElapsed
    | Ready
    | NotReady
    | WatchdogExpired
    | Unhealthy
    | Skipped
    | Exited
    | Stop
    | KillElapsed
    | BackoffElapsed
)


# --- effects ----------------------------------------------------------------------------


class Announce(enum.StrEnum):
    UP = "up"  # became running
    DOWN = "down"  # died unexpectedly (dependents are stopped)
    FINISHED = "finished"  # reached a terminal phase (exited, failed, ...)
    STOPPED = "stopped"  # a requested stop completed


@dataclass(frozen=True, slots=True)
class DoSpawn:
    pass


@dataclass(frozen=True, slots=True)
class DoSignal:
    signum: int


@dataclass(frozen=True, slots=True)
class DoTimer:
    kind: TimerKind
    delay_s: float


@dataclass(frozen=True, slots=True)
class DoCancelTimers:
    pass


@dataclass(frozen=True, slots=True)
class DoCancelTimer:
    kind: TimerKind


@dataclass(frozen=True, slots=True)
class DoAwaitReady:
    """Start whatever tells readiness (the health check's first attempt)."""


@dataclass(frozen=True, slots=True)
class DoAnnounce:
    what: Announce


Effect = DoSpawn | DoSignal | DoTimer | DoCancelTimers | DoCancelTimer | DoAwaitReady | DoAnnounce


def checks_readiness(service: Service) -> bool:
    """Readiness by ``notify`` or a health check, rather than the 250 ms rule."""
    bg = service.blue_green
    return (
        service.notify
        or service.health_check is not None
        or (bg is not None and bg.checks is not None)
    )


def _spawn(state: UnitState) -> tuple[UnitState, tuple[Effect, ...]]:
    return replace(state, phase=Phase.STARTING, stop_reason=None, message=""), (
        DoCancelTimers(),
        DoSpawn(),
    )


def _exit_phase(info: ExitInfo) -> Phase:
    if info.oom_killed:
        return Phase.OOM_KILLED
    if info.signal is not None:
        return Phase.KILLED
    return Phase.EXITED


def transition(
    state: UnitState, event: Event, service: Service, *, ready_after_s: float = READY_AFTER_S
) -> tuple[UnitState, tuple[Effect, ...]]:
    """``ready_after_s``: how long a service without notify or health check must stay
    alive to be up (``supervisor.xml`` ``startup_stability_ms``)."""
    phase = state.phase
    match event:
        case Start():
            if phase in (Phase.STARTING, Phase.RUNNING):
                return state, ()
            if phase is Phase.STOPPING:
                # Start again as soon as the old process is gone (restart).
                return replace(state, stop_reason=StopReason.RESTART), ()
            return _spawn(replace(state, consecutive=0, restarts=0))
        case Wait():
            if phase in ALIVE:
                return state, ()
            return replace(state, phase=Phase.WAITING, message="waiting for dependencies"), ()
        case Block(message=message):
            if phase in ALIVE:
                return state, ()
            return replace(state, phase=Phase.BLOCKED, message=message), (DoCancelTimers(),)
        case Spawned(pid=pid, now=now, execed=execed):
            started = replace(state, phase=Phase.STARTING, pid=pid, started_at=now)
            if not checks_readiness(service):
                return started, (DoTimer(TimerKind.READY, ready_after_s),) if execed else ()
            return started, (
                DoTimer(TimerKind.START, service.start_timeout_ms / 1000.0),
                DoAwaitReady(),
            )
        case Execed(now=now):
            if phase is not Phase.STARTING or state.pid is None:
                return state, ()
            started = replace(state, started_at=now)
            if not checks_readiness(service):
                return started, (DoTimer(TimerKind.READY, ready_after_s),)
            return started, ()
        case SpawnFailed(message=message):
            failed = replace(state, phase=Phase.FAILED, pid=None, message=message)
            return failed, (DoCancelTimers(), DoAnnounce(Announce.FINISHED))
        case ReadyElapsed():
            if phase is Phase.STARTING and not checks_readiness(service):
                return replace(state, phase=Phase.RUNNING), (DoAnnounce(Announce.UP),)
            return state, ()
        case Ready():
            if phase is Phase.STARTING and state.pid is not None:
                running = replace(state, phase=Phase.RUNNING, message="")
                effects: tuple[Effect, ...] = (DoCancelTimer(TimerKind.START),)
                if service.watchdog_ms:
                    effects += (DoTimer(TimerKind.WATCHDOG, service.watchdog_ms / 1000.0),)
                return running, (*effects, DoAnnounce(Announce.UP))
            return state, ()
        case NotReady(message=message):
            return _fault_stop(state, Phase.STARTING, StopReason.UNREADY, message, service)
        case WatchdogExpired(message=message):
            return _fault_stop(state, Phase.RUNNING, StopReason.WATCHDOG, message, service)
        case Unhealthy(message=message):
            return _fault_stop(state, Phase.RUNNING, StopReason.UNHEALTHY, message, service)
        case Skipped(message=message):
            if phase is Phase.STARTING and state.pid is None:
                skipped = replace(state, phase=Phase.SKIPPED, message=message)
                return skipped, (DoCancelTimers(), DoAnnounce(Announce.FINISHED))
            return state, ()
        case Exited(info=info, now=now):
            return _on_exit(state, info, now, service)
        case Stop(reason=reason):
            if phase in ALIVE and state.pid is None:
                # Never spawned (or the spawn is still being set up): nothing to wait for.
                stopped = replace(state, phase=Phase.STOPPED, stop_reason=reason, message="")
                return stopped, (DoCancelTimers(), DoAnnounce(Announce.STOPPED))
            if phase in (Phase.STARTING, Phase.RUNNING):
                stopping = replace(state, phase=Phase.STOPPING, stop_reason=reason)
                return stopping, (
                    DoCancelTimers(),
                    DoSignal(signal.SIGTERM),
                    DoTimer(TimerKind.KILL, service.stop_timeout_ms / 1000.0),
                )
            if phase is Phase.STOPPING:
                if reason is StopReason.MANUAL or reason is StopReason.SHUTDOWN:
                    return replace(state, stop_reason=reason), ()
                return state, ()
            stopped = replace(state, phase=Phase.STOPPED, stop_reason=reason, message="")
            return stopped, (DoCancelTimers(), DoAnnounce(Announce.STOPPED))
        case KillElapsed():
            if phase is Phase.STOPPING:
                return state, (DoSignal(signal.SIGKILL),)
            return state, ()
        case BackoffElapsed():
            if phase is Phase.BACKOFF:
                return _spawn(state)
            return state, ()


def _on_exit(
    state: UnitState, info: ExitInfo, now: float, service: Service
) -> tuple[UnitState, tuple[Effect, ...]]:
    base = replace(state, pid=None, last_exit=info)
    if state.phase is Phase.STOPPING:
        if state.stop_reason is StopReason.RESTART:
            return _spawn(base)
        if state.stop_reason in (StopReason.UNREADY, StopReason.WATCHDOG, StopReason.UNHEALTHY):
            return _after_unready(state, base, now, service)
        stopped = replace(base, phase=Phase.STOPPED)
        return stopped, (DoCancelTimers(), DoAnnounce(Announce.STOPPED))
    if state.phase not in (Phase.STARTING, Phase.RUNNING):
        return base, ()
    uptime = now - (state.started_at or now)
    # A clean exit inside the readiness window is a finished one-shot, unless the policy
    # says to keep it running.
    decision = decide(
        service.restart_policy,
        info,
        uptime_s=uptime,
        consecutive=state.consecutive,
        backoff_ms=service.backoff_ms,
        max_restarts=service.max_restarts,
    )
    if decision.restart:
        backing_off = replace(
            base,
            phase=Phase.BACKOFF,
            restarts=state.restarts + 1,
            consecutive=decision.consecutive,
            message=f"{info.describe()}; restarting in {decision.delay_s:g}s",
        )
        return backing_off, (
            DoCancelTimers(),
            DoTimer(TimerKind.BACKOFF, decision.delay_s),
            DoAnnounce(Announce.DOWN),
        )
    if decision.failed:
        failed = replace(
            base,
            phase=Phase.FAILED,
            consecutive=decision.consecutive,
            message=f"{info.describe()}; gave up after {service.max_restarts} restart(s) "
            f"(max_restarts)",
        )
        return failed, (DoCancelTimers(), DoAnnounce(Announce.DOWN), DoAnnounce(Announce.FINISHED))
    finished = replace(base, phase=_exit_phase(info), message=info.describe())
    effects: tuple[Effect, ...] = (DoCancelTimers(),)
    if not info.clean or service.restart_policy is RestartPolicy.ALWAYS:
        effects += (DoAnnounce(Announce.DOWN),)
    return finished, (*effects, DoAnnounce(Announce.FINISHED))


def _fault_stop(
    state: UnitState, expected: Phase, reason: StopReason, message: str, service: Service
) -> tuple[UnitState, tuple[Effect, ...]]:
    """Stop a process that failed readiness, its watchdog or its liveness probe; once it
    is down ``_after_unready`` lets the restart policy decide, counting it as a failure.
    A watchdog timeout sends SIGABRT first (systemd's action: a core dump, then down)."""
    if state.phase is not expected or state.pid is None:
        return state, ()
    stopping = replace(state, phase=Phase.STOPPING, stop_reason=reason, message=message)
    first = signal.SIGABRT if reason is StopReason.WATCHDOG else signal.SIGTERM
    return stopping, (
        DoCancelTimers(),
        DoSignal(first),
        DoTimer(TimerKind.KILL, service.stop_timeout_ms / 1000.0),
    )


def _after_unready(
    state: UnitState, base: UnitState, now: float, service: Service
) -> tuple[UnitState, tuple[Effect, ...]]:
    """Stopped because it never became ready: a failure, whatever its exit status."""
    uptime = now - (state.started_at or now)
    as_failure = ExitInfo(code=1, at=now)  # for the policy only; last_exit stays the real one
    decision = decide(
        service.restart_policy,
        as_failure,
        uptime_s=uptime,
        consecutive=state.consecutive,
        backoff_ms=service.backoff_ms,
        max_restarts=service.max_restarts,
    )
    reason = state.message or "not ready"
    if decision.restart:
        backing_off = replace(
            base,
            phase=Phase.BACKOFF,
            stop_reason=None,
            restarts=state.restarts + 1,
            consecutive=decision.consecutive,
            message=f"{reason}; restarting in {decision.delay_s:g}s",
        )
        return backing_off, (
            DoCancelTimers(),
            DoTimer(TimerKind.BACKOFF, decision.delay_s),
            DoAnnounce(Announce.DOWN),
        )
    failed = replace(
        base, phase=Phase.FAILED, stop_reason=None, consecutive=decision.consecutive, message=reason
    )
    return failed, (DoCancelTimers(), DoAnnounce(Announce.DOWN), DoAnnounce(Announce.FINISHED))
