"""Between fork and exec: apply a ``SpawnPlan`` in a fixed order, then ``execve``. Never returns.

The order is docs/security.md §3; each step has a ``fault.Step`` number:

1. signals back to default, ``setsid``; stdio wired (0 = ``/dev/null``, 1, 2 = the given fds);
   inherited/listen fds moved to 3.. with close-on-exec cleared; every other fd closed
   (the fault pipe is kept, close-on-exec, above them);
2. join the cgroup: write our pid to every ``cgroup.procs`` of the plan;
3. namespaces: a side command (probe, hook) first enters its service's network namespace
   (``plan.join_netns``); then one ``unshare`` of net/mount/pid; with ``pid`` a fork follows —
   the grandchild is PID 1 of the new namespace, starts its own session (its host pid is
   its process group) and continues; the intermediate sends the grandchild's host pid
   (``fault.encode_forked``) and exits at once (``_hand_over``), so the grandchild is
   re-parented to the launcher, a child subreaper, which watches and reaps it; then private
   mount propagation, the protected paths (``protect_system``, ``protect_home``, ``*_paths``:
   read-only and inaccessible mounts, ``spawn.protect``), a private ``/proc`` (pid), tmpfs
   ``/tmp`` + ``/var/tmp`` (private_tmp), a minimal ``/dev`` (private_devices), ``lo`` up
   (network);
4. rlimits NOFILE, NPROC, MEMLOCK, soft = hard;
5. ``setpriority``, ``sched_setaffinity``;
6. capabilities part 1: ``PR_SET_KEEPCAPS``, drop from the bounding set everything not listed
   (CAP_SETPCAP is still effective), inheritable = list, ambient cleared;
7. ``setgroups`` → ``setgid`` → ``setuid``; then, with ``user``, ``unshare(CLONE_NEWUSER)`` and
   the 1:1 maps. The user namespace comes *after* the switch on purpose: from inside a new user
   namespace a process may only map its own euid, so unsharing as root would pin the service to
   uid 0 and make ``setuid(65534)`` fail (the id is unmapped). Net/mount/pid namespaces created in
   step 3 stay owned by the initial user namespace: the service gains no power over them;
8. capabilities part 2: permitted = effective = inheritable = list, each raised as ambient
   (narrowing E/P before ``setuid`` would drop CAP_SETUID and break step 7);
9. ``PR_SET_NO_NEW_PRIVS`` when requested;
10. ``chdir``, ``LISTEN_PID`` and ``WATCHDOG_PID`` completed with our own pid (1 under a pid
    namespace), the LSM label for the exec (``/proc/self/attr/...``), then, last, the
    seccomp programs (system calls, address families), and ``execve`` of each PATH
    candidate with the prebuilt environment.

On failure: one ``(step, errno)`` record to the fault pipe and ``os._exit(127)``. No logging, no
name lookups: everything was resolved by ``plan.build_plan`` and ``launcher.launch``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import stat
from typing import TYPE_CHECKING, NoReturn

from systemg.spawn import linux, protect
from systemg.spawn.fault import Step, encode, encode_forked

if TYPE_CHECKING:  # the spawn helper runs this module without the manifest's imports
    from systemg.spawn.plan import SpawnPlan

RESET_SIGNALS = _RESET_SIGNALS = (
    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD,
    signal.SIGPIPE, signal.SIGXFSZ, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM,
)  # fmt: skip
_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
            ("urandom", 1, 9), ("tty", 5, 0))  # fmt: skip
_HIGH_FD = 64
_MAX_FD = 0x7FFFFFFF


class _FaultError(Exception):
    def __init__(self, step: Step, err: int) -> None:
        super().__init__(step, err)
        self.step = step
        self.err = err


def _do(step: Step, fn: object, *args: object) -> None:
    try:
        fn(*args)  # type: ignore[operator]
    except OSError as exc:
        raise _FaultError(step, exc.errno or 0) from None


def run(
    plan: SpawnPlan,
    *,
    argv: list[bytes],
    env: dict[bytes, bytes],
    stdout: int,
    stderr: int,
    fault_fd: int,
) -> NoReturn:
    """The child's whole life. Called right after ``os.fork`` with signals blocked."""
    fault = fault_fd
    try:
        signal.set_wakeup_fd(-1)
        for sig in _RESET_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        fault = _step_session_and_fds(plan, stdout, stderr, fault_fd)
        for path in plan.cgroup_procs:
            _do(Step.CGROUP, _write_file, path, str(os.getpid()))
        _step_namespaces(plan, fault)
        for lim in plan.rlimits:
            _do(lim.step, _setrlimit, lim.resource, lim.value)
        if plan.nice is not None:
            _do(Step.NICE, os.setpriority, os.PRIO_PROCESS, 0, plan.nice)
        if plan.cpus is not None:
            _do(Step.AFFINITY, os.sched_setaffinity, 0, plan.cpus)
        if plan.cap_mask is not None:
            _caps_before_switch(plan)
        if plan.groups is not None:
            _do(Step.SETGROUPS, os.setgroups, list(plan.groups))
        if plan.gid is not None:
            _do(Step.SETGID, os.setgid, plan.gid)
        if plan.uid is not None:
            _do(Step.SETUID, os.setuid, plan.uid)
        if plan.user:
            _user_namespace(plan)
        if plan.cap_mask is not None:
            _caps_after_switch(plan)
        if plan.no_new_privs:
            _do(Step.NO_NEW_PRIVS, linux.prctl, linux.PR_SET_NO_NEW_PRIVS, 1)
        _do(Step.CHDIR, os.chdir, plan.cwd)
        if plan.listen_pid_index >= 0:
            env[b"LISTEN_PID"] = str(os.getpid()).encode()
        if plan.watchdog_pid:
            env[b"WATCHDOG_PID"] = str(os.getpid()).encode()
        if plan.lsm_attr is not None:
            _do(Step.LSM, _write_file, *plan.lsm_attr)
        for program in plan.seccomp_programs:  # last: from here on only execve
            _do(Step.SECCOMP, linux.seccomp_load, program)
        err = 0
        for candidate in plan.exec_candidates:
            try:
                os.execve(candidate, argv, env)
            except OSError as exc:
                # Like execvp: a missing entry moves on; any other error is the one to report.
                if exc.errno not in (2, 20) or not err:
                    err = exc.errno or 0
        raise _FaultError(Step.EXEC, err)
    except _FaultError as exc:
        _report(fault, exc.step, exc.err)
    except BaseException:
        _report(fault, Step.INTERNAL, 0)


