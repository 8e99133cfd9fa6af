"""Read back what the kernel enforces on a running service (``sysg inspect``, docs/commands.md).

``observe(pid)`` reads ``/proc/PID/{status,limits,stat,cgroup,ns/*,fd}`` and the limit files of
the cgroups the process is in (``pids.max``, ``pids.current``, ``memory.max``, ...) into a
JSON-able dict. Under a pid namespace ``pid`` is the service itself (PID 1 there); a relay
process left by an older sysg (re-adopted after an upgrade) is looked through to its child whose
innermost pid is 1 (``service_pid``), which is what is observed.
``compare(plan, observed)`` lists every difference between the plan and that reading, plus every
key the plan could not apply — so a partial enforcement is never silent.

Pure reading: nothing here signals or writes.
"""

from __future__ import annotations

import os
import resource
from typing import Any

from systemg.manifest.values import format_cpu_list
from systemg.spawn import linux, protect
from systemg.spawn.cgroups import read_limits
from systemg.spawn.cgroups import read_text as _read
from systemg.spawn.plan import SpawnPlan, describe_limit

CAP_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
_LIMIT_ROWS = {"nofile": "Max open files", "nproc": "Max processes", "memlock": "Max locked memory"}
_NAMESPACES = ("net", "mnt", "pid", "user", "ipc", "uts", "cgroup")
_RES_NAMES = {
    resource.RLIMIT_NOFILE: "nofile",
    resource.RLIMIT_NPROC: "nproc",
    resource.RLIMIT_MEMLOCK: "memlock",
}


