"""The live table of services and what happens to them: spawn, output, exit, stop.

The supervisor owns one ``Unit`` per service. Every change goes through ``apply``: feed an
event to the pure ``lifecycle.transition``, store the new state, carry out the effects
(spawn, signal the process group, arm a timer), persist, and notify whoever waits
(dependents, pending requests, log followers). Decisions live in ``lifecycle``/``restart``;
this module only does what they say.

Output: a service's stdout and stderr are two pipes (1 MiB buffers). The read ends are
non-blocking, watched by the loop, fed to the service's ``ServiceLog``, and also handed
to the fd holder (``fdholder``) so a ``kill -9`` of the supervisor never breaks them.
Exit: a pidfd per process wakes the loop the instant the service dies; its pipes are
drained first, so output written right before exit is never lost. Leftover members of
the process group are killed before anything is restarted.

Invariant: at most one process per unit; a unit's ``pid`` is set exactly while the
process has not been seen to exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from systemg import proc
from systemg.daemon import lifecycle as lc
from systemg.daemon.fdholder import HolderClient
from systemg.daemon.journal import Journal
from systemg.daemon.lifecycle import Announce, Phase, UnitState
from systemg.daemon.logs import ServiceLog
from systemg.daemon.loop import Loop, Timer
from systemg.daemon.restart import ExitInfo
from systemg.daemon.store import ProjectRecord, ServiceRecord, Store
from systemg.errors import Code, Diagnostic, SpawnError
from systemg.manifest.model import LogSink, Project, Service
from systemg.paths import Paths
from systemg.spawn import cgroups
from systemg.spawn.launcher import launch
from systemg.spawn.plan import SpawnContext, SpawnPlan, build_plan, socket_owner
from systemg.spawn.sockets import Activation, bind_listen

PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = 1031
READ_CHUNK = 256 * 1024  # measured: 1 MiB reads were slower (cache), 64-256 KiB alike

LogListener = Callable[[str, str, bytes], None]  # (project, service, formatted lines)


@dataclass(slots=True)
class Unit:
    """Runtime record of one service (mutable, private to the daemon)."""

    project_id: str
    service: Service
    state: UnitState = field(default_factory=UnitState)
    pidfd: int | None = None
    is_child: bool = False  # forked by this supervisor (can reap it and read its status)
    start_time: int | None = None
    pipes: dict[str, int] = field(default_factory=dict)  # stream -> read fd
    log: ServiceLog | None = None
    timers: list[Timer] = field(default_factory=list)
    plan: SpawnPlan | None = None
    listen_fds: tuple[int, ...] | None = None
    listen_names: tuple[str, ...] = ()
    not_applied: tuple[str, ...] = ()
    error: Diagnostic | None = None  # why the last start failed
    cpu_sample: tuple[float, float] | None = None  # (cpu seconds, wall) at last status

    @property
    def key(self) -> str:
        return f"{self.project_id}/{self.service.name}"


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
        self.projects: dict[str, ProjectRuntime] = {}
        self.listeners: list[LogListener] = []
        self.watchers: list[Callable[[], None]] = []  # run after every state change
        self.announce_hook: Callable[[Unit, Announce], None] = lambda unit, what: None
        self._dirty: set[str] = set()
        self._flush_timer: Timer | None = None

    # --- state changes ----------------------------------------------------------------
    def apply(self, unit: Unit, event: lc.Event) -> None:
        before = unit.state.phase
        unit.state, effects = lc.transition(unit.state, event, unit.service)
        if unit.state.phase is not before:
            self.journal.info(f"{unit.key}: {before} -> {unit.state.phase} {unit.state.message}")
        for effect in effects:
            match effect:
                case lc.DoSpawn():
                    self._spawn(unit)
                case lc.DoSignal(signum=signum):
                    self._signal(unit, signum)
                case lc.DoTimer(kind=kind, delay_s=delay):
                    unit.timers.append(self.loop.call_later(delay, self._timer_cb(unit, kind)))
                case lc.DoCancelTimers():
                    for timer in unit.timers:
                        timer.cancel()
                    unit.timers.clear()
                case lc.DoAnnounce(what=what):
                    self.announce_hook(unit, what)
        self.mark_dirty(unit.project_id)
        for watcher in list(self.watchers):
            watcher()

    def _timer_cb(self, unit: Unit, kind: str) -> Callable[[], None]:
        def fire() -> None:
            now = self.clock()
            match kind:
                case "ready":
                    self.apply(unit, lc.ReadyElapsed(now))
                case "kill":
                    self.journal.warn(f"{unit.key}: did not stop in time, sending SIGKILL")
                    self.apply(unit, lc.KillElapsed(now))
                case "backoff":
                    self.apply(unit, lc.BackoffElapsed(now))

        return fire

    # --- spawning ---------------------------------------------------------------------
    def context_for(self, runtime: ProjectRuntime) -> SpawnContext:
        return SpawnContext(
            is_root=os.geteuid() == 0,
            drop_privileges=runtime.drop_privileges or self.drop_privileges,
            supervisor_env=tuple(os.environ.items()),
        )

    def _spawn(self, unit: Unit) -> None:
        runtime = self.projects[unit.project_id]
        unit.error = None
        now = self.clock()
        try:
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
            child = self._launch(unit, result.plan)
        except SpawnError as exc:
            unit.error = exc.diagnostics[0]
            self.journal.error(f"{unit.key}: [{exc.code}] {exc.diagnostics[0].message}")
            self.apply(unit, lc.SpawnFailed(exc.diagnostics[0].message, now))
            return
        except OSError as exc:
            unit.error = Diagnostic(
                Code.SPAWN_FAILED, f"service '{unit.service.name}' could not start: {exc}"
            )
            self.journal.error(f"{unit.key}: {unit.error.message}")
            self.apply(unit, lc.SpawnFailed(unit.error.message, now))
            return
        self.apply(unit, lc.Spawned(child, now))

    def _launch(self, unit: Unit, plan: SpawnPlan) -> int:
        sink = unit.service.logs.sink
        fds: dict[str, tuple[int, int]] = {}
        if sink is LogSink.FILE:
            for stream in ("stdout", "stderr"):
                r, w = os.pipe2(os.O_CLOEXEC)
                with contextlib.suppress(OSError):
                    fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
                fds[stream] = (r, w)
                _give_pipe(w, plan)
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            out = fds["stdout"][1] if fds else null
            err = fds["stderr"][1] if fds else null
            try:
                child = launch(plan, stdout=out, stderr=err)
            except BaseException:
                for r, _w in fds.values():
                    os.close(r)
                raise
        finally:
            os.close(null)
            for _r, w in fds.values():
                os.close(w)
        unit.is_child = True
        unit.start_time = child.start_time
        self._watch(unit, child.pid, child.pidfd, {s: r for s, (r, _w) in fds.items()})
        return child.pid

    def _watch(self, unit: Unit, pid: int, pidfd: int, pipes: dict[str, int]) -> None:
        unit.pidfd = pidfd
        if pipes and unit.log is None:
            path = self.paths.service_log(unit.project_id, unit.service.name)
            try:
                unit.log = ServiceLog(path, unit.service.logs, group=self.log_group)
            except OSError as exc:
                # The service runs on; its output is drained so it never blocks.
                self.journal.error(f"{unit.key}: cannot open its log {path}: {exc}")
        for stream, fd in pipes.items():
            os.set_blocking(fd, False)
            unit.pipes[stream] = fd
            self.loop.add_reader(fd, self._reader(unit, stream, fd))
        if pipes:
            self.holder.put(f"{unit.key}/{pid}", [pipes[s] for s in ("stdout", "stderr")])
        self.loop.add_reader(pidfd, lambda: self._on_exit(unit, pid))

    # --- output ---------------------------------------------------------------------
    def _reader(self, unit: Unit, stream: str, fd: int) -> Callable[[], None]:
        def on_readable() -> None:
            self._drain(unit, stream, fd)

        return on_readable

    def _drain(self, unit: Unit, stream: str, fd: int, *, limit: int = 64) -> None:
        """Read what is there (bounded, so one chatty service cannot starve the loop)."""
        log = unit.log
        for _ in range(limit):
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close_pipe(unit, stream, fd)
                return
            if log is not None:
                block = log.feed(stream, data, self.clock())
                if block and self.listeners:
                    self._publish(unit, block)

    def _close_pipe(self, unit: Unit, stream: str, fd: int) -> None:
        self.loop.remove(fd)
        if unit.pipes.get(stream) == fd:
            del unit.pipes[stream]
            if unit.log is not None:
                block = unit.log.finish(stream, self.clock())
                if block and self.listeners:
                    self._publish(unit, block)
        os.close(fd)

    def _publish(self, unit: Unit, block: bytes) -> None:
        for listener in list(self.listeners):
            listener(unit.project_id, unit.service.name, block)

    # --- exit -----------------------------------------------------------------------
    def _on_exit(self, unit: Unit, pid: int) -> None:
        if unit.pidfd is None:
            return
        info = ExitInfo(at=self.clock())
        if unit.is_child:
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                reaped, status = pid, -1
            if reaped == 0:
                return  # spurious wake-up: the pidfd is readable only once it exited
            if status >= 0:
                info = _exit_info(status, info.at)
        self.loop.remove(unit.pidfd)
        os.close(unit.pidfd)
        unit.pidfd = None
        # Output written just before the exit is already in the pipes: take it now.
        for stream, fd in list(unit.pipes.items()):
            self._drain(unit, stream, fd, limit=1 << 20)
        # A grandchild may still hold a write end: the pipe stays watched until EOF, but
        # the holder's copy is not needed once this generation is gone.
        self.holder.drop(f"{unit.key}/{pid}")
        self._kill_leftovers(pid)
        if info.signal == signal.SIGKILL and unit.plan is not None and unit.plan.cgroup:
            info = ExitInfo(info.code, info.signal, cgroups.oom_killed(unit.plan), info.at)
        if unit.plan is not None and unit.plan.cgroup is not None:
            cgroups.remove_cgroup(unit.plan)
        self.journal.info(f"{unit.key}: pid {pid} {info.describe()}")
        self.apply(unit, lc.Exited(info, self.clock()))

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
        unit.is_child = False
        unit.start_time = record.start_time
        unit.state = UnitState(
            phase=Phase.RUNNING,
            pid=pid,
            started_at=record.started_at,
            restarts=record.restarts,
        )
        self._watch(unit, pid, pidfd, pipes)
        self.journal.info(f"{unit.key}: re-adopted pid {pid}")
        self.mark_dirty(unit.project_id)
        return True

    # --- persistence ----------------------------------------------------------------
    def mark_dirty(self, project_id: str) -> None:
        self._dirty.add(project_id)
        if self._flush_timer is None:
            self._flush_timer = self.loop.call_later(0, self.flush)

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
        if unit.log is not None and not unit.pipes:
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


def _exit_info(status: int, at: float) -> ExitInfo:
    if os.WIFSIGNALED(status):
        return ExitInfo(signal=os.WTERMSIG(status), at=at)
    return ExitInfo(code=os.waitstatus_to_exitcode(status), at=at)
