"""The control-socket contract: one typed dataclass per request, and the replies.

Wire shape (one JSON object per line, see ``codec``)::

    request   {"v": 1, "verb": "status", "args": {...}}
    reply     {"v": 1, "ok": true, "data": {...}}
              {"v": 1, "ok": false, "diagnostics": [Diagnostic.to_json(), ...]}
    stream    zero or more {"v": 1, "event": {...}} lines, then one reply line
              (start/stop/restart with ``progress: true``: ``{"kind": "progress", "verb",
              "total", "done", "recent": [{service, state}], "pending": [{service, state,
              waiting_for?}]}``, at most 10 a second)

``verb`` names the request class (``VERBS``). Every field is JSON-native; the CLI never
imports the daemon and the daemon never imports the CLI, both import this module.
Adding a field with a default is backwards compatible; removing or renaming one bumps
``PROTOCOL_VERSION`` and a mismatch is reported as ``SG0231`` by both sides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

PROTOCOL_VERSION = 1

T = TypeVar("T", bound="Message")


@dataclass(frozen=True, slots=True)
class Message:
    verb: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls: type[T], data: dict[str, Any]) -> T:
        """Build from a JSON object; unknown keys are ignored, missing keys take defaults."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: _freeze(v) for k, v in data.items() if k in names}
        return cls(**kwargs)


def _freeze(value: Any) -> Any:
    """JSON lists become tuples (recursively) so messages stay hashable and frozen."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


# --- requests ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartRequest(Message):
    """Register ``config`` (absolute path) if given, then start the selection and wait.

    ``attach``: stream ``{"kind": "log", ...}`` events of the selected project until it stops
    (foreground ``sysg start``). ``drop_privileges`` travels with the request so the
    supervisor that spawns applies it (docs/security.md §8).
    """

    verb: ClassVar[str] = "start"
    config: str | None = None
    project: str | None = None
    service: str | None = None
    drop_privileges: bool = False
    attach: bool = False
    environ: tuple[tuple[str, str], ...] = ()  # the CLI's environment, for ${VAR} expansion
    progress: bool = False  # stream {"kind": "progress"} events until the units settled


@dataclass(frozen=True, slots=True)
class StopRequest(Message):
    verb: ClassVar[str] = "stop"
    config: str | None = None
    project: str | None = None
    service: str | None = None
    progress: bool = False  # stream {"kind": "progress"} events (daemon/progress.py)


@dataclass(frozen=True, slots=True)
class RestartRequest(Message):
    verb: ClassVar[str] = "restart"
    config: str | None = None
    project: str | None = None
    service: str | None = None
    drop_privileges: bool = False
    environ: tuple[tuple[str, str], ...] = ()
    progress: bool = False  # stream {"kind": "progress"} events (daemon/progress.py)


@dataclass(frozen=True, slots=True)
class StatusRequest(Message):
    """``view`` empty: the reply is a ``StatusReply``. ``view`` ``table`` or ``json``: the
    supervisor renders what ``sysg status`` prints (``views/status_text.py``) and replies
    ``{"text": ..., "health": ...}`` — the fast CLI path (``cli/quick.py``), which then
    imports none of this module. ``color`` and ``width`` (0: none) are the table's."""

    verb: ClassVar[str] = "status"
    project: str | None = None
    service: str | None = None
    view: str = ""
    color: bool = False
    width: int = 0


@dataclass(frozen=True, slots=True)
class InspectRequest(Message):
    verb: ClassVar[str] = "inspect"
    project: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class LogsRequest(Message):
    """Follow new lines of the selection (``-f``); one-shot reads happen on disk in the CLI."""

    verb: ClassVar[str] = "logs"
    project: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class ShutdownRequest(Message):
    """Stop every service in reverse dependency order, then exit (``stop --supervisor``)."""

    verb: ClassVar[str] = "shutdown"


@dataclass(frozen=True, slots=True)
class ForgetRequest(Message):
    """Stop a project and drop its registration and state (``purge -p``)."""

    verb: ClassVar[str] = "forget"
    project: str | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class RunRequest(Message):
    """Run the cron job ``service`` now, once; the reply comes when the run ended:
    ``{"unit": ..., "run": {start, end, pid, exit_code, signal, result, message, ...}}``."""

    verb: ClassVar[str] = "run"
    config: str | None = None
    project: str | None = None
    service: str | None = None
    drop_privileges: bool = False
    environ: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class VersionRequest(Message):
    verb: ClassVar[str] = "version"


