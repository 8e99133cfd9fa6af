"""Rolling restarts (docs/manifest.md, "Rolling restarts"): the new generation starts beside the
old one.

A rollout replaces the running process of one ``strategy: rolling`` unit without a gap:

1. the **candidate** — a second ``Unit`` record for the same service, not in the project's
   table (``Unit.shadow``) — goes through the ordinary lifecycle: ``pre_start``, a spawn
   given the unit's held ``listen`` sockets, readiness (READY=1 / health check / 250 ms);
2. up → it *becomes* the unit: the table points at it (its pid is in status and in the state
   file), and the old record hangs off it as ``Unit.draining``; the old process serves on for
   ``grace_period``, then gets its ordinary stop (SIGTERM, ``stop_timeout``, SIGKILL). The
   grace period is the new one's probation: if it exits by itself (or its liveness probe
   stops it) before the old one is stopped, the switch is undone — the old record is the
   unit again, with its pid, service and sockets, and the restart fails with the new one's
   problems (``_roll_back``);
3. not up (it exited, or readiness failed) → it is stopped and dropped; the old unit is
   untouched (same record, pid and state), and the candidate's problems go to the
   ``report`` of the restart that started it (its reply says them, no other reply does).

Why a whole second ``Unit`` rather than a second process field: a candidate needs everything
a launch has (pidfd watch, notify socket, probe state, timers, pre_start sequencing), and all
of that already hangs off ``Unit``; a shadow record reuses lifecycle and readiness unchanged.

Invariants:

* at most one candidate and one draining record per unit, and a shadow never has its own;
* a shadow's announcements and phase changes never move dependents (``Operations`` ignores
  any unit that is not the table's), and its restart policy is ``never`` (a candidate that
  fails, or an old process that dies while draining, is not brought back);
* the listen sockets and the ``ServiceLog`` are shared by both generations and owned by the
  record in the table; the log gets a ``[sysg]`` line at each step naming the pids, and the
  shadow's own lines start with ``[pid N]`` (``processes``), so the file says who wrote what;
* a rollout always finishes (calls ``done``): the grace timer is the loop's, not the unit's,
  so no ``DoCancelTimers`` of either generation can lose it.

No overlap is possible when the service binds a fixed port itself (no ``listen:``, and a
health-check port or ``PORT`` in its env), when ``listen`` changes in the new definition, or
when it has a cgroup (the old one's exit clears the cgroup the new one would share): the
restart is then stop-then-start, with the upstream's warning ``switching to immediate
restart semantics`` on the journal and in the reply. A supervisor killed in the middle of a
switch: the state file records the table's process as the unit and the other generation's
(pid, start time) in ``others``; the next supervisor adopts the first and stops the second
(``daemon.main.recover``) — the rollout itself is not resumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from systemg.daemon import lifecycle as lc
from systemg.daemon.lifecycle import StopReason
from systemg.daemon.ordering import definition_id
from systemg.daemon.phases import ALIVE, SETTLED, Phase
from systemg.daemon.report import unit_problems
from systemg.daemon.units import Unit
from systemg.errors import Code, Diagnostic
from systemg.manifest.model import ProbeKind, RestartPolicy, Service, Strategy

if TYPE_CHECKING:
    from systemg.daemon.supervisor import Supervisor

Done = Callable[[], None]
Report = list[Diagnostic]  # what a restart's reply says: a fallback warning, a failure
# A new generation in one of these left by itself (no stop asked for it).
GAVE_OUT = frozenset({Phase.BACKOFF, Phase.EXITED, Phase.KILLED, Phase.OOM_KILLED, Phase.FAILED})
# ... or its own checks stopped it. A stop asked from outside (manual, shutdown, a crashed
# dependency, another restart) is not a failed probation.
PROBATION_STOPS = frozenset({StopReason.UNREADY, StopReason.WATCHDOG, StopReason.UNHEALTHY})
When = Callable[[Callable[[], bool], Done], None]

FALLBACK = "switching to immediate restart semantics"


def fixed_port(service: Service) -> str | None:
    """Why two generations of ``service`` could not run at once, if it binds a fixed port
    itself (upstream: a health-check port, or ``PORT`` in its environment)."""
    if service.listen:
        return None
    check = service.health_check
    if check is not None and check.kind in (ProbeKind.URL, ProbeKind.TCP) and check.port:
        return f"it binds port {check.port} itself (its health_check) and has no listen:"
    for key, value in (*service.env.file_vars, *service.env.vars):
        if key == "PORT":
            return f"it binds PORT={value} itself and has no listen:"
    return None


def no_overlap(unit: Unit, service: Service) -> str | None:
    """Why ``unit`` cannot run ``service`` beside its current process, if it cannot. A
    blue/green service runs its generations in two slots: a fixed port is no obstacle."""
    port = None if service.blue_green is not None else fixed_port(service)
    if port is not None:
        return port
    if service.listen != unit.service.listen:
        return "its listen: sockets change"
    if service.limits.cgroup is not None or unit.service.limits.cgroup is not None:
        return "it has a cgroup, which two generations cannot share"
    return None


class Rollouts:
    def __init__(self, sup: Supervisor, when: When) -> None:
        self.sup = sup
        self.when = when

    def rolls(self, unit: Unit, service: Service, report: Report) -> bool:
        """Whether the restart of ``unit`` into ``service`` rolls. A rolling service that
        cannot is restarted the immediate way, with the warning put in ``report``."""
        if service.strategy is not Strategy.ROLLING:
            return False
        st = unit.state
        if st.phase is not Phase.RUNNING or st.pid is None:
            return False  # nothing is serving: an ordinary start
        hint = (
            "hand the port to sysg with listen: (the process gets it as LISTEN_FDS), "
            "so both generations share it"
        )
        if unit.candidate is not None or unit.draining is not None or unit.switching:
            # A rollout or a switch of traffic is under way: this restart stops the
            # generations and starts anew (in the slot the traffic was last given to).
            why: str | None = (
                "its traffic is being switched"
                if unit.switching
                else "a rolling restart of it is under way"
            )
            hint = "let it finish, then restart again for a rolling restart"
        else:
            why = no_overlap(unit, service)
        if why is None and service.blue_green is not None:
            why = self._slots_change(unit, service)
            hint = "the next restart rolls, into the other slot"
        if why is None:
            return True
        message = f"service '{service.name}': {why}; {FALLBACK}"
        self.sup.journal.warn(f"{unit.key}: {why}; {FALLBACK}")
        report.append(
            Diagnostic(
                Code.INVALID_VALUE,
                message,
                path=f"services.{service.name}.deployment.strategy",
                hint=hint,
                severity="warning",
            )
        )
        return False

    def _slots_change(self, unit: Unit, service: Service) -> str | None:
        """Why the running process has no slot in ``service``'s blue_green, if it has none
        (the candidate and the switch back need the slot the traffic is on)."""
        new, old = service.blue_green, unit.service.blue_green
        assert new is not None
        if old is None:
            return "blue_green is new, and the running process has no slot"
        running = old.slots[self.sup.bluegreen.index(unit, old)]
        if running not in new.slots:
            return f"its blue_green slots change ({running} is not one of {', '.join(new.slots)})"
        return None

    def roll(self, unit: Unit, service: Service, done: Done, report: Report) -> None:
        """Start ``service`` beside ``unit``'s process; switch once it is up (see above)."""
        sup = self.sup
        sup.ensure_log(unit)
        bg = service.blue_green
        slot = None
        if bg is not None and unit.service.blue_green is not None:
            # By value: the new definition may list the slots in another order (the old
            # unit keeps its own index, into its own definition's slots).
            old_bg = unit.service.blue_green
            running = old_bg.slots[sup.bluegreen.index(unit, old_bg)]
            slot = 1 - bg.slots.index(running)
        candidate = Unit(
            unit.project_id,
            replace(service, restart_policy=RestartPolicy.NEVER),
            shadow=True,
            generation=unit.generation + 1,
            log=unit.log,
            listen_fds=unit.listen_fds,
            listen_names=unit.listen_names,
            skip_override=True,  # the restart asked for this launch
            slot=slot,
        )
        unit.candidate = candidate
        where = "" if bg is None else f" in slot {bg.slots[candidate.slot or 0]}"
        sup.log_note(
            unit, f"rolling restart: starting a new generation{where} beside pid {unit.state.pid}"
        )
        sup.journal.info(f"{unit.key}: rolling restart beside pid {unit.state.pid}")
        sup.apply(candidate, lc.Start(sup.clock()))
        self.when(
            lambda: candidate.state.phase in SETTLED,
            lambda: self._settled(unit, candidate, service, done, report),
        )

    def _settled(
        self, unit: Unit, candidate: Unit, service: Service, done: Done, report: Report
    ) -> None:
        sup = self.sup
        runtime = sup.projects.get(unit.project_id)
        serving = runtime is not None and runtime.units.get(unit.service.name) is unit
        if candidate.state.phase is not Phase.RUNNING or not serving:
            self._reject(unit, candidate, service, [], done=done, report=report)
            return
        if service.blue_green is not None:
            # The candidate stays ``unit.candidate`` while traffic moves: a stop or another
            # restart meanwhile takes it down with the unit, and the cut-over sees that.
            sup.bluegreen.cut_over(
                unit,
                candidate,
                service,
                switched=lambda: self._switch(unit, candidate, service, done, report),
                failed=lambda problems: self._reject(
                    unit, candidate, service, problems, done=done, report=report
                ),
            )
            return
        self._switch(unit, candidate, service, done, report)

    def _reject(
        self,
        unit: Unit,
        candidate: Unit,
        service: Service,
        problems: list[Diagnostic],
        *,
        done: Done,
        report: Report,
    ) -> None:
        """The new generation is not taken: it is stopped (the restart answers once it is
        down, so a retry finds its slot free), the old one serves on."""
        sup = self.sup
        if candidate.state.phase in ALIVE:
            sup.apply(candidate, lc.Stop(StopReason.MANUAL, sup.clock()))
        problems = (
            problems
            or unit_problems(candidate, sup.paths)
            or [
                Diagnostic(
                    Code.EXITED_AT_START,
                    f"service '{service.name}': the new generation did not come up "
                    f"({f'{candidate.state.phase} {candidate.state.message}'.strip()})",
                    path=unit.key,
                    hint=f"see: sysg logs -s {unit.key}",
                )
            ]
        )
        report.extend(problems)
        st = unit.state
        after = f"pid {st.pid} serves on" if st.pid is not None else f"the service is {st.phase}"
        sup.log_note(unit, f"rolling restart: the new generation failed; {after}")
        sup.journal.warn(f"{unit.key}: rolling restart failed ({problems[0].message}); {after}")

        def down() -> None:
            if unit.candidate is candidate:
                unit.candidate = None
            done()

        self.when(lambda: candidate.state.phase not in ALIVE, down)

    def _switch(
        self, unit: Unit, candidate: Unit, service: Service, done: Done, report: Report
    ) -> None:
        """The candidate is up (and has the traffic, for blue/green): it becomes the unit."""
        sup = self.sup
        if unit.candidate is candidate:
            unit.candidate = None
        runtime = sup.projects.get(unit.project_id)
        if runtime is None or runtime.units.get(unit.service.name) is not unit:
            self._reject(unit, candidate, service, [], done=done, report=report)
            return
        if unit.state.phase is Phase.BACKOFF:
            # The old process died meanwhile and waits for its restart: it must not come
            # back beside the new generation, untracked.
            sup.apply(unit, lc.Stop(StopReason.MANUAL, sup.clock()))
        assert runtime is not None
        old_service, old_listen = unit.service, unit.listen_fds
        # The switch: the candidate is the unit from now on.
        candidate.service = service
        candidate.definition = definition_id(service)
        candidate.shadow = False
        unit.shadow = True
        unit.service = replace(unit.service, restart_policy=RestartPolicy.NEVER)
        unit.listen_fds = None  # the sockets are the candidate's now
        candidate.draining = unit
        runtime.units[service.name] = candidate
        runtime.project = replace(
            runtime.project,
            services=tuple(runtime.units[s.name].service for s in runtime.project.services),
        )
        sup.save_now(unit.project_id, service.name)
        grace = service.grace_period_ms / 1000.0
        sup.log_note(
            candidate,
            f"rolling restart: pid {candidate.state.pid} is up; "
            f"pid {unit.state.pid} drains for {grace:g}s",
        )
        sup.journal.info(
            f"{unit.key}: pid {candidate.state.pid} is up; pid {unit.state.pid} drains {grace:g}s"
        )
        old_pid = unit.state.pid
        draining = [True]  # until the grace timer stops the old process

        def drain() -> None:
            draining[0] = False
            if unit.state.phase in ALIVE:
                sup.apply(unit, lc.Stop(StopReason.MANUAL, sup.clock()))

        # Down by the grace timer's stop, or sooner (it died, or a stop took it down).
        timer = sup.loop.call_later(grace, drain)

        def new_one_failed() -> bool:
            # It exited on its own (or its liveness probe stopped it) while the old one still
            # serves: the grace period is its probation, so the old one takes over again.
            st = candidate.state
            unready = st.phase is Phase.STOPPING and st.stop_reason in PROBATION_STOPS
            return (
                draining[0]
                and unit.state.phase is Phase.RUNNING
                and (st.phase in GAVE_OUT or unready)
            )

        def finished() -> None:
            timer.cancel()
            if new_one_failed():
                self._roll_back(unit, candidate, old_service, old_listen, done=done, report=report)
                return
            if candidate.draining is unit:
                candidate.draining = None
            sup.log_note(
                candidate,
                f"rolling restart: pid {old_pid} stopped; pid {candidate.state.pid} serves",
            )
            done()

        self.when(lambda: unit.state.phase not in ALIVE or new_one_failed(), finished)

    def _roll_back(
        self,
        unit: Unit,
        candidate: Unit,
        old_service: Service,
        old_listen: tuple[int, ...] | None,
        *,
        done: Done,
        report: Report,
    ) -> None:
        """The new generation died during the grace period: the old one, still serving, is
        the unit again (its record, pid, service and sockets), and the new one's problems go
        to the restart that started it."""
        sup = self.sup
        runtime = sup.projects[unit.project_id]
        name = old_service.name
        problems = unit_problems(candidate, sup.paths) or [
            Diagnostic(
                Code.EXITED_AT_START,
                f"service '{name}': the new generation died during its grace period "
                f"({f'{candidate.state.phase} {candidate.state.message}'.strip()})",
                path=unit.key,
                hint=f"see: sysg logs -s {unit.key}",
            )
        ]
        candidate.draining = None
        candidate.shadow = True
        candidate.service = replace(candidate.service, restart_policy=RestartPolicy.NEVER)
        unit.shadow = False
        unit.service = old_service
        unit.listen_fds = candidate.listen_fds if candidate.listen_fds is not None else old_listen
        candidate.listen_fds = None
        runtime.units[name] = unit
        runtime.project = replace(
            runtime.project,
            services=tuple(runtime.units[s.name].service for s in runtime.project.services),
        )
        if candidate.state.phase in ALIVE or candidate.state.phase is Phase.BACKOFF:
            sup.apply(candidate, lc.Stop(StopReason.MANUAL, sup.clock()))  # no respawn
        sup.save_now(unit.project_id, name)
        sup.log_note(
            unit,
            f"rolling restart: the new generation failed in its grace period; "
            f"pid {unit.state.pid} serves on",
        )
        sup.journal.warn(
            f"{unit.key}: rolling restart rolled back ({problems[0].message}); "
            f"pid {unit.state.pid} serves on"
        )
        bg = old_service.blue_green  # the old generation's slots: its index is into them
        if bg is None or unit.slot is None or candidate.service.blue_green is None:
            report.extend(problems)
            done()
            return
        # Blue/green: the traffic had moved to the new one; it goes back with the records.
        # Until it is back, a restart stops and starts anew rather than rolling.
        sup.bluegreen.commit(unit, bg, unit.slot)
        unit.switching = True

        def switched_back(outcome: str) -> None:
            unit.switching = False
            first = replace(problems[0], message=f"{problems[0].message}; {outcome}")
            report.extend((first, *problems[1:]))
            done()

        sup.bluegreen.switch_back(unit, bg, unit.slot, switched_back)
