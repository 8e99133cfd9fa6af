"""Resolve a ``Service`` into a ``SpawnPlan``: everything the child needs, as plain numbers.

Runs in the parent (the supervisor). Does the passwd/group lookups, reads the online CPU set and
the kernel's capability range, computes capability masks, builds the environment and the list of
executable candidates, decides which namespaces can apply, and prepares the cgroup directories
(``cgroups.prepare_cgroup`` — the one side effect, idempotent). The child then only applies the
plan; it never looks anything up.

What cannot apply is never silently dropped: it becomes a warning ``Diagnostic`` and a
``not_applied`` line in ``PlanResult``. What must not start (user switching without root, an
unknown account, an offline CPU) raises ``SpawnError`` naming the field.

Capabilities (docs/security.md §3): ``cap_mask`` None leaves the process's capabilities alone (a
root service without the key keeps root's); otherwise CapInh/Prm/Eff/Bnd/Amb all end up equal to the
mask — 0 for a service switched to a non-root user that lists none.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field

from systemg.errors import Code, Diagnostic, SpawnError
from systemg.manifest.model import UNLIMITED, Service
from systemg.manifest.values import CAPABILITIES, format_cpu_list, parse_cpu_list
from systemg.spawn import linux, sandbox_plan
from systemg.spawn.accounts import SYSTEM, AccountSource, UserEntry
from systemg.spawn.cgroups import CgroupPlan, prepare_cgroup
from systemg.spawn.environ import Account, build_environment, encode_environment
from systemg.spawn.fault import Step
from systemg.spawn.protect import ProtectPlan

_NAMESPACE_KEYS = ("network", "mount", "pid", "user", "private_tmp", "private_devices")
_NS_FILES = {"network": "net", "mount": "mnt", "pid": "pid", "user": "user"}


@dataclass(frozen=True, slots=True)
class SpawnContext:
    """What the supervisor is: root or not, ``--drop-privileges``, its own environment, and
    where account names are looked up (the supervisor's never blocks: ``spawn/accounts``)."""

    is_root: bool
    drop_privileges: bool = False
    supervisor_env: tuple[tuple[str, str], ...] = ()
    accounts: AccountSource = SYSTEM

    @classmethod
    def current(cls, *, drop_privileges: bool = False) -> SpawnContext:
        return cls(os.geteuid() == 0, drop_privileges, tuple(os.environ.items()))


@dataclass(frozen=True, slots=True)
class RlimitSetting:
    resource: int  # resource.RLIMIT_*
    value: int  # soft = hard = value; may be RLIM_INFINITY
    step: Step


@dataclass(frozen=True, slots=True)
class SpawnPlan:
    """A service resolved for one launch: numbers, bytes and paths; the child looks nothing up."""

    project: str
    service: str
    argv: tuple[str, ...]
    exec_candidates: tuple[str, ...]  # execve tries these in order (PATH search done here)
    env: tuple[bytes, ...]
    listen_pid_index: int = -1  # index in env of "LISTEN_PID=" (the child appends its pid)
    watchdog_pid: bool = False  # the child sets WATCHDOG_PID to its own pid
    cwd: str = "/"
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] | None = None  # None = no setgroups
    user_name: str | None = None
    rlimits: tuple[RlimitSetting, ...] = ()
    nice: int | None = None
    cpus: tuple[int, ...] | None = None
    cap_mask: int | None = None
    bounding_drop: tuple[int, ...] = ()
    ambient: tuple[int, ...] = ()
    network: bool = False
    join_netns: str = ""  # /proc/PID/ns/net to enter instead of a new one (side commands)
    mount: bool = False  # own mount namespace, private propagation
    pid: bool = False
    user: bool = False
    private_tmp: bool = False
    private_devices: bool = False
    map_uid: int = 0  # ids mapped 1:1 in a user namespace
    map_gid: int = 0
    no_new_privs: bool = False
    protect: ProtectPlan | None = None  # read-only / inaccessible mounts (spawn.protect)
    notify_bind: tuple[str, str] | None = None  # (notify socket, where it shows when hidden)
    lsm_attr: tuple[str, str] | None = None  # (/proc/self/attr/... file, text) before exec
    seccomp_programs: tuple[bytes, ...] = ()  # BPF, loaded last before exec (spawn.seccomp)
    cgroup: CgroupPlan | None = None
    inherited_fds: tuple[int, ...] = ()  # placed at 3.. in this order
    listen_fd_names: tuple[str, ...] = ()
    path_prefix: str = ""  # "services.web", for diagnostics
    capability_names: tuple[str, ...] = ()
    not_applied: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.project}/{self.service}"

    @property
    def cgroup_procs(self) -> tuple[str, ...]:
        return self.cgroup.procs if self.cgroup else ()

    @property
    def unshare_flags(self) -> int:
        """Flags of the first ``unshare`` (the user namespace comes later, after setuid)."""
        flags = linux.CLONE_NEWNET if self.network and not self.join_netns else 0
        flags |= linux.CLONE_NEWNS if self.mount else 0
        return flags | (linux.CLONE_NEWPID if self.pid else 0)


