"""Cgroup directories of a service (docs/security.md §8), prepared in the parent.

``prepare_cgroup`` decides where the service's cgroup lives, creates the directories and writes
the limits *before* the fork; the child then joins by writing its pid to every ``cgroup.procs``
in ``CgroupPlan.procs`` before it execs, so the workload never runs outside its limits.

* default root: the cgroup2 mount found in ``/proc/self/mountinfo`` + ``/systemg``, verified with
  ``statfs`` (magic ``0x63677270``) — a tmpfs that merely looks like ``/sys/fs/cgroup`` is never
  written as if it were cgroup2. ``memory.max``/``cpu.max``/``pids.max`` go there when v2 has
  the controller;
* hybrid hosts: a controller v2 lacks but v1 has is applied under
  ``<v1 mount>/systemg/<project>/<service>`` (``memory.limit_in_bytes``,
  ``cpu.cfs_quota_us``/``cpu.cfs_period_us``, ``pids.max``), and that directory is joined too;
* ``root:`` override: plain files in any directory (tests use a temp dir); if it is not cgroup2
  the limits are written but reported as not enforced.

Every write is best effort: a refusal becomes a warning plus a ``not_applied`` line and the
service still starts. Invariant: only directories this module created are listed for removal.

``remove_cgroup`` runs once the service's main process is gone: whatever is still a member of
its (real) cgroups — a child that left the process group with ``setsid``, or one still dying
from the group's SIGKILL — is killed through a pidfd and waited for (bounded by ``grace``),
because a cgroup with a live member cannot be removed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from systemg.errors import Code, Diagnostic
from systemg.manifest.model import CgroupSpec
from systemg.spawn import linux

if TYPE_CHECKING:
    from systemg.spawn.plan import SpawnPlan

MOUNTINFO = "/proc/self/mountinfo"
CONTROLLERS = ("memory", "cpu", "pids")  # what the cgroup keys need, on v2 or else v1
LIMIT_FILES = (
    "memory.max",
    "memory.limit_in_bytes",
    "cpu.max",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "pids.max",
    "pids.current",
)
"""The files ``read_limits`` reports: what each cgroup key becomes, and the live task count."""


@dataclass(frozen=True, slots=True)
class CgroupPlan:
    """Where a service's cgroup lives and what was written there."""

    dirs: tuple[str, ...]  # leaf directories, removed after the service died
    procs: tuple[str, ...]  # cgroup.procs files the child writes its own pid to
    oom_files: tuple[str, ...]  # memory.events (v2) / memory.oom_control (v1)
    written: tuple[tuple[str, str], ...]  # (file, value) actually written
    plain: bool = False  # the root is not a cgroup filesystem (test override)


@dataclass(frozen=True, slots=True)
class CgroupOutcome:
    plan: CgroupPlan | None
    warnings: tuple[Diagnostic, ...] = ()
    not_applied: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Mounts:
    v2: str | None
    v1: dict[str, str]  # controller -> mount point


def _read_mounts(mountinfo: str) -> _Mounts:
    v2: str | None = None
    v1: dict[str, str] = {}
    try:
        with open(mountinfo) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return _Mounts(None, {})
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        point = fields[4].replace("\\040", " ")
        if rest[0] == "cgroup2" and v2 is None:
            v2 = point
        elif rest[0] == "cgroup":
            for option in rest[2].split(","):
                if option not in ("rw", "ro") and "=" not in option:
                    v1.setdefault(option, point)
    return _Mounts(v2, v1)


def read_text(path: str) -> str:
    """A small kernel file's text, or "" if it cannot be read (the process or dir is gone)."""
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _is_cgroup2(path: str) -> bool:
    try:
        return linux.statfs_type(path) == linux.CGROUP2_SUPER_MAGIC
    except OSError:
        return False


