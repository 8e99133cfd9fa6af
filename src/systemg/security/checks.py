"""The exposure checks: systemd 252's ``systemd-analyze security`` table, judged on ``Facts``.

Every systemd item keeps its name, JSON field, weight and range (``src/analyze/analyze-
security.c`` of v252; ``tests/privileged/test_security_vs_systemd.py`` re-reads them from the
installed binary). Each check says how it knows (``basis``):

- ``observed``: from the running process (``/proc/PID/status``, ``ns/*``, ``mountinfo``,
  ``cgroup``, ``limits``, ``environ``);
- ``filter``: from the seccomp seams of ``security.observe`` (the kernel shows that a filter
  exists, not what it allows);
- ``systemg``: not visible in ``/proc``, but fixed by how systemg starts services;
- ``assumed``: not observable and not a systemg feature: scored as systemd scores a unit
  without that setting, and the description says so.

The ``systemd=False`` checks are systemg's own (cgroup limits, nproc, pid namespace), with
small weights so that the total stays close to systemd's. Pure: a check is a function of
``Facts``.
"""

from __future__ import annotations

from dataclasses import dataclass

from systemg.security import judges as j
from systemg.security.judges import Judge


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # systemd's item name, e.g. "PrivateNetwork="
    json_field: str  # systemd's json_field
    weight: int
    range: int
    judge: Judge  # facts -> (badness 0..range or NA, description or None for good/bad)
    basis: str  # observed | filter | systemg | assumed
    good: str = ""
    bad: str = ""
    na: str = ""
    systemd: bool = True  # False: a systemg-only check


def _c(  # noqa: PLR0917 - one table row per call keeps the table readable
    name: str, field: str, weight: int, rng: int, judge: Judge, basis: str, good: str = "",
    bad: str = "", na: str = "", systemd: bool = True,
) -> Check:  # fmt: skip
    return Check(name, field, weight, rng, judge, basis, good, bad, na, systemd)


_ASSUMED = " (not observable; scored as systemd scores a unit without it)"
_SG = " (systemg does not set it; not visible in /proc)"
CAP = "CapabilityBoundingSet=~"
CAPF = "CapabilityBoundingSet_"


def _cap(suffix: str, field: str, weight: int, good: str, bad: str, *numbers: int) -> Check:
    return _c(CAP + suffix, CAPF + field, weight, 1, j.caps(bad, *numbers), "observed", good, bad)


def _ns(kind: str, weight: int, what: str) -> Check:
    return _c(
        f"RestrictNamespaces=~{kind}", f"RestrictNamespaces_{kind}", weight, 1, j.never,
        "assumed", f"Service cannot create {what} namespaces",
        f"Service may create {what} namespaces" + _ASSUMED,
    )  # fmt: skip


def _af(suffix: str, field: str, weight: int, what: str, *names: str) -> Check:
    return _c(
        f"RestrictAddressFamilies=~{suffix}", f"RestrictAddressFamilies_{field}", weight, 1,
        j.families(*names), "filter", f"Service cannot allocate {what} sockets",
        f"Service may allocate {what} sockets",
    )  # fmt: skip


def _scf(group: str, weight: int) -> Check:
    field = "SystemCallFilter_" + group[1:].replace("-", "_")
    return _c(f"SystemCallFilter=~{group}", field, weight, 10, j.syscalls(group), "filter")


