"""``sysg restart``: re-read the registered manifest (or ``-c FILE``) and reconcile.

The supervisor validates first (an invalid manifest changes nothing: ``SG0301``), then
starts added services, stops removed ones, restarts changed ones with their dependents,
and leaves unchanged ones running with their pid. With ``-s`` only that service restarts.
With no supervisor running there is nothing to restart: the manifest is started instead, as
``systemctl restart`` starts a stopped unit (``--daemonize`` is accepted for the upstream's
scripts; a restart never attaches a terminal). A supervisor of another systemg version is
recycled by a restart without ``-s`` (``cli/recycle.py``).
Exit 0 when everything came back up; 1 with each failure named on stderr. ``--timeout``
bounds the wait for the answer (default 5 min, ``cli/deadlines.py``).
"""

from __future__ import annotations

import argparse

from systemg.cli import boot, client
from systemg.cli.commands.start import resolve_config, send_and_report
from systemg.cli.deadlines import add_timeout_argument
from systemg.cli.mode import Target, resolve
from systemg.cli.selectors import Selection, add_selector_arguments, explicit_config, selection
from systemg.protocol.messages import RestartRequest, StartRequest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_selector_arguments(parser)
    parser.add_argument(
        "--daemonize",
        action="store_true",
        help="accepted for compatibility: a restart always returns once the services are up",
    )
    add_timeout_argument(parser)


def run(args: argparse.Namespace) -> int:
    target = resolve(args, "restart")
    sel = selection(args)
    config = explicit_config(args, target.paths)
    if not client.accepts(target.paths) and not boot.recorded_live_services(target.paths):
        return _start_instead(args, target, sel)
    if not sel.service:
        from systemg.cli import recycle

        sup = recycle.drifted(target.paths)
        if sup is not None:
            recycle.replace_supervisor(target, config, sup)
    return send_and_report(
        args,
        target,
        lambda progress: RestartRequest(
            config=config,
            project=sel.project,
            service=sel.service,
            drop_privileges=target.drop_privileges,
            environ=client.request_environ(),
            progress=progress,
        ),
        verb="restarted",
        call=boot.call_reviving,
    )


def _start_instead(args: argparse.Namespace, target: Target, sel: Selection) -> int:
    """No supervisor and nothing of a previous one alive: boot one and start the manifest."""
    config = resolve_config(args, target, sel)
    boot.ensure_supervisor(target.paths, drop_privileges=target.drop_privileges)
    return send_and_report(
        args,
        target,
        lambda progress: StartRequest(
            config=config,
            project=sel.project,
            service=sel.service,
            drop_privileges=target.drop_privileges,
            environ=client.request_environ(),
            progress=progress,
        ),
        verb="started",
    )