@dataclass(frozen=True, slots=True)
class PlanResult:
    plan: SpawnPlan
    warnings: tuple[Diagnostic, ...] = ()
    not_applied: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # for the supervisor log only (a skipped unknown syscall)


def _fail(code: Code, message: str, path: str, hint: str = "") -> SpawnError:
    return SpawnError(Diagnostic(code, message, path=path, hint=hint))


def _online_cpus() -> set[int]:
    try:
        with open("/sys/devices/system/cpu/online") as fh:
            return set(parse_cpu_list(fh.read().strip()))
    except (OSError, ValueError):
        return set(os.sched_getaffinity(0))


def _lookup_user(name: str, path: str, accounts: AccountSource) -> UserEntry:
    entry = accounts.user(name)
    if entry is None:
        raise _fail(
            Code.INVALID_VALUE, f"unknown user '{name}'", path, "create the account or fix the name"
        )
    return entry


def _lookup_group(name: str, path: str, accounts: AccountSource) -> int:
    gid = accounts.group(name)
    if gid is None:
        raise _fail(
            Code.INVALID_VALUE, f"unknown group '{name}'", path, "create the group or fix the name"
        )
    return gid


def socket_owner(service: Service, ctx: SpawnContext) -> tuple[int | None, int | None]:
    """The uid/gid that will own the service's ``unix:`` listen sockets: the ids it runs as
    once switched, or ``(None, None)`` when it keeps the supervisor's identity."""
    name = service.user or ("nobody" if ctx.drop_privileges else None)
    if not ctx.is_root or name is None:
        return None, None
    entry = _lookup_user(name, f"services.{service.name}.user", ctx.accounts)
    gid = entry.gid
    if service.group:
        gid = _lookup_group(service.group, f"services.{service.name}.group", ctx.accounts)
    return entry.uid, gid