def _status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in _read(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def service_pid(pid: int) -> int:
    """The exec'd service: ``pid`` itself, or (an old relay) its child that is PID 1 of a
    pid namespace."""
    own = _status(pid).get("NSpid", "").split()
    if len(own) > 1 and own[-1] == "1":
        return pid  # the namespace's init: a child of its own may be a nested one's
    for child in _read(f"/proc/{pid}/task/{pid}/children").split():
        nspid = _status(int(child)).get("NSpid", "").split()
        if len(nspid) > 1 and nspid[-1] == "1":
            return int(child)
    return pid


def _limit(text: str) -> int | str:
    return text if text == "unlimited" else int(text)


def observe(pid: int) -> dict[str, Any]:
    """The kernel's view of the service behind ``pid`` (JSON-able)."""
    real = service_pid(pid)
    st = _status(real)
    caps: dict[str, Any] = {}
    for key in CAP_SETS:
        mask = int(st.get(key, "0"), 16)
        caps[key] = {"hex": f"{mask:016x}", "names": linux.cap_names(mask)}
    limits: dict[str, list[int | str]] = {}
    for line in _read(f"/proc/{real}/limits").splitlines():
        for name, title in _LIMIT_ROWS.items():
            if line.startswith(title):
                soft, hard = line[len(title) :].split()[:2]
                limits[name] = [_limit(soft), _limit(hard)]
    stat = _read(f"/proc/{real}/stat").rsplit(")", 1)[-1].split()
    namespaces: dict[str, Any] = {}
    for ns in _NAMESPACES:
        try:
            mine, theirs = os.readlink(f"/proc/self/ns/{ns}"), os.readlink(f"/proc/{real}/ns/{ns}")
        except OSError:
            continue
        namespaces[ns] = {"inode": theirs, "own": theirs != mine}
    fds: dict[str, str] = {}
    try:
        for name in sorted(os.listdir(f"/proc/{real}/fd"), key=int):
            try:
                fds[name] = os.readlink(f"/proc/{real}/fd/{name}")
            except OSError:
                continue
    except OSError:
        pass
    return {
        "pid": pid,
        "service_pid": real,
        "uid": [int(x) for x in st.get("Uid", "").split()],
        "gid": [int(x) for x in st.get("Gid", "").split()],
        "groups": sorted(int(x) for x in st.get("Groups", "").split()),
        "capabilities": caps,
        "rlimits": limits,
        "nice": int(stat[16]) if len(stat) > 16 else None,
        "cpus_allowed_list": st.get("Cpus_allowed_list", ""),
        "cgroup": _read(f"/proc/{real}/cgroup").splitlines(),
        "cgroup_limits": read_limits(real),
        "namespaces": namespaces,
        "nspid": st.get("NSpid", "").split(),
        "no_new_privs": int(st.get("NoNewPrivs", "0")),
        "seccomp": {
            "mode": int(st.get("Seccomp", "0")),
            "filters": int(st.get("Seccomp_filters", "0")),
        },
        "mounts": _mounts(real) if namespaces.get("mnt", {}).get("own") else {},
        "fds": fds,
    }


def _mounts(pid: int) -> dict[str, str]:
    """Mount point -> "ro" / "rw" in the service's own mount namespace (the top mount)."""
    out: dict[str, str] = {}
    for line in _read(f"/proc/{pid}/mountinfo").splitlines():
        fields = line.split(" ")
        if len(fields) > 5:
            point = protect.unescape(fields[4])
            out[point] = "ro" if "ro" in fields[5].split(",") else "rw"
    return out


def covering(mounts: dict[str, str], path: str) -> str:
    """ "ro" / "rw" of the mount that holds ``path`` (the longest mount point above it)."""
    best = max((m for m in mounts if protect.under(path, m)), key=len, default="")
    return mounts.get(best, "")


def compare(plan: SpawnPlan, observed: dict[str, Any]) -> tuple[str, ...]:
    """Each way ``observed`` differs from ``plan``, plus every key the plan did not apply."""
    out = [f"not applied: {line}" for line in plan.not_applied]
    uids, gids = observed.get("uid") or [None], observed.get("gid") or [None]
    if plan.uid is not None and uids[0] != plan.uid:
        out.append(f"user: requested uid {plan.uid}, running as {uids[0]}")
    if plan.gid is not None and gids[0] != plan.gid:
        out.append(f"group: requested gid {plan.gid}, running as {gids[0]}")
    if plan.groups is not None and sorted(set(plan.groups)) != observed.get("groups"):
        out.append(f"groups: requested {sorted(set(plan.groups))}, has {observed.get('groups')}")
    if plan.cap_mask is not None:
        for key in CAP_SETS:
            mask = int(observed["capabilities"][key]["hex"], 16)
            if mask != plan.cap_mask:
                out.append(f"capabilities: {key} is {mask:#x}, requested {plan.cap_mask:#x}")
    for lim in plan.rlimits:
        name = _RES_NAMES.get(lim.resource, str(lim.resource))
        want = describe_limit(lim.value)
        shown = [str(v) for v in observed.get("rlimits", {}).get(name, [])]
        if shown != [want, want]:
            out.append(f"limits.{name}: requested {want}, kernel shows {shown}")
    if plan.nice is not None and observed.get("nice") != plan.nice:
        out.append(f"limits.nice: requested {plan.nice}, kernel shows {observed.get('nice')}")
    if plan.cpus is not None:
        want_cpus = format_cpu_list(plan.cpus)
        if observed.get("cpus_allowed_list") != want_cpus:
            got_cpus = observed.get("cpus_allowed_list")
            out.append(f"limits.cpu_affinity: requested {want_cpus}, kernel shows {got_cpus}")
    if plan.cgroup is not None and not plan.cgroup.plain:
        rel = f"/systemg/{plan.project}/{plan.service}"
        if not any(line.endswith(rel) for line in observed.get("cgroup", [])):
            out.append(f"limits.cgroup: the service is not in a cgroup ending in {rel}")
        # pids.max reads back exactly as written (memory sizes are rounded to pages).
        wanted = {os.path.basename(f): v for f, v in plan.cgroup.written}.get("pids.max")
        shown = observed.get("cgroup_limits", {}).get("pids.max")
        if wanted is not None and shown != wanted:
            out.append(f"limits.cgroup.pids_max: requested {wanted}, kernel shows {shown}")
    for key, ns in (("network", "net"), ("mount", "mnt"), ("pid", "pid"), ("user", "user")):
        if getattr(plan, key) and not observed.get("namespaces", {}).get(ns, {}).get("own"):
            out.append(f"isolation.{key}: the service shares the supervisor's {ns} namespace")
    if plan.no_new_privs and observed.get("no_new_privs") != 1:
        out.append("isolation.no_new_privileges: NoNewPrivs is 0")
    seccomp = observed.get("seccomp", {})
    if plan.seccomp_programs and (
        seccomp.get("mode") != 2 or seccomp.get("filters", 0) < len(plan.seccomp_programs)
    ):
        out.append(
            f"isolation.seccomp: the kernel shows Seccomp {seccomp.get('mode')} with "
            f"{seccomp.get('filters')} filter(s), requested {len(plan.seccomp_programs)}"
        )
    if plan.protect is not None:
        mounts = observed.get("mounts", {})
        for path in (*plan.protect.read_only, *plan.protect.hidden_dirs):
            if covering(mounts, path) != "ro":
                out.append(f"isolation: {path} is not read-only in the service's mounts")
    fds = observed.get("fds", {})
    for i, _name in enumerate(plan.listen_fd_names):
        if str(3 + i) not in fds:
            out.append(f"listen: fd {3 + i} is not open in the service")
    return tuple(out)
