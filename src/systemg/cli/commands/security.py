"""``sysg security``: the exposure report of every running service (docs/security.md §11).

Asks the supervisor for its ``status`` (which services run, their pids), then reads each
service's ``/proc/PID/*`` itself (``security.observe``): the supervisor does no extra work. In
system mode the CLI runs as root; in user mode the services are the caller's own. Scoring is
systemd 252's (``security.exposure``). ``-c FILE`` limits the report to that manifest's projects.

Exit 0; 1 with ``--threshold N`` when some service's exposure is above N (0.0-10.0); 2 with
``SG0206`` when no supervisor runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from systemg.cli import boot
from systemg.cli.console import use_color
from systemg.cli.mode import resolve
from systemg.cli.selectors import add_selector_arguments, explicit_config, selection
from systemg.errors import Code, SysgError
from systemg.protocol.messages import StatusRequest


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 10.0:
        raise argparse.ArgumentTypeError(f"expected an exposure 0.0..10.0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_selector_arguments(parser)
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        nargs="?",
        const="json",
        help="output format (`--format` alone means json)",
    )
    parser.add_argument(
        "--threshold",
        metavar="N",
        type=_threshold,
        help="exit 1 when a service's exposure is above N (0.0..10.0)",
    )


def _projects(args: argparse.Namespace, config: str | None) -> set[str] | None:
    if config is None:
        return None
    from systemg.manifest.load import load_manifest

    manifest = load_manifest(config, environ=os.environ).manifest
    return {p.id for p in manifest.projects}


def assess(units: list[dict[str, Any]], supervisor: int, threshold: float | None) -> dict[str, Any]:
    """Observe, judge and score each unit into a ``security.v1`` document."""
    from systemg.security.exposure import judge, score
    from systemg.security.observe import observe
    from systemg.security.report import document, service_json, skipped_json

    services, skipped = [], []
    for unit in units:
        if not unit.get("pid"):
            skipped.append(skipped_json(unit, f"not running: {unit.get('state')}"))
            continue
        try:
            pid, facts = observe(unit, supervisor or None)
        except (ProcessLookupError, PermissionError) as exc:
            skipped.append(skipped_json(unit, f"cannot read /proc/{unit['pid']}: {exc!r}"))
            continue
        items = judge(facts)
        services.append(service_json(unit, pid, items, score(items), threshold))
    return document(services, skipped, supervisor_pid=supervisor, threshold=threshold)


def run(args: argparse.Namespace) -> int:
    sel = selection(args)
    target = resolve(args, "security")
    projects = _projects(args, explicit_config(args, target.paths))
    data = boot.call_reviving(target.paths, StatusRequest(project=sel.project, service=sel.service))
    units = [
        u
        for u in data.get("units") or []
        if isinstance(u, dict) and (projects is None or u.get("project") in projects)
    ]
    if sel.service and not units:
        raise SysgError.of(Code.NOT_FOUND, f"no service {sel.service!r}", hint="see `sysg status`")
    doc = assess(units, int(data.get("supervisor_pid") or 0), args.threshold)
    if args.format == "json":
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        from systemg.cli.render_security import render_security

        sys.stdout.write(render_security(doc, color=use_color(args, sys.stdout)))
    sys.stdout.flush()
    return 1 if any(s["above_threshold"] for s in doc["services"]) else 0
