"""Blue/green restarts (docs/manifest.md, "Blue/green"): the rolling restart of a service with
``deployment.blue_green``, whose two generations run in two slots (two ports, say) and whose
traffic is moved by the operator's ``switch_command``.

``rollout`` launches the candidate in the other slot (``slotted``: the slot in ``env_var``,
the slot's ``candidate_health_check`` as its readiness probe). Once it is up, and before
``rollout`` switches the records as for every rolling restart, ``cut_over``:

1. runs ``switch_command`` for "traffic to the candidate's slot", as the service (hooks.py:
   its user, environment with ``SYSG_ACTIVE_SLOT`` / ``SYSG_CANDIDATE_SLOT``, directory),
   bounded by the pre_start budget, its output in the log labelled ``switch``;
2. probes ``switch_verify``, if given, with its own budget (``retries``, ``interval``,
   ``total_timeout``), its output labelled ``switch_verify``;
3. both passed and the candidate still runs: the candidate's slot is written to the slot file,
   then ``rollout`` switches: the old generation drains ``grace_period`` and is stopped.

Either failing, or the candidate gone meanwhile (it exited, a stop or another restart took
it): the switch is run back (traffic to the old slot) and awaited, so the restart returns
with traffic where it was; then the candidate is stopped and the restart fails with SG0112
(the switch), the probe's code (SG0104, SG0022, SG0023: the verification) or the candidate's
own, each message saying whether the switch back worked. A candidate that dies in its grace
period is rolled back by ``rollout``, and the traffic with it (``switch_back``).

The active slot is ``Unit.slot`` (an index into ``slots``), read the first time a launch
needs it from the slot file — ``state_path``, or ``projects/<id>/<service>.slot`` in the
state directory: the slot's value and a newline, replaced by rename — so a new supervisor,
or a start after a stop, launches in the slot that has the traffic. No file: slot 0. A
re-adopted process's slot is the one in its environment.

The files (the slot file, the ``.switching`` marker) are read and written by ``slotfiles``.

Traffic follows the service (``align``): when the service comes up outside a cut-over and
the traffic may be elsewhere, the switch is run to the slot it runs in. "May be elsewhere":
a ``<service>.switching`` marker — written as each switch starts, with its target and its
process (pid, start time), removed by a result that says where the traffic is — survives a
supervisor that stopped or died mid-switch (that switch, if still running, is killed first);
or the traffic is on another slot (what this supervisor last switched to, else the slot
file). While it runs (``Unit.switching``) a restart does not roll.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from systemg import proc
from systemg.daemon import slotfiles
from systemg.daemon.hooks import pre_start_budget_s
from systemg.daemon.lifecycle import StopReason
from systemg.daemon.phases import ALIVE, Phase
from systemg.daemon.probes import Outcome, ProbeResult
from systemg.daemon.report import unit_problems
from systemg.errors import Code, Diagnostic
from systemg.manifest.bluegreen import slotted
from systemg.manifest.model import BlueGreen, ProbeSpec, Service

if TYPE_CHECKING:
    from systemg.daemon.supervisor import Supervisor
    from systemg.daemon.units import Unit

Done = Callable[[], None]
Failed = Callable[[list[Diagnostic]], None]
# A stop from outside (not the unit's own checks): the candidate did not fail, it was taken.
ASKED = frozenset(
    {StopReason.MANUAL, StopReason.SHUTDOWN, StopReason.DEPENDENCY, StopReason.RESTART}
)
_VERIFY_CODES = {
    Outcome.UNREACHABLE: Code.HEALTH_UNREACHABLE,
    Outcome.TIMEOUT: Code.HEALTH_TIMEOUT,
}


class BlueGreens:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self._traffic: dict[str, str] = {}  # unit key -> the slot this supervisor switched to
        sup.phase_listeners.append(self._on_phase)

    # --- the active slot ----------------------------------------------------------------
    def path(self, unit: Unit, bg: BlueGreen) -> Path:
        return slotfiles.slot_path(self.sup.paths, unit.project_id, unit.service.name, bg)

    def _marker(self, unit: Unit) -> Path:
        return slotfiles.marker_path(self.sup.paths, unit.project_id, unit.service.name)

    def index(self, unit: Unit, bg: BlueGreen) -> int:
        """The slot ``unit`` runs in (read from the slot file the first time)."""
        if unit.slot is None:
            value = self._recorded(unit, bg)
            unit.slot = bg.slots.index(value) if value in bg.slots else 0
            if value is not None and value not in bg.slots:
                self.sup.journal.warn(
                    f"{unit.key}: {self.path(unit, bg)} names slot {value[:40]!r}, which is not "
                    f"one of {', '.join(bg.slots)}; starting in {bg.slots[0]}"
                )
        return unit.slot

    def service_for(self, unit: Unit) -> Service:
        """What a launch of ``unit`` runs: its service, in its slot if it has blue_green."""
        bg = unit.service.blue_green
        if bg is None:
            return unit.service
        return slotted(unit.service, self.index(unit, bg))

    def _recorded(self, unit: Unit, bg: BlueGreen) -> str | None:
        try:
            return slotfiles.read_slot(self.path(unit, bg))
        except slotfiles.Unreadable as problem:
            self.sup.journal.warn(f"{unit.key}: {problem}")
            return None

    def commit(self, unit: Unit, bg: BlueGreen, index: int) -> None:
        """``unit``'s slot ``index`` has the traffic: in the slot file (if it can be
        written: else said once, and this supervisor still knows) and in memory."""
        unit.slot = index
        self._traffic[unit.key] = bg.slots[index]
        slotfiles.unmark(self._marker(unit))
        path = self.path(unit, bg)
        try:
            slotfiles.write_slot(path, bg.slots[index])
        except OSError as exc:
            self.sup.journal.error(
                f"{unit.key}: cannot record slot {bg.slots[index]} in {path}: {exc}; "
                "a new supervisor would start it in the other slot"
            )

    def _mark(self, unit: Unit, slot: str, pid: int | None) -> None:
        try:
            slotfiles.mark(self._marker(unit), slot, pid)
        except OSError as exc:
            self.sup.journal.error(f"{unit.key}: cannot write {self._marker(unit)}: {exc}")

    def _stop_orphan(self, unit: Unit) -> None:
        """A switch a previous supervisor started and left running: killed (its process
        group), so it cannot move the traffic after the switch about to run."""
        pid = slotfiles.orphan(self._marker(unit))
        if pid is None:
            return
        self.sup.journal.warn(
            f"{unit.key}: blue/green: stopping switch pid {pid}, left by a previous supervisor"
        )
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)

    # --- traffic where the service runs -------------------------------------------------
    def adopted(self, unit: Unit) -> None:
        """A re-adopted process: its slot is the one in its environment (a supervisor killed
        mid-switch leaves the slot file behind), and traffic is made to follow it."""
        bg = unit.service.blue_green
        if bg is None or unit.state.pid is None:
            return
        value = proc.environ_value(unit.state.pid, bg.env_var)
        if value in bg.slots:
            unit.slot = bg.slots.index(value)
        self.sup.loop.call_later(0, lambda: self.align(unit))

    def _on_phase(self, unit: Unit, _before: Phase) -> None:
        if unit.state.phase is Phase.RUNNING and not unit.shadow:
            self.align(unit)

    def align(self, unit: Unit) -> None:
        """``unit`` is up outside a cut-over: if the traffic may be elsewhere (a switch that
        was cut short, slots that changed, a slot file that says another), switch it here."""
        sup = self.sup
        bg = unit.service.blue_green
        runtime = sup.projects.get(unit.project_id)
        if (
            bg is None
            or unit.shadow
            or unit.switching
            or unit.candidate is not None
            or unit.state.phase is not Phase.RUNNING
            or runtime is None
            or runtime.units.get(unit.service.name) is not unit
        ):
            return
        index = self.index(unit, bg)
        want = bg.slots[index]
        pending = self._marker(unit).exists()
        known = self._traffic.get(unit.key)
        recorded = self._recorded(unit, bg) if known is None else known
        if not pending and recorded in (None, want):
            if recorded is None:
                self.commit(unit, bg, index)  # the first start: the file says where it runs
            return
        why = "a switch was cut short" if pending else f"the traffic was on slot {recorded}"
        sup.journal.warn(f"{unit.key}: blue/green: {why}; switching traffic to slot {want}")
        sup.log_note(unit, f"blue/green: {why}; switching traffic to slot {want}")
        if pending:
            self._stop_orphan(unit)
        unit.switching = True

        def done(result: ProbeResult) -> None:
            unit.switching = False
            if result.outcome is Outcome.PASS:
                self.commit(unit, bg, index)
                sup.log_note(unit, f"blue/green: slot {want} has the traffic")
                self.align(unit)  # its slots may have changed meanwhile
                return
            sup.journal.error(
                f"{unit.key}: blue/green: the switch to slot {want} failed: {result.message}; "
                "check where the traffic goes (it is tried again at the next start)"
            )
            sup.log_note(unit, f"blue/green: the switch to slot {want} failed")

        self.run_switch(unit, bg, index, done)

    # --- the cut-over -------------------------------------------------------------------
    def cut_over(
        self, unit: Unit, candidate: Unit, service: Service, *, switched: Done, failed: Failed
    ) -> None:
        """Move traffic to ``candidate`` (up, in the other slot); see the module docstring."""
        sup = self.sup
        bg = service.blue_green
        assert bg is not None
        assert candidate.slot is not None
        new, old = candidate.slot, 1 - candidate.slot
        to, back_to = bg.slots[new], bg.slots[old]
        where = f"services.{service.name}.deployment.blue_green"
        see = f"see: sysg logs -s {unit.key}"

        def gone() -> list[Diagnostic]:
            st = candidate.state
            if st.phase is Phase.RUNNING and unit.candidate is candidate:
                return []
            if st.stop_reason in ASKED and (st.phase in ALIVE or st.phase is Phase.STOPPED):
                return [
                    Diagnostic(
                        Code.START_FAILED,
                        f"service '{service.name}': the new generation in slot {to} was "
                        "stopped during the traffic switch (a stop or another restart)",
                        path=unit.key,
                        hint=see,
                    )
                ]
            return unit_problems(candidate, sup.paths) or [
                Diagnostic(
                    Code.EXITED_AT_START,
                    f"service '{service.name}': the new generation in slot {to} stopped "
                    f"during the traffic switch ({st.phase})",
                    path=unit.key,
                    hint=see,
                )
            ]

        def undo(problem: Diagnostic, *rest: Diagnostic) -> None:
            sup.log_note(unit, f"blue/green: {problem.message}; switching traffic back")

            def then(outcome: str) -> None:
                failed([replace(problem, message=f"{problem.message}; {outcome}"), *rest])

            self.switch_back(candidate, bg, old, then)

        def after_switch(result: ProbeResult) -> None:
            if result.outcome is not Outcome.PASS:
                undo(
                    Diagnostic(
                        Code.SWITCH_FAILED,
                        f"service '{service.name}': switch_command failed moving traffic "
                        f"to slot {to}: {result.message}",
                        path=f"{where}.switch_command",
                        hint=f"{see} (its output is labelled switch); "
                        f"the command was: {bg.switch[new]}",
                    )
                )
                return
            problems = gone()
            if problems:
                undo(*problems)
                return
            if bg.verify is None:
                commit()
                return
            sup.log_note(unit, f"blue/green: traffic is on slot {to}; verifying")
            self.verify(candidate, bg.verify[new], after_verify)

        def after_verify(result: ProbeResult, attempts: int) -> None:
            problems = gone()
            if problems:
                undo(*problems)
                return
            if result.outcome is not Outcome.PASS:
                undo(
                    Diagnostic(
                        _VERIFY_CODES.get(result.outcome, Code.HEALTH_UNHEALTHY),
                        f"service '{service.name}': switch_verify failed after {attempts} "
                        f"attempt(s) on slot {to}: {result.message}",
                        path=f"{where}.switch_verify",
                        hint=f"{see} (its output is labelled switch_verify)",
                    )
                )
                return
            commit()

        def commit() -> None:
            self.commit(candidate, bg, new)
            sup.journal.info(f"{unit.key}: blue/green: slot {to} has the traffic")
            switched()

        sup.log_note(
            unit,
            f"blue/green: pid {candidate.state.pid} is up in slot {to}; "
            f"switching traffic from slot {back_to}",
        )
        self.run_switch(candidate, bg, new, after_switch)

    def run_switch(
        self, unit: Unit, bg: BlueGreen, index: int, done: Callable[[ProbeResult], None]
    ) -> None:
        """``switch_command`` for "traffic to ``slots[index]``", as ``unit``'s service.
        Marked (``<service>.switching``) until a result says where the traffic is: a
        supervisor gone meanwhile leaves it, and the next one realigns (``align``)."""
        attempt = self.sup.side.run(
            unit,
            bg.switch[index],
            label="switch",
            timeout_s=pre_start_budget_s(default_s=self.sup.config.pre_start_secs),
            done=done,
            extra_env=(
                ("SYSG_ACTIVE_SLOT", bg.slots[1 - index]),
                ("SYSG_CANDIDATE_SLOT", bg.slots[index]),
            ),
        )
        self._mark(unit, bg.slots[index], getattr(attempt, "pid", None))

    def switch_back(
        self, unit: Unit, bg: BlueGreen, index: int, then: Callable[[str], None]
    ) -> None:
        """Traffic back to ``slots[index]``; ``then`` gets what happened, in words."""
        sup = self.sup
        slot = bg.slots[index]

        def done(result: ProbeResult) -> None:
            if result.outcome is Outcome.PASS:
                self._traffic[unit.key] = slot
                slotfiles.unmark(self._marker(unit))
                sup.journal.warn(f"{unit.key}: blue/green: traffic switched back to slot {slot}")
                sup.log_note(unit, f"blue/green: traffic switched back to slot {slot}")
                then(f"traffic was switched back to slot {slot}")
                return
            sup.journal.error(
                f"{unit.key}: blue/green: the switch back to slot {slot} failed too: "
                f"{result.message}"
            )
            sup.log_note(unit, f"blue/green: the switch back to slot {slot} failed too")
            then(
                f"the switch back to slot {slot} failed too ({result.message}): "
                "check where the traffic goes"
            )

        self.run_switch(unit, bg, index, done)

    def verify(
        self, unit: Unit, check: ProbeSpec, done: Callable[[ProbeResult, int], None]
    ) -> None:
        """Probe ``check`` until it passes or its budget is spent (as a readiness probe:
        ``retries`` attempts and, if set, ``total_timeout``); stops early once ``unit`` is
        no longer running."""
        sup = self.sup
        since = time.monotonic()
        attempts = [0]

        def attempt() -> None:
            if unit.state.phase is not Phase.RUNNING:
                done(
                    ProbeResult(Outcome.UNHEALTHY, "the new generation stopped", 0.0, sup.clock()),
                    0,
                )
                return
            sup.readiness.probe(unit, check, result, label="switch_verify")

        def result(outcome: ProbeResult) -> None:
            attempts[0] += 1
            if outcome.outcome is Outcome.PASS or unit.state.phase is not Phase.RUNNING:
                done(outcome, attempts[0])
                return
            elapsed = time.monotonic() - since
            budget = None if check.total_timeout_ms is None else check.total_timeout_ms / 1000
            if attempts[0] >= check.retries and (budget is None or elapsed >= budget):
                done(outcome, attempts[0])
                return
            delay = check.interval_ms / 1000.0
            if budget is not None and attempts[0] >= check.retries:
                delay = min(delay, max(0.0, budget - elapsed))
            sup.loop.call_later(delay, attempt)

        attempt()
