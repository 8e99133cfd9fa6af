"""What replies say about units: why one did not come up, and what its manifest asked for.

``unit_problems`` turns a unit's state into diagnostics a person can act on (the reason,
the last lines it printed, the command to see more); ``requested`` is the manifest's side
of ``sysg inspect``, in the same vocabulary as ``spawn.observe`` so the two can be compared.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from systemg.daemon.logs import log_lines_since, log_tail, port_collision
from systemg.daemon.phases import FAILING, Phase
from systemg.daemon.units import Unit
from systemg.errors import Code, Diagnostic
from systemg.paths import Paths


def unit_problems(unit: Unit, paths: Paths) -> list[Diagnostic]:
    st = unit.state
    out: list[Diagnostic] = []
    for line in unit.not_applied:
        out.append(
            Diagnostic(
                Code.NOT_ENFORCED,
                f"service '{unit.service.name}': not applied: {line}",
                severity="warning",
            )
        )
    bad_exit = st.phase is Phase.EXITED and st.last_exit is not None and not st.last_exit.clean
    if st.phase is Phase.BLOCKED and unit.error is not None:
        out.append(unit.error)
    elif st.phase in FAILING or st.phase is Phase.BACKOFF or bad_exit:
        if unit.error is not None:
            out.append(unit.error)
        else:
            log = paths.service_log(unit.project_id, unit.service.name)
            current = log_lines_since(log, st.started_at)
            # This run's last lines when it printed any: an older run's output misleads.
            tail = "\n".join("    " + ln for ln in current[-8:]) if current else log_tail(log)
            if port_collision(current):
                code = Code.PORT_IN_USE
                why = f"{st.message}: its address is already in use by another process"
                fix = f"free the port, or give '{unit.service.name}' another one; then: "
                fix += f"sysg start -s {unit.key}"
            else:
                code, why, fix = Code.EXITED_AT_START, st.message, ""
            out.append(
                Diagnostic(
                    code,
                    f"service '{unit.service.name}' did not come up: {why}",
                    path=unit.key,
                    hint=(f"last output:\n{tail}\n" if tail else "")
                    + (f"{fix}\n" if fix else "")
                    + f"see: sysg logs -s {unit.key}",
                )
            )
    return out


def requested(unit: Unit) -> dict[str, Any]:
    """What the manifest asked for, in the same vocabulary as ``observe``."""
    service = unit.service
    limits = service.limits
    plan = unit.plan
    return {
        "user": service.user,
        "group": service.group,
        "supplementary_groups": list(service.supplementary_groups),
        "uid": plan.uid if plan else None,
        "gid": plan.gid if plan else None,
        "groups": list(plan.groups) if plan and plan.groups is not None else None,
        "capabilities": None if service.capabilities is None else list(service.capabilities),
        "limits": {
            "nofile": limits.nofile,
            "nproc": limits.nproc,
            "memlock": limits.memlock,
            "nice": limits.nice,
            "cpu_affinity": None if limits.cpu_affinity is None else list(limits.cpu_affinity),
        },
        "cgroup": None if limits.cgroup is None else asdict(limits.cgroup),
        "isolation": asdict(service.isolation),
        "listen": [spec.raw for spec in service.listen],
    }