def _exec_candidates(argv0: str, env: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    if "/" in argv0:
        return (argv0,)
    search = dict(env).get("PATH", os.defpath)
    return tuple(os.path.join(d or ".", argv0) for d in search.split(os.pathsep))


def build_plan(
    service: Service,
    project_id: str,
    ctx: SpawnContext,
    *,
    inherited_fds: tuple[int, ...] = (),
    fd_names: tuple[str, ...] = (),
) -> PlanResult:
    """Resolve ``service`` for launch by a supervisor described by ``ctx``."""
    prefix = f"services.{service.name}"
    label = f"service '{service.name}'"
    warnings: list[Diagnostic] = []
    not_applied: list[str] = []

    def skip(key: str, reason: str, code: Code = Code.NOT_ENFORCED) -> None:
        not_applied.append(f"{key}: {reason}")
        warnings.append(
            Diagnostic(
                code,
                f"{label}: {key} not applied: {reason}",
                path=f"{prefix}.{key}",
                hint="the service starts without it; `sysg inspect` lists it as not applied",
                severity="warning",
            )
        )

    if not service.argv:
        raise _fail(Code.SPAWN_FAILED, f"{label} has nothing to execute", f"{prefix}.command")

    # --- identity ------------------------------------------------------------------------
    if service.switches_identity and not ctx.is_root:
        raise _fail(
            Code.PERMISSION_DENIED,
            f"PermissionDenied: {label} requests user/group switching "
            "but sysg is not running as root",
            f"{prefix}.user" if service.user else f"{prefix}.group",
            "run the supervisor as root (sudo sysg --sys ...) or remove user/group from it",
        )
    user_name = service.user
    group_name = service.group
    if ctx.drop_privileges and ctx.is_root and user_name is None:
        user_name = "nobody"
        group_name = group_name or _nobody_group(ctx.accounts)
    uid = gid = None
    groups: tuple[int, ...] | None = None
    account: Account | None = None
    switched = False
    if user_name is not None or group_name is not None or service.supplementary_groups:
        switched = True
        if user_name is not None:
            pw = _lookup_user(user_name, f"{prefix}.user", ctx.accounts)
            uid, gid = pw.uid, pw.gid
            account = Account(pw.name, pw.home, pw.shell)
        else:
            own = ctx.accounts.user(str(os.geteuid()))
            account = Account(own.name, own.home, own.shell) if own else None
        if group_name is not None:
            gid = _lookup_group(group_name, f"{prefix}.group", ctx.accounts)
        primary = gid if gid is not None else os.getegid()
        extra = [
            _lookup_group(g, f"{prefix}.supplementary_groups[{i}]", ctx.accounts)
            for i, g in enumerate(service.supplementary_groups)
        ]
        # Exactly primary + listed: root's own groups never leak (no initgroups).
        groups = tuple(dict.fromkeys([primary, *extra]))

    # --- environment and argv -------------------------------------------------------------
    env_pairs = build_environment(
        service.env, ctx.supervisor_env, account, switched=switched, listen_names=fd_names
    )
    env, listen_index = encode_environment(env_pairs)
    if len(fd_names) != len(inherited_fds):
        raise _fail(
            Code.LISTEN,
            f"{label}: {len(inherited_fds)} fds but {len(fd_names)} names",
            f"{prefix}.listen",
        )

    # --- limits -----------------------------------------------------------------------------
    lim = service.limits
    rlimits: list[RlimitSetting] = []
    for value, res, step in (
        (lim.nofile, resource.RLIMIT_NOFILE, Step.RLIMIT_NOFILE),
        (lim.nproc, resource.RLIMIT_NPROC, Step.RLIMIT_NPROC),
        (lim.memlock, resource.RLIMIT_MEMLOCK, Step.RLIMIT_MEMLOCK),
    ):
        if value is not None:
            rlimits.append(RlimitSetting(res, value, step))
    if lim.cpu_affinity is not None:
        online = _online_cpus()
        offline = [c for c in lim.cpu_affinity if c not in online]
        if offline:
            raise _fail(
                Code.AFFINITY,
                f"{label}: limits.cpu_affinity lists CPU {format_cpu_list(tuple(offline))}, "
                f"which is not online (online: {format_cpu_list(online)})",
                f"{prefix}.limits.cpu_affinity",
                f"use CPUs from {format_cpu_list(online)}",
            )

    # --- capabilities -------------------------------------------------------------------------
    cap_mask: int | None = None
    names = service.capabilities or ()
    if service.capabilities is not None and not ctx.is_root:
        if service.capabilities:
            skip("capabilities", "sysg is not running as root")
    elif ctx.is_root:
        if service.capabilities is not None:
            cap_mask = 0
            for name in service.capabilities:
                cap_mask |= 1 << CAPABILITIES[name]
        elif uid is not None and uid != 0:
            cap_mask = 0
    last = linux.cap_last_cap()
    bounding_drop: tuple[int, ...] = ()
    ambient: tuple[int, ...] = ()
    if cap_mask is not None:
        bounding_drop = tuple(c for c in range(last + 1) if not cap_mask >> c & 1)
        ambient = tuple(c for c in range(last + 1) if cap_mask >> c & 1)

    # --- isolation ----------------------------------------------------------------------------
    iso = service.isolation
    applied: dict[str, bool] = {}
    for key in _NAMESPACE_KEYS:
        if not getattr(iso, key):
            continue
        reason = _namespace_unavailable(key, ctx.is_root)
        if reason:
            skip(f"isolation.{key}", reason)
        applied[key] = not reason
    protect: ProtectPlan | None = None
    if iso.protects_paths:
        reason = _namespace_unavailable("mount", ctx.is_root)
        if reason:
            for key in sandbox_plan.PATH_KEYS:
                if sandbox_plan.sets(iso, key):
                    skip(f"isolation.{key}", reason)
        else:
            protect = sandbox_plan.protect_plan(iso, prefix)
    lsm_attr = sandbox_plan.lsm(iso, prefix, skip)
    # A seccomp filter needs NoNewPrivs unless the service keeps CAP_SYS_ADMIN (docs/security.md).
    sys_admin = 1 << CAPABILITIES["CAP_SYS_ADMIN"]
    keeps_sys_admin = (
        ctx.is_root and uid in (None, 0) if cap_mask is None else bool(cap_mask & sys_admin)
    )
    programs, notes = sandbox_plan.seccomp_programs(iso, prefix)
    mount_ns = protect is not None or any(
        applied.get(k) for k in ("mount", "pid", "private_tmp", "private_devices")
    )

    # --- cgroup -------------------------------------------------------------------------------
    cgroup: CgroupPlan | None = None
    if lim.cgroup is not None:
        if not ctx.is_root:
            skip("limits.cgroup", "sysg is not running as root", Code.CGROUP)
        else:
            outcome = prepare_cgroup(lim.cgroup, project_id, service.name, prefix)
            cgroup = outcome.plan
            warnings.extend(outcome.warnings)
            not_applied.extend(outcome.not_applied)

    plan = SpawnPlan(
        project=project_id,
        service=service.name,
        argv=service.argv,
        exec_candidates=_exec_candidates(service.argv[0], env_pairs),
        env=env,
        listen_pid_index=listen_index,
        cwd=service.working_dir,
        uid=uid,
        gid=gid,
        groups=groups,
        user_name=account.name if account and uid is not None else None,
        rlimits=tuple(rlimits),
        nice=lim.nice,
        cpus=lim.cpu_affinity,
        cap_mask=cap_mask,
        bounding_drop=bounding_drop,
        ambient=ambient,
        network=applied.get("network", False),
        mount=mount_ns,
        pid=applied.get("pid", False),
        user=applied.get("user", False),
        private_tmp=applied.get("private_tmp", False),
        private_devices=applied.get("private_devices", False),
        map_uid=uid if uid is not None else os.geteuid(),
        map_gid=gid if gid is not None else os.getegid(),
        no_new_privs=iso.no_new_privileges or bool(programs and not keeps_sys_admin),
        protect=protect,
        lsm_attr=lsm_attr,
        seccomp_programs=programs,
        cgroup=cgroup,
        inherited_fds=inherited_fds,
        listen_fd_names=fd_names,
        path_prefix=prefix,
        capability_names=tuple(names),
        not_applied=tuple(not_applied),
    )
    return PlanResult(plan, tuple(warnings), tuple(not_applied), notes)


def _nobody_group(accounts: AccountSource) -> str:
    for name in ("nogroup", "nobody"):
        if accounts.group(name) is not None:
            return name
    nobody = accounts.user("nobody")
    return str(nobody.gid) if nobody else "65534"


def _namespace_unavailable(key: str, is_root: bool) -> str:
    """Why the namespace behind ``key`` cannot be created here ("" = it can)."""
    if not is_root:
        return "sysg is not running as root"
    kind = _NS_FILES.get(key, "mnt")
    if not os.path.exists(f"/proc/self/ns/{kind}"):
        return f"this kernel has no {kind} namespaces"
    if key == "user":
        try:
            with open("/proc/sys/user/max_user_namespaces") as fh:
                if int(fh.read()) == 0:
                    return "user namespaces are disabled (user.max_user_namespaces = 0)"
        except (OSError, ValueError):
            pass
    return ""


def describe_limit(value: int) -> str:
    return "unlimited" if value == UNLIMITED else str(value)