class _Writer:
    """Collects what was written and what was refused, for one service."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.written: list[tuple[str, str]] = []
        self.warnings: list[Diagnostic] = []
        self.not_applied: list[str] = []

    def refuse(self, key: str, reason: str) -> None:
        self.not_applied.append(f"limits.cgroup.{key}: {reason}")
        self.warnings.append(
            Diagnostic(
                Code.CGROUP,
                f"{self.prefix}: limits.cgroup.{key} not applied: {reason}",
                path=f"{self.prefix}.limits.cgroup.{key}",
                hint="the service starts without this limit; `sysg inspect` lists it",
                severity="warning",
            )
        )

    def mkdir(self, path: str, key: str) -> bool:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            self.refuse(key, f"cannot create {path}: {exc.strerror}")
            return False
        return True

    def write(self, path: str, value: str, key: str) -> bool:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            self.refuse(key, f"cannot write {value!r} to {path}: {exc.strerror}")
            return False
        self.written.append((path, value))
        return True


def _pids_value(spec: CgroupSpec) -> str:
    return "max" if spec.pids_max in ("max", None) else str(spec.pids_max)


def _memory_value(spec: CgroupSpec, v1: bool) -> str:
    if spec.memory_max == "max" or spec.memory_max is None:
        return "-1" if v1 else "max"
    return str(spec.memory_max)


def prepare_cgroup(
    spec: CgroupSpec, project: str, service: str, prefix: str, *, mountinfo: str = MOUNTINFO
) -> CgroupOutcome:
    """Create the service's cgroup directories and write its limits (call as root)."""
    w = _Writer(prefix)
    dirs: list[str] = []
    procs: list[str] = []
    oom: list[str] = []
    if spec.root is not None:
        leaf = os.path.join(spec.root, project, service)
        if not w.mkdir(leaf, "root"):
            return CgroupOutcome(None, tuple(w.warnings), tuple(w.not_applied))
        real = _is_cgroup2(leaf)
        procs_file = os.path.join(leaf, "cgroup.procs")
        if not real and not os.path.exists(procs_file):
            w.write(procs_file, "", "root")
            w.written.pop()
        if spec.memory_max is not None:
            w.write(os.path.join(leaf, "memory.max"), _memory_value(spec, False), "memory_max")
        if spec.cpu_max is not None:
            w.write(os.path.join(leaf, "cpu.max"), spec.cpu_max.render(), "cpu_max")
        if spec.pids_max is not None:
            w.write(os.path.join(leaf, "pids.max"), _pids_value(spec), "pids_max")
        if not real:
            w.refuse(
                "root", f"{spec.root} is not a cgroup2 filesystem; files written, not enforced"
            )
        plan = CgroupPlan(
            (leaf,),
            (procs_file,),
            (os.path.join(leaf, "memory.events"),),
            tuple(w.written),
            plain=not real,
        )
        return CgroupOutcome(plan, tuple(w.warnings), tuple(w.not_applied))

    mounts = _read_mounts(mountinfo)
    controllers: set[str] = set()
    if mounts.v2 is not None and _is_cgroup2(mounts.v2):
        controllers = set(read_text(os.path.join(mounts.v2, "cgroup.controllers")).split())
        base = os.path.join(mounts.v2, "systemg")
        leaf = os.path.join(base, project, service)
        if w.mkdir(leaf, "root"):
            wanted = {c for c in CONTROLLERS if c in controllers}
            # Controllers must be enabled in every ancestor's subtree_control to reach the leaf.
            for parent in (mounts.v2, base, os.path.join(base, project)):
                for controller in sorted(wanted):
                    control = os.path.join(parent, "cgroup.subtree_control")
                    with contextlib.suppress(OSError), open(control, "w") as fh:
                        fh.write(f"+{controller}")
            dirs.append(leaf)
            procs.append(os.path.join(leaf, "cgroup.procs"))
            if spec.memory_max is not None and "memory" in controllers:
                w.write(os.path.join(leaf, "memory.max"), _memory_value(spec, False), "memory_max")
                oom.append(os.path.join(leaf, "memory.events"))
            if spec.cpu_max is not None and "cpu" in controllers:
                w.write(os.path.join(leaf, "cpu.max"), spec.cpu_max.render(), "cpu_max")
            if spec.pids_max is not None and "pids" in controllers:
                w.write(os.path.join(leaf, "pids.max"), _pids_value(spec), "pids_max")
    else:
        where = mounts.v2 or "no cgroup2 mount"
        w.refuse("root", f"{where} is not a cgroup2 filesystem; nothing enforced")
    v1_at = functools.partial(
        _v1,
        mounts=mounts,
        rel=os.path.join("systemg", project, service),
        w=w,
        dirs=dirs,
        procs=procs,
    )
    if spec.memory_max is not None and "memory" not in controllers:
        limit = ("memory.limit_in_bytes", _memory_value(spec, True))
        v1 = v1_at("memory", "memory_max", (limit,))
        if v1 is not None:
            oom.append(os.path.join(v1, "memory.oom_control"))
            # With swap, the RAM limit alone would let the service swap instead of being killed.
            memsw = os.path.join(v1, "memory.memsw.limit_in_bytes")
            if (os.path.join(v1, limit[0]), limit[1]) in w.written and os.path.exists(memsw):
                with contextlib.suppress(OSError), open(memsw, "w") as fh:
                    fh.write(limit[1])
    if spec.cpu_max is not None and "cpu" not in controllers:
        quota = -1 if spec.cpu_max.quota is None else spec.cpu_max.quota
        files = (("cpu.cfs_period_us", str(spec.cpu_max.period)), ("cpu.cfs_quota_us", str(quota)))
        v1_at("cpu", "cpu_max", files)
    if spec.pids_max is not None and "pids" not in controllers:
        v1_at("pids", "pids_max", (("pids.max", _pids_value(spec)),))
    result = CgroupPlan(tuple(dirs), tuple(procs), tuple(oom), tuple(w.written)) if procs else None
    return CgroupOutcome(result, tuple(w.warnings), tuple(w.not_applied))


