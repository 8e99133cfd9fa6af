"""The public ``status.v1`` document: the supervisor's ``StatusReply`` in, the upstream's JSON
shape out (docs/commands.md, "The status.v1 JSON schema"). Pure: no I/O, no clock.

The upstream (``ra0x3/systemg``, ``src/status/mod.rs``) names each unit's fields; scripts
written against it read ``name``, ``project.id``, ``process.pid``, ``state``, ``health``,
``last_exit.exit_code`` and ``overall_health``. So every upstream field keeps its name, type
and meaning here, optional ones are left out when they have no value (as upstream's
``skip_serializing_if``), and what only we know goes *beside* them under names upstream does
not use (``phase``, ``restarts``, ``message``, ``enforcement``, ``not_applied``, ``readiness``,
``notify_status``, ``last_probe``, ``shadow``, ...), always present.

Our phases fold into upstream's states the way its ``derive_unit_state`` folds its records:
a live process is ``running``; a recorded exit is ``done`` (code 0) or ``failed``; a restart
backoff is the exit that caused it (upstream records ``ExitedWithError`` before it restarts);
``waiting``/``blocked`` (not started for a dependency) are ``queued``; a cron job that is
scheduled shows its last run. ``health`` follows its ``derive_unit_health`` (a failing last
probe outranks a live process; a start not yet confirmed, a stop under way, a unit held by a
dependency and partly applied privileges are ``warn``, where upstream has no such phases).

Invariants: ``state``, ``intent``, ``health`` are always one of ``STATES``, ``INTENTS``,
``HEALTHS``; ``overall_health`` is the worst health of the rows that are not ``shadow``
(idle counts as healthy), and ``HEALTH_EXIT`` maps it to the exit code of ``status``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from systemg.protocol.messages import CronRun, LastExit, StatusReply, UnitStatus

SCHEMA = "status.v1"
STATES = frozenset(
    {"running", "done", "failed", "stopped", "skipped", "lost", "zombie", "queued", "overlap"}
    | {"unknown"}
)
INTENTS = frozenset({"serve", "once", "unspecified", "cron", "manual", "skip", "orphan"})
HEALTHS = frozenset({"healthy", "idle", "warn", "failing"})
HEALTH_EXIT = {"healthy": 0, "warn": 1, "failing": 2}

_LIVE = frozenset({"running", "starting", "stopping", "draining"})
_PROBE_FAILED = frozenset({"unhealthy", "unreachable", "timeout"})
# A cron run's result -> (state, health), as upstream's CronExecutionStatus: Success,
# Failed, OverlapError; a run cut short (stopped, or lost with the supervisor) is its
# Interrupted, which leaves the job queued for its next time.
_CRON_RUN = {
    "ok": ("done", "healthy"),
    "failed": ("failed", "failing"),
    "overlap": ("overlap", "warn"),
    "stopped": ("queued", "idle"),
    "lost": ("queued", "idle"),
    "skipped": ("skipped", "idle"),
    "running": ("queued", "idle"),  # recorded as running, no process (between two reads)
}


def rfc3339(epoch: float) -> str:
    """``2026-05-01T12:00:00.123456Z`` (UTC, microseconds: what the supervisor measured)."""
    text = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def human_elapsed(seconds: int) -> str:
    """Upstream's ``format_elapsed``: ``12 secs ago``, ``3 mins ago``, ``2 hours ago``, ..."""
    if seconds < 60:
        return f"{seconds} secs ago"
    if seconds < 3600:
        return f"{seconds // 60} mins ago"
    if seconds < 86400:
        return f"{seconds // 3600} hours ago"
    if seconds < 604800:
        return f"{seconds // 86400} days ago"
    return f"{seconds // 604800} weeks ago"


def _clean(last: LastExit | None) -> bool:
    """A recorded exit was a success (code 0, no signal, no OOM); none recorded counts too."""
    return last is None or (last.code == 0 and last.signal is None and not last.oom_killed)


def _scheduled_cron(unit: UnitStatus) -> bool:
    return unit.cron is not None and (unit.cron.scheduled or unit.state == "queued")


def unit_state(unit: UnitStatus) -> str:
    """Upstream's state for one row (see the module docstring)."""
    phase = unit.state
    if unit.pid is not None and phase in _LIVE:
        return "running"
    if phase == "skipped":
        return "skipped"
    if _scheduled_cron(unit):
        assert unit.cron is not None
        last = unit.cron.last_run
        if last is None:
            # `skip: true`: it never fires, so it is skipped from the start, not waiting.
            return "skipped" if unit.skip_always else "queued"
        return _CRON_RUN.get(last.result, ("unknown", "warn"))[0]
    match phase:
        case "running":
            return "lost"  # recorded as running, and no process: what upstream calls lost
        case "starting" | "waiting" | "blocked" | "queued":
            return "queued"
        case "stopping" | "stopped" | "draining":
            return "stopped"
        case "exited" | "backoff":
            return "done" if _clean(unit.last_exit) else "failed"
        case "failed" | "killed" | "oom-killed":
            return "failed"
    return "unknown"


