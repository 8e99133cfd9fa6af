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

Processes are watched by ``watch.Watched`` (pidfd + output pipes), so a unit could own
more than one process; its timers are ``timers.Timers`` keyed by kind. The output pipes'
read ends are also handed to the fd holder (``fdholder``) so a ``kill -9`` of the
supervisor never breaks them. Leftover members of the process group are killed before
anything is restarted.

Invariant: at most one *main* process per unit; a unit's ``state.pid`` is set exactly
while that process has not been seen to exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from systemg import proc
from systemg.daemon import lifecycle as lc
from systemg.daemon.fdholder import HolderClient
from systemg.daemon.hooks import SideCommands
from systemg.daemon.journal import Journal
from systemg.daemon.lifecycle import Announce, UnitState
from systemg.daemon.logs import ServiceLog, log_tail
from systemg.daemon.loop import Loop, Timer
from systemg.daemon.ordering import definition_id
from systemg.daemon.phases import Phase
from systemg.daemon.probes import Outcome, ProbeResult
from systemg.daemon.readiness import Health, Readiness
from systemg.daemon.resolver import Resolver
from systemg.daemon.restart import ExitInfo
from systemg.daemon.store import ProjectRecord, ServiceRecord, Store
from systemg.daemon.timers import TimerKind, Timers
from systemg.daemon.watch import Exit, Watched
from systemg.errors import Code, Diagnostic, SpawnError
from systemg.manifest.model import PRE_START_TIMEOUT_MS, LogSink, Project, Service
from systemg.paths import Paths
from systemg.spawn import cgroups
from systemg.spawn.accounts import CachedAccounts, Pending
from systemg.spawn.launcher import Child, launch
from systemg.spawn.plan import SpawnContext, SpawnPlan, build_plan, socket_owner
from systemg.spawn.sockets import Activation, bind_listen

PIPE_SIZE = 1024 * 1024
CGROUP_CLEAR_GRACE_S = 0.005
# Stops someone asked for: the exit they cause is not an error (no onerr hook).
_ASKED = frozenset(
    {lc.StopReason.MANUAL, lc.StopReason.SHUTDOWN, lc.StopReason.RESTART, lc.StopReason.DEPENDENCY}
)
CGROUP_CLEAR_TRIES = 40  # x 50 ms
F_SETPIPE_SZ = 1031

LogListener = Callable[[str, str, bytes], None]  # (project, service, formatted lines)
Subscriber = Callable[["Unit", Announce], None]
PhaseListener = Callable[["Unit", Phase], None]  # (unit, phase before) after every change
Launcher = Callable[[SpawnPlan, int, int], Child]  # (plan, stdout fd, stderr fd)


def _launch(plan: SpawnPlan, stdout: int, stderr: int) -> Child:
    return launch(plan, stdout=stdout, stderr=stderr)


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
    skip_override: bool = False  # named by `sysg start -s`: its `skip` is not asked (once)
    cpu_sample: tuple[float, float] | None = None  # (cpu seconds, wall) at last status

    @property
    def key(self) -> str:
        return f"{self.project_id}/{self.service.name}"

    @property
    def is_child(self) -> bool:
        return self.main is not None and self.main.is_child


@dataclass(slots=True)
class ProjectRuntime:
    project: Project
    environ: dict[str, str]
    drop_privileges: bool = False
    units: dict[str, Unit] = field(default_factory=dict)


