"""``Facts``: what the kernel shows about one running service, reduced to what is scored.

Filled by ``security.observe`` from ``/proc/PID/*``; read by the pure checks of
``security.checks``. The defaults describe a bare root service in the host's namespaces (every
capability, no filter, nothing private), so a test states only what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from systemg.security.mounts import MountView

CAP_LAST = 63
ALL_CAPS = (1 << (CAP_LAST + 1)) - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """The resource limits the service runs under (None: unlimited / not set)."""

    memory_max: int | None = None  # bytes, memory cgroup
    cpu_quota: str | None = None  # "QUOTA PERIOD" in µs, cpu cgroup
    tasks_max: int | None = None  # pids cgroup
    nproc: int | None = None  # soft RLIMIT_NPROC


@dataclass(frozen=True, slots=True)
class Facts:
    uid: int = 0  # real uid, as the host sees it
    user: str | None = "root"  # its account name, None when it has none
    groups: frozenset[int] = frozenset()  # supplementary groups, the primary gid left out
    cap_bnd: int = ALL_CAPS
    cap_amb: int = 0
    no_new_privs: bool = False
    seccomp_mode: int = 0  # 0 none, 1 strict, 2 filter (/proc/PID/status Seccomp:)
    umask: int = 0o022
    unshared: frozenset[str] = frozenset()  # namespace kinds not shared with the reference
    own_root: bool = False  # /proc/PID/root is not the host's /
    mounts: MountView = field(default_factory=MountView)
    syscalls_allowed: frozenset[str] | None = None  # None: no seccomp filter
    families_allowed: frozenset[str] | None = None  # None: every address family
    native_only: bool = False  # an allow-list filter: calls of other ABIs get its deny action
    notify_socket: bool = False  # NOTIFY_SOCKET in its environment
    device_acl: bool = False  # a devices cgroup that does not allow everything
    limits: Limits = field(default_factory=Limits)
