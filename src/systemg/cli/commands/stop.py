"""``sysg stop``: stop a service, a project, a manifest's projects, everything, or the
supervisor itself (``--supervisor``).

Stopping is idempotent: an already-stopped service, or no supervisor at all, exits 0.
``--supervisor`` asks the supervisor to stop every service (reverse dependency order) and
exit, then waits for the pid in ``sysg.pid`` to die before printing ``Supervisor stopped``.
A supervisor that does not answer (frozen, wedged) is ended anyway, and the services it
left are stopped by the CLI: ``cli/shutdown.py``. ``--timeout`` bounds the wait for the
supervisor's reply (``cli/deadlines.py``).
"""

from __future__ import annotations

import _socket
import argparse
from typing import Any

from systemg.cli import boot, client, progress
from systemg.cli.commands.start import on_progress
from systemg.cli.console import out
from systemg.cli.deadlines import add_timeout_argument, mutating
from systemg.cli.mode import resolve
from systemg.cli.selectors import add_selector_arguments, explicit_config, selection
from systemg.errors import Code, SysgError
from systemg.paths import Paths
from systemg.protocol.messages import StopRequest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_selector_arguments(parser)
    parser.add_argument(
        "--supervisor",
        action="store_true",
        help="stop every service, then the supervisor itself (even one that does not answer)",
    )
    add_timeout_argument(parser)


def run(args: argparse.Namespace) -> int:
    target = resolve(args, "stop")
    sel = selection(args)
    wait = mutating(args.timeout)
    if args.supervisor:
        if sel.project or sel.service:
            raise SysgError.of(
                Code.USAGE,
                "--supervisor stops everything; it takes no -s or -p",
                hint="use `sysg stop -s NAME` or `sysg stop -p ID` for part of it",
            )
        from systemg.cli.shutdown import shutdown

        if shutdown(target.paths, wait=wait):
            out("Supervisor stopped")
        else:
            out("Supervisor is not running")
        return 0
    config = explicit_config(args, target.paths)
    line = progress.Line() if progress.wanted(args) else None
    request = StopRequest(
        config=config, project=sel.project, service=sel.service, progress=line is not None
    )
    try:
        data = boot.call_reviving(target.paths, request, wait, on_progress(line))
    except SysgError as exc:
        return _nothing_running(exc, target.paths)
    finally:
        if line is not None:
            line.clear()
    return _stopped(data)


def _nothing_running(exc: SysgError, paths: Paths) -> int:
    if exc.code is Code.NO_SUPERVISOR and not client.supervisor_pid(paths):
        out("No supervisor is running; nothing to stop")
        return 0
    raise exc


def _stopped(data: dict[str, Any]) -> int:
    message = data.get("message")
    out(str(message) if message else "Nothing to stop")
    return 0


def resume(
    system: bool,
    sock: _socket.socket,
    buffered: bytes,
    deadline: float,
    *,
    broken: bool,
    plain: bool = False,
) -> int:
    """The fast path's hand-over (``cli/quick.py``): a plain ``sysg stop`` was sent on
    ``sock`` and something other than its plain reply came (``buffered``: what was read).
    The rest is the full path's: its deadline and frozen checks, errors and messages; a
    supervisor that went away meanwhile is replaced and asked again, as ``call_reviving``
    does for the full path (its services are re-adopted, then stopped)."""
    from systemg.cli.main import report
    from systemg.paths import Mode

    paths = Paths.for_mode(Mode.SYSTEM if system else Mode.USER)
    data: dict[str, Any] = {}
    try:
        replies = client.receive(
            sock, paths, "stop", mutating(None), deadline, broken=broken, buffered=buffered
        )
        for item in replies:
            if not isinstance(item, client.Event):
                data = item
    except SysgError as exc:
        if exc.code is not Code.NO_SUPERVISOR or not boot.recorded_live_services(paths):
            try:
                return _nothing_running(exc, paths)
            except SysgError as error:
                return report(error, plain=plain)
        data = boot.call_reviving(paths, StopRequest(), mutating(None))
    finally:
        sock.close()
    return _stopped(data)
