"""``sysg version``: this CLI's version and, if one answers, the supervisor's.

Text, as upstream: ``sysg X (this binary)``, then ``supervisor Y (pid N)`` and ``  executing
PATH`` (the ``sysg`` it was started from), or ``supervisor not running``; a supervisor on
another version adds a ``  drift:`` line. ``--format json`` (or ``--format`` alone)::

    {"cli", "supervisor", "supervisor_pid", "supervisor_binary",   the upstream's fields
     "cli_protocol", "mode", "protocol"}                           ours

with nulls when no supervisor runs. Never starts a supervisor; exit 0 either way (a supervisor
that is alive but not answering is ``SG0205``, as for every read-only request).
"""

from __future__ import annotations

import argparse
import json
import os
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
    version = sup.get("version") if sup else None
    pid = sup.get("pid") if sup else None
    binary = (sup.get("binary") or _running_binary(pid)) if sup else None
    if args.format == "json":
        doc = {
            "cli": __version__,
            "supervisor": version,
            "supervisor_pid": pid,
            "supervisor_binary": binary,
            "cli_protocol": PROTOCOL_VERSION,
            "mode": sup.get("mode") if sup else target.mode.value,
            "protocol": sup.get("protocol") if sup else None,
        }
        out(json.dumps(doc, indent=2))
        return 0
    out(f"sysg {__version__} (this binary)")
    if sup is None:
        out("supervisor not running")
        return 0
    out(f"supervisor {version} (pid {pid})")
    if binary:
        out(f"  executing {binary}")
    if version != __version__:
        out(
            f"  drift: the supervisor is still serving {version}; it runs {__version__} once "
            "it is started again (`sysg stop --supervisor` stops it and its services)"
        )
    return 0


def _running_binary(pid: object) -> str | None:
    """What the kernel says ``pid`` executes, for a supervisor too old to say it itself."""
    if not isinstance(pid, int):
        return None
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
