"""The service lifecycle replayed as event histories against the pure state machine.

No processes, no clock: ``now`` travels in each event, and the effects a transition
returns (spawn, signal, timers, announcements) are what the supervisor would carry out.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import replace

import pytest

from systemg.daemon import lifecycle as lc
from systemg.daemon.lifecycle import (
    Announce,
    DoAnnounce,
    DoCancelTimers,
    DoSignal,
    DoSpawn,
    DoTimer,
    Phase,
    StopReason,
    UnitState,
)
from systemg.daemon.restart import ExitInfo
from systemg.manifest.model import RestartPolicy, Service

CLEAN = ExitInfo(code=0)
FAILING = ExitInfo(code=3)
SIGNALLED = ExitInfo(signal=int(signal.SIGSEGV))


def svc(
    policy: RestartPolicy = RestartPolicy.NEVER,
    *,
    backoff_ms: int = 1000,
    max_restarts: int | None = None,
    stop_timeout_ms: int = 10_000,
) -> Service:
    return Service(
        name="web",
        argv=("sleep", "1000"),
        restart_policy=policy,
        backoff_ms=backoff_ms,
        max_restarts=max_restarts,
        stop_timeout_ms=stop_timeout_ms,
    )


def replay(
    service: Service, events: Iterable[lc.Event], state: UnitState | None = None
) -> tuple[UnitState, list[tuple[lc.Effect, ...]]]:
    """Feed ``events`` in order; return the final state and the effects of each step."""
    st = state or UnitState()
    effects: list[tuple[lc.Effect, ...]] = []
    for event in events:
        st, out = lc.transition(st, event, service)
        effects.append(out)
    return st, effects


def running(service: Service, pid: int = 100, at: float = 0.0) -> UnitState:
    st, _ = replay(service, [lc.Start(at), lc.Spawned(pid, at), lc.ReadyElapsed(at + 0.25)])
    assert st.phase is Phase.RUNNING
    return st


def timers(effects: Iterable[lc.Effect], kind: str) -> list[float]:
    return [e.delay_s for e in effects if isinstance(e, DoTimer) and e.kind == kind]


# --- start ---------------------------------------------------------------------------------


def test_start_spawned_ready_running() -> None:
    service = svc()
    st, effects = replay(service, [lc.Start(10.0)])
    assert st.phase is Phase.STARTING
    assert DoSpawn() in effects[0]
    st, effects = replay(service, [lc.Spawned(4242, 10.0)], st)
    assert (st.phase, st.pid, st.started_at) == (Phase.STARTING, 4242, 10.0)
    assert timers(effects[0], "ready") == [lc.READY_AFTER_S]
    st, effects = replay(service, [lc.ReadyElapsed(10.25)], st)
    assert st.phase is Phase.RUNNING
    assert effects[0] == (DoAnnounce(Announce.UP),)


def test_a_spawn_not_yet_execed_counts_up_from_its_exec() -> None:
    """A privileged spawn is Spawned at its fork (execed=False): the 250 ms rule and the
    uptime start at Execed, not before (daemon/execwait.py)."""
    service = svc()
    st, effects = replay(service, [lc.Start(10.0), lc.Spawned(4242, 10.0, execed=False)])
    assert (st.phase, st.pid, st.started_at) == (Phase.STARTING, 4242, 10.0)
    assert timers(effects[1], "ready") == []
    st, effects = replay(service, [lc.Execed(10.4)], st)
    assert (st.phase, st.started_at) == (Phase.STARTING, 10.4)
    assert timers(effects[0], "ready") == [lc.READY_AFTER_S]
    st, _ = replay(service, [lc.ReadyElapsed(10.65)], st)
    assert st.phase is Phase.RUNNING
    # Too late for a unit that is no longer starting it (stopped meanwhile): nothing.
    stopped, _ = replay(service, [lc.Stop(StopReason.MANUAL, 11.0)], st)
    assert lc.transition(stopped, lc.Execed(11.1), service) == (stopped, ())


def test_start_while_running_is_a_no_op() -> None:
    service = svc()
    st = running(service)
    again, effects = lc.transition(st, lc.Start(5.0), service)
    assert again == st
    assert effects == ()


def test_spawn_failure_is_failed_with_its_message() -> None:
    st, effects = replay(svc(), [lc.Start(0), lc.SpawnFailed("cannot execute './x'", 0)])
    assert st.phase is Phase.FAILED
    assert "cannot execute" in st.message
    assert DoAnnounce(Announce.FINISHED) in effects[-1]


def test_wait_then_start() -> None:
    service = svc()
    st, _ = replay(service, [lc.Wait(0)])
    assert st.phase is Phase.WAITING
    st, effects = replay(service, [lc.Start(1)], st)
    assert st.phase is Phase.STARTING
    assert DoSpawn() in effects[0]


# --- restart policies ----------------------------------------------------------------------

POLICY_CASES = [
    # policy, exit, restarts?, final phase when not restarted
    (RestartPolicy.ALWAYS, CLEAN, True, None),
    (RestartPolicy.ALWAYS, FAILING, True, None),
    (RestartPolicy.ALWAYS, SIGNALLED, True, None),
    (RestartPolicy.ON_FAILURE, CLEAN, False, Phase.EXITED),
    (RestartPolicy.ON_FAILURE, FAILING, True, None),
    (RestartPolicy.ON_FAILURE, SIGNALLED, True, None),
    (RestartPolicy.NEVER, CLEAN, False, Phase.EXITED),
    (RestartPolicy.NEVER, FAILING, False, Phase.EXITED),
    (RestartPolicy.NEVER, SIGNALLED, False, Phase.KILLED),
]


@pytest.mark.parametrize(("policy", "info", "restarts", "final"), POLICY_CASES)
def test_crash_with_each_policy(
    policy: RestartPolicy, info: ExitInfo, restarts: bool, final: Phase | None
) -> None:
    service = svc(policy)
    st, effects = replay(service, [lc.Exited(info, 5.0)], running(service))
    assert st.pid is None
    assert st.last_exit == info
    if restarts:
        assert st.phase is Phase.BACKOFF
        assert st.restarts == 1
        assert timers(effects[0], "backoff") == [1.0]
        assert DoAnnounce(Announce.DOWN) in effects[0]
        st, effects = replay(service, [lc.BackoffElapsed(6.0)], st)
        assert st.phase is Phase.STARTING
        assert DoSpawn() in effects[0]
    else:
        assert st.phase is final
        assert st.restarts == 0
        assert not timers(effects[0], "backoff")
        assert DoAnnounce(Announce.FINISHED) in effects[0]
        # A failure takes dependents down; a clean one-shot does not.
        assert (DoAnnounce(Announce.DOWN) in effects[0]) is (not info.clean)


def crash_loop(
    service: Service, uptimes: Iterable[float], start: float = 0.0
) -> tuple[UnitState, list[float]]:
    """Start once, then crash after each uptime; return the backoff delays asked for."""
    now = start
    st, _ = replay(service, [lc.Start(now), lc.Spawned(1, now)])
    delays: list[float] = []
    for pid, uptime in enumerate(uptimes, start=2):
        if uptime >= lc.READY_AFTER_S:
            st, _ = replay(service, [lc.ReadyElapsed(now + lc.READY_AFTER_S)], st)
        now += uptime
        st, effects = replay(service, [lc.Exited(FAILING, now)], st)
        if st.phase is not Phase.BACKOFF:
            break
        (delay,) = timers(effects[0], "backoff")
        delays.append(delay)
        now += delay
        st, _ = replay(service, [lc.BackoffElapsed(now), lc.Spawned(pid, now)], st)
    return st, delays


def test_backoff_doubles_and_is_capped_at_five_minutes() -> None:
    service = svc(RestartPolicy.ALWAYS, backoff_ms=1000)
    st, delays = crash_loop(service, [0.1] * 12)
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert st.restarts == 12


def test_backoff_resets_after_sixty_seconds_up() -> None:
    service = svc(RestartPolicy.ON_FAILURE, backoff_ms=500)
    _, delays = crash_loop(service, [0.1, 0.1, 0.1, 61.0, 0.1, 0.1])
    assert delays == [0.5, 1.0, 2.0, 0.5, 1.0, 2.0]


def test_zero_backoff_stays_zero() -> None:
    _, delays = crash_loop(svc(RestartPolicy.ALWAYS, backoff_ms=0), [0.01] * 5)
    assert delays == [0.0] * 5


def test_max_restarts_then_failed() -> None:
    service = svc(RestartPolicy.ALWAYS, max_restarts=2)
    st, delays = crash_loop(service, [0.1] * 5)
    assert delays == [1.0, 2.0]  # two restarts, then the third crash gives up
    assert st.phase is Phase.FAILED
    assert st.restarts == 2
    assert "max_restarts" in st.message
    # Failed stays down: a stray backoff timer does nothing.
    again, effects = lc.transition(st, lc.BackoffElapsed(1000.0), service)
    assert again.phase is Phase.FAILED
    assert effects == ()


def test_manual_start_resets_the_restart_budget() -> None:
    service = svc(RestartPolicy.ALWAYS, max_restarts=1)
    st, _ = crash_loop(service, [0.1] * 3)
    assert st.phase is Phase.FAILED
    st, effects = lc.transition(st, lc.Start(500.0), service)
    assert st.phase is Phase.STARTING
    assert (st.restarts, st.consecutive) == (0, 0)
    assert DoSpawn() in effects


# --- stop ----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", list(RestartPolicy))
@pytest.mark.parametrize("info", [CLEAN, FAILING, ExitInfo(signal=int(signal.SIGTERM))])
def test_manual_stop_never_restarts(policy: RestartPolicy, info: ExitInfo) -> None:
    service = svc(policy)
    st, effects = replay(
        service, [lc.Stop(StopReason.MANUAL, 5.0), lc.Exited(info, 5.1)], running(service)
    )
    assert st.phase is Phase.STOPPED
    assert st.restarts == 0
    assert DoSpawn() not in effects[-1]
    assert not timers(effects[-1], "backoff")
    assert DoAnnounce(Announce.STOPPED) in effects[-1]


def test_stop_escalates_sigterm_then_sigkill() -> None:
    service = svc(stop_timeout_ms=1500)
    st, effects = replay(service, [lc.Stop(StopReason.MANUAL, 5.0)], running(service))
    assert st.phase is Phase.STOPPING
    assert DoCancelTimers() in effects[0]
    assert DoSignal(signal.SIGTERM) in effects[0]
    assert timers(effects[0], "kill") == [1.5]
    st, effects = replay(service, [lc.KillElapsed(6.5)], st)
    assert st.phase is Phase.STOPPING  # death is verified, not assumed
    assert effects[0] == (DoSignal(signal.SIGKILL),)
    st, effects = replay(service, [lc.Exited(ExitInfo(signal=int(signal.SIGKILL)), 6.6)], st)
    assert st.phase is Phase.STOPPED
    assert st.pid is None


def test_kill_timer_after_stop_completed_does_nothing() -> None:
    service = svc()
    st, _ = replay(
        service, [lc.Stop(StopReason.MANUAL, 1), lc.Exited(CLEAN, 1.1)], running(service)
    )
    again, effects = lc.transition(st, lc.KillElapsed(20), service)
    assert again == st
    assert effects == ()


def test_stop_during_backoff_cancels_the_restart() -> None:
    service = svc(RestartPolicy.ALWAYS)
    st, _ = replay(service, [lc.Exited(FAILING, 1)], running(service))
    assert st.phase is Phase.BACKOFF
    st, effects = replay(service, [lc.Stop(StopReason.MANUAL, 1.5)], st)
    assert st.phase is Phase.STOPPED
    assert DoCancelTimers() in effects[0]
    st, effects = replay(service, [lc.BackoffElapsed(2.0)], st)
    assert st.phase is Phase.STOPPED
    assert effects[0] == ()


def test_restart_during_stopping_starts_once_the_old_process_is_gone() -> None:
    service = svc(RestartPolicy.NEVER)
    st, effects = replay(
        service, [lc.Stop(StopReason.MANUAL, 1), lc.Start(1.2)], running(service, pid=7)
    )
    assert st.phase is Phase.STOPPING
    assert st.pid == 7  # never two processes at once
    assert DoSpawn() not in effects[-1]
    st, effects = replay(service, [lc.Exited(ExitInfo(signal=15), 1.3)], st)
    assert st.phase is Phase.STARTING
    assert DoSpawn() in effects[0]


def test_manual_stop_after_restart_request_wins() -> None:
    service = svc(RestartPolicy.ALWAYS)
    st, effects = replay(
        service,
        [lc.Stop(StopReason.MANUAL, 1), lc.Start(1.1), lc.Stop(StopReason.MANUAL, 1.2)],
        running(service),
    )
    st, effects = replay(service, [lc.Exited(ExitInfo(signal=15), 1.3)], st)
    assert st.phase is Phase.STOPPED
    assert DoSpawn() not in effects[0]


def test_dependency_stop_then_start() -> None:
    service = svc(RestartPolicy.ALWAYS)
    st, _ = replay(
        service,
        [lc.Stop(StopReason.DEPENDENCY, 1), lc.Exited(ExitInfo(signal=15), 1.1)],
        running(service),
    )
    assert st.phase is Phase.STOPPED
    assert st.stop_reason is StopReason.DEPENDENCY
    assert st.restarts == 0  # being stopped for a dependency is not a crash
    st, effects = replay(service, [lc.Start(3)], st)
    assert st.phase is Phase.STARTING
    assert DoSpawn() in effects[0]


def test_exit_while_stopped_is_ignored() -> None:
    service = svc(RestartPolicy.ALWAYS)
    st, effects = replay(service, [lc.Exited(FAILING, 1)])
    assert st.phase is Phase.STOPPED
    assert effects[0] == ()


def test_stop_of_a_stopped_service_is_idempotent() -> None:
    service = svc()
    st, effects = replay(service, [lc.Stop(StopReason.MANUAL, 1), lc.Stop(StopReason.MANUAL, 2)])
    assert st.phase is Phase.STOPPED
    assert DoSignal(signal.SIGTERM) not in effects[-1]


def test_ready_timer_after_an_early_exit_is_ignored() -> None:
    service = svc(RestartPolicy.NEVER)
    st, _ = replay(service, [lc.Start(0), lc.Spawned(1, 0), lc.Exited(CLEAN, 0.1)])
    assert st.phase is Phase.EXITED
    st, effects = replay(service, [lc.ReadyElapsed(0.25)], st)
    assert st.phase is Phase.EXITED
    assert effects[0] == ()


# --- no unit waits for what cannot come (issue 9) ---------------------------------------


@pytest.mark.parametrize("reason", list(StopReason))
def test_stop_of_a_unit_whose_spawn_never_happened_completes_at_once(reason: StopReason) -> None:
    # `starting` without a pid: the spawn is still being set up (or broke). A stop must
    # not wait for an exit that cannot come, nor arm a SIGKILL for no process.
    st, (effects,) = replay(svc(), [lc.Stop(reason, 1.0)], UnitState(phase=Phase.STARTING))
    assert st.phase is Phase.STOPPED
    assert DoAnnounce(Announce.STOPPED) in effects
    assert not [e for e in effects if isinstance(e, DoSignal | DoTimer)]


def test_block_settles_a_waiting_unit_and_start_releases_it() -> None:
    st, _ = replay(svc(), [lc.Wait(0.0), lc.Block("blocked by web -> db: backoff", 0.1)])
    assert st.phase is Phase.BLOCKED
    assert "web -> db" in st.message
    st, (effects,) = replay(svc(), [lc.Start(0.2)], st)
    assert st.phase is Phase.STARTING
    assert DoSpawn() in effects


def test_block_never_touches_a_unit_that_has_a_process() -> None:
    st = running(svc())
    after, (effects,) = replay(svc(), [lc.Block("x", 1.0)], st)
    assert after == st
    assert effects == ()


# --- readiness, watchdog, liveness, skip (issue 10) --------------------------------------


def notifying(**kwargs) -> Service:
    return replace(svc(RestartPolicy.ON_FAILURE, backoff_ms=100, **kwargs), notify=True)


def test_a_readiness_checked_service_is_not_up_after_250_ms_but_on_ready() -> None:
    service = notifying(stop_timeout_ms=1000)
    st, (spawned,) = replay(service, [lc.Spawned(100, 0.0)], UnitState(phase=Phase.STARTING))
    assert timers(spawned, "start") == [90.0]  # start_timeout, not the 250 ms rule
    assert lc.DoAwaitReady() in spawned
    st, _ = replay(service, [lc.ReadyElapsed(0.25)], st)
    assert st.phase is Phase.STARTING
    st, (effects,) = replay(service, [lc.Ready(1.0)], st)
    assert st.phase is Phase.RUNNING
    assert DoAnnounce(Announce.UP) in effects


def test_not_ready_stops_then_the_policy_restarts_it_as_a_failure() -> None:
    service = notifying()
    st, _ = replay(service, [lc.Spawned(100, 0.0)], UnitState(phase=Phase.STARTING))
    st, (effects,) = replay(service, [lc.NotReady("no READY=1", 90.0)], st)
    assert st.phase is Phase.STOPPING
    assert DoSignal(signal.SIGTERM) in effects
    # It exits 0 on SIGTERM; still a failure: on-failure restarts it.
    st, _ = replay(service, [lc.Exited(CLEAN, 90.1)], st)
    assert st.phase is Phase.BACKOFF
    assert st.last_exit == CLEAN
    assert "no READY=1" in st.message


@pytest.mark.parametrize(
    ("event", "signum"),
    [(lc.WatchdogExpired("wd", 5.0), signal.SIGABRT), (lc.Unhealthy("down", 5.0), signal.SIGTERM)],
)
def test_watchdog_and_liveness_stop_a_running_service(event: lc.Event, signum: int) -> None:
    st = running(svc(RestartPolicy.NEVER))
    st, (effects,) = replay(svc(RestartPolicy.NEVER), [event], st)
    assert st.phase is Phase.STOPPING
    assert DoSignal(signum) in effects
    st, _ = replay(svc(RestartPolicy.NEVER), [lc.Exited(SIGNALLED, 5.1)], st)
    assert st.phase is Phase.FAILED  # policy never: no restart, and it is not 'killed'


def test_skip_settles_a_unit_that_was_never_launched() -> None:
    st, (effects,) = replay(svc(), [lc.Skipped("skip: true", 0.0)], UnitState(phase=Phase.STARTING))
    assert st.phase is Phase.SKIPPED
    assert DoAnnounce(Announce.FINISHED) in effects
    # but never a unit with a process
    st = running(svc())
    after, _ = replay(svc(), [lc.Skipped("x", 1.0)], st)
    assert after.phase is Phase.RUNNING