def unit_health(unit: UnitStatus, state: str) -> str:
    """Upstream's health for one row: does it need attention (see the module docstring)."""
    if state == "running":
        probe = unit.last_probe
        if probe is not None and probe.result in _PROBE_FAILED:
            return "failing"
        if unit.state in ("starting", "stopping") or unit.enforcement == "partial":
            return "warn"
        return "healthy"
    if state == "skipped":
        return "idle"
    if _scheduled_cron(unit):
        assert unit.cron is not None
        last = unit.cron.last_run
        return "idle" if last is None else _CRON_RUN.get(last.result, ("unknown", "warn"))[1]
    match state:
        case "done":
            return "healthy"
        case "failed" | "zombie":
            return "failing"
        case "stopped":
            return "idle"
    return "warn"  # queued for a dependency, lost, unknown


def unit_intent(unit: UnitStatus) -> str:
    """What the unit is for: ``cron``, ``skip``, ``once`` (``restart_policy: never`` written
    down) or ``unspecified`` (upstream: a policy left unset promises nothing either way)."""
    if unit.cron is not None:
        return "cron"
    if unit.skip:
        return "skip"
    if unit.restart_policy == "never":
        return "once"
    return "unspecified"


def _lifecycle(unit: UnitStatus, state: str) -> str | None:
    """Upstream's recorded lifecycle (``ServiceLifecycleStatus``); none before a first start."""
    match state:
        case "running":
            return "running"
        case "skipped":
            return "skipped"
        case "stopped":
            return "stopped"
        case "done":
            return "exited_successfully"
        case "failed":
            return "exited_with_error"
    if unit.state == "running":
        return "running"  # lost: the record says running
    return None


def _last_exit(last: LastExit | None) -> dict[str, Any] | None:
    if last is None:
        return None
    doc: dict[str, Any] = {}
    if last.code is not None:
        doc["exit_code"] = last.code
    if last.signal is not None:
        doc["signal"] = last.signal
    doc["oom_killed"] = last.oom_killed
    doc["at"] = None if last.at is None else rfc3339(last.at)
    return doc


def _run(run: CronRun) -> dict[str, Any]:
    """Upstream's ``CronExecutionSummary``, with our ``result``/``message``/... beside."""
    doc: dict[str, Any] = {"started_at": rfc3339(run.start)}
    if run.end is not None:
        doc["completed_at"] = rfc3339(run.end)
    status = {
        "ok": "Success",
        "failed": f"Failed: {run.message}" if run.message else "Failed",
        "overlap": "OverlapError",
        "stopped": f"Interrupted: {run.message}" if run.message else "Interrupted",
        "lost": f"Interrupted: {run.message}" if run.message else "Interrupted",
    }.get(run.result)
    if status is not None:
        doc["status"] = status
    if run.exit_code is not None:
        doc["exit_code"] = run.exit_code
    if run.pid is not None:
        doc["pid"] = run.pid
    doc.update(
        result=run.result,
        message=run.message,
        signal=run.signal,
        duration_s=run.duration_s,
        manual=run.manual,
    )
    return doc


def _cron(unit: UnitStatus) -> dict[str, Any] | None:
    cron = unit.cron
    if cron is None:
        return None
    doc: dict[str, Any] = {"timezone_label": cron.timezone, "timezone": cron.timezone}
    if cron.last_run is not None:
        doc["last_run"] = _run(cron.last_run)
    runs = [_run(r) for r in reversed(cron.recent_runs)]  # newest first, as upstream
    if runs:
        doc["recent_runs"] = runs
    doc.update(
        expression=cron.expression,
        scheduled=cron.scheduled,
        next_run=None if cron.next_run is None else rfc3339(cron.next_run),
    )
    return doc


