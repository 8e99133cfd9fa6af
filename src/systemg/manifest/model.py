"""The validated manifest: frozen, typed, fully resolved values. Pure data, no behaviour.

A ``Manifest`` only exists if every key parsed: durations are milliseconds, sizes are bytes,
capability names are normalised (``CAP_NET_BIND_SERVICE``), paths are absolute, env files
have been read. Equality is structural, so ``restart`` reconciles by comparing ``Service``
values: a service whose value is unchanged keeps its process.
"""

from __future__ import annotations

import enum
import resource
from dataclasses import dataclass, field
from typing import Literal

UNLIMITED = resource.RLIM_INFINITY
"""rlimit value meaning "no limit" (``memlock: unlimited``)."""

DEFAULT_BACKOFF_MS = 1000
DEFAULT_STOP_TIMEOUT_MS = 10_000
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_LOG_MAX_FILES = 5
DEFAULT_CPU_PERIOD_US = 100_000
DEFAULT_START_TIMEOUT_MS = 90_000
DEFAULT_PROBE_INTERVAL_MS = 2000
DEFAULT_PROBE_ATTEMPT_TIMEOUT_MS = 30_000
DEFAULT_PROBE_RETRIES = 3
DEFAULT_HTTP_PORT = 80
DEFAULT_LIVENESS_INTERVAL_MS = 10_000
DEFAULT_LIVENESS_ATTEMPT_TIMEOUT_MS = 2_000
DEFAULT_LIVENESS_FAILURES = 3
PRE_START_TIMEOUT_MS = 300_000  # upstream's pre_start budget; deployment.pre_start is bounded by it
DEFAULT_HOOK_TIMEOUT_MS = 300_000  # upstream: a hook's timeout defaults to the pre_start budget
DEFAULT_GRACE_PERIOD_MS = 5_000  # deployment.grace_period: the old generation serves on this long


class RestartPolicy(enum.StrEnum):
    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


class Strategy(enum.StrEnum):
    """``deployment.strategy``: how ``restart`` replaces a running process."""

    IMMEDIATE = "immediate"  # stop, then start
    ROLLING = "rolling"  # start the new one beside the old; stop the old once the new is up


class LogSink(enum.StrEnum):
    FILE = "file"
    NONE = "none"


