"""The process side of the supervisor: launch a unit's process, watch it, see it exit.

``ProcessSide`` is a part of ``Supervisor`` (a mixin: it uses the supervisor's loop,
journal, holder, accounts and ``apply``), kept apart so each file stays readable.

- **Launch** (``_spawn``): skip and ``pre_start`` first when the service has them
  (``hooks.SideCommands``), account names looked up off the loop (``resolver``), listen
  sockets bound, the plan built, then — written ahead — a fresh ``INVOCATION_ID`` and the
  pipes with the fd holder *before* the process exists, so a supervisor killed right
  after leaves nothing unrecorded. ``_spawn`` never raises: it returns the lifecycle event
  that says how it went, or None while something asynchronous runs first.
- **Output**: each pipe read end is non-blocking and watched (``watch.Watched``); lines go
  to the service's ``ServiceLog`` and to log followers (a rolling restart's other
  generation's lines start with ``[pid N]``). Pipe inodes belong to the user
  the service runs as, so it can reopen ``/dev/stdout``.
- **Exit**: the pidfd wakes the loop at once; pipes are drained first; leftovers of the
  process group and of the cgroup are killed; hooks run (``onerr``, ``onstop``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from systemg import proc
from systemg.daemon import lifecycle as lc
from systemg.daemon.execwait import ExecWait
from systemg.daemon.logs import ServiceLog, log_lines_since, port_collision
from systemg.daemon.ordering import definition_id
from systemg.daemon.phases import Phase
from systemg.daemon.restart import ExitInfo
from systemg.daemon.units import ProjectRuntime, Unit
from systemg.daemon.watch import Exit, Watched
from systemg.errors import Code, Diagnostic, SpawnError
from systemg.manifest.model import LogSink
from systemg.spawn import cgroups
from systemg.spawn.accounts import Pending
from systemg.spawn.launcher import Child, Launcher, through
from systemg.spawn.plan import SpawnPlan, build_plan, socket_owner
from systemg.spawn.sockets import bind_listen

if TYPE_CHECKING:
    from systemg.daemon.bluegreen import BlueGreens
    from systemg.daemon.cron import Scheduler
    from systemg.daemon.holderclient import HolderClient
    from systemg.daemon.hooks import SideCommands
    from systemg.daemon.journal import Journal
    from systemg.daemon.loop import Loop
    from systemg.daemon.readiness import Readiness
    from systemg.daemon.resolver import Resolver
    from systemg.daemon.supervisor_xml import SupervisorConfig
    from systemg.paths import Paths
    from systemg.spawn.plan import SpawnContext
    from systemg.spawn.sockets import Activation

PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = 1031
CGROUP_CLEAR_GRACE_S = 0.005
CGROUP_CLEAR_TRIES = 40  # x 50 ms
# Stops someone asked for: the exit they cause is not an error (no onerr hook).
_ASKED = frozenset(
    {lc.StopReason.MANUAL, lc.StopReason.SHUTDOWN, lc.StopReason.RESTART, lc.StopReason.DEPENDENCY}
)

# A spawn fault fails the unit from these phases; a stop asked meanwhile ends as a stop.
_FAILS = frozenset({Phase.STARTING, Phase.RUNNING})

default_launcher: Launcher = through(None)  # forks in the supervisor: tests, tools


class ProcessSide:
    """The supervisor's methods that start, watch and reap processes (``self`` is the
    ``Supervisor``: what they use of it is declared here for the type checker)."""

    if TYPE_CHECKING:
        activation: Activation
        clock: Callable[[], float]
        config: SupervisorConfig
        cron: Scheduler
        holder: HolderClient
        journal: Journal
        launcher: Launcher
        listeners: list[Callable[[str, str, bytes], None]]
        log_group: int | None
        loop: Loop
        paths: Paths
        projects: dict[str, ProjectRuntime]
        bluegreen: BlueGreens
        readiness: Readiness
        resolver: Resolver
        side: SideCommands

        def apply(self, unit: Unit, event: lc.Event) -> None: ...
        def context_for(self, runtime: ProjectRuntime) -> SpawnContext: ...
        def save_now(self, project_id: str, name: str | None = None) -> None: ...

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
                self.bluegreen.service_for(unit),
                unit.project_id,
                ctx,
                inherited_fds=unit.listen_fds or (),
                fd_names=unit.listen_names,
            )
            for warning in result.warnings:
                self.journal.warn(f"{unit.key}: [{warning.code}] {warning.message}")
            for note in result.notes:
                self.journal.info(f"{unit.key}: note: {note}")
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
        return lc.Spawned(pid, now, execed=unit.exec_wait is None)

    def _prelaunch(self, unit: Unit, seq: int, *, skip: bool = True) -> None:
        """``skip`` and ``pre_start`` first (``hooks``); then this launch, unless it was
        skipped, failed, or the unit was stopped meanwhile."""

        def launch() -> None:
            unit.prelaunch_done = seq
            event = self._spawn(unit)
            if event is not None:
                self.apply(unit, event)

        self.side.prelaunch(unit, seq, skip=skip, launch=launch)

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
            self.save_now(unit.project_id, unit.service.name)
            if fds:
                self.holder.put(self.holder_key(unit), [fds["stdout"][0], fds["stderr"][0]])
            plan = self.readiness.prepare(unit, plan)
            # Performance: not waiting here for the exec of a privileged spawn (execwait.py).
            # A cron job's run record wants a confirmed launch: it still waits.
            child = self.launcher(plan, out, err, confirm=unit.service.cron is not None)
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
        if unit.service.cron is not None:
            self.cron.launched(unit, child.pid)
        pipes = {s: r for s, (r, _w) in fds.items()}
        try:
            self._watch(unit, child.pid, child.pidfd, pipes, True, put=False)
            if child.exec_fd >= 0:
                unit.exec_wait = self._exec_wait(unit, plan, child)
        except BaseException:
            # Launched but not watched: a process nobody supervises must not live on.
            for fd in (child.pidfd, *pipes.values()):
                self.loop.remove(fd)
            _abandon(child, pipes)
            raise
        return child.pid

    def _exec_wait(self, unit: Unit, plan: SpawnPlan, child: Child) -> ExecWait:
        """Watch the exec of ``child`` (execwait.py): ``Execed`` once it reached it; a fault
        is journaled now and fails the unit when its exit comes (``_on_exit``)."""

        def on_exec() -> None:
            if unit.exec_wait is not None and unit.exec_wait.pid == child.pid:
                unit.exec_wait = None  # confirmed: nothing left to watch
            if unit.state.pid == child.pid:
                self.apply(unit, lc.Execed(self.clock()))

        def on_fault(error: SpawnError) -> None:
            self.journal.error(f"{unit.key}: [{error.code}] {error.diagnostics[0].message}")

        return ExecWait(self.loop, plan, child, on_exec, on_fault)

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
            self.ensure_log(unit)

        def on_output(stream: str, data: bytes) -> None:
            if unit.shadow:
                data = _tagged(unit, stream, data, pid)
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

    def log_note(self, unit: Unit, text: str) -> None:
        """A ``[sysg]`` line of the supervisor's own in the unit's log (and to followers)."""
        self.ensure_log(unit)
        if unit.log is not None:
            block = unit.log.note(text, self.clock())
            if block and self.listeners:
                self._publish(unit, block)

    def ensure_log(self, unit: Unit) -> None:
        if unit.log is not None or unit.service.logs.sink is not LogSink.FILE:
            return
        path = self.paths.service_log(unit.project_id, unit.service.name)
        try:
            spec = unit.service.logs
            # Caps the manifest left unset are the supervisor's (supervisor.xml).
            spec = replace(
                spec,
                max_bytes=self.config.log_max_bytes if spec.max_bytes is None else spec.max_bytes,
                max_files=self.config.log_max_files if spec.max_files is None else spec.max_files,
            )
            unit.log = ServiceLog(path, spec, group=self.log_group, journal=self.journal)
        except OSError as exc:
            # The service runs on; its output is drained so it never blocks.
            self.journal.error(f"{unit.key}: cannot open its log {path}: {exc}")

    def log_output(self, unit: Unit, stream: str, data: bytes) -> None:
        """Output of the unit's process, or of what runs for it (``probe``, hooks)."""
        self.ensure_log(unit)
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
        fault = None
        if unit.exec_wait is not None and unit.exec_wait.pid == ended.pid:
            unit.exec_wait.close()  # a fault it wrote before exiting fails the unit below
            fault, unit.exec_wait = unit.exec_wait.error, None
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
        if unit.state.pid == ended.pid and fault is not None and unit.state.phase in _FAILS:
            # It never reached exec: the spawn failed, as a spawn that waited for it said.
            unit.error = fault.diagnostics[0]
            self.apply(unit, lc.SpawnFailed(unit.error.message, self.clock()))
        elif unit.state.pid == ended.pid:
            st = unit.state
            asked = st.phase is Phase.STOPPING and st.stop_reason in _ASKED
            if not info.clean and not asked:
                self._note_port_collision(unit, st.started_at)
            self.apply(unit, lc.Exited(info, self.clock()))
            if not asked and (not info.clean or st.phase is Phase.STOPPING):
                self.side.fire(unit, "onerr", info)
            self.side.fire(unit, "onstop", info)

    def _note_port_collision(self, unit: Unit, started_at: float | None) -> None:
        """A crash whose own output (this generation's) says its address was taken is named
        as such in supervisor.log, with the upstream's code."""
        log = self.paths.service_log(unit.project_id, unit.service.name)
        if port_collision(log_lines_since(log, started_at)):
            self.journal.warn(
                f"{unit.key}: SG0105: its address is already in use (its output says so); "
                "free the port or give the service another"
            )

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


def _tagged(unit: Unit, stream: str, data: bytes, pid: int) -> bytes:
    """A rolling restart's other generation (``Unit.shadow``: the new one while it starts,
    the old one while it drains) shares the unit's log: each of its lines starts with
    ``[pid N]``, so the file says which process wrote what while both run."""
    tag = b"[pid %d] " % pid
    head = b"" if stream in unit.open_lines else tag
    body = data.replace(b"\n", b"\n" + tag)
    if data.endswith(b"\n"):
        body = body[: -len(tag)]
        unit.open_lines.discard(stream)
    else:
        unit.open_lines.add(stream)
    return head + body


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
    for fd in (child.pidfd, child.exec_fd, *pipes.values()):
        with contextlib.suppress(OSError):
            if fd >= 0:
                os.close(fd)


def _exit_info(status: int, at: float) -> ExitInfo:
    if os.WIFSIGNALED(status):
        return ExitInfo(signal=os.WTERMSIG(status), at=at)
    return ExitInfo(code=os.waitstatus_to_exitcode(status), at=at)
