"""Read one running service's ``/proc/PID/*`` into ``Facts`` (the only impure part of the report).

The reference for "private" is the supervisor (services inherit its namespaces and mounts),
else PID 1, else this process: a namespace or mount counts as the service's own when it differs
from the reference's. A service under ``isolation.pid`` is behind a relay process; the report
reads the relay's child that is PID 1 of the namespace, as ``inspect`` does.

Two seams stand for what the kernel does not show: ``seccomp_allowed`` and
``address_families_allowed``. ``/proc/PID/status`` says a filter is loaded (``Seccomp: 2``) but
not what it allows, so until they are wired to the filter systemg loaded they answer "no filter"
(None) or, with a filter, "everything may still be allowed". Reading only: nothing is written.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from typing import Any

from systemg.manifest.sandbox import ADDRESS_FAMILIES, resolve
from systemg.security.facts import Facts, Limits
from systemg.security.mounts import HOME_PATHS, Mount, mount_view, parse_mountinfo
from systemg.security.syscalls import ALL_SYSCALLS
from systemg.spawn.observe import service_pid

NAMESPACES = ("net", "mnt", "pid", "user", "ipc", "uts", "cgroup")
_V1_UNLIMITED = 1 << 62  # memory.limit_in_bytes reads 9223372036854771712 when unset


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def status(pid: int) -> dict[str, str]:
    out = {}
    for line in read(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def field_int(st: Mapping[str, str], key: str) -> int:
    """The first number of a ``status`` line (``Uid:	33	33	33	33`` -> 33); 0 if absent."""
    first = (st.get(key) or "0").split()[0]
    return int(first) if first.isdigit() else 0


def seccomp_allowed(unit: Mapping[str, Any], st: Mapping[str, str]) -> frozenset[str] | None:
    """THE seam for ``SystemCallFilter=``: the syscall names the service may still call, or
    None when it runs without a seccomp filter.

    The kernel shows only that filters are loaded (``Seccomp: 2``, ``Seccomp_filters``), not
    what they allow. The status reply names the filter systemg loaded into that very process
    (``unit["seccomp"]``, its entries); resolved exactly as the supervisor resolved them
    (``manifest.sandbox.resolve``). A filter systemg did not load (the service installed its
    own) is taken to allow everything."""
    if field_int(st, "Seccomp") != 2:
        return None
    entries = unit.get("seccomp")
    if not entries:
        return ALL_SYSCALLS
    resolved = resolve(tuple(entries))
    return resolved.names if resolved.allow else ALL_SYSCALLS - resolved.names


def address_families_allowed(
    unit: Mapping[str, Any], st: Mapping[str, str]
) -> frozenset[str] | None:
    """THE seam for ``RestrictAddressFamilies=``: the AF_* names ``socket(2)`` still accepts,
    or None for every family: from the family filter systemg loaded (``unit["address_families"]``,
    ``~``-prefixed when it denies), confirmed loaded by ``Seccomp: 2``."""
    entries = unit.get("address_families")
    if field_int(st, "Seccomp") != 2 or entries is None:
        return None
    names = frozenset(e.lstrip("~") for e in entries)
    if entries and all(e.startswith("~") for e in entries):
        return frozenset(ADDRESS_FAMILIES) - names
    return names


def native_only(unit: Mapping[str, Any], st: Mapping[str, str]) -> bool:
    """True when systemg loaded an allow-list syscall filter into the process: a call of any
    other ABI (i386 ``int 0x80`` on x86_64) matches no allow rule, so it gets the deny action,
    as with systemd's ``SystemCallArchitectures=native``."""
    entries: list[str] = list(unit.get("seccomp") or [])
    return field_int(st, "Seccomp") == 2 and bool(entries) and not entries[0].startswith("~")


def reference_pid(supervisor: int | None) -> int | str:
    for candidate in (supervisor, 1):
        if candidate and _readable_ns(candidate):
            return candidate
    return "self"


def _readable_ns(pid: int) -> bool:
    try:
        os.readlink(f"/proc/{pid}/ns/mnt")
        return bool(read(f"/proc/{pid}/mountinfo"))
    except OSError:
        return False


