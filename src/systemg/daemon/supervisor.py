"""The live table of services and what happens to them: spawn, output, exit, stop.

The supervisor owns one ``Unit`` per service. Every change goes through ``apply``: feed an
event to the pure ``lifecycle.transition``, store the new state, carry out the effects
(spawn, signal the process group, arm a timer), persist, and tell the subscribers
(dependency handling, pending requests, log followers). Decisions live in
``lifecycle``/``restart``; this module only does what they say.

Events are **queued**, never re-entered: an effect or a subscriber that causes another
event (a spawn that fails, a dependent released by an ``up``) appends it to the queue,
and ``apply`` works the queue until it is empty. The outcome of a spawn (``Spawned`` /
``SpawnFailed``) goes to the front, so nothing can overtake it.

Nothing that goes wrong in one unit's handling may leave it in a transitional phase:
any exception while carrying out an event is logged and the unit, if it has no process,
is marked ``failed`` with ``SG0001`` — never stuck ``starting`` or ``stopping``.

Launching, watching and reaping processes is ``processes.ProcessSide`` (a part of this
class, in its own module); readiness is ``readiness.Readiness``; commands run for a service
(pre_start, hooks) are ``hooks.SideCommands``. Processes are watched by ``watch.Watched``
(pidfd + output pipes), so a unit can own more than one process; its timers are
``timers.Timers`` keyed by kind; the records are ``units.Unit`` / ``units.ProjectRuntime``.

Invariant: at most one *main* process per unit; a unit's ``state.pid`` is set exactly
while that process has not been seen to exit.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from systemg import proc
from systemg.daemon import lifecycle as lc
from systemg.daemon import pidxml
from systemg.daemon.bluegreen import BlueGreens
from systemg.daemon.cron import Scheduler
from systemg.daemon.holderclient import HolderClient
from systemg.daemon.hooks import SideCommands
from systemg.daemon.journal import Journal
from systemg.daemon.lifecycle import Announce, UnitState
from systemg.daemon.loop import Loop, Timer
from systemg.daemon.ordering import definition_id
from systemg.daemon.phases import Phase
from systemg.daemon.processes import ProcessSide, default_launcher
from systemg.daemon.readiness import Readiness
from systemg.daemon.resolver import Resolver
from systemg.daemon.store import ProjectRecord, ServiceRecord, Store, write_atomic
from systemg.daemon.supervisor_xml import SupervisorConfig
from systemg.daemon.timers import TimerKind, Timers
from systemg.daemon.units import ProjectRuntime, Unit
from systemg.errors import Code, Diagnostic
from systemg.manifest.model import Service
from systemg.paths import Paths
from systemg.spawn.accounts import CachedAccounts
from systemg.spawn.launcher import Launcher
from systemg.spawn.plan import SpawnContext
from systemg.spawn.sockets import Activation

LogListener = Callable[[str, str, bytes], None]  # (project, service, formatted lines)
Subscriber = Callable[["Unit", Announce], None]
PhaseListener = Callable[["Unit", Phase], None]  # (unit, phase before) after every change


class Supervisor(ProcessSide):
    def __init__(
        self,
        loop: Loop,
        paths: Paths,
        store: Store,
        holder: HolderClient,
        journal: Journal,
        *,
        activation: Activation | None = None,
        drop_privileges: bool = False,
        log_group: int | None = None,
        clock: Callable[[], float] = time.time,
        launcher: Launcher = default_launcher,
        config: SupervisorConfig | None = None,
    ) -> None:
        self.loop = loop
        self.config = config or SupervisorConfig()  # supervisor.xml
        self.ready_after_s = self.config.startup_stability_ms / 1000.0
        self.paths = paths
        self.store = store
        self.holder = holder
        self.journal = journal
        self.activation = activation or Activation((), ())
        self.drop_privileges = drop_privileges
        self.log_group = log_group  # system mode: the operator group may read service logs
        self.clock = clock
        self.launcher = launcher
        self.accounts = CachedAccounts()
        self.resolver = Resolver(loop, self.accounts)
        self.readiness = Readiness(self)
        self.side = SideCommands(self)
        self.projects: dict[str, ProjectRuntime] = {}
        self.listeners: list[LogListener] = []
        # Run after every event, told which unit it changed (operations.Operations.when).
        self.watchers: list[Callable[[Unit], None]] = []
        self.subscribers: list[Subscriber] = []  # told of every announcement
        self.phase_listeners: list[PhaseListener] = []  # told of every phase change
        self._queue: deque[tuple[Unit, lc.Event]] = deque()
        self._applying = False
        self._dirty: set[str] = set()
        self._dirty_services: set[tuple[str, str]] = set()
        self._flush_timer: Timer | None = None
        self._pidxml_dirty: set[str] = set()
        self._pidxml: dict[str, str] = {}  # the text last written, per project
        self._pidxml_timer: Timer | None = None
        self.cron = Scheduler(self)  # after phase_listeners: it is one
        self.bluegreen = BlueGreens(self)  # and so is this

    # --- state changes ----------------------------------------------------------------
    def apply(self, unit: Unit, event: lc.Event) -> None:
        """Queue ``event`` for ``unit`` and, unless already doing so, work the queue."""
        self._queue.append((unit, event))
        if self._applying:
            return
        self._applying = True
        try:
            while self._queue:
                self._apply_one(*self._queue.popleft())
        finally:
            self._applying = False

    def _apply_one(self, unit: Unit, event: lc.Event) -> None:
        before = unit.state.phase
        try:
            unit.state, effects = lc.transition(
                unit.state, event, unit.service, ready_after_s=self.ready_after_s
            )
            if before is Phase.STOPPING and unit.state.phase is not Phase.STOPPING:
                unit.stops_done += 1
            if before is Phase.STARTING and unit.state.phase is not Phase.STARTING:
                if unit.prelaunch is not None:
                    # Stopped (or failed) before launch: its pre_start / skip command must
                    # not run on (cancel kills its process group).
                    unit.prelaunch.cancel()
                    unit.prelaunch = None
                self.readiness.settled(unit)
                if unit.state.phase is Phase.RUNNING:
                    self.readiness.became_up(unit)
            if unit.state.phase is not before:
                self.journal.info(
                    f"{unit.key}: {before} -> {unit.state.phase} {unit.state.message}"
                )
            for effect in effects:
                self._carry_out(unit, effect)
        except Exception:
            self._internal_error(unit, traceback.format_exc())
        if isinstance(event, lc.Spawned):
            self.save_now(unit.project_id, unit.service.name)
        else:
            self.mark_dirty(unit.project_id, unit.service.name)
        if unit.state.phase is not before:
            for listener in list(self.phase_listeners):
                self._guarded(unit, listener, before)
        for watcher in list(self.watchers):
            try:
                watcher(unit)
            except Exception:
                self.journal.error(f"internal error in a waiter:\n{traceback.format_exc()}")

    def _carry_out(self, unit: Unit, effect: lc.Effect) -> None:
        match effect:
            case lc.DoSpawn():
                unit.launch_seq += 1
                outcome = self._spawn(unit)
                if outcome is not None:
                    self._queue.appendleft((unit, outcome))
            case lc.DoSignal(signum=signum):
                self._signal(unit, signum)
            case lc.DoTimer(kind=kind, delay_s=delay):
                self.timers(unit).set(kind, delay, self._timer_cb(unit, kind))
            case lc.DoCancelTimers():
                self.timers(unit).cancel_all()
            case lc.DoCancelTimer(kind=kind):
                self.timers(unit).cancel(kind)
            case lc.DoAwaitReady():
                self.readiness.await_ready(unit)
            case lc.DoAnnounce(what=what):
                for subscriber in list(self.subscribers):
                    self._guarded(unit, subscriber, what)

    def _guarded(self, unit: Unit, callback: Callable[[Unit, Any], None], arg: object) -> None:
        try:
            callback(unit, arg)
        except Exception:
            self.journal.error(
                f"{unit.key}: internal error in a subscriber:\n{traceback.format_exc()}"
            )

    def _internal_error(self, unit: Unit, text: str) -> None:
        """A bug met while handling ``unit``: log it; never leave the unit transitional."""
        self.journal.error(f"{unit.key}: internal error (continuing):\n{text}")
        last = text.strip().splitlines()[-1] if text.strip() else "unknown error"
        unit.error = Diagnostic(
            Code.INTERNAL,
            f"service '{unit.service.name}': internal error: {last}",
            hint="this is a bug in sysg: please report it with supervisor.log",
        )
        if unit.state.pid is None and unit.state.phase not in (Phase.STOPPED, Phase.FAILED):
            stopping = unit.state.phase is Phase.STOPPING
            unit.state = replace(
                unit.state,
                phase=Phase.STOPPED if stopping else Phase.FAILED,
                message=unit.error.message,
            )
            if unit.timers is not None:
                unit.timers.cancel_all()

    def timers(self, unit: Unit) -> Timers:
        if unit.timers is None:
            unit.timers = Timers(self.loop)
        return unit.timers

    def _timer_cb(self, unit: Unit, kind: TimerKind) -> Callable[[], None]:
        def fire() -> None:
            now = self.clock()
            match kind:
                case TimerKind.READY:
                    self.apply(unit, lc.ReadyElapsed(now))
                case TimerKind.KILL:
                    self.journal.warn(f"{unit.key}: did not stop in time, sending SIGKILL")
                    self.apply(unit, lc.KillElapsed(now))
                case TimerKind.BACKOFF:
                    self.apply(unit, lc.BackoffElapsed(now))
                case TimerKind.START:
                    self.readiness.start_timeout(unit)
                case TimerKind.WATCHDOG:
                    self.readiness.watchdog_expired(unit)
                case _:
                    pass

        return fire

    # --- spawning ---------------------------------------------------------------------
    def context_for(self, runtime: ProjectRuntime) -> SpawnContext:
        return SpawnContext(
            is_root=os.geteuid() == 0,
            drop_privileges=runtime.drop_privileges or self.drop_privileges,
            supervisor_env=tuple(os.environ.items()),
            accounts=self.accounts,
        )

    def adopt(self, unit: Unit, record: ServiceRecord, pipes: dict[str, int]) -> bool:
        """Take over a live process recorded by a previous supervisor (pid + start time)."""
        pid = record.pid
        if pid is None or record.start_time is None:
            return False
        if proc.start_time(pid) != record.start_time:
            return False
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return False
        unit.start_time = record.start_time
        unit.definition = record.definition
        unit.invocation = record.invocation
        unit.state = UnitState(
            phase=Phase.RUNNING,
            pid=pid,
            started_at=record.started_at,
            restarts=record.restarts,
        )
        self._watch(unit, pid, pidfd, pipes, False)
        self.journal.info(f"{unit.key}: re-adopted pid {pid}")
        self.mark_dirty(unit.project_id, unit.service.name)
        self.bluegreen.adopted(unit)
        return True

    def stale(self, unit: Unit, service: Service) -> bool:
        """The unit's live process runs another definition than ``service`` (it was
        re-adopted after a crash that cut a restart short)."""
        return (
            unit.state.pid is not None
            and unit.definition is not None
            and unit.definition != definition_id(service)
        )

    # --- persistence ----------------------------------------------------------------
    def mark_dirty(self, project_id: str, name: str | None = None) -> None:
        """Persist soon (on the coalescing flush): service ``name`` alone (a journal line),
        or, without a name, the whole project."""
        self._pids_changed(project_id)
        if name is None:
            self._dirty.add(project_id)
        else:
            self._dirty_services.add((project_id, name))
        if self._flush_timer is None:
            self._flush_timer = self.loop.call_later(0, self.flush)

    def save_now(self, project_id: str, name: str | None = None) -> None:
        """Persist before anything else happens: after a spawn (a ``kill -9`` right after
        must not leave a live process unrecorded, or the next supervisor starts a
        duplicate) and at registration. ``name``: only that service changed, one journal
        line (``store``); else the whole project. A write (and a rename), no fsync: page
        cache survives a killed supervisor."""
        runtime = self.projects.get(project_id)
        if runtime is None:
            return
        self._pids_changed(project_id)
        if name is not None and self._append(runtime, name):
            return
        self._dirty.discard(project_id)
        self.store.save(self.record(runtime))

    def flush(self) -> None:
        self._flush_timer = None
        dirty, self._dirty = self._dirty, set()
        services, self._dirty_services = self._dirty_services, set()
        for project_id, name in services:
            runtime = self.projects.get(project_id)
            if project_id not in dirty and runtime is not None and not self._append(runtime, name):
                dirty.add(project_id)
        for project_id in dirty:
            runtime = self.projects.get(project_id)
            if runtime is not None:
                self.store.save(self.record(runtime))

    def _pids_changed(self, project_id: str) -> None:
        self._pidxml_dirty.add(project_id)
        if self._pidxml_timer is None:
            self._pidxml_timer = self.loop.call_later(pidxml.DELAY, self.write_pidxml)

    def write_pidxml(self) -> None:
        """The upstream's ``pid.xml`` of each project whose pids may have changed."""
        self._pidxml_timer = None
        dirty, self._pidxml_dirty = self._pidxml_dirty, set()
        for project_id in dirty:
            runtime = self.projects.get(project_id)
            if runtime is None:
                self._pidxml.pop(project_id, None)
                continue
            text = pidxml.render(
                [
                    (name, unit.state.pid, unit.start_time)
                    for name, unit in runtime.units.items()
                    if unit.state.pid is not None
                ]
            )
            if self._pidxml.get(project_id) == text:
                continue
            path = self.paths.project_state_dir(project_id) / "pid.xml"
            try:
                write_atomic(path, text.encode())
            except OSError as exc:
                self.journal.warn(f"{path}: cannot write it: {exc}")
                continue
            self._pidxml[project_id] = text

    def _append(self, runtime: ProjectRuntime, name: str) -> bool:
        """One service's record as a journal line; False when the whole project must be
        saved instead. Past ~2 lines per service the project is snapshotted on the next
        flush, so the journal (and a load's replay) stays O(services)."""
        unit = runtime.units.get(name)
        project_id = runtime.project.id
        if unit is None or not self.store.append(project_id, name, self.service_record(unit)):
            return False
        if self.store.journal_lines(project_id) > 2 * len(runtime.units) + 32:
            self.mark_dirty(project_id)
        return True

    def record(self, runtime: ProjectRuntime) -> ProjectRecord:
        services = {name: self.service_record(unit) for name, unit in runtime.units.items()}
        return ProjectRecord(
            project_id=runtime.project.id,
            manifest_path=runtime.project.manifest_path,
            environ=runtime.environ,
            drop_privileges=runtime.drop_privileges,
            services=services,
        )

    @staticmethod
    def service_record(unit: Unit) -> ServiceRecord:
        st = unit.state
        last = st.last_exit
        return ServiceRecord(
            pid=st.pid,
            start_time=unit.start_time if st.pid else None,
            started_at=st.started_at,
            phase=str(st.phase),
            restarts=st.restarts,
            last_exit=None
            if last is None
            else {
                "code": last.code,
                "signal": last.signal,
                "oom_killed": last.oom_killed,
                "at": last.at,
            },
            stop_reason=None if st.stop_reason is None else str(st.stop_reason),
            definition=unit.definition,
            invocation=unit.invocation,
            others=tuple(
                (g.state.pid, g.start_time)
                for g in (unit.candidate, unit.draining)
                if g is not None and g.state.pid is not None and g.start_time is not None
            ),
        )

    def release(self, unit: Unit) -> None:
        """Free what a unit holds for its whole life (listen sockets, log file)."""
        for fd in unit.listen_fds or ():
            with contextlib.suppress(OSError):
                os.close(fd)
        unit.listen_fds = None
        if unit.log is not None and not unit.outputs:
            unit.log.close()
            unit.log = None


__all__ = ["ProjectRuntime", "Supervisor", "Unit"]  # the records live in units.py
