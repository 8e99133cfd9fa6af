"""``sysg run -s JOB [-c FILE]``: run a cron job now, once, and wait for it.

The run is the supervisor's (the job's user, limits, namespaces, logs and ``onerr`` hook
apply, and it is recorded in the job's history like a scheduled run). The exit code is the
job's: its exit status, 128 + the signal that killed it, 1 when it could not start, and 75
(EX_TEMPFAIL) when a run was already in progress (recorded as an ``overlap``). With
``-c FILE`` the manifest is registered first (booting a supervisor if none runs), without
starting anything. No deadline by default (a job may run for hours); ``--timeout`` sets one.
"""

from __future__ import annotations

import argparse
import sys

from systemg.cli import boot, client
from systemg.cli.deadlines import add_timeout_argument, mutating
from systemg.cli.mode import resolve
from systemg.cli.selectors import add_selector_arguments, explicit_config, selection
from systemg.protocol.messages import RunRequest

EX_TEMPFAIL = 75


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_selector_arguments(parser, service_required=True)
    add_timeout_argument(parser)


def run(args: argparse.Namespace) -> int:
    target = resolve(args, "run")
    sel = selection(args)
    config = explicit_config(args, target.paths)
    if config:
        boot.ensure_supervisor(target.paths, drop_privileges=target.drop_privileges)
    request = RunRequest(
        config=config,
        project=sel.project,
        service=sel.service,
        drop_privileges=target.drop_privileges,
        environ=client.request_environ(),
    )
    wait = mutating(args.timeout if args.timeout is not None else 0)
    data = boot.call_reviving(target.paths, request, wait)
    record = data.get("run") or {}
    unit = data.get("unit") or {}
    name = f"{unit.get('project')}/{unit.get('service')}"
    result = record.get("result")
    message = record.get("message") or ""
    if result == "ok":
        sys.stdout.write(f"Cron job '{name}' completed successfully\n")
        return 0
    sys.stderr.write(f"Cron job '{name}' {result}: {message}\n")
    if result == "overlap":
        return EX_TEMPFAIL
    if record.get("signal") is not None:
        return 128 + int(record["signal"])
    code = record.get("exit_code")
    return int(code) if isinstance(code, int) and code > 0 else 1