def unit_doc(unit: UnitStatus, captured_at: float) -> dict[str, Any]:
    """One unit of the document: upstream's fields in upstream's order, then ours."""
    state = unit_state(unit)
    project: dict[str, Any] = {
        "id": unit.project,
        "name": unit.project_name or unit.project,
        "mode": "foreground" if unit.attached else "daemon",
    }
    if unit.manifest_path:
        project["config_path"] = unit.manifest_path
    if unit.loose:
        project["loose"] = True
    doc: dict[str, Any] = {
        "name": unit.service,
        "hash": f"v2:{unit.project}:{unit.service}",  # upstream's state key
        "project": project,
        "kind": "cron" if unit.cron is not None else "service",
    }
    lifecycle = _lifecycle(unit, state)
    if lifecycle is not None:
        doc["lifecycle"] = lifecycle
    doc.update(state=state, intent=unit_intent(unit), health=unit_health(unit, state))
    if unit.pid is not None:
        process: dict[str, Any] = {"pid": unit.pid, "state": "running"}
        if unit.user:
            process["user"] = unit.user
        doc["process"] = process
        if unit.started_at is not None:
            seconds = max(0, int(captured_at - unit.started_at))
            doc["uptime"] = {
                "seconds": seconds,
                "human": human_elapsed(seconds),
                "started_at": rfc3339(unit.started_at),
            }
    last_exit = _last_exit(unit.last_exit)
    if last_exit is not None:
        doc["last_exit"] = last_exit
    cron = _cron(unit)
    if cron is not None:
        doc["cron"] = cron
    if unit.metrics is not None:
        m = unit.metrics
        doc["metrics"] = {
            "latest_cpu_percent": m.latest_cpu_percent,
            "average_cpu_percent": m.average_cpu_percent,
            "max_cpu_percent": m.max_cpu_percent,
            "latest_rss_bytes": m.latest_rss_bytes,
            "samples": m.samples,
        }
    if unit.command:
        doc["command"] = unit.command
    probe = unit.last_probe
    doc.update(
        phase=unit.state,
        restarts=unit.restarts,
        message=unit.message,
        enforcement=unit.enforcement,
        not_applied=list(unit.not_applied),
        readiness=unit.health,
        notify_status=unit.notify_status,
        last_probe=None
        if probe is None
        else {
            "at": rfc3339(probe.at),
            "result": probe.result,
            "latency_s": probe.latency_s,
            "message": probe.message,
        },
        seccomp=None if unit.seccomp is None else list(unit.seccomp),
        address_families=None if unit.address_families is None else list(unit.address_families),
        shadow=unit.shadow,
        slot=unit.slot,
    )
    return doc


def overall_health(units: list[dict[str, Any]]) -> str:
    """Worst health of the rows that are not a rolling restart's other generation."""
    healths = {u["health"] for u in units if not u.get("shadow")}
    if "failing" in healths:
        return "failing"
    if "warn" in healths:
        return "warn"
    return "healthy"


def status_doc(reply: StatusReply) -> dict[str, Any]:
    """The whole ``sysg status --format json`` document."""
    units = [unit_doc(u, reply.captured_at) for u in reply.units]
    return {
        "schema_version": SCHEMA,
        "captured_at": rfc3339(reply.captured_at),
        "overall_health": overall_health(units),
        "units": units,
        "supervisor_pid": reply.supervisor_pid,
        "supervisor_mode": reply.mode,
    }


def in_public_words(reply: StatusReply) -> StatusReply:
    """``reply`` with the document's ``overall_health`` (healthy | warn | failing), for the
    views that print the reply's own header (``status``'s table, ``top``), so every view and
    exit code says the same word."""
    units = [unit_doc(u, reply.captured_at) for u in reply.units]
    return replace(reply, overall_health=overall_health(units))


def empty_doc(now: float) -> dict[str, Any]:
    """A selection that matched nothing: ``units: []``, healthy (nothing needs attention, so
    ``status`` exits 0; upstream says ``warn`` and exits 1 — docs/commands.md says why)."""
    return {
        "schema_version": SCHEMA,
        "captured_at": rfc3339(now),
        "overall_health": "healthy",
        "units": [],
    }


def inspect_doc(data: dict[str, Any]) -> dict[str, Any]:
    """``sysg inspect --format json``: upstream's ``{"unit", "samples"}``, then our sections
    as the supervisor sent them (requested, observed, mismatch, not_applied, readiness,
    cron_runs)."""
    raw = data.get("unit")
    unit = UnitStatus.from_json(raw) if isinstance(raw, dict) else None
    captured_at = float(data.get("captured_at") or 0.0)
    doc: dict[str, Any] = {
        "unit": None if unit is None else unit_doc(unit, captured_at),
        "samples": [
            {
                "timestamp": rfc3339(float(s["timestamp"])),
                "cpu_percent": s.get("cpu_percent"),
                "rss_bytes": s.get("rss_bytes"),
            }
            for s in data.get("samples") or ()
            if isinstance(s, dict)
        ],
    }
    for key in ("requested", "observed", "mismatch", "not_applied"):
        if key in data:
            doc[key] = data[key]
    if "health" in data:
        doc["readiness"] = data["health"]
    if "cron_runs" in data:
        doc["cron_runs"] = data["cron_runs"]
    return doc