def _v1(
    controller: str,
    key: str,
    files: tuple[tuple[str, str], ...],
    *,
    mounts: _Mounts,
    rel: str,
    w: _Writer,
    dirs: list[str],
    procs: list[str],
) -> str | None:
    """``<v1 mount of controller>/<rel>`` made, ``files`` written there, listed for joining."""
    point = mounts.v1.get(controller)
    if point is None:
        w.refuse(key, f"no {controller} controller on cgroup v2 or v1")
        return None
    leaf = os.path.join(point, rel)
    if not w.mkdir(leaf, key):
        return None
    for name, value in files:
        w.write(os.path.join(leaf, name), value, key)
    dirs.append(leaf)
    procs.append(os.path.join(leaf, "cgroup.procs"))
    return leaf


def _members(procs: tuple[str, ...]) -> set[int]:
    found = {int(p) for f in procs for p in read_text(f).split() if p.isdigit()}
    found.discard(os.getpid())  # the supervisor never joins a service's cgroup; be sure
    return found


def kill_members(procs: tuple[str, ...], grace: float) -> set[int]:
    """SIGKILL every process listed in ``procs`` and wait up to ``grace`` s for them to exit.

    Pids are read, opened as pidfds, then read again: only a pid still listed after its pidfd
    was opened is signalled, so a pid reused by an unrelated process is never touched (and the
    pidfd keeps naming the process if its number is reused later). Rounds repeat until the
    cgroups are empty, since a member may fork while we look. Returns the pids still listed.
    """
    deadline = time.monotonic() + grace
    fds: dict[int, int] = {}
    try:
        while True:
            for pid in _members(procs) - fds.keys():
                with contextlib.suppress(OSError):
                    fds[pid] = os.pidfd_open(pid)
            listed = _members(procs)
            left = deadline - time.monotonic()
            if not listed or left <= 0:
                return listed
            poller = select.poll()
            for pid in listed & fds.keys():
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(fds[pid], signal.SIGKILL)
                poller.register(fds[pid], select.POLLIN)
            # A listed pid without a pidfd exited between the reads: look again soon.
            wait = left if listed <= fds.keys() else min(left, 0.01)
            for fd, _ in poller.poll(max(1, int(wait * 1000))):
                pid = next(p for p, f in fds.items() if f == fd)
                os.close(fds.pop(pid))  # exited; the same number listed later is a new process
    finally:
        for fd in fds.values():
            os.close(fd)


def remove_cgroup(plan: SpawnPlan, *, grace: float = 1.0) -> None:
    """Remove the service's cgroup directories (after its main process died); best effort.

    Members still in a real cgroup are killed first (``kill_members``): a cgroup is only
    removable once empty, and whatever the service left there must not outlive it.
    """
    cg = plan.cgroup
    if cg is None:
        return
    if not cg.plain:
        kill_members(cg.procs, grace)
    for leaf in cg.dirs:
        if cg.plain:
            for name in os.listdir(leaf) if os.path.isdir(leaf) else ():
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(leaf, name))
        with contextlib.suppress(OSError):
            os.rmdir(leaf)
        # The project directory goes too once its last service is gone, and so does our
        # top-level ``systemg`` directory on a real cgroup mount (never a plain test root).
        project_dir = os.path.dirname(leaf)
        with contextlib.suppress(OSError):
            os.rmdir(project_dir)
        top = os.path.dirname(project_dir)
        if not cg.plain and os.path.basename(top) == "systemg":
            with contextlib.suppress(OSError):
                os.rmdir(top)


def read_limits(pid: int, *, mountinfo: str = MOUNTINFO) -> dict[str, str]:
    """The ``LIMIT_FILES`` of every cgroup ``pid`` is in, v2 and v1, by file name (for inspect)."""
    mounts = _read_mounts(mountinfo)
    out: dict[str, str] = {}
    for line in read_text(f"/proc/{pid}/cgroup").splitlines():
        _, controllers, rel = [*line.split(":", 2), "", ""][:3]
        point = mounts.v1.get(controllers.split(",")[0]) if controllers else mounts.v2
        if point is None or not rel.startswith("/"):
            continue
        for name in LIMIT_FILES:
            value = read_text(os.path.join(point, rel.lstrip("/"), name)).strip()
            if value:
                out.setdefault(name, value)
    return out


def oom_killed(plan: SpawnPlan) -> bool:
    """True when the kernel OOM-killed something in the service's cgroup."""
    if plan.cgroup is None:
        return False
    for path in plan.cgroup.oom_files:
        for line in read_text(path).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                return True
    return False
