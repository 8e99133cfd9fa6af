"""``sysg doctor [--format json]``: do the state files, the pid file and the process table agree?

Reads what a supervisor recorded (every project's ``state.json`` plus its journal, as the
next supervisor would) and checks it against ``/proc``, with or without a supervisor
running. The invariants are the upstream's ("the status lied" class):

- ``running-without-pid`` (error): a service recorded up (starting, running, stopping) has no pid;
- ``running-pid-dead`` (error): its pid is gone, or the pid is a zombie (``running-pid-zombie``);
- ``pid-reuse`` (error): the pid is alive but its start time is not the recorded one (another
  process has that number now: signalling it would hit the wrong process);
- ``unsupervised`` (warning): a recorded process is alive and no supervisor runs (the next
  ``sysg`` command re-adopts it);
- ``pidfile-stale`` (warning): ``sysg.pid`` names a process that is not this root's supervisor.

Exit 0 when there is no error finding (warnings are printed, and with ``--strict`` they count
too), 1 otherwise. Never starts a supervisor and never changes anything.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from systemg import proc
from systemg.cli import liveness
from systemg.cli.console import out
from systemg.cli.mode import resolve

UP = frozenset({"starting", "running", "stopping"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", nargs="?", const="json"
    )
    parser.add_argument("--strict", action="store_true", help="warnings count as failures")


def findings(paths: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(
        severity: str, rule: str, project: str | None, service: str | None, detail: str
    ) -> None:
        found.append(
            {
                "severity": severity,
                "rule": rule,
                "project": project,
                "service": service,
                "detail": detail,
            }
        )

    supervisor = liveness.supervisor_pid(paths)
    recorded = liveness.recorded_pid(paths)
    if recorded is not None and supervisor is None:
        add("warn", "pidfile-stale", None, None, f"{paths.pid_file} names {recorded}, not alive")
    for project, name, record in liveness.recorded_services(paths):
        phase = str(record.get("phase", "stopped"))
        pid, start = record.get("pid"), record.get("start_time")
        if not isinstance(pid, int) or pid <= 0:
            if phase in UP:
                add("error", "running-without-pid", project, name, f"recorded {phase}, no pid")
            continue
        actual = proc.start_time(pid)
        if actual is None:
            if phase in UP:
                add("error", "running-pid-dead", project, name, f"recorded {phase}, pid {pid} gone")
            continue
        if isinstance(start, int) and actual != start:
            add(
                "error",
                "pid-reuse",
                project,
                name,
                f"pid {pid} is alive but started at {actual}, not the recorded {start}: "
                "another process has that pid",
            )
            continue
        if liveness.state(pid) == "Z":
            add("error", "running-pid-zombie", project, name, f"pid {pid} is a zombie")
            continue
        if supervisor is None:
            add(
                "warn",
                "unsupervised",
                project,
                name,
                f"pid {pid} runs and no supervisor does (the next sysg command re-adopts it)",
            )
    found.sort(key=lambda f: f["severity"] != "error")
    return found


def run(args: argparse.Namespace) -> int:
    target = resolve(args, "doctor")
    paths = target.paths
    found = findings(paths)
    failing = [f for f in found if f["severity"] == "error" or args.strict]
    if args.format == "json":
        out(json.dumps({"mode": str(paths.mode), "ok": not failing, "findings": found}, indent=2))
        return 1 if failing else 0
    if not found:
        out(f"ok: state, pid file and processes agree ({paths.state_dir})")
    for f in found:
        where = "/".join(x for x in (f["project"], f["service"]) if x)
        out(f"{f['severity']}: {f['rule']}: {where + ': ' if where else ''}{f['detail']}")
    return 1 if failing else 0
