"""The few kernel calls Python 3.11 lacks, via ctypes on the C library. The only ctypes module.

``prctl`` (and the child-subreaper flag), ``capget``/``capset``, ``unshare``, ``setns``,
``mount``, ``statfs`` and ``timerfd`` are called through ``ctypes.CDLL(None, use_errno=True)``;
every wrapper raises ``OSError(errno)`` on failure so the child can report ``(step, errno)``.
Why no library:
python-prctl is unmaintained and needs the libcap headers to build, ``pyroute2``/``unshare``
packages cover one call each, and ``os.unshare``/``os.setns`` only arrive in Python 3.12
(``os.timerfd_*`` in 3.13). Thin wrappers are less than any of those.

Capability names come from ``manifest.values.CAPABILITIES`` (one table for the project),
imported on first use: the spawn helper (``spawn.forkserver``) imports this module and must
stay small.

Invariant: nothing here allocates much or logs: the wrappers run between fork and exec (and
``setns`` in the supervisor, between entering a service's network namespace and leaving it).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import os
import socket
import struct

_libc = ctypes.CDLL(None, use_errno=True)

# prctl options (linux/prctl.h)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# clone flags (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

CGROUP2_SUPER_MAGIC = 0x63677270
_CAP_VERSION_3 = 0x20080522
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _capabilities() -> dict[str, int]:
    """The one table of capability names (the manifest validates against it)."""
    from systemg.manifest.values import CAPABILITIES

    return CAPABILITIES


@functools.cache  # a kernel constant; read on every spawn's plan otherwise (~0.1 ms each)
def cap_last_cap() -> int:
    """Highest capability number this kernel knows (40 on Linux 6.x)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return max(_capabilities().values())


def cap_names(mask: int) -> list[str]:
    by_number = {v: k for k, v in _capabilities().items()}
    return [by_number.get(bit, f"cap_{bit}") for bit in range(64) if mask >> bit & 1]


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(
        _libc.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg2),
            ctypes.c_ulong(arg3),
            ctypes.c_ulong(arg4),
            ctypes.c_ulong(arg5),
        )
    )


def child_subreaper() -> bool:
    """True if orphaned descendants of the caller are re-parented to it (not to init)."""
    flag = ctypes.c_int(0)
    _check(_libc.prctl(ctypes.c_int(PR_GET_CHILD_SUBREAPER), ctypes.byref(flag), 0, 0, 0))
    return bool(flag.value)


def set_child_subreaper(on: bool) -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's three capability sets (64-bit masks, version 3 ABI)."""
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data))


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of ``pid`` (0 = the caller)."""
    header = _CapHeader(_CAP_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data))
    eff = data[0].effective | data[1].effective << 32
    prm = data[0].permitted | data[1].permitted << 32
    inh = data[0].inheritable | data[1].inheritable << 32
    return eff, prm, inh


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def seccomp_load(program: bytes) -> None:
    """Install a classic BPF seccomp program (``struct sock_filter[]``, 8 bytes each) on the
    calling thread. Needs NoNewPrivs or CAP_SYS_ADMIN; stays across ``execve``."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _check(
        _libc.prctl(
            ctypes.c_int(PR_SET_SECCOMP),
            ctypes.c_ulong(SECCOMP_MODE_FILTER),
            ctypes.byref(prog),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        )
    )


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)))


def setns(fd: int, nstype: int) -> None:
    """Move the calling thread into the namespace ``fd`` (an open ``/proc/PID/ns/*``) names;
    ``nstype`` (``CLONE_NEW*``) must match it, 0 accepts any kind."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)))


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            None if fstype is None else fstype.encode(),
            ctypes.c_ulong(flags),
            None if data is None else data.encode(),
        )
    )


_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (a syscall of 5.12+)
_AT_FDCWD = -100
_MOUNT_ATTR_RDONLY = 0x1


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def mount_setattr_readonly(path: str) -> None:
    """Make the mount at ``path`` read-only, keeping its other flags (``mount_setattr(2)``)."""
    attr = _MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0)
    _check(
        _libc.syscall(
            ctypes.c_long(_SYS_MOUNT_SETATTR),
            ctypes.c_int(_AT_FDCWD),
            path.encode(),
            ctypes.c_uint(0),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        )
    )


def statfs_type(path: str) -> int:
    """``f_type`` of the filesystem holding ``path`` (``statvfs`` does not expose it)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    _check(_libc.statfs(path.encode(), buf))
    return int(ctypes.c_long.from_buffer(buf).value)


def loopback_up() -> None:
    """Set IFF_UP on ``lo`` (a new network namespace starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


# --- timerfd (os.timerfd_* arrive in Python 3.13) -------------------------------------
CLOCK_REALTIME = 0
TFD_CLOEXEC = os.O_CLOEXEC
TFD_NONBLOCK = os.O_NONBLOCK
TFD_TIMER_ABSTIME = 1
TFD_TIMER_CANCEL_ON_SET = 2


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def timerfd_realtime() -> int:
    """A non-blocking, close-on-exec timerfd on the wall clock."""
    return _check(_libc.timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC))


def timerfd_at(fd: int, epoch_s: float | None) -> None:
    """Arm ``fd`` to expire at wall-clock time ``epoch_s`` (None disarms). The timer is
    cancelled when the clock is set (``read`` then fails with ECANCELED), so a clock step
    is noticed at once; a wall-clock timer also expires right after a suspend ended past
    its time, which a monotonic wait would not."""
    spec = _Itimerspec()
    if epoch_s is not None:
        sec = max(1, int(epoch_s))  # 0/0 would disarm it
        spec.it_value = _Timespec(sec, min(int((epoch_s - int(epoch_s)) * 1e9), 999_999_999))
    flags = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET if epoch_s is not None else 0
    _check(_libc.timerfd_settime(ctypes.c_int(fd), flags, ctypes.byref(spec), None))


# clone(2) numbers; the flags-first argument order is the same on both, and every other
# argument is 0 here (no new stack: the child runs on a copy of the caller's, like fork).
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(os.uname().machine)
CLONE_PARENT = 0x00008000
SIGCHLD = 17


def clone_parent_supported() -> bool:
    return _SYS_CLONE is not None


def clone_parent() -> int:
    """``fork``, but the child's parent is the caller's parent (``CLONE_PARENT``): the spawn
    helper starts services that are the supervisor's own children, which it reaps. 0 in the
    child, its pid in the caller. A raw system call, so neither glibc's nor Python's at-fork
    handlers run: only for a single-threaded caller that goes straight to exec
    (``spawn.forkserver``)."""
    if _SYS_CLONE is None:
        raise OSError(38, os.strerror(38))  # ENOSYS: an architecture without the table entry
    return _check(_libc.syscall(ctypes.c_long(_SYS_CLONE), ctypes.c_ulong(CLONE_PARENT | SIGCHLD),
                                ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0),
                                ctypes.c_ulong(0)))  # fmt: skip