class Supervisor:
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
        launcher: Launcher = _launch,
    ) -> None:
        self.loop = loop
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
        self.watchers: list[Callable[[], None]] = []  # run after every state change
        self.subscribers: list[Subscriber] = []  # told of every announcement
        self.phase_listeners: list[PhaseListener] = []  # told of every phase change
        self._queue: deque[tuple[Unit, lc.Event]] = deque()
        self._applying = False
        self._dirty: set[str] = set()
        self._flush_timer: Timer | None = None

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
            unit.state, effects = lc.transition(unit.state, event, unit.service)
            if before is Phase.STARTING and unit.state.phase is not Phase.STARTING:
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
            self.save_now(unit.project_id)
        else:
            self.mark_dirty(unit.project_id)
        if unit.state.phase is not before:
            for listener in list(self.phase_listeners):
                self._guarded(unit, listener, before)
        for watcher in list(self.watchers):
            try:
                watcher()
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

    def _spawn(self, unit: Unit) -> lc.Event | None:
        """Launch the unit's process; the event that says how it went (never raises).

        None: account names must be looked up first (``resolver``, off the loop); the
        spawn is planned again when they are known, unless the unit was stopped meanwhile.
        """
        runtime = self.projects[unit.project_id]
        unit.error = None
        now = self.clock()
        service = unit.service
        try:
            if unit.prelaunch_done != unit.launch_seq:
                skip = not unit.skip_override
                if skip and service.skip:
                    return lc.Skipped("skipped (skip: true)", now)
                if (skip and service.skip_command) or service.pre_start:
                    self.side.plan(unit, ":")  # looks the accounts up first (Pending)
                    unit.skip_override = False
                    self._prelaunch(unit, unit.launch_seq, skip=skip)
                    return None
                unit.skip_override = False
            ctx = self.context_for(runtime)
            if unit.listen_fds is None and unit.service.listen:
                uid, gid = socket_owner(unit.service, ctx)
                unit.listen_fds, unit.listen_names = bind_listen(
                    unit.service, uid, gid, self.activation
                )
            result = build_plan(
                unit.service,
                unit.project_id,
                ctx,
                inherited_fds=unit.listen_fds or (),
                fd_names=unit.listen_names,
            )
            for warning in result.warnings:
                self.journal.warn(f"{unit.key}: [{warning.code}] {warning.message}")
            unit.plan = result.plan
            unit.not_applied = result.not_applied
            pid = self._launch(unit, result.plan)
        except Pending as pending:
            token = unit.resolving = object()
            self.resolver.resolve(pending.needs, lambda error: self._resolved(unit, token, error))
            return None
        except SpawnError as exc:
            unit.error = exc.diagnostics[0]
            self.journal.error(f"{unit.key}: [{exc.code}] {exc.diagnostics[0].message}")
            return lc.SpawnFailed(exc.diagnostics[0].message, now)
        except OSError as exc:
            unit.error = Diagnostic(
                Code.SPAWN_FAILED, f"service '{unit.service.name}' could not start: {exc}"
            )
            self.journal.error(f"{unit.key}: {unit.error.message}")
            return lc.SpawnFailed(unit.error.message, now)
        except Exception as exc:
            # A value the kernel cannot take that validation let through (ValueError from
            # posix_spawn on a NUL byte, ...), or a bug: the unit fails with a code, the
            # supervisor carries on.
            self.journal.error(f"{unit.key}: could not start:\n{traceback.format_exc()}")
            unit.error = Diagnostic(
                Code.SPAWN_FAILED,
                f"service '{unit.service.name}' could not start: {type(exc).__name__}: {exc}",
                hint="check the service with `sysg validate`; if it passes, this is a bug "
                "in sysg: please report it with supervisor.log",
            )
            return lc.SpawnFailed(unit.error.message, now)
        return lc.Spawned(pid, now)

    def _prelaunch(self, unit: Unit, seq: int, *, skip: bool = True) -> None:
        """``skip`` (a command: exit 0 = skipped), then ``pre_start``, then the launch."""
        service = unit.service

        def current() -> bool:
            st = unit.state
            return unit.launch_seq == seq and st.phase is Phase.STARTING and st.pid is None

        def pre_start() -> None:
            if not service.pre_start:
                launch()
                return
            self.side.run(
                unit,
                service.pre_start,
                label="pre_start",
                timeout_s=PRE_START_TIMEOUT_MS / 1000.0,
                done=after_pre_start,
            )

        def after_skip(result: ProbeResult) -> None:
            if not current():
                return
            if result.outcome is Outcome.PASS:
                self.apply(unit, lc.Skipped("skipped (its skip command exited 0)", self.clock()))
                return
            pre_start()

        def after_pre_start(result: ProbeResult) -> None:
            if not current():
                return
            if result.outcome is Outcome.PASS:
                launch()
                return
            code = (
                Code.PRE_START_TIMEOUT
                if result.outcome is Outcome.TIMEOUT
                else (Code.PRE_START_FAILED)
            )
            tail = log_tail(self.paths.service_log(unit.project_id, service.name))
            unit.error = Diagnostic(
                code,
                f"service '{service.name}' was not launched: pre_start {result.message}",
                path=f"services.{service.name}.deployment.pre_start",
                hint=(f"last output:\n{tail}\n" if tail else "") + f"see: sysg logs -s {unit.key}",
            )
            self.journal.error(f"{unit.key}: {unit.error.message}")
            self.apply(unit, lc.SpawnFailed(unit.error.message, self.clock()))

        def launch() -> None:
            unit.prelaunch_done = seq
            event = self._spawn(unit)
            if event is not None:
                self.apply(unit, event)

        if skip and service.skip_command:
            self.side.run(
                unit,
                service.skip_command,
                label="pre_start",
                timeout_s=PRE_START_TIMEOUT_MS / 1000.0,
                done=after_skip,
            )
        else:
            pre_start()

    def _resolved(self, unit: Unit, token: object, error: str | None) -> None:
        if unit.resolving is not token:
            return
        unit.resolving = None
        if unit.state.phase is not Phase.STARTING or unit.state.pid is not None:
            return  # stopped (or restarted) while the names were looked up
        if error is not None:
            unit.error = Diagnostic(
                Code.SPAWN_FAILED,
                f"service '{unit.service.name}' could not start: {error}",
                path=f"services.{unit.service.name}.user",
            )
            self.journal.error(f"{unit.key}: {unit.error.message}")
            self.apply(unit, lc.SpawnFailed(unit.error.message, self.clock()))
            return
        event = self._spawn(unit)
        if event is not None:
            self.apply(unit, event)

    def _launch(self, unit: Unit, plan: SpawnPlan) -> int:
        sink = unit.service.logs.sink
        fds: dict[str, tuple[int, int]] = {}
        null = -1
        try:
            if sink is LogSink.FILE:
                for stream in ("stdout", "stderr"):
                    r, w = os.pipe2(os.O_CLOEXEC)
                    fds[stream] = (r, w)
                    with contextlib.suppress(OSError):
                        fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
                    _give_pipe(w, plan)
            null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            out = fds["stdout"][1] if fds else null
            err = fds["stderr"][1] if fds else null
            # Write-ahead: the launch's token is on disk, and its pipes are with the fd
            # holder, before the process exists. A supervisor killed right after the
            # launch leaves a process the next one finds (``proc.find_invocations``) and
            # whose output is still held — never a duplicate, never a SIGPIPE.
            unit.invocation = secrets.token_hex(16)
            unit.definition = definition_id(unit.service)
            plan = replace(plan, env=(*plan.env, proc.INVOCATION_VAR + unit.invocation.encode()))
            self.save_now(unit.project_id)
            if fds:
                self.holder.put(self.holder_key(unit), [fds["stdout"][0], fds["stderr"][0]])
            plan = self.readiness.prepare(unit, plan)
            child = self.launcher(plan, out, err)
        except BaseException:
            self.readiness.ended(unit)
            if fds and unit.invocation is not None:
                self.holder.drop(self.holder_key(unit))
            for r, _w in fds.values():
                os.close(r)
            raise
        finally:
            if null >= 0:
                os.close(null)
            for _r, w in fds.values():
                os.close(w)
        unit.start_time = child.start_time
        self.readiness.launched(unit, child.pid)
        pipes = {s: r for s, (r, _w) in fds.items()}
        try:
            self._watch(unit, child.pid, child.pidfd, pipes, True, put=False)
        except BaseException:
            # Launched but not watched: a process nobody supervises must not live on.
            for fd in (child.pidfd, *pipes.values()):
                self.loop.remove(fd)
            _abandon(child, pipes)
            raise
        return child.pid

    def holder_key(self, unit: Unit) -> str:
        """The fd holder's key for the pipes of the unit's current launch."""
        return f"{unit.key}/{unit.invocation}"

    def _watch(
        self,
        unit: Unit,
        pid: int,
        pidfd: int,
        pipes: dict[str, int],
        is_child: bool,
        *,
        put: bool = True,
    ) -> None:
        key = self.holder_key(unit)
        if pipes:
            self._ensure_log(unit)

        def on_output(stream: str, data: bytes) -> None:
            self.log_output(unit, stream, data)

        def on_eof(stream: str) -> None:
            if unit.log is not None:
                block = unit.log.finish(stream, self.clock())
                if block and self.listeners:
                    self._publish(unit, block)
            if not watched.pipes and watched in unit.outputs:
                unit.outputs.remove(watched)

        watched = Watched(
            self.loop,
            pid,
            pidfd,
            is_child=is_child,
            pipes=pipes,
            on_output=on_output,
            on_eof=on_eof,
            on_exit=lambda ended: self._on_exit(unit, watched, ended, key),
        )
        unit.main = watched
        if pipes:
            unit.outputs.append(watched)
            if put:
                self.holder.put(key, watched.fds())

    def _ensure_log(self, unit: Unit) -> None:
        if unit.log is not None or unit.service.logs.sink is not LogSink.FILE:
            return
        path = self.paths.service_log(unit.project_id, unit.service.name)
        try:
            unit.log = ServiceLog(
                path, unit.service.logs, group=self.log_group, journal=self.journal
            )
        except OSError as exc:
            # The service runs on; its output is drained so it never blocks.
            self.journal.error(f"{unit.key}: cannot open its log {path}: {exc}")

    def log_output(self, unit: Unit, stream: str, data: bytes) -> None:
        """Output of the unit's process, or of what runs for it (``probe``, hooks)."""
        self._ensure_log(unit)
        log = unit.log
        if log is not None:
            block = log.feed(stream, data, self.clock())
            if block and self.listeners:
                self._publish(unit, block)

    def _publish(self, unit: Unit, block: bytes) -> None:
        for listener in list(self.listeners):
            try:
                listener(unit.project_id, unit.service.name, block)
            except Exception:
                self.journal.error(f"internal error in a log listener:\n{traceback.format_exc()}")

    # --- exit -----------------------------------------------------------------------
    def _on_exit(self, unit: Unit, watched: Watched, ended: Exit, key: str) -> None:
        if unit.main is watched:
            unit.main = None
            self.readiness.ended(unit)
        info = ExitInfo(at=self.clock())
        if ended.status is not None:
            info = _exit_info(ended.status, info.at)
        # A grandchild may still hold a write end: the pipe stays watched until EOF, but
        # the holder's copy is not needed once this generation is gone.
        self.holder.drop(key)
        self._kill_leftovers(ended.pid)
        plan = unit.plan
        if plan is not None and plan.cgroup is not None:
            try:
                if info.signal == signal.SIGKILL:
                    info = ExitInfo(info.code, info.signal, cgroups.oom_killed(plan), info.at)
            except Exception as exc:
                self.journal.error(f"{unit.key}: cannot read the cgroup's OOM count: {exc}")
            self._clear_cgroup(unit, plan, CGROUP_CLEAR_TRIES)
        self.journal.info(f"{unit.key}: pid {ended.pid} {info.describe()}")
        if unit.state.pid == ended.pid:
            st = unit.state
            asked = st.phase is Phase.STOPPING and st.stop_reason in _ASKED
            self.apply(unit, lc.Exited(info, self.clock()))
            if not asked and (not info.clean or st.phase is Phase.STOPPING):
                self.side.fire(unit, "onerr", info)
            self.side.fire(unit, "onstop", info)

    def _clear_cgroup(self, unit: Unit, plan: SpawnPlan, tries: int) -> None:
        """Kill what the service left in its cgroup (``setsid`` escapes the group kill)
        and remove the directories. Each pass waits a few ms at most; members that take
        longer to die are looked at again from a timer, never waited for on the loop."""
        try:
            cgroups.remove_cgroup(plan, grace=CGROUP_CLEAR_GRACE_S)
            left = [d for d in plan.cgroup.dirs if os.path.isdir(d)] if plan.cgroup else []
        except Exception as exc:
            self.journal.error(f"{unit.key}: cgroup cleanup failed: {exc}")
            return
        if not left:
            return
        if tries <= 1:
            self.journal.warn(f"{unit.key}: cgroup not removable (still busy): {', '.join(left)}")
            return
        self.loop.call_later(0.05, lambda: self._clear_cgroup(unit, plan, tries - 1))

    def _kill_leftovers(self, pgid: int) -> None:
        """Processes the service left in its group die with it (no orphans)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    def _signal(self, unit: Unit, signum: int) -> None:
        pid = unit.state.pid
        if pid is None:
            return
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        except PermissionError as exc:
            self.journal.error(f"{unit.key}: cannot signal pid {pid}: {exc}")

    # --- adoption -------------------------------------------------------------------
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
        self.mark_dirty(unit.project_id)
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
    def mark_dirty(self, project_id: str) -> None:
        self._dirty.add(project_id)
        if self._flush_timer is None:
            self._flush_timer = self.loop.call_later(0, self.flush)

    def save_now(self, project_id: str) -> None:
        """Persist one project before anything else happens: after a spawn (a ``kill -9``
        right after must not leave a live process unrecorded, or the next supervisor
        starts a duplicate) and at registration. A write and a rename, no fsync: page
        cache survives a killed supervisor (``store``)."""
        self._dirty.discard(project_id)
        runtime = self.projects.get(project_id)
        if runtime is not None:
            self.store.save(self.record(runtime))

    def flush(self) -> None:
        self._flush_timer = None
        dirty, self._dirty = self._dirty, set()
        for project_id in dirty:
            runtime = self.projects.get(project_id)
            if runtime is not None:
                self.store.save(self.record(runtime))

    def record(self, runtime: ProjectRuntime) -> ProjectRecord:
        services = {}
        for name, unit in runtime.units.items():
            st = unit.state
            last = st.last_exit
            services[name] = ServiceRecord(
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
            )
        return ProjectRecord(
            project_id=runtime.project.id,
            manifest_path=runtime.project.manifest_path,
            environ=runtime.environ,
            drop_privileges=runtime.drop_privileges,
            services=services,
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


def _give_pipe(fd: int, plan: SpawnPlan) -> None:
    """The pipe belongs to the user the service runs as.

    A pipe inode is born ``0600`` and owned by its creator (root here). A daemon that
    re-opens its own output (``access_log /dev/stdout``, ``/proc/self/fd/1``) goes through
    an inode permission check, which a service running as ``www-data`` would fail: so the
    inode is handed to the service's uid/gid. Both ends share the inode; the supervisor's
    read end is already open and unaffected.
    """
    if plan.uid is None and plan.gid is None:
        return
    if os.geteuid() != 0:
        return
    os.fchown(fd, -1 if plan.uid is None else plan.uid, -1 if plan.gid is None else plan.gid)


def _abandon(child: Child, pipes: dict[str, int]) -> None:
    """Kill and reap a child that could not be taken under watch; close its fds."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(OSError):
            kill(child.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child.pid, 0)  # SIGKILLed: returns at once
    for fd in (child.pidfd, *pipes.values()):
        with contextlib.suppress(OSError):
            os.close(fd)


def _exit_info(status: int, at: float) -> ExitInfo:
    if os.WIFSIGNALED(status):
        return ExitInfo(signal=os.WTERMSIG(status), at=at)
    return ExitInfo(code=os.waitstatus_to_exitcode(status), at=at)
