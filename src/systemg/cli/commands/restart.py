"""``sysg restart``: re-read the registered manifest (or ``-c FILE``) and reconcile.

The supervisor validates first (an invalid manifest changes nothing: ``SG0301``), then
starts added services, stops removed ones, restarts changed ones with their dependents,
and leaves unchanged ones running with their pid. With ``-s`` only that service restarts.
Exit 0 when everything came back up; 1 with each failure named on stderr. ``--timeout``
bounds the wait for the answer (default 5 min, ``cli/deadlines.py``).
"""

from __future__ import annotations

import argparse

from systemg.cli import boot, client, progress
from systemg.cli.commands.start import on_progress, report
from systemg.cli.deadlines import add_timeout_argument, mutating
from systemg.cli.mode import resolve
from systemg.cli.selectors import add_selector_arguments, explicit_config, selection
from systemg.protocol.messages import RestartRequest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_selector_arguments(parser)
    add_timeout_argument(parser)


def run(args: argparse.Namespace) -> int:
    target = resolve(args, "restart")
    sel = selection(args)
    config = explicit_config(args, target.paths)
    line = progress.Line() if progress.wanted(args) else None
    request = RestartRequest(
        config=config,
        project=sel.project,
        service=sel.service,
        drop_privileges=target.drop_privileges,
        environ=client.request_environ(),
        progress=line is not None,
    )
    try:
        data = boot.call_reviving(target.paths, request, mutating(args.timeout), on_progress(line))
    finally:
        if line is not None:
            line.clear()
    return report(data, args, verb="restarted")