REQUESTS: tuple[type[Message], ...] = (
    StartRequest,
    StopRequest,
    RestartRequest,
    StatusRequest,
    InspectRequest,
    LogsRequest,
    ShutdownRequest,
    ForgetRequest,
    RunRequest,
    VersionRequest,
)
VERBS: dict[str, type[Message]] = {cls.verb: cls for cls in REQUESTS}

# Verbs an operator (system mode, member of the operator group) may send. ``start`` and
# ``restart`` are allowed only without ``config`` (no new manifest registration).
OPERATOR_VERBS = frozenset({"status", "inspect", "logs", "stop", "start", "restart", "version"})


# --- replies ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LastExit:
    code: int | None = None
    signal: int | None = None
    oom_killed: bool = False
    at: float | None = None  # epoch seconds


@dataclass(frozen=True, slots=True)
class LastProbe:
    at: float  # epoch seconds the attempt ended
    result: str  # pass | unhealthy | unreachable | timeout
    latency_s: float
    message: str = ""


@dataclass(frozen=True, slots=True)
class CronRun:
    start: float  # epoch seconds
    end: float | None = None
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    result: str = "running"  # running | ok | failed | overlap | stopped | skipped | lost
    message: str = ""
    manual: bool = False  # `sysg run`
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class CronStatus:
    expression: str  # 6 fields, seconds first
    timezone: str  # UTC | local | an IANA name
    scheduled: bool = False  # its project was started (and not stopped since)
    next_run: float | None = None  # epoch seconds
    last_run: CronRun | None = None
    recent_runs: tuple[CronRun, ...] = ()  # the recorded runs, oldest first (last 10)


@dataclass(frozen=True, slots=True)
class Metrics:
    """CPU and RSS over the samples the supervisor took of this unit (one per status or
    inspect that found it running; the last ``daemon.units.SAMPLES``). Upstream's names."""

    latest_cpu_percent: float
    average_cpu_percent: float
    max_cpu_percent: float
    latest_rss_bytes: int
    samples: int


@dataclass(frozen=True, slots=True)
class UnitStatus:
    """One service in the supervisor's ``status`` reply (the wire form). The public
    ``status.v1`` unit, the upstream's shape, is made from it by ``views/status_doc.py``."""

    project: str
    service: str
    state: str  # a daemon.phases.Phase value: running, blocked, backoff, failed, ...
    pid: int | None = None
    user: str | None = None
    started_at: float | None = None  # epoch seconds of the current process
    uptime_s: float | None = None
    restarts: int = 0
    last_exit: LastExit | None = None
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    command: str = ""
    enforcement: str = "full"  # full | partial (some requested key not applied)
    not_applied: tuple[str, ...] = ()  # "isolation.network: EPERM ..." lines
    message: str = ""  # why it is failed / backing off
    # Readiness and health (docs/manifest.md, "Readiness"): starting | healthy | unhealthy | unknown
    # ("unknown": no notify and no health check, so nothing says more than the state).
    health: str = "unknown"
    notify_status: str | None = None  # the last STATUS= a notify service sent
    last_probe: LastProbe | None = None
    cron: CronStatus | None = None  # a cron job: its schedule and last run
    # The seccomp filters loaded into this process (docs/security.md §10, for `sysg security`):
    # the isolation.seccomp entries, and the address families (all "~"-prefixed: denied).
    seccomp: tuple[str, ...] | None = None
    address_families: tuple[str, ...] | None = None
    # Facts `sysg status --format json` needs for the upstream's document (views/status_doc.py).
    project_name: str = ""  # the project's display name ("" = its id)
    manifest_path: str = ""  # the absolute path of the manifest that declared it
    loose: bool = False  # from a top-level ``services:`` block, not a named project
    attached: bool = False  # a foreground ``sysg start`` is attached to its project
    restart_policy: str = ""  # as the manifest wrote it; "" = not written (default never)
    skip: bool = False  # it has ``skip`` (true or a command)
    skip_always: bool = False  # ``skip: true``: it never runs (a job never fires either)
    shadow: bool = False  # a rolling restart's other generation (a second row)
    metrics: Metrics | None = None
    slot: str | None = None  # blue/green: the slot this generation runs in

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnitStatus:
        last = data.get("last_exit")
        return cls(
            project=str(data["project"]),
            service=str(data["service"]),
            state=str(data["state"]),
            pid=data.get("pid"),
            user=data.get("user"),
            started_at=data.get("started_at"),
            uptime_s=data.get("uptime_s"),
            restarts=int(data.get("restarts", 0)),
            last_exit=LastExit(**last) if isinstance(last, dict) else None,
            cpu_percent=data.get("cpu_percent"),
            rss_bytes=data.get("rss_bytes"),
            command=str(data.get("command", "")),
            enforcement=str(data.get("enforcement", "full")),
            not_applied=tuple(data.get("not_applied", ())),
            message=str(data.get("message", "")),
            health=str(data.get("health", "unknown")),
            notify_status=data.get("notify_status"),
            last_probe=LastProbe(**probe)
            if isinstance(probe := data.get("last_probe"), dict)
            else None,
            cron=_cron(data.get("cron")),
            seccomp=_strings(data.get("seccomp")),
            address_families=_strings(data.get("address_families")),
            project_name=str(data.get("project_name", "")),
            manifest_path=str(data.get("manifest_path", "")),
            loose=bool(data.get("loose", False)),
            attached=bool(data.get("attached", False)),
            restart_policy=str(data.get("restart_policy", "")),
            skip=bool(data.get("skip", False)),
            skip_always=bool(data.get("skip_always", False)),
            shadow=bool(data.get("shadow", False)),
            metrics=Metrics(**metrics)
            if isinstance(metrics := data.get("metrics"), dict)
            else None,
            slot=None if (slot := data.get("slot")) is None else str(slot),
        )


