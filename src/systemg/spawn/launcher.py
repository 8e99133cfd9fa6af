"""Parent side of a spawn: fault pipe, fork, pidfd, and turning a child's fault into an error.

``launch`` prepares the exec arguments (bytes argv and environment) *before* forking so the child
only applies, opens a close-on-exec fault pipe, blocks signals across the fork (the child must
not run a supervisor signal handler before it reset them), forks, and reads the pipe until EOF:
EOF with no data means ``execve`` succeeded; a ``(step, errno)`` record means it failed, and the
child (already exited 127) is reaped and a ``SpawnError`` naming the service, the step, the field,
the value — and for rlimits the limit in force — is raised.

Under ``isolation.pid`` the forked child is only an intermediate: it unshares the pid
namespace, forks the service (PID 1 there), sends its host pid and exits. The launcher reaps
it and returns the service itself as the ``Child``: re-parented to the caller, which must be
a child subreaper (``launch`` makes it one for that moment if it is not; the supervisor is
one from boot). Until the intermediate is reaped the service cannot be reaped by anyone, so
its pid cannot be reused before the pidfd is opened, even if it already exited.

Invariant: on success the caller owns ``Child.pidfd`` and must reap ``Child.pid``; on failure
nothing is left behind (no zombie, no fd).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import select
import signal
import time
from dataclasses import dataclass
from typing import Protocol

from systemg import proc
from systemg.errors import ChildFault, Code, Diagnostic, SpawnError
from systemg.manifest.values import format_cpu_list
from systemg.spawn import child, linux
from systemg.spawn.fault import CLONED, RECORD, Step, decode_all
from systemg.spawn.forkserver import ForkServer, Unavailable
from systemg.spawn.plan import SpawnPlan, describe_limit

PRE_EXEC_TIMEOUT_S = 5.0  # fork to exec is milliseconds; past this a step hangs
_CAP_SYS_RESOURCE = 24
_CAP_SYS_NICE = 23


@dataclass(frozen=True, slots=True)
class Child:
    pid: int  # the service's process, which the caller reaps (its child; see launch)
    pidfd: int  # os.pidfd_open(pid), owned by the caller
    start_time: int  # /proc/PID/stat field 22 (identity = pid + start_time)
    # ``launch(..., confirm=False)``: the fault pipe's read end, owned by the caller, while
    # the exec is not confirmed yet (-1: it is). Read to EOF: ``exec_result`` of the bytes.
    exec_fd: int = -1


class Launcher(Protocol):
    def __call__(
        self, plan: SpawnPlan, stdout: int, stderr: int, /, *, confirm: bool = True
    ) -> Child: ...


def through(forkserver: ForkServer | None) -> Launcher:
    """The launcher the supervisor passes around: ``launch`` through its spawn helper."""

    def launcher(plan: SpawnPlan, stdout: int, stderr: int, /, *, confirm: bool = True) -> Child:
        return launch(plan, stdout=stdout, stderr=stderr, forkserver=forkserver, confirm=confirm)

    return launcher


def start_time(pid: int) -> int:
    """The identity start time of a process just launched; 0 if it is already reaped."""
    return proc.start_time(pid, zombie_ok=True) or 0


def launch(
    plan: SpawnPlan,
    *,
    stdout: int,
    stderr: int,
    forkserver: ForkServer | None = None,
    confirm: bool = True,
) -> Child:
    """Fork and exec ``plan`` with stdin ``/dev/null`` and the given stdout/stderr fds;
    through ``forkserver`` (the spawn helper) when given and able, else forked here.

    ``confirm=False``: a forked or cloned child is returned as soon as it exists, with its
    fault pipe as ``Child.exec_fd``; the caller learns how its steps and exec went from that
    pipe, without waiting here (``daemon/execwait.py``). A plan under ``isolation.pid`` is
    still waited for (its service's pid comes through the pipe), and a ``posix_spawn`` is
    confirmed by the call itself."""
    argv = [os.fsencode(a) for a in plan.argv]
    env: dict[bytes, bytes] = {}
    for entry in plan.env:
        key, _, value = entry.partition(b"=")
        env[key] = value
    if _plain(plan) and stdout > 2 and stderr > 2:
        pid = _posix_spawn(plan, argv, env, stdout, stderr)
        return Child(pid, os.pidfd_open(pid), start_time(pid))
    # A pid namespace's service is re-parented to us when the intermediate exits: only a
    # child subreaper gets it (the supervisor is one from boot; any other caller is made
    # one until the intermediate is reaped), else init would reap it and keep its status.
    subreaper = not plan.pid or linux.child_subreaper()
    if not subreaper:
        linux.set_child_subreaper(True)
    try:
        cloned = _clone(plan, argv, env, (stdout, stderr), forkserver) if forkserver else None
        if cloned is None:
            cloned = _fork(plan, argv, env, stdout, stderr)
        if not confirm and not plan.pid:
            pid, read_end = cloned
            try:
                return Child(pid, os.pidfd_open(pid), start_time(pid), exec_fd=read_end)
            except OSError:
                os.close(read_end)
                raise
        return _await_exec(plan, *cloned)
    finally:
        if not subreaper:
            linux.set_child_subreaper(False)


def _fork(
    plan: SpawnPlan, argv: list[bytes], env: dict[bytes, bytes], stdout: int, stderr: int
) -> tuple[int, int]:
    """(pid, fault pipe read end) of a child forked here that runs ``child.run``."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            child.run(plan, argv=argv, env=env, stdout=stdout, stderr=stderr, fault_fd=write_end)
    except OSError as exc:
        os.close(read_end)
        raise _fork_failed(plan, exc.errno or 0) from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(write_end)
    return pid, read_end


def _clone(
    plan: SpawnPlan,
    argv: list[bytes],
    env: dict[bytes, bytes],
    stdio: tuple[int, int],
    forkserver: ForkServer,
) -> tuple[int, int] | None:
    """(pid, fault pipe read end) of a child the spawn helper cloned for us, or None when
    it did not (cannot take this spawn, died, stuck): then nothing was cloned and the
    caller forks here. A cloned child's first record is ``(CLONED, its pid)``; it holds the
    pipe open until it wrote it, so EOF before that record means there is no child."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        forkserver.send(plan, argv, env, [*stdio, write_end, *plan.inherited_fds])
    except Unavailable:
        os.close(read_end)
        return None
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    timeout = forkserver.reply_timeout()
    record = _first_record(read_end, timeout)
    if record is None:
        # Stuck (stopped, or hung in a clone): killed; a child it cloned meanwhile still
        # reports, else the pipe reaches EOF now that the helper's copy is gone.
        forkserver.lost(f"did not answer within {timeout:g}s")
        record = _first_record(read_end, PRE_EXEC_TIMEOUT_S)
        if record is None:
            os.close(read_end)
            raise SpawnError(
                Diagnostic(
                    Code.SPAWN_FAILED,
                    f"service '{plan.service}': the spawn helper hung and was killed",
                    hint="see supervisor.log; the next start uses a new helper",
                )
            )
    marker, value = record
    if marker == CLONED:
        forkserver.answered()
    if marker == CLONED and value > 0:
        return value, read_end
    os.close(read_end)
    if marker == CLONED and -value in (errno.EAGAIN, errno.ENOMEM):
        raise _fork_failed(plan, -value)  # out of processes or memory: a fork fails too
    if marker == CLONED and value < 0:
        # Refused for another reason (a seccomp filter on clone, an old kernel): nothing
        # was cloned, and an in-process fork may well work.
        forkserver.disable(f"cannot clone ({os.strerror(-value)})")
    if marker != CLONED:  # EOF (it died), or not what a cloned child writes first
        forkserver.lost("closed a request unanswered" if marker is None else "broke protocol")
    return None


def _first_record(fd: int, timeout: float) -> tuple[int | None, int] | None:
    """The first record on the fault pipe; (None, 0) at EOF, None when none came in time."""
    if not select.select([fd], [], [], timeout)[0]:
        return None
    data = os.read(fd, RECORD.size)  # records are written whole (8 bytes < PIPE_BUF)
    if len(data) < RECORD.size:
        return None, 0
    marker, value = RECORD.unpack(data)
    return marker, value


def _fork_failed(plan: SpawnPlan, err: int) -> SpawnError:
    return SpawnError(
        Diagnostic(Code.SPAWN_FAILED, f"service '{plan.service}': fork failed: {os.strerror(err)}")
    )


def _await_exec(plan: SpawnPlan, pid: int, read_end: int) -> Child:
    """Read the fault pipe to EOF; the service's ``Child``, or its fault raised.

    Under ``isolation.pid`` ``pid`` is the intermediate process: it sends the service's
    host pid (``FORKED``) and exits; it is reaped first, after which the service (alive, or
    a zombie nobody else may reap) is our child and its pid safe to open a pidfd on."""
    pidfd = os.pidfd_open(pid)
    started = start_time(pid)
    data = b""
    deadline = time.monotonic() + PRE_EXEC_TIMEOUT_S
    try:
        while len(data) < _MAX_READ:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                # Stuck before exec (a working_dir on a dead NFS mount, a cgroup write
                # that hangs): the supervisor's thread must not wait with it.
                service, _ = decode_all(data)
                _kill_stuck(pid, pidfd, service)
                raise stuck_error(plan)
            chunk = os.read(read_end, _MAX_READ - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_end)
    service, fault = decode_all(data)
    if plan.pid:
        os.close(pidfd)
        os.waitpid(pid, 0)  # the intermediate: exited (EOF), or exits at once
        if service is None:
            # The intermediate failed before forking (or died unexpectedly): its fault.
            step, err = fault or (Step.INTERNAL, 0)
            raise fault_error(plan, step, err)
        pid = service
        pidfd = os.pidfd_open(pid)
        started = start_time(pid)
    if fault is None:
        return Child(pid, pidfd, started)
    os.close(pidfd)
    os.waitpid(pid, 0)
    step, err = fault
    raise fault_error(plan, step, err)


_MAX_READ = 2 * RECORD.size  # a fault record, and under a pid namespace the FORKED one


def stuck_error(plan: SpawnPlan) -> SpawnError:
    """A child that did not reach exec within ``PRE_EXEC_TIMEOUT_S`` (and was killed)."""
    return SpawnError(
        Diagnostic(
            Code.SPAWN_FAILED,
            f"service '{plan.service}' did not reach exec within "
            f"{PRE_EXEC_TIMEOUT_S:g}s (a step before it hung; killed)",
            path=plan.path_prefix,
            hint="check working_dir and the cgroup mount; see supervisor.log",
        )
    )


def exec_result(plan: SpawnPlan, data: bytes) -> SpawnError | None:
    """What a ``confirm=False`` child's fault pipe said: None (it reached exec: EOF, no
    record) or the error of the step that failed."""
    _, fault = decode_all(data)
    return None if fault is None else fault_error(plan, *fault)


def _kill_stuck(pid: int, pidfd: int, service: int | None) -> None:
    """SIGKILL a child stuck before exec (and a pid namespace's service, if named), each
    with its process group (they called setsid: pgid = pid). Not waited for: a process
    in uninterruptible sleep dies only when the kernel call returns. Reaped here if
    already gone, else left a zombie until the supervisor exits (better than a
    supervisor that hangs too)."""
    for target in (pid, service):
        for kill in (os.killpg, os.kill):
            if target is not None:
                with contextlib.suppress(OSError):
                    kill(target, signal.SIGKILL)
    if select.select([pidfd], [], [], 0.05)[0]:
        os.waitpid(pid, 0)
        if service is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(service, os.WNOHANG)
    os.close(pidfd)


# Performance (bench/README.md): a forked child of this ~25 MiB Python process pays page-table
# copies and copy-on-write faults (refcounts) before it reaches execve, and the parent waits
# for that on the fault pipe: ~4-10 ms per service. A plan with nothing to apply between fork
# and exec except session, signals, stdio and cwd is started with posix_spawn (vfork + exec
# in libc, ~0.5 ms) instead, with the same observable result as ``child.run``:
#   - new session (setsid), the reset signals back to SIG_DFL, an empty signal mask;
#   - 0 = /dev/null, 1/2 = the given fds, every other fd closed: every fd of the supervisor
#     is close-on-exec (Python opens fds so; the supervisor marks what it inherited at boot,
#     ``detach.mark_all_cloexec``, and what it receives from the fd holder). Scanning /proc/self/fd
#     on every spawn instead cost ~0.6 ms per service with 100 services running;
#   - cwd: the parent changes into ``plan.cwd`` around the call (the supervisor has one
#     thread) and goes back, so a bad cwd is still a CHDIR fault for this service;
#   - the exec candidates are tried in order like ``child.run``; an exec failure is reported
#     by posix_spawn itself and becomes the same EXEC ``SpawnError``.
# One known difference: glibc's posix_spawn leaves its two internal signals (kernel 32 and 33,
# below glibc's SIGRTMIN) ignored across the exec (SigIgn 0x180000000), and CPython cannot
# list them in ``setsigdef``. glibc programs cannot see those signals at all; it is what every
# posix_spawn'd program on glibc gets (subprocess included).
def _plain(plan: SpawnPlan) -> bool:
    return not (
        plan.uid is not None
        or plan.gid is not None
        or plan.groups is not None
        or plan.rlimits
        or plan.nice is not None
        or plan.cpus is not None
        or plan.cap_mask is not None
        or plan.cgroup is not None
        or plan.unshare_flags
        or plan.join_netns
        or plan.user
        or plan.no_new_privs
        or plan.inherited_fds
        or plan.listen_pid_index >= 0
        or plan.watchdog_pid
        or plan.protect is not None
        or plan.lsm_attr is not None
        or plan.seccomp_programs
    )


def _posix_spawn(
    plan: SpawnPlan, argv: list[bytes], env: dict[bytes, bytes], stdout: int, stderr: int
) -> int:
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
        (os.POSIX_SPAWN_DUP2, stdout, 1),
        (os.POSIX_SPAWN_DUP2, stderr, 2),
    ]
    here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.chdir(plan.cwd)
        except OSError as exc:
            raise fault_error(plan, Step.CHDIR, exc.errno or 0) from None
        err = 0
        # Each posix_spawn of a missing PATH entry costs a whole vfork: try the existing
        # entries first (the order among them is kept); the full loop below then yields
        # exactly the errno the child's execve loop would have reported.
        existing = [c for c in plan.exec_candidates if os.path.exists(c)]
        for candidate in (*existing, *plan.exec_candidates):
            try:
                return os.posix_spawn(
                    candidate,
                    argv,
                    env,
                    file_actions=actions,
                    setsid=True,
                    setsigmask=(),
                    setsigdef=child.RESET_SIGNALS,
                )
            except OSError as exc:
                if exc.errno not in (2, 20) or not err:
                    err = exc.errno or 0
        raise fault_error(plan, Step.EXEC, err)
    finally:
        os.fchdir(here)
        os.close(here)


def launch_helper(executable: str, argv: list[str], *, stdout: int) -> Child:
    """Start a short-lived helper of the supervisor's own (``getent`` for account lookups):
    new session, stdin and stderr ``/dev/null``, ``stdout`` as given, the C locale and a
    fixed PATH, every other fd closed (all are close-on-exec). The caller watches and reaps
    it like a service, and kills its session at its timeout."""
    env = {b"PATH": b"/usr/sbin:/usr/bin:/sbin:/bin", b"LC_ALL": b"C"}
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
        (os.POSIX_SPAWN_DUP2, stdout, 1),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    pid = os.posix_spawn(
        executable,
        [os.fsencode(a) for a in argv],
        env,
        file_actions=actions,
        setsid=True,
        setsigmask=(),
        setsigdef=child.RESET_SIGNALS,
    )
    return Child(pid, os.pidfd_open(pid), start_time(pid))


def fault_error(plan: SpawnPlan, step: Step, err: int) -> SpawnError:
    """The ``SpawnError`` for a child that failed at ``step`` with ``err``."""
    strerror = os.strerror(err) if err else "failed"
    who = f"service '{plan.service}'"
    path = f"{plan.path_prefix}.{step.label}" if "." in step.label else plan.path_prefix
    hint = ""
    match step:
        case Step.RLIMIT_NOFILE | Step.RLIMIT_NPROC | Step.RLIMIT_MEMLOCK:
            message, hint = _rlimit_message(plan, step, err)
        case Step.NICE:
            message = f"{who}: cannot set limits.nice to {plan.nice}: {strerror}"
            if err in (errno.EACCES, errno.EPERM) and not _have_cap(_CAP_SYS_NICE):
                message += " (a negative nice needs CAP_SYS_NICE, which this supervisor lacks)"
        case Step.AFFINITY:
            cpus = format_cpu_list(plan.cpus or ())
            online = format_cpu_list(set(os.sched_getaffinity(0)))
            message = f"{who}: cannot set limits.cpu_affinity to {cpus}: {strerror}"
            hint = f"the supervisor may use CPUs {online}"
        case Step.SETGROUPS:
            message = (
                f"{who}: cannot set supplementary groups {list(plan.groups or ())}: {strerror}"
            )
            path = f"{plan.path_prefix}.supplementary_groups"
        case Step.SETGID:
            message = f"{who}: cannot switch to group {plan.gid}: {strerror}"
            path = f"{plan.path_prefix}.group"
        case Step.SETUID:
            message = f"{who}: cannot switch to user {plan.user_name} ({plan.uid}): {strerror}"
            path = f"{plan.path_prefix}.user"
        case Step.CAPS_BOUNDING | Step.CAPS_INHERITABLE | Step.CAPS_SET | Step.CAPS_AMBIENT:
            caps = ", ".join(plan.capability_names) or "none"
            message = f"{who}: cannot set {step.label} to [{caps}]: {strerror}"
            path = f"{plan.path_prefix}.capabilities"
        case Step.NAMESPACE | Step.PID_NAMESPACE_FORK | Step.MOUNT | Step.LOOPBACK:
            keys = [k for k in ("network", "mount", "pid", "private_tmp", "private_devices")
                    if getattr(plan, k)]  # fmt: skip
            message = (
                f"{who}: cannot set up namespaces ({', '.join(f'isolation.{k}' for k in keys)})"
                f" at step '{step.name.lower()}': {strerror}"
            )
            path = f"{plan.path_prefix}.isolation"
        case Step.USER_NAMESPACE:
            message = f"{who}: cannot create the user namespace (isolation.user): {strerror}"
        case Step.CGROUP:
            message = f"{who}: cannot join cgroup {', '.join(plan.cgroup_procs)}: {strerror}"
            path = f"{plan.path_prefix}.limits.cgroup"
        case Step.NO_NEW_PRIVS:
            message = f"{who}: cannot set isolation.no_new_privileges: {strerror}"
        case Step.CHDIR:
            message = f"{who}: cannot change to working_dir '{plan.cwd}': {strerror}"
        case Step.EXEC:
            message = f"{who}: cannot execute '{plan.argv[0]}': {strerror}"
            path = f"{plan.path_prefix}.command"
        case _:
            message = f"{who}: cannot start ({step.name.lower()}): {strerror}"
    return SpawnError(
        Diagnostic(step.code, message, path=path, hint=hint),
        ChildFault(step.name.lower(), err, step.label),
    )


def _have_cap(cap: int) -> bool:
    try:
        return bool(linux.capget()[0] >> cap & 1)
    except OSError:
        return False


def _rlimit_message(plan: SpawnPlan, step: Step, err: int) -> tuple[str, str]:
    setting = next(r for r in plan.rlimits if r.step is step)
    field = step.label
    hard = resource.getrlimit(setting.resource)[1]
    value = describe_limit(setting.value)
    head = f"service '{plan.service}': cannot set {field} to {value}"
    over = hard != resource.RLIM_INFINITY and (
        setting.value == resource.RLIM_INFINITY or setting.value > hard
    )
    if err == errno.EPERM and over and not _have_cap(_CAP_SYS_RESOURCE):
        return (
            f"{head}: the hard limit is {describe_limit(hard)} and raising it needs "
            "CAP_SYS_RESOURCE, which this supervisor lacks",
            f"lower {field} to at most {describe_limit(hard)}, or run sysg where it may raise it",
        )
    if err == errno.EPERM and step is Step.RLIMIT_NOFILE:
        nr_open = _read_int("/proc/sys/fs/nr_open")
        return (
            f"{head}: it exceeds fs.nr_open ({nr_open}), the kernel's ceiling",
            f"lower {field} to at most {nr_open}",
        )
    return f"{head}: {os.strerror(err)} (hard limit {describe_limit(hard)})", ""


def _read_int(path: str) -> int:
    try:
        with open(path) as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 0
