"""Build the ``status.v1`` snapshot from the live table (plus cheap ``/proc`` reads).

CPU % is measured between two status calls of the same process (the first call shows the
average since it started); RSS comes from ``/proc/PID/statm``. Reading two small files per
service keeps ``sysg status`` fast with hundreds of services — no psutil on this path.

Each CPU/RSS reading of a running unit is kept (the last ``units.SAMPLES``):
``metrics`` summarises them, ``inspect`` lists them. The public ``status.v1`` document (the
upstream's shape) is made from this reply by the CLI (``views/status_doc.py``); each unit
carries the facts it needs (project name, manifest, foreground or not, restart policy).

``overall_health`` here is the reply's own coarse verdict (the CLI shows its own, from
``status_doc``; this one stays for clients that read the reply as it is):
``failing`` if any unit is failed, killed, oom-killed or exited non-zero; ``degraded`` if any
is backing off, waiting, blocked, starting, stopping, or runs with part of its privileged
plan not applied; else ``healthy``.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

from systemg import proc
from systemg.daemon.lifecycle import checks_readiness
from systemg.daemon.phases import ALIVE, DEGRADED, FAILING, Phase
from systemg.daemon.supervisor import Supervisor, Unit
from systemg.errors import Code
from systemg.manifest.model import Project
from systemg.protocol.messages import (
    CronRun,
    CronStatus,
    LastExit,
    LastProbe,
    Metrics,
    StatusReply,
    UnitStatus,
)

DRAINING = "draining"  # the old generation of a rolling restart, until it has exited
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _cpu_seconds(pid: int) -> float | None:
    fields = proc.stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def unit_health(unit: Unit) -> str:
    phase = unit.state.phase
    last = unit.state.last_exit
    if phase in FAILING or (phase is Phase.EXITED and last is not None and not last.clean):
        return "failing"
    if phase in DEGRADED or unit.not_applied:
        return "degraded"
    return "healthy"


_UNHEALTHY = frozenset({Code.HEALTH_UNHEALTHY, Code.HEALTH_UNREACHABLE, Code.HEALTH_TIMEOUT})


def readiness_health(unit: Unit) -> str:
    """starting | healthy | unhealthy | unknown (docs/manifest.md, "Readiness")."""
    if not checks_readiness(unit.service) and unit.service.liveness is None:
        return "unknown"
    phase = unit.state.phase
    if phase is Phase.STARTING:
        return "starting"
    if phase is Phase.RUNNING:
        return "healthy"
    if unit.error is not None and unit.error.code in _UNHEALTHY:
        return "unhealthy"
    return "unknown"


def unit_status(
    unit: Unit, now: float, project: Project | None = None, *, attached: bool = False
) -> UnitStatus:
    """One unit's row; ``project`` (its runtime's) and ``attached`` (a foreground ``start``
    streams it) fill the project facts, which rows built without them leave empty."""
    st = unit.state
    pid = st.pid
    cpu: float | None = None
    rss: int | None = None
    if pid is not None:
        used = _cpu_seconds(pid)
        if used is not None:
            if unit.cpu_sample is not None and now > unit.cpu_sample[1]:
                cpu = 100.0 * (used - unit.cpu_sample[0]) / (now - unit.cpu_sample[1])
            elif st.started_at and now > st.started_at:
                cpu = 100.0 * used / (now - st.started_at)
            unit.cpu_sample = (used, now)
        rss = _rss(pid)
        if cpu is not None and rss is not None:
            unit.samples.append((now, round(max(cpu, 0.0), 1), rss))
    last = st.last_exit
    plan = unit.plan
    cron = _cron(unit)
    state = str(st.phase)
    if cron is not None and st.phase is Phase.STOPPED and cron.scheduled and cron.last_run is None:
        state = "queued"  # scheduled, not run yet (upstream)
    return UnitStatus(
        project=unit.project_id,
        service=unit.service.name,
        state=state,
        pid=pid,
        user=(plan.user_name if plan is not None else None),
        started_at=st.started_at if pid is not None else None,
        uptime_s=round(now - st.started_at, 3) if pid is not None and st.started_at else None,
        restarts=st.restarts,
        last_exit=None
        if last is None
        else LastExit(last.code, last.signal, last.oom_killed, last.at),
        cpu_percent=None if cpu is None else round(max(cpu, 0.0), 1),
        rss_bytes=rss,
        command=unit.service.command or " ".join(unit.service.argv),
        enforcement="partial" if unit.not_applied else "full",
        not_applied=unit.not_applied,
        message=(unit.error.message if unit.error is not None else st.message),
        health=readiness_health(unit),
        notify_status=None if unit.health is None else unit.health.status_text,
        last_probe=_last_probe(unit),
        cron=cron,
        **_filters(unit, pid),
        project_name="" if project is None else project.name,
        manifest_path="" if project is None else project.manifest_path,
        loose=project is not None and project.loose,
        attached=attached,
        restart_policy=str(unit.service.restart_policy) if unit.service.restart_declared else "",
        skip=unit.service.skip or unit.service.skip_command is not None,
        skip_always=unit.service.skip,
        shadow=unit.shadow,
        metrics=_metrics(unit),
        slot=_slot(unit),
    )


def _metrics(unit: Unit) -> Metrics | None:
    samples = unit.samples
    if not samples:
        return None
    cpus = [cpu for _, cpu, _ in samples]
    return Metrics(
        latest_cpu_percent=cpus[-1],
        average_cpu_percent=round(sum(cpus) / len(cpus), 1),
        max_cpu_percent=max(cpus),
        latest_rss_bytes=samples[-1][2],
        samples=len(samples),
    )


def metric_samples(unit: Unit) -> list[dict[str, object]]:
    """``inspect``'s samples, oldest first: ``{timestamp (epoch s), cpu_percent, rss_bytes}``."""
    return [
        {"timestamp": at, "cpu_percent": cpu, "rss_bytes": rss} for at, cpu, rss in unit.samples
    ]