CHECKS: tuple[Check, ...] = (
    _c("User=/DynamicUser=", "UserOrDynamicUser", 2000, 10, j.user, "observed",
       bad="Service runs as root user"),
    _c("SupplementaryGroups=", "SupplementaryGroups", 200, 1,
       j.unless_root(lambda f: not f.groups), "observed", "Service has no supplementary groups",
       "Service runs with supplementary groups", "Service runs as root, option does not matter"),
    _c("PrivateDevices=", "PrivateDevices", 1000, 1, j.flag(lambda f: f.mounts.private_dev),
       "observed", "Service has no access to hardware devices",
       "Service potentially has access to hardware devices"),
    _c("PrivateMounts=", "PrivateMounts", 1000, 1, j.unshared("mnt"), "observed",
       "Service cannot install system mounts", "Service may install system mounts"),
    _c("PrivateNetwork=", "PrivateNetwork", 2500, 1, j.unshared("net"), "observed",
       "Service has no access to the host's network", "Service has access to the host's network"),
    _c("PrivateTmp=", "PrivateTmp", 1000, 1, j.flag(lambda f: f.mounts.private_tmp), "observed",
       "Service has no access to other software's temporary files",
       "Service has access to other software's temporary files"),
    _c("PrivateUsers=", "PrivateUsers", 1000, 1, j.unshared("user"), "observed",
       "Service does not have access to other users", "Service has access to other users"),
    _c("ProtectControlGroups=", "ProtectControlGroups", 1000, 1,
       j.flag(lambda f: f.mounts.cgroup_read_only), "observed",
       "Service cannot modify the control group file system",
       "Service may modify the control group file system"),
    _c("ProtectKernelModules=", "ProtectKernelModules", 1000, 1,
       j.flag(lambda f: f.mounts.modules_hidden and not f.cap_bnd & (1 << 16)), "observed",
       "Service cannot load or read kernel modules", "Service may load or read kernel modules"),
    _c("ProtectKernelTunables=", "ProtectKernelTunables", 1000, 1,
       j.flag(lambda f: f.mounts.proc_sys_read_only), "observed",
       "Service cannot alter kernel tunables (/proc/sys, …)", "Service may alter kernel tunables"),
    _c("ProtectKernelLogs=", "ProtectKernelLogs", 1000, 1,
       j.flag(lambda f: f.mounts.kmsg_hidden and not f.cap_bnd & (1 << 34)), "observed",
       "Service cannot read from or write to the kernel log ring buffer",
       "Service may read from or write to the kernel log ring buffer"),
    _c("ProtectClock=", "ProtectClock", 1000, 1, j.flag(j.clock), "filter",
       "Service cannot write to the hardware clock or system clock",
       "Service may write to the hardware clock or system clock"),
    _c("ProtectHome=", "ProtectHome", 1000, 10, j.home, "observed"),
    _c("ProtectHostname=", "ProtectHostname", 50, 1, j.unshared("uts"), "observed",
       "Service cannot change system host/domainname", "Service may change system host/domainname"),
    _c("ProtectSystem=", "ProtectSystem", 1000, 10, j.system, "observed"),
    _c("RootDirectory=/RootImage=", "RootDirectoryOrRootImage", 200, 1,
       j.flag(lambda f: f.own_root), "observed", "Service has its own root directory/image",
       "Service runs within the host's root directory"),
    _c("LockPersonality=", "LockPersonality", 100, 1,
       j.denied(frozenset({"personality"}), "Service cannot change ABI personality (personality"
                " is filtered)", "Service may change ABI personality" + _ASSUMED), "filter"),
    _c("MemoryDenyWriteExecute=", "MemoryDenyWriteExecute", 100, 1, j.never, "assumed",
       "Service cannot create writable executable memory mappings",
       "Service may create writable executable memory mappings" + _ASSUMED),
    _c("NoNewPrivileges=", "NoNewPrivileges", 1000, 1, j.flag(lambda f: f.no_new_privs),
       "observed", "Service processes cannot acquire new privileges",
       "Service processes may acquire new privileges"),
    _cap("CAP_SYS_ADMIN", "CAP_SYS_ADMIN", 1500, "Service has no administrator privileges",
         "Service has administrator privileges", 21),
    _cap("CAP_SET(UID|GID|PCAP)", "CAP_SET_UID_GID_PCAP", 1500,
         "Service cannot change UID/GID identities/capabilities",
         "Service may change UID/GID identities/capabilities", 7, 6, 8),
    _cap("CAP_SYS_PTRACE", "CAP_SYS_PTRACE", 1500, "Service has no ptrace() debugging abilities",
         "Service has ptrace() debugging abilities", 19),
    _cap("CAP_SYS_TIME", "CAP_SYS_TIME", 1000, "Service processes cannot change the system clock",
         "Service processes may change the system clock", 25),
    _cap("CAP_NET_ADMIN", "CAP_NET_ADMIN", 1000, "Service has no network configuration privileges",
         "Service has network configuration privileges", 12),
    _cap("CAP_SYS_RAWIO", "CAP_SYS_RAWIO", 1000, "Service has no raw I/O access",
         "Service has raw I/O access", 17),
    _cap("CAP_SYS_MODULE", "CAP_SYS_MODULE", 1000, "Service cannot load kernel modules",
         "Service may load kernel modules", 16),
    _cap("CAP_AUDIT_*", "CAP_AUDIT", 500, "Service has no audit subsystem access",
         "Service has audit subsystem access", 30, 37, 29),
    _cap("CAP_SYSLOG", "CAP_SYSLOG", 500, "Service has no access to kernel logging",
         "Service has access to kernel logging", 34),
    _cap("CAP_SYS_(NICE|RESOURCE)", "CAP_SYS_NICE_RESOURCE", 500,
         "Service has no privileges to change resource use parameters",
         "Service has privileges to change resource use parameters", 23, 24),
    _cap("CAP_MKNOD", "CAP_MKNOD", 500, "Service cannot create device nodes",
         "Service may create device nodes", 27),
    _cap("CAP_(CHOWN|FSETID|SETFCAP)", "CAP_CHOWN_FSETID_SETFCAP", 1000,
         "Service cannot change file ownership/access mode/capabilities",
         "Service may change file ownership/access mode/capabilities unrestricted", 0, 4, 31),
    _cap("CAP_(DAC_*|FOWNER|IPC_OWNER)", "CAP_DAC_FOWNER_IPC_OWNER", 1000,
         "Service cannot override UNIX file/IPC permission checks",
         "Service may override UNIX file/IPC permission checks", 1, 2, 3, 15),
    _cap("CAP_KILL", "CAP_KILL", 500, "Service cannot send UNIX signals to arbitrary processes",
         "Service may send UNIX signals to arbitrary processes", 5),
    # systemd 252's json_field really ends in ")".
    _cap("CAP_NET_(BIND_SERVICE|BROADCAST|RAW)", "CAP_NET_BIND_SERVICE_BROADCAST_RAW)", 500,
         "Service has no elevated networking privileges",
         "Service has elevated networking privileges", 10, 11, 13),
    _cap("CAP_SYS_BOOT", "CAP_SYS_BOOT", 100, "Service cannot issue reboot()",
         "Service may issue reboot()", 22),
    _cap("CAP_MAC_*", "CAP_MAC", 100, "Service cannot adjust SMACK MAC",
         "Service may adjust SMACK MAC", 33, 32),
    _cap("CAP_LINUX_IMMUTABLE", "CAP_LINUX_IMMUTABLE", 75, "Service cannot mark files immutable",
         "Service may mark files immutable", 9),
    _cap("CAP_IPC_LOCK", "CAP_IPC_LOCK", 50, "Service cannot lock memory into RAM",
         "Service may lock memory into RAM", 14),
    _cap("CAP_SYS_CHROOT", "CAP_SYS_CHROOT", 50, "Service cannot issue chroot()",
         "Service may issue chroot()", 18),
    _cap("CAP_BLOCK_SUSPEND", "CAP_BLOCK_SUSPEND", 25, "Service cannot establish wake locks",
         "Service may establish wake locks", 36),
    _cap("CAP_WAKE_ALARM", "CAP_WAKE_ALARM", 25,
         "Service cannot program timers that wake up the system",
         "Service may program timers that wake up the system", 35),
    _cap("CAP_LEASE", "CAP_LEASE", 25, "Service cannot create file leases",
         "Service may create file leases", 28),
    _cap("CAP_SYS_TTY_CONFIG", "CAP_SYS_TTY_CONFIG", 25, "Service cannot issue vhangup()",
         "Service may issue vhangup()", 26),
    _cap("CAP_SYS_PACCT", "CAP_SYS_PACCT", 25, "Service cannot use acct()",
         "Service may use acct()", 20),
    _cap("CAP_BPF", "CAP_BPF", 25, "Service cannot load BPF programs",
         "Service may load BPF programs", 39),
    _c("UMask=", "UMask", 100, 10, j.umask, "observed"),
    _c("KeyringMode=", "KeyringMode", 1000, 1, j.never, "systemg",
       "Service doesn't share key material with other services",
       "Service shares key material with other service" + _SG),
    _c("ProtectProc=", "ProtectProc", 1000, 3, j.proc, "observed",
       "Service has restricted access to process tree (/proc hidepid=)",
       "Service has full access to process tree (/proc hidepid=)"),
    _c("ProcSubset=", "ProcSubset", 10, 1, j.flag(lambda f: f.mounts.proc_subset_pid), "observed",
       "Service has no access to non-process /proc files (/proc subset=)",
       "Service has full access to non-process /proc files (/proc subset=)"),
    _c("NotifyAccess=", "NotifyAccess", 1000, 1, j.flag(lambda f: not f.notify_socket),
       "observed", "Service child processes cannot alter service state",
       "Service child processes may alter service state (NOTIFY_SOCKET, any process of the "
       "service)"),
    _c("RemoveIPC=", "RemoveIPC", 100, 1, j.unless_root(lambda f: False), "systemg",
       "Service user cannot leave SysV IPC objects around",
       "Service user may leave SysV IPC objects around" + _SG,
       "Service runs as root, option does not apply"),
    _c("Delegate=", "Delegate", 100, 1, j.always, "systemg",
       "Service does not maintain its own delegated control group subtree",
       "Service maintains its own delegated control group subtree"),
    _c("RestrictRealtime=", "RestrictRealtime", 500, 1,
       j.denied(frozenset({"sched_setscheduler", "sched_setattr"}),
                "Service realtime scheduling access is restricted (sched_set* are filtered)",
                "Service may acquire realtime scheduling" + _ASSUMED), "filter"),
    _c("RestrictSUIDSGID=", "RestrictSUIDSGID", 1000, 1, j.never, "assumed",
       "SUID/SGID file creation by service is restricted",
       "Service may create SUID/SGID files" + _ASSUMED),
    _ns("user", 1500, "user"),
    _ns("mnt", 500, "file system"),
    _ns("ipc", 500, "IPC"),
    _ns("pid", 500, "process"),
    _ns("cgroup", 500, "cgroup"),
    _ns("net", 500, "network"),
    _ns("uts", 100, "hostname"),
    _af("AF_(INET|INET6)", "AF_INET_INET6", 1500, "Internet", "AF_INET", "AF_INET6"),
    _af("AF_UNIX", "AF_UNIX", 25, "local", "AF_UNIX"),
    _af("AF_NETLINK", "AF_NETLINK", 200, "netlink", "AF_NETLINK"),
    _af("AF_PACKET", "AF_PACKET", 1000, "packet", "AF_PACKET"),
    _af("…", "OTHER", 1250, "exotic"),
    _c("SystemCallArchitectures=", "SystemCallArchitectures", 1000, 10, j.architectures,
       "filter"),
    _scf("@swap", 1000),
    _scf("@obsolete", 250),
    _scf("@clock", 1000),
    _scf("@cpu-emulation", 250),
    _scf("@debug", 1000),
    _scf("@mount", 1000),
    _scf("@module", 1000),
    _scf("@raw-io", 1000),
    _scf("@reboot", 1000),
    _scf("@privileged", 700),
    _scf("@resources", 700),
    _c("IPAddressDeny=", "IPAddressDeny", 1000, 10,
       lambda f: (10, "Service does not define an IP address allow list" + _SG), "systemg"),
    _c("DeviceAllow=", "DeviceAllow", 1000, 10, j.devices, "observed",
       bad="Service has no device ACL"),
    _c("AmbientCapabilities=", "AmbientCapabilities", 500, 1, j.ambient, "observed",
       "Service process does not receive ambient capabilities",
       "Service process receives ambient capabilities"),
    # systemg's own (systemd 252 has no such item); small weights, counted in the score.
    _c("PrivatePIDs=", "PrivatePIDs", 100, 1, j.unshared("pid"), "observed",
       "Service sees only its own processes (pid namespace)",
       "Service shares the host's process tree", systemd=False),
    _c("MemoryMax=", "MemoryMax", 200, 1, j.limit(lambda f: f.limits.memory_max, "memory"),
       "observed", bad="Service has no memory limit (memory cgroup)", systemd=False),
    _c("CPUQuota=", "CPUQuota", 100, 1, j.limit(lambda f: f.limits.cpu_quota, "cpu"),
       "observed", bad="Service has no CPU quota (cpu cgroup)", systemd=False),
    _c("TasksMax=", "TasksMax", 200, 1, j.limit(lambda f: f.limits.tasks_max, "tasks"),
       "observed", bad="Service has no task limit (pids cgroup): a fork bomb is not contained",
       systemd=False),
    _c("LimitNPROC=", "LimitNPROC", 100, 1, j.limit(lambda f: f.limits.nproc, "nproc"),
       "observed", bad="Service has no process limit (RLIMIT_NPROC)", systemd=False),
)  # fmt: skip
