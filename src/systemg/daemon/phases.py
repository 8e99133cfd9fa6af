"""Every phase a unit can be in, and every set of phases a decision depends on — in one place.

A decision such as "has this start request settled?", "is this unit failing?" or "should a
new supervisor start it again?" is a question about a set of phases. Keeping the sets here,
next to the enum, means adding a phase (``blocked`` was the last) is one edit and a test
(``tests/unit/test_phases.py``) checks that every phase is classified.

Invariants:

* ``ALIVE`` phases are exactly those in which the unit may have a process (``pid`` set).
* ``SETTLED`` and ``TRANSITIONAL`` partition the phases: a request waiting for units waits
  only while one is transitional, so a unit in a settled phase can never hold it forever.
* ``FAILING``, ``DEGRADED`` and ``HEALTHY`` partition the phases for health.
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    STOPPED = "stopped"
    WAITING = "waiting"  # wanted, but a dependency is not up yet (and may still come up)
    BLOCKED = "blocked"  # wanted, but a dependency is failed, backing off or held itself
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    BACKOFF = "backoff"
    EXITED = "exited"
    KILLED = "killed"
    OOM_KILLED = "oom-killed"
    FAILED = "failed"
    SKIPPED = "skipped"  # its `skip` said so at this start: not launched, not wanted


# May have a live process.
ALIVE = frozenset({Phase.STARTING, Phase.RUNNING, Phase.STOPPING})

# A request that started, stopped or restarted units is answered once none is transitional.
TRANSITIONAL = frozenset({Phase.WAITING, Phase.STARTING, Phase.STOPPING})
SETTLED = frozenset(Phase) - TRANSITIONAL

# Health, as `sysg status` reports it (an unclean `exited` is failing too: see status.py).
FAILING = frozenset({Phase.FAILED, Phase.KILLED, Phase.OOM_KILLED})
DEGRADED = frozenset({Phase.BACKOFF, Phase.WAITING, Phase.BLOCKED, Phase.STARTING, Phase.STOPPING})
HEALTHY = frozenset(Phase) - FAILING - DEGRADED

# Still wanted: a supervisor that finds one of these in a previous supervisor's state and
# its process gone starts it again.
WANTED = frozenset({Phase.RUNNING, Phase.STARTING, Phase.BACKOFF, Phase.WAITING, Phase.BLOCKED})

# May still come up without a new request (a foreground `start` stays attached while any
# unit of its project is in one): a blocked unit needs one of these in its dependencies.
MAY_COME_UP = ALIVE | {Phase.BACKOFF, Phase.WAITING}

# Wanted and not up because of a dependency: started as soon as every dependency is up.
HELD = frozenset({Phase.WAITING, Phase.BLOCKED})

# A dependency in one of these makes its waiting dependents `blocked` (docs/commands.md, `sysg
# start`, SG0109): it will not come up by itself soon, or not at all.
BLOCKING = frozenset({Phase.BACKOFF, Phase.BLOCKED, Phase.SKIPPED} | FAILING)
