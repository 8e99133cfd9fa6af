"""``sysg [--sys] [--drop-privileges] supervise``: the resident supervisor's entry point.

Boot order, each step before the next:

1. mode and paths (``--sys`` → ``/var/lib/systemg``; refused unless root);
2. state and log directories (``0700``; ``0750`` root:operator-group in system mode);
3. the exclusive ``flock`` on ``supervisor.lock`` — a second supervisor on the same state
   root exits 1 at once, so two can never run; then ``sysg.pid``; the supervisor becomes a
   child subreaper (``PR_SET_CHILD_SUBREAPER``): a pid-namespaced service is re-parented to
   it when its intermediate process exits, and so is any orphan a service leaves (reaped
   on SIGCHLD, ``watch.reap_strays``);
4. socket activation: fds passed by systemd (``LISTEN_FDS``) are taken and marked
   close-on-exec, ``LISTEN_*`` removed from the environment;
5. the fd holder (``fdholder``): connect to the one that survived a previous supervisor,
   or start one;
6. the control socket, then re-adoption of services recorded by a previous supervisor
   (pid + kernel start time), restarting those that should run but died meanwhile;
7. the loop. SIGTERM/SIGINT stop every service in reverse dependency order, then exit 0.

The supervisor is one process with one thread; it forks only through ``spawn``.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from systemg.daemon import phases, supervisor_xml
from systemg.daemon.holderclient import HolderClient
from systemg.daemon.journal import Journal
from systemg.daemon.loop import Loop
from systemg.daemon.watch import reap_strays
from systemg.paths import Mode, Paths, ensure_private_dir
from systemg.spawn import linux
from systemg.spawn.detach import mark_all_cloexec, spawn_detached
from systemg.spawn.sockets import capture_activation

if TYPE_CHECKING:
    from systemg.daemon.operations import Operations
    from systemg.daemon.store import ProjectRecord
    from systemg.daemon.supervisor import Supervisor

# Performance: this module imports only what boot steps 1-5 need (above). The rest of the
# supervisor (its table, operations, the control protocol, the manifest loader: most of
# the ~200 ms of imports) is imported in ``main`` once the fd holder has been spawned, so
# the holder's own start-up runs on the other CPU meanwhile instead of competing with the
# first services' spawns.

WANTED = {str(phase) for phase in phases.WANTED}


def self_command() -> list[str]:
    """How to run this same sysg again (for the fd holder)."""
    if os.path.basename(sys.argv[0]) == "sysg" and os.path.exists(sys.argv[0]):
        return [os.path.abspath(sys.argv[0])]
    return [sys.executable, "-m", "systemg"]


def read_settings(paths: Paths) -> dict[str, Any]:
    try:
        data = json.loads(paths.settings_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def prepare_dirs(paths: Paths, operator_gid: int | None) -> None:
    """State and log roots: 0700, or 0750 root:operators in system mode with that group."""
    for directory in (paths.state_dir, paths.log_dir):
        ensure_private_dir(directory, 0o700 if operator_gid is None else 0o750)
        if operator_gid is not None:
            os.chown(directory, 0, operator_gid)
    ensure_private_dir(paths.projects_dir)


def operator_gid(paths: Paths, operator_group: str) -> int | None:
    if paths.mode is not Mode.SYSTEM:
        return None
    import grp

    try:
        return grp.getgrnam(operator_group).gr_gid
    except KeyError:
        return None


def take_lock(paths: Paths) -> int | None:
    fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def connect_holder(paths: Paths, journal: Journal, loop: Loop) -> HolderClient:
    """The fd holder that survived a previous supervisor, or a new one.

    Needs ``sysg.pid`` written first: a holder that outlives us obeys only the pid named
    there. A new holder is not waited for: it inherits its end of a socketpair, so it is
    connected from the fork on and boots while the supervisor opens its socket and starts
    services (their pipes wait in its socket). From then on the client watches it and
    replaces it whenever it dies (``daemon.holderclient``).
    """

    def spawn(conn_fd: int) -> int:
        command = [*self_command(), "fdholder", "--conn", "3", str(paths.state_dir)]
        return spawn_detached(command, paths.supervisor_log, dict(os.environ), conn_fd=conn_fd)

    holder = HolderClient(paths.fdholder_socket, loop, journal, spawn)
    if holder.connect():
        journal.info(f"connected to the surviving fd holder (pid {holder.pid})")
    else:
        holder.start()
    return holder


def recover(sup: Supervisor, ops: Operations, records: list[ProjectRecord]) -> None:
    """Re-adopt live services of a previous supervisor; restart those that died since."""
    from dataclasses import replace

    from systemg import proc
    from systemg.daemon import lifecycle as lc
    from systemg.daemon.lifecycle import Phase, StopReason, UnitState
    from systemg.daemon.restart import ExitInfo
    from systemg.errors import ManifestError
    from systemg.manifest.load import load_manifest

    held = sup.holder.fetch_all()
    # Launched but not yet recorded when the previous supervisor died: found by the token
    # it recorded before the launch.
    orphans = proc.find_invocations(
        {
            saved.invocation
            for record in records
            for saved in record.services.values()
            if saved.pid is None and saved.invocation and saved.phase in WANTED
        }
    )
    for record in records:
        try:
            manifest = load_manifest(
                record.manifest_path,
                environ=record.environ,
                require_trusted=os.geteuid() == 0,
            ).manifest
        except ManifestError as exc:
            sup.journal.error(
                f"cannot reload project '{record.project_id}' from {record.manifest_path}: "
                f"{exc.diagnostics[0].message}"
            )
            continue
        project = manifest.project(record.project_id)
        if project is None:
            continue
        runtime = ops.register(project, record.environ, record.drop_privileges, persist=False)
        restart: list[str] = []
        for name, recorded in record.services.items():
            saved = recorded
            unit = runtime.units.get(name)
            if unit is None:
                continue
            last = saved.last_exit
            unit.state = UnitState(
                phase=Phase.STOPPED,
                restarts=saved.restarts,
                last_exit=None if last is None else ExitInfo(**last),
                stop_reason=None if saved.stop_reason is None else StopReason(saved.stop_reason),
            )
            if saved.pid is None and saved.invocation in orphans:
                pid, started = orphans[saved.invocation or ""]
                sup.journal.info(f"{unit.key}: found pid {pid}, launched but not recorded")
                saved = replace(saved, pid=pid, start_time=started)
            for pid, started in saved.others:
                # A rolling restart's other generation, cut short by the crash: its unit
                # is the recorded pid; this one is stopped (SIGTERM: it finishes requests).
                if proc.start_time(pid) == started:
                    sup.journal.warn(f"{unit.key}: stopping pid {pid}, left by a rolling restart")
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGTERM)
            key = f"{unit.key}/{saved.invocation}"
            pipes_list = held.pop(key, [])
            pipes = dict(zip(("stdout", "stderr"), pipes_list, strict=False))
            if saved.pid is not None and sup.adopt(unit, saved, pipes):
                if sup.stale(unit, unit.service):
                    sup.journal.warn(
                        f"{unit.key}: pid {saved.pid} runs an older definition than "
                        f"{record.manifest_path} (a restart was cut short): "
                        "`sysg restart` applies the current one"
                    )
                if saved.phase == "stopping":
                    # The previous supervisor died mid-stop: finish what was asked.
                    reason = StopReason(saved.stop_reason or StopReason.MANUAL)
                    sup.apply(unit, lc.Stop(reason, sup.clock()))
                continue
            for fd in pipes_list:
                os.close(fd)
            if saved.phase in WANTED and unit.service.cron is None:
                restart.append(name)  # a job is never run off its schedule
        for name in sup.cron.scheduled_in(record.project_id):
            if name in runtime.units:
                sup.cron.schedule(runtime.units[name])
        if restart:
            sup.journal.info(f"{record.project_id}: starting {', '.join(restart)} (died meanwhile)")
            ops.start(record.project_id, restart, lambda: None)
    for key, fds in held.items():
        sup.holder.drop(key)
        for fd in fds:
            os.close(fd)


def main(argv: list[str]) -> int:
    system = "--sys" in argv
    drop = "--drop-privileges" in argv
    if system and os.geteuid() != 0:
        sys.stderr.write("error[SG0704]: --sys requires root\n")
        return 1
    paths = Paths.for_mode(Mode.SYSTEM if system else Mode.USER)
    settings = read_settings(paths)
    operator_group = str(settings.get("operator_group", "systemg"))
    gid = operator_gid(paths, operator_group)
    prepare_dirs(paths, gid)
    lock = take_lock(paths)
    if lock is None:
        sys.stderr.write(f"sysg: another supervisor already runs on {paths.state_dir}\n")
        return 1
    config, config_problems = supervisor_xml.load(paths.supervisor_xml)
    journal = Journal(
        paths.supervisor_log, max_bytes=config.log_max_bytes, max_files=config.log_max_files
    )
    for problem in config_problems:
        journal.warn(f"{paths.supervisor_xml}: {problem}")
    activation = capture_activation(os.environ, os.getpid())
    mark_all_cloexec()  # services are posix_spawn'd: no inherited fd may leak into them
    if activation.fds:
        journal.info(f"socket activation: took fds {list(activation.fds)} {list(activation.names)}")
    paths.pid_file.write_text(f"{os.getpid()}\n")
    os.chmod(paths.pid_file, 0o600)
    linux.set_child_subreaper(True)
    loop = Loop(on_error=lambda text: journal.error(f"internal error (continuing):\n{text}"))

    def strays() -> None:
        for pid, status in reap_strays():
            code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
            journal.info(f"reaped pid {pid} (exit {code}), an orphan of a service")

    def on_sigchld() -> None:
        # After the pidfd callbacks of this wake-up: a watched child is theirs to reap.
        loop.call_later(0, strays)

    loop.on_signal(signal.SIGCHLD, on_sigchld)
    holder = connect_holder(paths, journal, loop)
    gc.disable()  # as entry.py does for this module's own imports
    try:
        from systemg.daemon.audit import Audit
        from systemg.daemon.control import ControlServer
        from systemg.daemon.handlers import Handlers
        from systemg.daemon.operations import Operations
        from systemg.daemon.store import Store
        from systemg.daemon.supervisor import Supervisor
        from systemg.spawn.forkserver import ForkServer
        from systemg.spawn.launcher import through
    finally:
        gc.freeze()
        gc.enable()
    store = Store(paths, journal)
    forkserver = ForkServer(journal.info)  # started on the first spawn that needs a fork
    sup = Supervisor(
        loop,
        paths,
        store,
        holder,
        journal,
        activation=activation,
        drop_privileges=drop,
        log_group=gid,
        launcher=through(forkserver),
        config=config,
    )
    ops = Operations(sup)
    stopping = [False]

    def shutdown() -> None:
        if not stopping[0]:
            stopping[0] = True
            journal.info("stopping every service, then exiting")
            ops.stop_everything(loop.stop)

    # Signals before the control socket: once a client can connect, SIGTERM already
    # means "stop every service, then exit 0" (not the default death).
    loop.on_signal(15, shutdown)
    loop.on_signal(2, shutdown)
    loop.on_signal(1, lambda: journal.info("SIGHUP ignored (use `sysg restart` to reload)"))
    handlers = Handlers(sup, ops, loop.stop)
    audit = Audit(paths.audit_log)
    server = ControlServer(
        loop, paths, handlers, audit, operator_group=operator_group, operator_gid=gid
    )
    journal.info(f"supervisor {os.getpid()} started ({paths.mode} mode, state {paths.state_dir})")
    recover(sup, ops, store.load_all())
    try:
        loop.run()
    finally:
        sup.flush()
        sup.write_pidxml()
        server.close()
        forkserver.close()
        alive = any(u.state.pid for rt in sup.projects.values() for u in rt.units.values())
        if not alive:
            holder.shutdown()
        with contextlib.suppress(FileNotFoundError):
            paths.pid_file.unlink()
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        journal.info("supervisor exited")
        os.close(lock)
    return 0