def _report(fault: int, step: Step, err: int) -> NoReturn:
    try:
        os.write(fault, encode(step, err))
    finally:
        os._exit(127)


def _setrlimit(res: int, value: int) -> None:
    try:
        resource.setrlimit(res, (value, value))
    except ValueError:
        # CPython reports EPERM ("not allowed to raise maximum limit") as ValueError.
        raise OSError(errno.EPERM, "not allowed to raise maximum limit") from None


def _write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _step_session_and_fds(plan: SpawnPlan, stdout: int, stderr: int, fault_fd: int) -> int:
    _do(Step.SETSID, os.setsid)
    n = len(plan.inherited_fds)
    high = max(_HIGH_FD, 3 + n + 1)
    try:
        # Everything we keep is first copied above the slots so no dup2 clobbers a source.
        fault = fcntl.fcntl(fault_fd, fcntl.F_DUPFD_CLOEXEC, high)
        out = fcntl.fcntl(stdout, fcntl.F_DUPFD_CLOEXEC, high)
        err = fcntl.fcntl(stderr, fcntl.F_DUPFD_CLOEXEC, high)
        sources = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, high) for fd in plan.inherited_fds]
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
    except OSError as exc:
        raise _FaultError(Step.STDIO, exc.errno or 0) from None
    try:
        for i, src in enumerate(sources):
            os.dup2(src, 3 + i)  # inheritable: close-on-exec cleared
        # Park the fault pipe just above the slots, then close everything else.
        moved = fcntl.fcntl(fault, fcntl.F_DUPFD_CLOEXEC, 3 + n)
        os.closerange(moved + 1, _MAX_FD)
        fault = moved
        os.closerange(3 + n, fault)
    except OSError as exc:
        raise _FaultError(Step.FDS, exc.errno or 0) from None
    return fault