def _strings(data: object) -> tuple[str, ...] | None:
    return tuple(str(x) for x in data) if isinstance(data, list | tuple) else None


def _cron(data: object) -> CronStatus | None:
    if not isinstance(data, dict):
        return None
    last = data.get("last_run")
    return CronStatus(
        expression=str(data.get("expression", "")),
        timezone=str(data.get("timezone", "")),
        scheduled=bool(data.get("scheduled", False)),
        next_run=data.get("next_run"),
        last_run=CronRun(**last) if isinstance(last, dict) else None,
        recent_runs=tuple(
            CronRun(**r) for r in data.get("recent_runs") or () if isinstance(r, dict)
        ),
    )


@dataclass(frozen=True, slots=True)
class StatusReply:
    schema_version: str = "status.v1"
    captured_at: float = 0.0
    supervisor_pid: int = 0
    mode: str = "user"
    overall_health: str = "healthy"  # healthy | degraded | failing (the public one: status_doc)
    units: tuple[UnitStatus, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        # Performance: equal to ``asdict(self)`` without its recursive deep copies, which
        # cost ~100 us per unit on every `sysg status` (all values here are immutable).
        units = []
        for unit in self.units:
            data = _shallow(unit)
            if unit.last_exit is not None:
                data["last_exit"] = _shallow(unit.last_exit)
            if unit.last_probe is not None:
                data["last_probe"] = _shallow(unit.last_probe)
            if unit.cron is not None:
                data["cron"] = asdict(unit.cron)
            if unit.metrics is not None:
                data["metrics"] = _shallow(unit.metrics)
            units.append(data)
        reply = _shallow(self)
        reply["units"] = tuple(units)
        return reply

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatusReply:
        return cls(
            schema_version=str(data.get("schema_version", "status.v1")),
            captured_at=float(data.get("captured_at", 0.0)),
            supervisor_pid=int(data.get("supervisor_pid", 0)),
            mode=str(data.get("mode", "user")),
            overall_health=str(data.get("overall_health", "healthy")),
            units=tuple(UnitStatus.from_json(u) for u in data.get("units", ())),
        )


def _shallow(obj: Any) -> dict[str, Any]:
    """A slotted dataclass's fields as a dict, values as they are (in field order)."""
    return {name: getattr(obj, name) for name in obj.__slots__}
