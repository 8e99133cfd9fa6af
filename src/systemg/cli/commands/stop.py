"""``sysg stop``: stop a service, a project, a manifest's projects, everything, or the
supervisor itself (``--supervisor``).

Stopping is idempotent: an already-stopped service, or no supervisor at all, exits 0.
``--supervisor`` asks the supervisor to stop every service (reverse dependency order) and
exit, then waits for the pid in ``sysg.pid`` to die before printing ``Supervisor stopped``.
"""

from __future__ import annotations

import argparse
import os
import signal

from systemg.cli import boot, client
from systemg.cli.console import out
from systemg.cli.mode import resolve
from systemg.cli.selectors import add_selector_arguments, explicit_config, selection
from systemg.errors import Code, SysgError
from systemg.paths import Paths
from systemg.protocol.messages import ShutdownRequest, StopRequest

EXIT_DEADLINE = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_selector_arguments(parser)
    parser.add_argument(
        "--supervisor",
        action="store_true",
        help="stop every service, then the supervisor itself",
    )


def run(args: argparse.Namespace) -> int:
    target = resolve(args, "stop")
    sel = selection(args)
    if args.supervisor:
        if sel.project or sel.service:
            raise SysgError.of(
                Code.USAGE,
                "--supervisor stops everything; it takes no -s or -p",
                hint="use `sysg stop -s NAME` or `sysg stop -p ID` for part of it",
            )
        if shutdown(target.paths):
            out("Supervisor stopped")
        else:
            out("Supervisor is not running")
        return 0
    config = explicit_config(args, target.paths)
    request = StopRequest(config=config, project=sel.project, service=sel.service)
    try:
        data = boot.call_reviving(target.paths, request)
    except SysgError as exc:
        if exc.code is Code.NO_SUPERVISOR and not client.supervisor_pid(target.paths):
            out("No supervisor is running; nothing to stop")
            return 0
        raise
    message = data.get("message")
    out(str(message) if message else "Nothing to stop")
    return 0


def shutdown(paths: Paths, deadline: float = EXIT_DEADLINE) -> bool:
    """Stop the supervisor of ``paths``; False if none was running. Raises if it won't exit."""
    pid = client.supervisor_pid(paths)
    try:
        client.call(paths, ShutdownRequest())
    except SysgError as exc:
        if exc.code is not Code.NO_SUPERVISOR:
            raise
        if pid is None:
            return False
        # No socket but a live pid: it is booting or exiting. SIGTERM means "stop every
        # service, then exit" to the supervisor, so that is the same request by signal.
        if client.is_supervisor(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    if pid is not None and pid != os.getpid() and not client.wait_gone(pid, deadline):
        raise SysgError.of(
            Code.PURGE_SUPERVISOR_STUCK,
            f"the supervisor (pid {pid}) did not exit within {deadline:.0f}s",
            hint=f"see {paths.supervisor_log}; `kill {pid}` ends it (services keep running)",
        )
    return True