def _step_namespaces(plan: SpawnPlan, fault: int) -> None:
    if plan.join_netns:
        _do(Step.NAMESPACE, _join_netns, plan.join_netns)
    flags = plan.unshare_flags
    if not flags:
        return
    _do(Step.NAMESPACE, linux.unshare, flags)
    if plan.pid:
        # Blocked until the intermediate has sent the pid: a signal must not kill it first.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            pid = os.fork()
        except OSError as exc:
            raise _FaultError(Step.PID_NAMESPACE_FORK, exc.errno or 0) from None
        if pid:
            _hand_over(fault, pid)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        _do(Step.PID_NAMESPACE_FORK, os.setsid)  # killpg(host pid) reaches the service
    if plan.mount:
        _do(Step.MOUNT, linux.mount, "none", "/", None, linux.MS_REC | linux.MS_PRIVATE, None)
    notify = -1
    if plan.notify_bind is not None:  # opened before any mount can hide it
        notify = _open_path(plan.notify_bind[0])
    if plan.protect is not None:
        _do(Step.PROTECT, protect.apply, plan.protect)
    nosuid = linux.MS_NOSUID | linux.MS_NODEV
    if plan.pid:
        # Its own /proc, where only its own processes exist; hidepid=invisible on top, as
        # systemd's ProtectProc=invisible, hides those of other users among them.
        _do(Step.MOUNT, linux.mount, "proc", "/proc", "proc", nosuid | linux.MS_NOEXEC,
            "hidepid=invisible")  # fmt: skip
    if plan.private_tmp:
        for path in ("/tmp", "/var/tmp"):
            if os.path.isdir(path):
                _do(Step.MOUNT, linux.mount, "tmpfs", path, "tmpfs", nosuid, "mode=1777")
    if plan.private_devices:
        try:
            _minimal_dev()
        except OSError as exc:
            raise _FaultError(Step.MOUNT, exc.errno or 0) from None
    if plan.network and not plan.join_netns:
        _do(Step.LOOPBACK, linux.loopback_up)
    if notify >= 0 and plan.notify_bind is not None:
        _do(Step.MOUNT, linux.mount, f"/proc/self/fd/{notify}", plan.notify_bind[1], None,
            linux.MS_BIND, None)  # fmt: skip
        os.close(notify)


def _open_path(path: str) -> int:
    try:
        return os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        raise _FaultError(Step.MOUNT, exc.errno or 0) from None


def _join_netns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(fd, linux.CLONE_NEWNET)
    finally:
        os.close(fd)


def _hand_over(fault: int, child: int) -> NoReturn:
    """The intermediate process of a pid namespace: name the service's host pid, then exit.

    Nothing stays resident: the service is re-parented to the launcher (a child subreaper)
    and reaped there; until this exit is reaped nobody else can reap it, so the pid the
    launcher reads is still the service's when it opens a pidfd on it."""
    try:
        os.write(fault, encode_forked(child))
    finally:
        os._exit(0)


def _minimal_dev() -> None:
    linux.mount("tmpfs", "/dev", "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "mode=755,size=1m")
    for name, major, minor in _DEVICES:
        path = f"/dev/{name}"
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(path, 0o666)
    os.mkdir("/dev/pts", 0o755)
    linux.mount("devpts", "/dev/pts", "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=620")  # fmt: skip
    os.symlink("pts/ptmx", "/dev/ptmx")
    os.mkdir("/dev/shm")
    os.chmod("/dev/shm", 0o1777)
    linux.mount("tmpfs", "/dev/shm", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=1777")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, f"/dev/{name}")


def _caps_before_switch(plan: SpawnPlan) -> None:
    mask = plan.cap_mask or 0
    _do(Step.CAPS_BOUNDING, linux.prctl, linux.PR_SET_KEEPCAPS, 1)
    _drop_bounding(plan)
    try:
        eff, prm, _ = linux.capget()
        linux.capset(eff, prm, mask)
        linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as exc:
        raise _FaultError(Step.CAPS_INHERITABLE, exc.errno or 0) from None


def _drop_bounding(plan: SpawnPlan) -> None:
    for cap in plan.bounding_drop:
        _do(Step.CAPS_BOUNDING, linux.prctl, linux.PR_CAPBSET_DROP, cap)


def _user_namespace(plan: SpawnPlan) -> None:
    try:
        # setuid made us non-dumpable, which makes /proc/self/* root-owned and unwritable.
        linux.prctl(linux.PR_SET_DUMPABLE, 1)
        linux.unshare(linux.CLONE_NEWUSER)
        _write_file("/proc/self/setgroups", "deny")
        _write_file("/proc/self/uid_map", f"{plan.map_uid} {plan.map_uid} 1")
        _write_file("/proc/self/gid_map", f"{plan.map_gid} {plan.map_gid} 1")
    except OSError as exc:
        raise _FaultError(Step.USER_NAMESPACE, exc.errno or 0) from None


def _caps_after_switch(plan: SpawnPlan) -> None:
    mask = plan.cap_mask or 0
    if plan.user:
        _drop_bounding(plan)  # a new user namespace starts with a full bounding set
    _do(Step.CAPS_SET, linux.capset, mask, mask, mask)
    for cap in plan.ambient:
        _do(Step.CAPS_AMBIENT, linux.prctl, linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, cap)