class ListenKind(enum.StrEnum):
    TCP = "tcp"
    UNIX = "unix"
    FD = "fd"


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One ``listen`` entry. ``raw`` is what the manifest said, for messages."""

    kind: ListenKind
    raw: str
    host: str = ""
    port: int = 0
    path: str = ""
    fd_name: str = ""  # for ``fd:NAME`` / ``fd:N`` (N kept as its decimal string)


class ProbeKind(enum.StrEnum):
    URL = "url"
    TCP = "tcp"
    COMMAND = "command"


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """``deployment.health_check``: one probe and its budget (docs/manifest.md, "Readiness").

    The probe fails for good only when ``retries`` attempts are used **and**
    ``total_timeout_ms`` (if set) has elapsed. ``url`` is plain HTTP: ``host``/``port`` are
    where to connect, ``path`` is the request target (path and query, never empty).
    """

    kind: ProbeKind
    host: str = ""  # url and tcp: an IP literal (no brackets), localhost or a host name
    port: int = 0  # url and tcp
    path: str = "/"  # url: path and query, percent-encoded
    command: str = ""  # command: run as /bin/sh -c COMMAND
    interval_ms: int = DEFAULT_PROBE_INTERVAL_MS
    attempt_timeout_ms: int = DEFAULT_PROBE_ATTEMPT_TIMEOUT_MS
    total_timeout_ms: int | None = None
    retries: int = DEFAULT_PROBE_RETRIES
    raw: str = ""  # the url / tcp / command as written, for messages


@dataclass(frozen=True, slots=True)
class BlueGreen:
    """``deployment.blue_green``: two slots the service alternates between on each rolling
    restart, and the command that moves traffic (docs/manifest.md, "Blue/green").

    Every placeholder is rendered at load for both directions: index ``i`` is "the candidate
    is in ``slots[i]``, the active one in the other". ``switch[i]`` moves traffic to
    ``slots[i]``; ``checks[i]`` / ``verify[i]`` are the probes for a candidate in ``slots[i]``
    (None: the block is absent). The slot is given to the process as ``env_var``.
    """

    slots: tuple[str, str]
    switch_command: str  # as written, for messages and export
    switch: tuple[str, str]
    env_var: str = "PORT"
    checks: tuple[ProbeSpec, ProbeSpec] | None = None  # candidate_health_check
    verify: tuple[ProbeSpec, ProbeSpec] | None = None  # switch_verify
    state_path: str | None = None  # absolute; None: the project's state directory
    liveness: tuple[Liveness, Liveness] | None = None  # the service's liveness, per slot


@dataclass(frozen=True, slots=True)
class Liveness:
    """``liveness``: once the service is up, one ``probe`` attempt per ``probe.interval_ms``;
    ``failures`` consecutive failures make it unhealthy. ``probe.retries`` and
    ``probe.total_timeout_ms`` are unused (they are readiness budgets)."""

    probe: ProbeSpec
    failures: int = DEFAULT_LIVENESS_FAILURES


@dataclass(frozen=True, slots=True)
class Hook:
    """One of ``hooks``: run as ``/bin/sh -c command``, killed after ``timeout_ms`` (> 0)."""

    command: str
    timeout_ms: int = DEFAULT_HOOK_TIMEOUT_MS


@dataclass(frozen=True, slots=True)
class Hooks:
    """``hooks``: ``onstart`` once up, ``onerr`` after an unsuccessful exit, ``onstop`` after
    any exit (a manual stop included). None = no hook."""

    onstart: Hook | None = None
    onerr: Hook | None = None
    onstop: Hook | None = None


class Condition(enum.StrEnum):
    """What a ``depends_on`` entry waits for: the dependency up, or exited 0."""

    STARTED = "started"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class EnvSpec:
    """Environment rules of one service, top-level ``env`` already merged under it."""

    vars: tuple[tuple[str, str], ...] = ()
    file: str | None = None  # absolute path, already read into file_vars
    file_vars: tuple[tuple[str, str], ...] = ()
    inherit_env: bool = False
    clear_session_vars: bool = True
    strip: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LogSpec:
    sink: LogSink = LogSink.FILE
    # None: the manifest did not say; the supervisor's default applies (its supervisor.xml,
    # else DEFAULT_LOG_MAX_BYTES / DEFAULT_LOG_MAX_FILES).
    max_bytes: int | None = None
    max_files: int | None = None


@dataclass(frozen=True, slots=True)
class CpuMax:
    """cgroup ``cpu.max``: ``quota`` µs per ``period`` µs; ``quota=None`` means ``max``."""

    quota: int | None
    period: int = DEFAULT_CPU_PERIOD_US

    def render(self) -> str:
        return f"{'max' if self.quota is None else self.quota} {self.period}"


@dataclass(frozen=True, slots=True)
class CgroupSpec:
    memory_max: int | Literal["max"] | None = None
    cpu_max: CpuMax | None = None
    pids_max: int | Literal["max"] | None = None  # tasks (processes and threads) in the cgroup
    root: str | None = None  # absolute path; None = the default cgroup2 mount + /systemg


@dataclass(frozen=True, slots=True)
class Limits:
    nofile: int | None = None
    nproc: int | None = None
    memlock: int | None = None  # may be UNLIMITED
    nice: int | None = None
    cpu_affinity: tuple[int, ...] | None = None
    cgroup: CgroupSpec | None = None


@dataclass(frozen=True, slots=True)
class Isolation:
    network: bool = False
    mount: bool = False
    pid: bool = False
    user: bool = False
    private_tmp: bool = False
    private_devices: bool = False
    no_new_privileges: bool = False
    # sandbox (docs/security.md): enforced by the kernel and read back
    seccomp: tuple[str, ...] | None = None  # systemd SystemCallFilter= entries, in order
    seccomp_action: str = "errno"  # "errno" or "kill"
    seccomp_errno: str = "EPERM"  # the errno name a denied call returns (action errno)
    address_families: tuple[str, ...] | None = None  # AF_* names; allowed (or denied, below)
    address_families_deny: bool = False  # the list was written ["~AF_PACKET", ...]
    protect_system: str = "false"  # false | true | full | strict
    protect_home: str = "false"  # false | true | read-only | tmpfs
    read_only_paths: tuple[str, ...] = ()  # "-/path" = ignore a missing one
    read_write_paths: tuple[str, ...] = ()
    inaccessible_paths: tuple[str, ...] = ()
    apparmor_profile: str | None = None  # "-name" = not_applied when AppArmor is not active
    selinux_context: str | None = None

    @property
    def protects_paths(self) -> bool:
        """True when a key needs read-only / inaccessible bind mounts."""
        return (
            self.protect_system != "false"
            or self.protect_home != "false"
            or bool(self.read_only_paths or self.read_write_paths or self.inaccessible_paths)
        )

    @property
    def any_namespace(self) -> bool:
        return any(
            (self.network, self.mount, self.pid, self.user, self.private_tmp, self.private_devices)
        )


@dataclass(frozen=True, slots=True)
class CronSpec:
    """``cron:``: when a job runs (docs/manifest.md, "Scheduled jobs"). ``expression`` has 6
    fields, seconds
    first (a 5-field one got ``0 `` prepended); ``timezone`` is ``UTC``, ``local`` or an IANA
    name that ``zoneinfo`` knows."""

    expression: str
    timezone: str = "local"
    written: str = ""  # the expression as the manifest wrote it


@dataclass(frozen=True, slots=True)
class Service:
    """One service, fully resolved. ``argv`` is what gets exec'd: a ``command`` that is one
    simple command as its words (``manifest.shellwords``), any other as ``/bin/sh -c``."""

    name: str
    argv: tuple[str, ...]
    command: str | None = None  # as written, when the manifest used ``command``
    working_dir: str = "/"
    env: EnvSpec = field(default_factory=EnvSpec)
    depends_on: tuple[str, ...] = ()  # every dependency, in manifest order, whatever its condition
    restart_policy: RestartPolicy = RestartPolicy.NEVER
    # The manifest wrote ``restart_policy`` (status's ``intent``: an explicit ``never`` is a
    # one-shot, an unset one says nothing). Not part of equality or ``repr``: it changes
    # no behaviour, so writing down the default is no reason to restart a service.
    restart_declared: bool = field(default=False, compare=False, repr=False)
    backoff_ms: int = DEFAULT_BACKOFF_MS
    max_restarts: int | None = None  # None = unlimited
    stop_timeout_ms: int = DEFAULT_STOP_TIMEOUT_MS
    logs: LogSpec = field(default_factory=LogSpec)
    # privileged keys (docs/security.md §8)
    user: str | None = None
    group: str | None = None
    supplementary_groups: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    capabilities: tuple[str, ...] | None = None  # None = key absent; () = "none"
    isolation: Isolation = field(default_factory=Isolation)
    listen: tuple[ListenSpec, ...] = ()
    # readiness (docs/manifest.md, "Readiness")
    notify: bool = False  # up on READY=1 over sd_notify
    watchdog_ms: int | None = None  # only with notify: WATCHDOG=1 at least this often
    start_timeout_ms: int = DEFAULT_START_TIMEOUT_MS
    health_check: ProbeSpec | None = None
    completed_deps: tuple[str, ...] = ()  # the depends_on entries with condition: completed
    # hooks, pre_start, skip and liveness (docs/manifest.md, "Liveness, pre_start, hooks, skip")
    liveness: Liveness | None = None
    pre_start: str | None = None  # deployment.pre_start: /bin/sh -c, before every launch
    strategy: Strategy = (
        Strategy.IMMEDIATE
    )  # deployment.strategy (docs/manifest.md, "Rolling restarts")
    grace_period_ms: int = DEFAULT_GRACE_PERIOD_MS  # rolling: old one serves on after the new is up
    blue_green: BlueGreen | None = None  # deployment.blue_green: only with strategy rolling
    hooks: Hooks = field(default_factory=Hooks)
    skip: bool = False  # skip: true; never set together with skip_command
    skip_command: str | None = None  # skip: COMMAND: /bin/sh -c at every start, exit 0 = skipped
    # schedule (docs/manifest.md, "Scheduled jobs")
    cron: CronSpec | None = None  # a job: run on this schedule, never started by `start`
    persistent: bool = False  # run once at start if a due run was missed meanwhile

    @property
    def switches_identity(self) -> bool:
        return bool(self.user or self.group or self.supplementary_groups)

    def condition(self, dependency: str) -> Condition:
        """What this service waits for from ``dependency`` (one of ``depends_on``)."""
        return Condition.COMPLETED if dependency in self.completed_deps else Condition.STARTED


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    services: tuple[Service, ...]
    manifest_path: str
    loose: bool = False  # the services came from a top-level ``services:`` block
    legacy: bool = False  # declared by the deprecated ``project:`` + top-level ``services:``

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)


@dataclass(frozen=True, slots=True)
class Manifest:
    path: str
    projects: tuple[Project, ...]

    def project(self, project_id: str) -> Project | None:
        return next((p for p in self.projects if p.id == project_id), None)
