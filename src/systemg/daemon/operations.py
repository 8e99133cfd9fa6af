"""Multi-service operations on the supervisor: register, start, stop, restart, reconcile.

An operation drives units through ``Supervisor.apply`` and finishes when a condition over
their phases holds; it never blocks the loop. ``_Waiter`` objects are re-checked after
every state change, and call their continuation once done.

Ordering: start follows ``depends_on`` (a unit starts once every dependency is running,
or is a one-shot that exited 0); stop goes in reverse dependency order, wave by wave.
Dependency crash: the dependents of a service that died unexpectedly are stopped, and
started again once it is back up.

Held units: a wanted unit whose dependencies are not all up is ``waiting`` while each of
them may still come up by itself soon (starting), and ``blocked`` (SG0109, naming the
chain ``web -> db`` and the state at its end) once one is failed, backing off, stopped
or blocked itself. Both are re-evaluated on every phase change of a dependency, so a
blocked unit starts by itself when its dependency comes up; ``blocked`` is a settled
phase, so a request never waits for a dependency that is not coming (docs/commands.md, `sysg
start`).

Rolling restarts: a ``strategy: rolling`` unit that a restart or reconcile would bounce is
rolled instead (``rollout``): the other units of the group are stopped first, then the
rolling ones are switched to their new generation, then the group is started as usual (a
rolled unit is running already). A stop takes a unit's candidate and draining generations
down with it.

Shutdown is bounded: every unit is stopped in reverse order, and whatever is still alive
after the longest ``stop_timeout`` plus a grace period is killed and the shutdown ends
regardless of what state any unit is in.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Collection, Iterable
from dataclasses import replace

from systemg.daemon import lifecycle as lc
from systemg.daemon.lifecycle import Announce, StopReason
from systemg.daemon.ordering import closure_with_dependencies, reconcile, with_dependents
from systemg.daemon.phases import ALIVE, BLOCKING, HELD, SETTLED, Phase
from systemg.daemon.rollout import Report, Rollouts
from systemg.daemon.supervisor import ProjectRuntime, Supervisor, Unit
from systemg.errors import Code, Diagnostic
from systemg.manifest.graph import direct_dependents, start_layers
from systemg.manifest.model import Project, RestartPolicy, Service

Done = Callable[[], None]

SHUTDOWN_GRACE_S = 5.0  # past the longest stop_timeout, before the shutdown kills


class _Waiter:
    def __init__(self, ops: Operations, check: Callable[[], bool], then: Done) -> None:
        self.ops, self.check, self.then = ops, check, then

    def __call__(self, _unit: Unit | None) -> None:
        if self.check():
            self.ops.sup.watchers.remove(self)
            self.then()


class _EachWaiter:
    """``then`` once ``holds(u)`` is true for every unit ``u`` of a set at the same moment.

    Kept incrementally: an event re-tests only the unit it changed (an event changes only
    its own unit), so an operation over N units costs O(1) per event instead of a scan of
    all N (a cold start of N services was N² with ``when(lambda: all(...))``)."""

    def __init__(
        self, ops: Operations, units: Iterable[Unit], holds: Callable[[Unit], bool], then: Done
    ) -> None:
        self.ops, self.holds, self.then = ops, holds, then
        self.units = {id(u): u for u in units}
        self.pending = {key for key, u in self.units.items() if not holds(u)}

    def __call__(self, unit: Unit) -> None:
        key = id(unit)
        if key not in self.units:
            return
        if self.holds(unit):
            self.pending.discard(key)
        else:
            self.pending.add(key)
        if not self.pending:
            self.ops.sup.watchers.remove(self)
            self.then()


class Operations:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.rollouts = Rollouts(sup, self.when)
        sup.subscribers.append(self._on_announce)
        sup.phase_listeners.append(self._on_phase)

    # --- helpers ----------------------------------------------------------------------
    def when(self, check: Callable[[], bool], then: Done) -> None:
        """Run ``then`` once ``check()`` holds — never synchronously, so the caller can
        finish recording what it started before the continuation reads it."""
        if check():
            self.sup.loop.call_later(0, then)
            return
        self.sup.watchers.append(_Waiter(self, check, then))

    def recheck(self) -> None:
        """Test every ``when`` condition now, for a change that is not a unit's event."""
        for watcher in list(self.sup.watchers):
            if isinstance(watcher, _Waiter) and watcher in self.sup.watchers:
                watcher(None)

    def when_each(self, units: Iterable[Unit], holds: Callable[[Unit], bool], then: Done) -> None:
        """``when(lambda: all(holds(u) for u in units), then)``, at O(1) per event."""
        waiter = _EachWaiter(self, units, holds, then)
        if not waiter.pending:
            self.sup.loop.call_later(0, then)
            return
        self.sup.watchers.append(waiter)

    def units(self, project_id: str, names: Iterable[str] | None = None) -> list[Unit]:
        runtime = self.sup.projects[project_id]
        if names is None:
            return list(runtime.units.values())
        return [runtime.units[n] for n in names if n in runtime.units]

    @staticmethod
    def satisfied(unit: Unit, *, completed: bool = False) -> bool:
        """``unit`` releases its dependents: it is up (``condition: started``, unless
        ``completed``), or a one-shot that exited 0 (``condition: completed``)."""
        st = unit.state
        if st.phase is Phase.RUNNING and not completed:
            return True
        return (
            st.phase is Phase.EXITED
            and st.last_exit is not None
            and st.last_exit.clean
            and unit.service.restart_policy is not RestartPolicy.ALWAYS
        )

    def _deps_ready(self, runtime: ProjectRuntime, unit: Unit) -> bool:
        completed = unit.service.completed_deps
        return all(
            self.satisfied(runtime.units[d], completed=d in completed)
            for d in unit.service.depends_on
        )

    def _blocking(self, dep: Unit) -> bool:
        st = dep.state
        if st.phase in BLOCKING:
            return True
        if st.phase is Phase.EXITED:
            return not self.satisfied(dep)
        return st.phase is Phase.STOPPED and st.stop_reason is not StopReason.DEPENDENCY

    def _blocked_by(self, runtime: ProjectRuntime, unit: Unit) -> list[Unit] | None:
        """The chain ``[unit, dep, ..., root]`` that keeps ``unit`` from coming up, if any."""
        chain = [unit]
        current = unit
        while True:
            for name in current.service.depends_on:
                dep = runtime.units[name]
                if self._blocking(dep) and dep not in chain:
                    chain.append(dep)
                    break
            else:
                return chain if len(chain) > 1 else None
            if chain[-1].state.phase is not Phase.BLOCKED:
                return chain
            current = chain[-1]

    def _hold(self, runtime: ProjectRuntime, unit: Unit) -> None:
        """A wanted unit that is not up: start it, or say what it waits for."""
        now = self.sup.clock()
        if self._deps_ready(runtime, unit):
            self.sup.apply(unit, lc.Start(now))
            return
        chain = self._blocked_by(runtime, unit)
        if chain is None:
            self.sup.apply(unit, lc.Wait(now))
            return
        root = chain[-1]
        path = " -> ".join(u.service.name for u in chain)
        phase = "backing off" if root.state.phase is Phase.BACKOFF else str(root.state.phase)
        what = phase + (f" ({root.state.message})" if root.state.message else "")
        if root.state.phase is Phase.BACKOFF:
            after = f"it starts by itself once '{root.service.name}' is up"
        else:
            after = f"fix '{root.service.name}', then: sysg start -s {root.key}"
        skipped = root.state.phase is Phase.SKIPPED
        unit.error = Diagnostic(
            Code.DEPENDENCY_FAILED,
            f"service '{unit.service.name}' is blocked: {path}: '{root.service.name}' is {what}",
            path=unit.key,
            hint=f"it starts by itself once '{root.service.name}' is up "
            f"(sysg start -s {root.key} starts it despite its skip)"
            if skipped
            else f"see: sysg logs -s {root.key}; {after}",
            # Skipped on purpose: its dependents waiting is what was asked for, not a failure
            # (the upstream's start exits 0 there too).
            severity="warning" if skipped else "error",
        )
        self.sup.apply(unit, lc.Block(f"blocked by {path}: {what}", now))

    # --- registration -----------------------------------------------------------------
    def register(
        self, project: Project, environ: dict[str, str], drop: bool, *, persist: bool = True
    ) -> ProjectRuntime:
        """Make ``project`` known (persisted at once, unless the caller is re-adopting a
        previous supervisor's services and will record them itself)."""
        runtime = self.sup.projects.get(project.id)
        if runtime is None:
            runtime = ProjectRuntime(project, environ, drop)
            for service in project.services:
                runtime.units[service.name] = Unit(project.id, service)
            self.sup.projects[project.id] = runtime
        else:
            runtime.environ, runtime.drop_privileges = environ, drop
            # Not running: take the new definition now. Running: `restart` applies it.
            for service in project.services:
                unit = runtime.units.get(service.name)
                if unit is None:
                    runtime.units[service.name] = Unit(project.id, service)
                elif unit.state.phase not in ALIVE and unit.state.phase is not Phase.BACKOFF:
                    self._redefine(unit, service)
            runtime.project = project
        if persist:
            self.sup.save_now(project.id)
        else:
            self.sup.mark_dirty(project.id)
        return runtime

    def _redefine(self, unit: Unit, service: Service) -> None:
        if unit.service.listen != service.listen:
            self.sup.release(unit)
        unit.service = service

    # --- start ------------------------------------------------------------------------
    def start(
        self,
        project_id: str,
        names: Iterable[str] | None,
        then: Done,
        *,
        leave_done: Collection[str] = (),
        explicit: bool = True,
    ) -> list[Unit]:
        """Start ``names`` (None: the whole project) and their dependencies. A one-shot in
        ``leave_done`` that already completed (exited 0) is not run again (a reconcile
        that did not change it). ``explicit``: ``names`` were named by the user (``start
        -s``), so their own ``skip`` is not asked; a restart's are not (``explicit=False``:
        a skipped service stays skipped, and what depends on it waits)."""
        runtime = self.sup.projects[project_id]
        wanted = closure_with_dependencies(
            runtime.project, names if names is not None else runtime.units
        )
        now = self.sup.clock()
        touched: list[Unit] = []
        # `sysg start -s X` starts X even if its `skip` says otherwise (upstream); a skip
        # still applies to the dependencies started along with it.
        for name in names if names is not None and explicit else ():
            if name in runtime.units:
                runtime.units[name].skip_override = True
        for layer in start_layers(runtime.project):
            for name in layer:
                if name not in wanted:
                    continue
                unit = runtime.units[name]
                if unit.service.cron is not None:
                    self.sup.cron.schedule(unit)  # a job runs on its schedule (cron.py)
                    continue
                touched.append(unit)
                if unit.state.phase in (Phase.STARTING, Phase.RUNNING):
                    continue
                if name in leave_done and self.satisfied(unit, completed=True):
                    continue
                if self._deps_ready(runtime, unit):
                    self.sup.apply(unit, lc.Start(now))
                else:
                    self._hold(runtime, unit)
        self.when_each(touched, lambda u: u.state.phase in SETTLED, then)
        return touched

    # --- stop -------------------------------------------------------------------------
    def stop(
        self,
        project_id: str,
        names: Iterable[str] | None,
        then: Done,
        reason: StopReason = StopReason.MANUAL,
    ) -> None:
        runtime = self.sup.projects[project_id]
        selected = set(names) if names is not None else set(runtime.units)
        for name in selected:
            unit = runtime.units.get(name)
            if unit is not None and unit.service.cron is not None:
                self.sup.cron.unschedule(unit)
        waves = [
            [runtime.units[n] for n in layer if n in selected]
            for layer in reversed(start_layers(runtime.project))
        ]
        self._stop_waves([w for w in waves if w], reason, then)

    def _stop_waves(self, waves: list[list[Unit]], reason: StopReason, then: Done) -> None:
        if not waves:
            self.sup.loop.call_later(0, then)
            return
        wave, rest = waves[0], waves[1:]
        now = self.sup.clock()
        # A wave is done when each unit is down, or has gone down once since this stop:
        # a `start` that came while it was stopping restarts it at once, and a stop that
        # waited for it to be down would wait for ever.
        # The other generations of a unit in a rolling restart go down with it.
        wave = [*wave, *(g for u in wave for g in (u.candidate, u.draining) if g is not None)]
        marks = {id(u): u.stops_done + 1 for u in wave}
        for unit in wave:
            self.sup.apply(unit, lc.Stop(reason, now))

        def down(u: Unit) -> bool:
            return u.state.phase not in ALIVE or u.stops_done >= marks[id(u)]

        self.when_each(wave, down, lambda: self._stop_waves(rest, reason, then))

    # --- restart / reconcile ----------------------------------------------------------
    def restart(
        self,
        project_id: str,
        names: Iterable[str],
        then: Done,
        *,
        new: Project | None = None,
        report: Report | None = None,
    ) -> list[Unit]:
        """Restart ``names`` and everything that depends on them.

        With ``new``, those services take their definitions from it (``restart -s``
        applies an edit of that service only; the rest of the project is untouched).
        ``report`` gets what this restart's rolling ones met (a fallback, a failure).
        """
        report = [] if report is None else report
        runtime = self.sup.projects[project_id]
        group = with_dependents(runtime.project, names)
        touched: list[Unit] = []

        def definition(name: str) -> Service:
            service = None if new is None else new.service(name)
            return service if service is not None else runtime.units[name].service

        rolling = {
            n
            for n in group
            if n in runtime.units and self.rollouts.rolls(runtime.units[n], definition(n), report)
        }

        def start_again() -> None:
            if new is not None:
                for name in group - rolling:
                    service = new.service(name)
                    if service is not None and name in runtime.units:
                        self._redefine(runtime.units[name], service)
                runtime.project = replace(
                    runtime.project,
                    services=tuple(runtime.units[s.name].service for s in runtime.project.services),
                )
                self.sup.mark_dirty(project_id)
            self._roll(project_id, {n: definition(n) for n in rolling}, start_rest, report)

        def start_rest() -> None:
            touched.extend(self.start(project_id, group, then, explicit=False))

        self.stop(project_id, group - rolling, start_again)
        return touched

    def _roll(
        self, project_id: str, services: dict[str, Service], then: Done, report: Report
    ) -> None:
        """Roll each of ``services`` (by name) into its new definition, all at once."""
        runtime = self.sup.projects.get(project_id)
        pending = [len(services)]
        if runtime is None or not services:
            self.sup.loop.call_later(0, then)
            return

        def one_done() -> None:
            pending[0] -= 1
            if pending[0] == 0:
                then()

        for name, service in services.items():
            self.rollouts.roll(runtime.units[name], service, one_done, report)

    def reconcile(
        self,
        new: Project,
        environ: dict[str, str],
        drop: bool,
        then: Done,
        report: Report | None = None,
    ) -> str:
        """Apply a changed manifest: returns a one-line summary of what will change.
        ``report`` gets what its rolling restarts met."""
        report = [] if report is None else report
        runtime = self.sup.projects.get(new.id)
        if runtime is None:
            self.register(new, environ, drop)
            self.start(new.id, None, then)
            return f"added project '{new.id}'"
        diff = reconcile(runtime.project, new)
        # A process re-adopted after a crash may run an older definition than the one its
        # unit was given from the manifest on disk: it counts as changed too.
        changed = set(diff.changed) | {
            s.name
            for s in new.services
            if s.name in runtime.units and self.sup.stale(runtime.units[s.name], s)
        }
        bounce = changed | set(diff.removed)
        bounce |= with_dependents(runtime.project, changed) - set(diff.removed)
        unchanged = not (diff.added or diff.removed or changed)
        if unchanged:
            # An unchanged project is bounced, as upstream and every peer do (a "restart"
            # that restarts nothing would be a lie); cron jobs keep their schedule.
            bounce = {n for n, u in runtime.units.items() if u.service.cron is None}
        rolling: dict[str, Service] = {}
        for name in bounce - set(diff.removed):
            service = new.service(name)
            if service is not None and self.rollouts.rolls(runtime.units[name], service, report):
                rolling[name] = service

        def apply_new_definitions() -> None:
            for name in diff.removed:
                self.sup.release(runtime.units.pop(name))
            runtime.environ, runtime.drop_privileges = environ, drop
            for service in new.services:
                existing = runtime.units.get(service.name)
                if existing is None:
                    runtime.units[service.name] = Unit(new.id, service)
                elif service.name not in rolling:
                    self._redefine(existing, service)
            runtime.project = new
            self.sup.mark_dirty(new.id)
            # Units the new manifest left alone keep their state: a one-shot that completed
            # is not run again (only a bounced or added one is).
            keep = frozenset(runtime.units) - bounce - set(diff.added)
            self._roll(new.id, rolling, lambda: self._start_all(new.id, then, keep), report)

        self.stop(new.id, bounce - set(rolling), apply_new_definitions)
        parts = [
            f"{label}: {', '.join(sorted(names))}"
            for label, names in (
                ("added", diff.added),
                ("removed", diff.removed),
                ("changed", changed),
            )
            if names
        ]
        return "; ".join(parts) or f"no changes; restarted {', '.join(sorted(bounce))}"

    def _start_all(self, project_id: str, then: Done, keep: Collection[str]) -> None:
        self.start(project_id, None, then, leave_done=keep)

    def forget(self, project_id: str, then: Done) -> None:
        def drop() -> None:
            runtime = self.sup.projects.pop(project_id, None)
            if runtime is not None:
                for unit in runtime.units.values():
                    self.sup.release(unit)
            then()

        self.stop(project_id, None, drop)

    def stop_everything(self, then: Done) -> None:
        """Stop every unit of every project, then ``then`` — within a bounded time."""
        finished = [False]

        def finish() -> None:
            if not finished[0]:
                finished[0] = True
                then()

        units = [u for rt in self.sup.projects.values() for u in rt.units.values()]
        longest = max((u.service.stop_timeout_ms / 1000.0 for u in units), default=0.0)
        # Stop waves go one after another, so allow the longest timeout per wave.
        waves = max((len(start_layers(rt.project)) for rt in self.sup.projects.values()), default=1)
        self.sup.loop.call_later(longest * waves + SHUTDOWN_GRACE_S, lambda: self._force(finish))
        pending = set(self.sup.projects)
        if not pending:
            self.sup.loop.call_later(0, finish)
            return
        for project_id in list(pending):

            def one_done(pid: str = project_id) -> None:
                pending.discard(pid)
                if not pending:
                    finish()

            self.stop(project_id, None, one_done, StopReason.SHUTDOWN)

    def _force(self, then: Done) -> None:
        """The shutdown took too long: kill what is left (by process group), then end."""
        for runtime in self.sup.projects.values():
            for unit in runtime.units.values():
                pid = unit.state.pid
                if pid is None:
                    continue
                self.sup.journal.warn(f"{unit.key}: still {unit.state.phase} at shutdown, killing")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        alive = [u for rt in self.sup.projects.values() for u in rt.units.values() if u.main]
        # Their exits are reaped as they come; give them a moment, never forever.
        # Generic ``when``: ``main`` is cleared before (and sometimes without) an event.
        self.when(lambda: not any(u.main for u in alive), then)
        self.sup.loop.call_later(1.0, then)

    # --- dependency reactions ---------------------------------------------------------
    def _on_announce(self, unit: Unit, what: Announce) -> None:
        runtime = self.sup.projects.get(unit.project_id)
        if runtime is None or unit.shadow:
            return
        now = self.sup.clock()
        if what is Announce.DOWN:
            old = unit.draining
            if old is not None and old.state.phase is Phase.RUNNING:
                # A rolling restart's new generation died while the old one still serves
                # (rollout.py rolls back to it): the service never went down.
                return
            for name in with_dependents(runtime.project, [unit.service.name]) - {unit.service.name}:
                dependent = runtime.units[name]
                if dependent.state.phase in ALIVE or dependent.state.phase is Phase.BACKOFF:
                    self.sup.journal.info(
                        f"{dependent.key}: stopping because its dependency "
                        f"'{unit.service.name}' went down"
                    )
                    self.sup.apply(dependent, lc.Stop(StopReason.DEPENDENCY, now))
            return
        if what is Announce.STOPPED:
            # A dependent stopped for a crashed dependency is held until it is back up.
            st = unit.state
            if st.phase is Phase.STOPPED and st.stop_reason is StopReason.DEPENDENCY:
                self._hold(runtime, unit)

    def _on_phase(self, unit: Unit, before: Phase) -> None:
        """Any phase change of a unit re-evaluates its held dependents."""
        runtime = self.sup.projects.get(unit.project_id)
        if runtime is None or unit.shadow or unit.service.name not in runtime.units:
            return
        for name in direct_dependents(runtime.project).get(unit.service.name, ()):
            dependent = runtime.units.get(name)
            if dependent is not None and dependent.state.phase in HELD:
                self._hold(runtime, dependent)
