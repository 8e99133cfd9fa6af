"""``sysg version``: this CLI's version and, if one answers, the supervisor's.

Text: ``sysg X (this binary)`` then ``supervisor Y (pid N)`` or ``supervisor: not running``.
``--format json``: ``{"cli", "supervisor", "supervisor_pid", "mode", "protocol"}`` with
nulls when no supervisor runs. Never starts a supervisor; exit 0 either way.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from systemg import __version__
from systemg.cli import client
from systemg.cli.console import out
from systemg.cli.mode import resolve
from systemg.errors import Code, SysgError
from systemg.protocol.messages import PROTOCOL_VERSION, VersionRequest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", nargs="?", const="json"
    )


def run(args: argparse.Namespace) -> int:
    target = resolve(args, "version")
    sup: dict[str, Any] | None
    try:
        sup = client.call(target.paths, VersionRequest())
    except SysgError as exc:
        if exc.code is not Code.NO_SUPERVISOR:
            raise
        sup = None
    if args.format == "json":
        doc = {
            "cli": __version__,
            "cli_protocol": PROTOCOL_VERSION,
            "supervisor": sup.get("version") if sup else None,
            "supervisor_pid": sup.get("pid") if sup else None,
            "mode": sup.get("mode") if sup else target.mode.value,
            "protocol": sup.get("protocol") if sup else None,
        }
        out(json.dumps(doc, indent=2))
        return 0
    out(f"sysg {__version__} (this binary)")
    if sup:
        out(f"supervisor {sup.get('version')} (pid {sup.get('pid')})")
    else:
        out("supervisor: not running")
    return 0
