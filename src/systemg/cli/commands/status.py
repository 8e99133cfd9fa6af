"""``sysg status``: every supervised service as a table, or ``--format json``.

The JSON is the supervisor's ``StatusReply`` printed as it came (indent 2): the stable
``status.v1`` schema documented in ``docs/commands.md``. Exit codes: 0 healthy, 1 degraded,
2 failing, and 2 with ``SG0206`` when no supervisor is running. Kept light on purpose: no
YAML, no psutil, no daemon import (``sysg status`` must answer fast).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time

from systemg.cli import boot, client
from systemg.cli.console import emit, use_color
from systemg.cli.mode import resolve
from systemg.cli.selectors import CONFIG_HELP, explicit_config, selection
from systemg.errors import Code, SysgError
from systemg.protocol.messages import StatusReply, StatusRequest

HEALTH_EXIT = {"healthy": 0, "degraded": 1, "failing": 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", help=CONFIG_HELP)
    parser.add_argument("-s", "--service", metavar="SERVICE", help="NAME or PROJECT/NAME")
    parser.add_argument("-p", "--project", metavar="PROJECT", help="one project, by id")
    parser.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        nargs="?",
        const="json",
        help="output format (`--format` alone means json)",
    )


def health_exit(health: str) -> int:
    return HEALTH_EXIT.get(health, 1)


def run(args: argparse.Namespace) -> int:
    sel = selection(args)
    target = resolve(args, "status")
    explicit_config(args, target.paths)  # SG0203 if it is not a file; it does not narrow
    try:
        data = boot.call_reviving(
            target.paths, StatusRequest(project=sel.project, service=sel.service)
        )
    except SysgError as exc:
        if exc.code is Code.NO_SUPERVISOR:
            emit(client.no_supervisor(target.paths).diagnostics, args)
            return 2
        raise
    reply = StatusReply.from_json(data)
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        from systemg.cli.render_status import render_status

        width = shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else None
        sys.stdout.write(
            render_status(
                reply,
                now=time.time(),
                color=use_color(args, sys.stdout),
                width=width,
                filtered=bool(sel.project or sel.service),
            )
        )
    sys.stdout.flush()
    return health_exit(reply.overall_health)
