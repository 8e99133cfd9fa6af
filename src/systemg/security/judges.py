"""The judges of ``security.checks``: each maps ``Facts`` to (badness, description or None).

A None description means the check's own good/bad text; a None badness means the check does
not apply (systemd's UINT64_MAX). Pure.
"""

from __future__ import annotations

from collections.abc import Callable

from systemg.manifest.values import CAPABILITIES
from systemg.security.facts import Facts
from systemg.security.syscalls import GROUPS

NA = None  # badness of a check that does not apply (systemd's UINT64_MAX)

Judge = Callable[[Facts], "tuple[int | None, str | None]"]


def flag(ok: Callable[[Facts], bool]) -> Judge:
    return lambda f: (0 if ok(f) else 1, None)


def never(f: Facts) -> tuple[int | None, str | None]:
    return 1, None


def always(f: Facts) -> tuple[int | None, str | None]:
    return 0, None


def unshared(kind: str) -> Judge:
    return flag(lambda f: kind in f.unshared)


def user(f: Facts) -> tuple[int | None, str | None]:
    if f.uid == 0:
        return 10, None
    if f.user == "nobody":
        return 9, "Service runs under as 'nobody' user, which should not be used for services"
    return 0, "Service runs under a static non-root user identity"


def unless_root(ok: Callable[[Facts], bool]) -> Judge:
    return lambda f: (NA, None) if f.uid == 0 else (0 if ok(f) else 1, None)


_HOME = {
    "yes": (0, "Service has no access to home directories"),
    "tmpfs": (1, "Service has access to fake empty home directories"),
    "read-only": (5, "Service has read-only access to home directories"),
    "no": (10, "Service has full access to home directories"),
}
_SYSTEM = {
    "strict": (0, "Service has strict read-only access to the OS file hierarchy"),
    "full": (3, "Service has very limited write access to the OS file hierarchy"),
    "yes": (5, "Service has limited write access to the OS file hierarchy"),
    "no": (10, "Service has full access to the OS file hierarchy"),
}


def home(f: Facts) -> tuple[int | None, str | None]:
    return _HOME[f.mounts.protect_home]


def system(f: Facts) -> tuple[int | None, str | None]:
    return _SYSTEM[f.mounts.protect_system]


def umask(f: Facts) -> tuple[int | None, str | None]:
    m = f.umask
    for bit, badness, what in (
        (0o002, 10, "world-writable"),
        (0o004, 5, "world-readable"),
        (0o020, 2, "group-writable"),
        (0o040, 1, "group-readable"),
    ):
        if not m & bit:
            return badness, f"Files created by service are {what} by default"
    return 0, "Files created by service are accessible only by service's own user by default"


def proc(f: Facts) -> tuple[int | None, str | None]:
    hidepid = f.mounts.hidepid
    if hidepid in ("invisible", "ptraceable", "2", "4"):
        return 0, None
    return (1, None) if hidepid in ("noaccess", "1") else (3, None)


_CAP_NAME = {number: name for name, number in CAPABILITIES.items()}


def cap_names(mask: int) -> str:
    return ", ".join(_CAP_NAME.get(n, f"cap {n}") for n in range(64) if mask >> n & 1)


def caps(bad: str, *numbers: int) -> Judge:
    """✗ naming the capabilities of the group the bounding set still holds."""
    mask = sum(1 << n for n in numbers)

    def judge(f: Facts) -> tuple[int | None, str | None]:
        held = f.cap_bnd & mask
        return (1, f"{bad} ({cap_names(held)})") if held else (0, None)

    return judge


def ambient(f: Facts) -> tuple[int | None, str | None]:
    if not f.cap_amb:
        return 0, None
    return 1, f"Service process receives ambient capabilities ({cap_names(f.cap_amb)})"


def syscalls(group: str) -> Judge:
    members = GROUPS[group]

    def judge(f: Facts) -> tuple[int | None, str | None]:
        if f.syscalls_allowed is None:
            return 10, "Service does not filter system calls"
        offender = sorted(members & f.syscalls_allowed)
        if offender:
            return 10, (
                f"System call filter defined for service, and {group} is not excluded "
                f"(e.g. {offender[0]} is allowed)"
            )
        return 0, f"System call filter defined for service, and {group} is excluded"

    return judge


def families(*names: str) -> Judge:
    def judge(f: Facts) -> tuple[int | None, str | None]:
        allowed = f.families_allowed
        if allowed is None:
            return 1, None
        if names:
            return (1 if allowed & set(names) else 0), None
        common = {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK", "AF_PACKET"}
        return (1 if allowed - common else 0), None

    return judge


def clock(f: Facts) -> bool:
    no_caps = not f.cap_bnd & ((1 << 25) | (1 << 35))
    return no_caps and f.syscalls_allowed is not None and not f.syscalls_allowed & GROUPS["@clock"]


def devices(f: Facts) -> tuple[int | None, str | None]:
    if f.device_acl:
        return 0, "Service has a device ACL (devices cgroup)"
    if f.mounts.private_dev and not f.cap_bnd & (1 << 27):
        return 0, "Service has a minimal /dev of its own and cannot create device nodes"
    return 10, None


_LIMITS = {
    "memory": "Service has a memory limit of {} bytes (memory cgroup)",
    "cpu": "Service has a CPU quota of {} µs per period (cpu cgroup)",
    "tasks": "Service has a task limit of {} (pids cgroup)",
    "nproc": "Service has a process limit of {} (RLIMIT_NPROC)",
}


def limit(value: Callable[[Facts], object], what: str) -> Judge:
    def judge(f: Facts) -> tuple[int | None, str | None]:
        v = value(f)
        return (0, _LIMITS[what].format(v)) if v is not None else (1, None)

    return judge


def denied(names: frozenset[str], yes: str, no: str) -> Judge:
    """Good when the loaded syscall filter allows none of ``names`` (so the thing the systemd
    setting restricts by argument cannot be done at all)."""

    def judge(f: Facts) -> tuple[int | None, str | None]:
        allowed = f.syscalls_allowed
        if allowed is not None and not names & allowed:
            return 0, yes
        return 1, no

    return judge


def architectures(f: Facts) -> tuple[int | None, str | None]:
    if f.native_only:
        return 0, "Service may execute system calls only with the native ABI (allow-list filter)"
    return 10, "Service may execute system calls with all ABIs"
