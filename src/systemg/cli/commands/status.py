"""``sysg status``: every supervised service as a table, or ``--format json``.

The JSON is the upstream's ``status.v1`` document made from the supervisor's reply by
``views/status_doc.py`` (indent 2; docs/commands.md). Exit codes, the same for both formats:
0 healthy, 1 warn, 2 failing (the document's ``overall_health``), and 2 with ``SG0206`` when
no supervisor is running. In JSON a selection that matches nothing is ``"units": []`` and
exit 0, never an error: a script reads "nothing" from the document it always gets. Kept light
on purpose: no YAML, no psutil, no daemon import (``sysg status`` must answer fast).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from typing import Any

from systemg.cli import boot, client
from systemg.cli.console import emit, use_color
from systemg.cli.mode import resolve
from systemg.cli.selectors import CONFIG_HELP, explicit_config, selection
from systemg.errors import Code, SysgError
from systemg.protocol.messages import StatusReply, StatusRequest
from systemg.views.status_doc import empty_doc


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
    parser.add_argument(
        "--live",
        action="store_true",
        help="accepted for upstream scripts: every answer is read from /proc when asked",
    )
    parser.add_argument(
        "--no-color", dest="plain", action="store_true", help="no colour (as --plain)"
    )


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
        if exc.code is Code.NOT_FOUND:
            # An empty selection is an answer, not an error (the upstream's too).
            if args.format == "json":
                sys.stdout.write(json.dumps(empty_doc(time.time()), indent=2) + "\n")
            else:
                from systemg.views.render_status import NO_MATCH

                sys.stdout.write(NO_MATCH + "\n")
            return 0
        raise
    return show(
        data,
        args.format,
        color=use_color(args, sys.stdout),
        filtered=bool(sel.project or sel.service),
    )


def show(data: dict[str, Any], view: str, *, color: bool, filtered: bool = False) -> int:
    """Write the status reply ``data`` in ``view`` (table or json); the exit code. Also the
    fast path's (``cli/quick.py``) for a supervisor that replied without rendering."""
    from systemg.views.status_text import exit_code, status_text

    width = shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else None
    text, health = status_text(
        StatusReply.from_json(data),
        view,
        now=time.time(),
        color=color,
        width=width,
        filtered=filtered,
    )
    sys.stdout.write(text)
    sys.stdout.flush()
    return exit_code(health)