def _ns(pid: int | str, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _mask(st: Mapping[str, str], key: str) -> int:
    try:
        return int(st.get(key, "0"), 16)
    except ValueError:
        return 0


def _home_modes(pid: int, ref: int | str) -> dict[str, int | None]:
    modes: dict[str, int | None] = {}
    for path in HOME_PATHS:
        if not os.path.isdir(f"/proc/{ref}/root{path}"):
            continue
        try:
            modes[path] = os.stat(f"/proc/{pid}/root{path}").st_mode
        except FileNotFoundError:
            modes[path] = None
        except OSError:
            modes[path] = 0
    return modes


def _cgroup_points(mounts: tuple[Mount, ...]) -> dict[str, str]:
    """Controller name (or "" for cgroup2) → where this process sees its hierarchy."""
    points: dict[str, str] = {}
    for m in mounts:
        if m.fstype == "cgroup2":
            points.setdefault("", m.point)
        elif m.fstype == "cgroup":
            for option in m.super_options:
                points.setdefault(option, m.point)
    return points


def _cgroup_files(pid: int, mounts: tuple[Mount, ...]) -> dict[str, list[str]]:
    """Controller → the directories of the service's cgroup and its ancestors, leaf first."""
    points = _cgroup_points(mounts)
    out: dict[str, list[str]] = {}
    for line in read(f"/proc/{pid}/cgroup").splitlines():
        _, controllers, rel = [*line.split(":", 2), "", ""][:3]
        for ctrl in controllers.split(",") if controllers else [""]:
            point = points.get(ctrl)
            if point is None or not rel.startswith("/"):
                continue
            parts = [p for p in rel.split("/") if p]
            dirs = [os.path.join(point, *parts[:n]) for n in range(len(parts), -1, -1)]
            out.setdefault(ctrl or "unified", dirs)
    return out


def _first(dirs: list[str], name: str, unlimited: set[str]) -> str | None:
    for d in dirs:
        value = read(os.path.join(d, name)).strip()
        if value and value not in unlimited:
            return value
    return None


def _nproc(pid: int | str) -> int | None:
    for line in read(f"/proc/{pid}/limits").splitlines():
        if line.startswith("Max processes"):
            soft = (line[len("Max processes") :].split() or ["unlimited"])[0]
            return int(soft) if soft.isdigit() else None
    return None


def _limits(pid: int, ref: int | str, cg: dict[str, list[str]]) -> tuple[Limits, bool]:
    memory = _first(cg.get("memory", []), "memory.limit_in_bytes", set())
    memory_max = (
        int(memory) if memory and memory.isdigit() and int(memory) < _V1_UNLIMITED else None
    )
    if memory_max is None:
        v2 = _first(cg.get("unified", []), "memory.max", {"max"})
        memory_max = int(v2) if v2 and v2.isdigit() else None
    quota = _first(cg.get("cpu", []), "cpu.cfs_quota_us", {"-1"})
    cpu = None
    if quota is not None:
        period = _first(cg.get("cpu", []), "cpu.cfs_period_us", set()) or "100000"
        cpu = f"{quota} {period}"
    else:
        v2cpu = _first(cg.get("unified", []), "cpu.max", set())
        cpu = v2cpu if v2cpu and not v2cpu.startswith("max") else None
    tasks = _first(cg.get("pids", []), "pids.max", {"max"}) or _first(
        cg.get("unified", []), "pids.max", {"max"}
    )
    # The kernel's default RLIMIT_NPROC is finite: only a limit below the reference's is one.
    nproc, inherited = _nproc(pid), _nproc(ref)
    if nproc is not None and inherited is not None and nproc >= inherited:
        nproc = None
    devices = read(os.path.join(cg["devices"][0], "devices.list")) if "devices" in cg else ""
    acl = bool(devices.strip()) and "a *:* rwm" not in devices.splitlines()
    return Limits(memory_max, cpu, int(tasks) if tasks and tasks.isdigit() else None, nproc), acl


def _user(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _environ_has(pid: int, name: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return any(v.startswith(name.encode() + b"=") for v in fh.read().split(b"\0"))
    except OSError:
        return False


def observe(unit: Mapping[str, Any], supervisor: int | None) -> tuple[int, Facts]:
    """The service behind ``unit["pid"]`` (a status unit): its pid and what it shows."""
    pid = service_pid(int(unit["pid"]))
    st = status(pid)
    if not st:
        raise ProcessLookupError(pid)
    ref = reference_pid(supervisor)
    if _ns(pid, "mnt") is None:
        # Another user's service: its namespaces (and so most verdicts) are hidden from us.
        raise PermissionError(f"/proc/{pid}/ns: permission denied")
    uid, gid = field_int(st, "Uid"), field_int(st, "Gid")
    groups = frozenset(int(g) for g in st.get("Groups", "").split()) - {gid}
    own = parse_mountinfo(read(f"/proc/{pid}/mountinfo"))
    ref_mounts = parse_mountinfo(read(f"/proc/{ref}/mountinfo"))
    unshared = frozenset(
        k for k in NAMESPACES if _ns(pid, k) is not None and _ns(pid, k) != _ns(ref, k)
    )
    try:
        own_root = os.readlink(f"/proc/{pid}/root") != "/"
    except OSError:
        own_root = False
    cg = _cgroup_files(pid, parse_mountinfo(read("/proc/self/mountinfo")))
    limits, acl = _limits(pid, ref, cg)
    umask = st.get("Umask", "0022")
    return pid, Facts(
        uid=uid,
        user=_user(uid),
        groups=groups,
        cap_bnd=_mask(st, "CapBnd"),
        cap_amb=_mask(st, "CapAmb"),
        no_new_privs=st.get("NoNewPrivs", "0") == "1",
        seccomp_mode=field_int(st, "Seccomp"),
        umask=int(umask, 8) if umask.isdigit() else 0o022,
        unshared=unshared,
        own_root=own_root,
        mounts=mount_view(own, ref_mounts, _home_modes(pid, ref)),
        syscalls_allowed=seccomp_allowed(unit, st),
        families_allowed=address_families_allowed(unit, st),
        native_only=native_only(unit, st),
        notify_socket=_environ_has(pid, "NOTIFY_SOCKET"),
        device_acl=acl,
        limits=limits,
    )