def _filters(unit: Unit, pid: int | None) -> dict[str, tuple[str, ...] | None]:
    """The seccomp filters this launch loaded (none when it runs without, or is not running)."""
    iso = unit.service.isolation
    if pid is None or unit.plan is None or not unit.plan.seccomp_programs:
        return {}
    deny = "~" if iso.address_families_deny else ""
    return {
        "seccomp": iso.seccomp,
        "address_families": None
        if iso.address_families is None
        else tuple(deny + f for f in iso.address_families),
    }


def _cron(unit: Unit) -> CronStatus | None:
    spec = unit.service.cron
    if spec is None:
        return None
    job = unit.job
    last = job.runs[-1] if job is not None and job.runs else None
    return CronStatus(
        expression=spec.expression,
        timezone=spec.timezone,
        scheduled=job is not None and job.scheduled,
        next_run=None if job is None or not job.scheduled else job.next_due,
        last_run=None if last is None else CronRun(**last.to_json()),
        recent_runs=() if job is None else tuple(CronRun(**r.to_json()) for r in job.runs),
    )


def cron_history(unit: Unit) -> list[dict[str, object]]:
    """``inspect``'s cron section: the recorded runs, oldest first."""
    return [] if unit.job is None else [r.to_json() for r in unit.job.runs]


def _last_probe(unit: Unit) -> LastProbe | None:
    if unit.health is None or not unit.health.history:
        return None
    last = unit.health.history[-1]
    return LastProbe(last.at, str(last.outcome), round(last.latency_s, 4), last.message)


def _generations(
    unit: Unit, now: float, project: Project | None, attached: bool
) -> list[UnitStatus]:
    """The unit's row, then, during a rolling restart, the new generation starting beside it
    (state ``starting``) or the old one serving out its grace period (state ``draining``);
    both are ``shadow`` records (``Unit.shadow``), so their rows say so."""
    rows = [unit_status(unit, now, project, attached=attached)]
    if unit.candidate is not None and unit.candidate.state.phase in ALIVE:
        rows.append(unit_status(unit.candidate, now, project, attached=attached))
    old = unit.draining
    if old is not None and old.state.pid is not None:
        rows.append(replace(unit_status(old, now, project, attached=attached), state=DRAINING))
    return rows


def project_of(sup: Supervisor, unit: Unit) -> Project | None:
    runtime = sup.projects.get(unit.project_id)
    return None if runtime is None else runtime.project


def snapshot(
    sup: Supervisor, units: list[Unit], now: float, attached: frozenset[str] = frozenset()
) -> StatusReply:
    """The reply for ``units``; ``attached``: the project ids a foreground start streams."""
    statuses = tuple(
        row
        for u in units
        for row in _generations(u, now, project_of(sup, u), u.project_id in attached)
    )
    health = {unit_health(u) for u in units}
    overall = (
        "failing" if "failing" in health else "degraded" if "degraded" in health else "healthy"
    )
    return StatusReply(
        captured_at=now,
        supervisor_pid=os.getpid(),
        mode=str(sup.paths.mode),
        overall_health=overall,
        units=statuses,
    )


def health_report(unit: Unit) -> dict[str, object]:
    """``inspect``'s health section: the probe history (last 10), notify status, watchdog."""
    health = unit.health
    history = [] if health is None else health.history
    last_ping = None if health is None else health.last_ping
    return {
        "health": readiness_health(unit),
        "notify_status": None if health is None else health.status_text,
        # Datagrams refused on this launch's socket (foreign sender, too big, fds, ...).
        "notify_dropped": None
        if health is None or health.notify is None
        else health.notify.dropped,
        "watchdog_s": None if unit.service.watchdog_ms is None else unit.service.watchdog_ms / 1000,
        "since_watchdog_ping_s": None
        if last_ping is None
        else round(time.monotonic() - last_ping, 3),
        "probes": [
            {
                "at": r.at,
                "result": str(r.outcome),
                "latency_s": round(r.latency_s, 4),
                "message": r.message,
            }
            for r in history
        ],
    }


def _slot(unit: Unit) -> str | None:
    bg = unit.service.blue_green
    return None if bg is None or unit.slot is None else bg.slots[unit.slot]
