"""Identity, limits, capabilities, namespaces and the sandbox keys -> ``[Service]`` lines.

Capabilities follow ``spawn/plan.py`` exactly (docs/security.md §3), for a supervisor
that is root (systemd's system manager is): a service that lists capabilities gets
``CapabilityBoundingSet=`` and ``AmbientCapabilities=`` equal to the list (so inheritable,
permitted and effective end up the same); one that switches to a non-root user and lists
none gets an empty bounding set (all five sets empty); a root service without the key is
left alone (it keeps root's). A seccomp filter or address-family rule implies
``NoNewPrivileges=yes`` unless the service keeps ``CAP_SYS_ADMIN``, as in sysg (and systemd).
"""

from __future__ import annotations

from systemg.export import quoting
from systemg.export.units import Draft
from systemg.manifest.model import UNLIMITED, Service
from systemg.manifest.sandbox import SyscallSet, resolve
from systemg.manifest.values import format_cpu_list

S = "Service"
_ROOT_NAMES = ("root", "0")
_YES_VALUES = {"true": "yes"}  # protect_system / protect_home: ours "true" is systemd "yes"


def runs_as_root(service: Service) -> bool:
    return service.user is None or service.user in _ROOT_NAMES


def keeps_sys_admin(service: Service) -> bool:
    if service.capabilities is not None:
        return "CAP_SYS_ADMIN" in service.capabilities
    return runs_as_root(service)


def identity(d: Draft, service: Service) -> None:
    if service.user is not None:
        if service.user == "nobody":
            d.note(S, "systemd warns that the shared account nobody is not safe for services")
        d.set(S, "User", service.user)
    if service.group is not None:
        d.set(S, "Group", service.group)
    if service.supplementary_groups:
        d.set(S, "SupplementaryGroups", quoting.words(service.supplementary_groups))
    if service.capabilities is not None:
        names = " ".join(service.capabilities)
        d.set(S, "CapabilityBoundingSet", names)
        if names:
            d.set(S, "AmbientCapabilities", names)
    elif not runs_as_root(service):
        # sysg empties all five sets of a non-root service; systemd would keep the full
        # bounding set (harmless for a non-root process, but not what sysg shows).
        d.set(S, "CapabilityBoundingSet", "")


def limits(d: Draft, service: Service, path: str) -> None:
    lim = service.limits
    for key, value in (
        ("LimitNOFILE", lim.nofile),
        ("LimitNPROC", lim.nproc),
        ("LimitMEMLOCK", lim.memlock),
    ):
        if value is not None:
            d.set(S, key, "infinity" if value == UNLIMITED else str(value))
    if lim.nice is not None:
        d.set(S, "Nice", str(lim.nice))
    if lim.cpu_affinity is not None:
        d.set(S, "CPUAffinity", format_cpu_list(lim.cpu_affinity))
    cg = lim.cgroup
    if cg is None:
        return
    if cg.memory_max is not None:
        d.set(S, "MemoryMax", "infinity" if cg.memory_max == "max" else str(cg.memory_max))
    if cg.cpu_max is not None and cg.cpu_max.quota is not None:
        permyriad = round(cg.cpu_max.quota * 10_000 / cg.cpu_max.period)
        whole, part = divmod(permyriad, 100)
        d.set(S, "CPUQuota", f"{whole}%" if not part else f"{whole}.{part:02d}%")
        if cg.cpu_max.period != 100_000:
            d.set(S, "CPUQuotaPeriodSec", f"{cg.cpu_max.period}us")
    if cg.pids_max is not None:
        d.set(S, "TasksMax", "infinity" if cg.pids_max == "max" else str(cg.pids_max))
    if cg.root is not None:
        d.drop(
            S,
            f"{path}.limits.cgroup.root",
            cg.root,
            "systemd places every unit in its own cgroup tree (Slice= picks a parent)",
        )


def isolation(d: Draft, service: Service, path: str) -> None:
    iso = service.isolation
    if iso.network:
        d.set(S, "PrivateNetwork", "yes")
    # sysg gives every key that mounts (pid, private_tmp/devices, the protected paths) one
    # mount namespace with private propagation: that is PrivateMounts=yes.
    if iso.mount or iso.pid or iso.private_tmp or iso.private_devices or iso.protects_paths:
        d.set(S, "PrivateMounts", "yes")
    if iso.pid:
        d.drop(
            S,
            f"{path}.isolation.pid",
            True,
            "systemd 252 has no PrivatePIDs=; the service sees the host's processes",
        )
        # What is kept of it: sysg's private /proc is mounted hidepid=invisible.
        d.set(S, "ProtectProc", "invisible")
    if iso.user:
        d.set(S, "PrivateUsers", "yes")
    if iso.private_tmp:
        d.set(S, "PrivateTmp", "yes")
    if iso.private_devices:
        d.set(S, "PrivateDevices", "yes")
    filtered = iso.seccomp is not None or iso.address_families is not None
    if iso.no_new_privileges or (filtered and not keeps_sys_admin(service)):
        d.set(S, "NoNewPrivileges", "yes")
    for entry in iso.seccomp or ():
        d.set(S, "SystemCallFilter", "@system-service" if entry == "baseline-v1" else entry)
    if iso.seccomp is not None and iso.seccomp_action == "errno":
        d.set(S, "SystemCallErrorNumber", iso.seccomp_errno)
    if iso.seccomp:
        _implied_by_filter(d, resolve(iso.seccomp))
    if iso.address_families is not None:
        families = " ".join(iso.address_families)
        d.set(S, "RestrictAddressFamilies", ("~" if iso.address_families_deny else "") + families)
    if iso.protect_system != "false":
        d.set(S, "ProtectSystem", _YES_VALUES.get(iso.protect_system, iso.protect_system))
    if iso.protect_home != "false":
        d.set(S, "ProtectHome", _YES_VALUES.get(iso.protect_home, iso.protect_home))
    for key, paths in (
        ("ReadOnlyPaths", iso.read_only_paths),
        ("ReadWritePaths", iso.read_write_paths),
        ("InaccessiblePaths", iso.inaccessible_paths),
    ):
        for entry in paths:  # a leading "-" (ignore a missing path) means the same to systemd
            d.set(S, key, quoting.word(entry))
    if iso.apparmor_profile is not None:
        d.set(S, "AppArmorProfile", quoting.specifiers(iso.apparmor_profile))
    if iso.selinux_context is not None:
        d.set(S, "SELinuxContext", quoting.specifiers(iso.selinux_context))


def _implied_by_filter(d: Draft, syscalls: SyscallSet) -> None:
    """What sysg's filter already guarantees, said the way systemd says it, so the unit
    confines (and `systemd-analyze security` scores) exactly what sysg's process shows:
    an allow list denies every call of another ABI; a filter without ``sched_set*`` or
    ``personality`` leaves nothing for RestrictRealtime= / LockPersonality= to restrict.
    (Not ProtectClock=: systemd's also allows /dev/rtc in a device ACL, which sysg does not.)"""
    if syscalls.allow:
        d.set(S, "SystemCallArchitectures", "native")
    if not any(syscalls.permits(n) for n in ("sched_setscheduler", "sched_setattr")):
        d.set(S, "RestrictRealtime", "yes")
    if not syscalls.permits("personality"):
        d.set(S, "LockPersonality", "yes")
