"""Every phase is classified, and the sets decisions use partition the phases."""

from __future__ import annotations

from systemg.daemon import phases
from systemg.daemon.phases import Phase


def test_settled_and_transitional_partition_the_phases() -> None:
    assert frozenset(Phase) == phases.SETTLED | phases.TRANSITIONAL
    assert not phases.SETTLED & phases.TRANSITIONAL


def test_health_sets_partition_the_phases() -> None:
    sets = (phases.FAILING, phases.DEGRADED, phases.HEALTHY)
    assert frozenset().union(*sets) == frozenset(Phase)
    assert sum(len(s) for s in sets) == len(Phase)


def test_blocked_is_settled_held_degraded_and_wanted() -> None:
    # A request never waits on a blocked unit, yet a new supervisor still wants it.
    assert Phase.BLOCKED in phases.SETTLED
    assert Phase.BLOCKED in phases.HELD
    assert Phase.BLOCKED in phases.DEGRADED
    assert Phase.BLOCKED in phases.WANTED
    # Waiting is the one held phase a request waits for: its dependency is starting.
    assert Phase.WAITING in phases.TRANSITIONAL


def test_alive_phases_are_transitional_or_running() -> None:
    assert {Phase.RUNNING} == phases.ALIVE - phases.TRANSITIONAL
