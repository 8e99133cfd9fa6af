"""The runtime records of the daemon: one ``Unit`` per service, one ``ProjectRuntime`` per project.

Mutable and private to the daemon (the supervisor and its collaborators: ``processes``,
``readiness``, ``hooks``, ``operations``); everything that crosses a module boundary to
the CLI is built from them as frozen data (``status``, ``report``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from systemg.daemon.lifecycle import UnitState
from systemg.daemon.logs import ServiceLog
from systemg.daemon.timers import Timers
from systemg.daemon.watch import Watched
from systemg.errors import Diagnostic
from systemg.manifest.model import Project, Service
from systemg.spawn.plan import SpawnPlan

if TYPE_CHECKING:
    from systemg.daemon.cron import Job
    from systemg.daemon.execwait import ExecWait
    from systemg.daemon.probes import Attempt
    from systemg.daemon.readiness import Health

SAMPLES = 120  # CPU/RSS samples kept per unit (status/inspect's ``metrics``, inspect's samples)


@dataclass(slots=True)
class Unit:
    """Runtime record of one service (mutable, private to the daemon)."""

    project_id: str
    service: Service
    state: UnitState = field(default_factory=UnitState)
    main: Watched | None = None  # the main process, while it has not been seen to exit
    start_time: int | None = None
    outputs: list[Watched] = field(default_factory=list)  # processes with open pipes
    log: ServiceLog | None = None
    timers: Timers | None = None
    plan: SpawnPlan | None = None
    listen_fds: tuple[int, ...] | None = None
    listen_names: tuple[str, ...] = ()
    not_applied: tuple[str, ...] = ()
    error: Diagnostic | None = None  # why the last start failed, or why it is blocked
    resolving: object | None = None  # token of the account lookup its spawn waits for
    definition: str | None = None  # definition_id of what the live process was started as
    invocation: str | None = None  # INVOCATION_ID of the last launch (recorded before it)
    health: Health | None = None  # readiness: notify socket, probes, watchdog (readiness.py)
    launch_seq: int = 0  # counts launch attempts (a DoSpawn each)
    prelaunch_done: int = -1  # the launch_seq whose skip / pre_start already passed
    prelaunch: Attempt | None = None  # its skip command or pre_start while it runs
    exec_wait: ExecWait | None = None  # its process's exec, not confirmed yet (execwait.py)
    skip_override: bool = False  # named by `sysg start -s`: its `skip` is not asked (once)
    cpu_sample: tuple[float, float] | None = None  # (cpu seconds, wall) at last status
    # (epoch s, cpu %, rss bytes) per status/inspect that found it running: the last SAMPLES
    samples: deque[tuple[float, float, int]] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    stops_done: int = 0  # times it left `stopping` (a stop request waits for one more)
    job: Job | None = None  # a cron job's schedule and runs (cron.py)
    # Rolling restarts (rollout.py): the other generation of the same service, a whole Unit
    # record of its own that is not in the project's table (``shadow``).
    candidate: Unit | None = None  # the new generation, starting beside this one
    draining: Unit | None = None  # the old generation, serving out its grace period
    shadow: bool = False  # a candidate or draining record: it never moves dependents
    generation: int = 0  # counts rolling switches; picks the notify socket's slot
    slot: int | None = None  # blue/green: its index in blue_green.slots (None: not read yet)
    switching: bool = False  # blue/green: a switch of its traffic runs (outside a cut-over)
    open_lines: set[str] = field(default_factory=set)  # streams whose tagged line is unfinished

    @property
    def key(self) -> str:
        return f"{self.project_id}/{self.service.name}"


@dataclass(slots=True)
class ProjectRuntime:
    project: Project
    environ: dict[str, str]
    drop_privileges: bool = False
    units: dict[str, Unit] = field(default_factory=dict)
