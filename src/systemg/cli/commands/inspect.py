"""``sysg inspect -s SERVICE``: one service in depth — what the manifest asked for and what
the kernel shows for its process (docs/commands.md, `sysg inspect`).

Text or ``--format json``: the upstream's ``{"unit": <status.v1 unit>, "samples": [...]}``
(``views/status_doc.py``), then our ``requested``, ``observed``, ``mismatch``, ``not_applied``,
``readiness`` and ``cron_runs``. Exit as upstream, the unit's health: 0 healthy or idle, 1
warn, 2 failing — and at least 1 when ``mismatch`` is not empty (the kernel shows other
settings than were requested).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from systemg.cli import boot
from systemg.cli.mode import resolve
from systemg.cli.selectors import CONFIG_HELP, explicit_config, selection
from systemg.protocol.messages import InspectRequest, UnitStatus
from systemg.views.status_doc import HEALTH_EXIT, inspect_doc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-s", "--service", metavar="SERVICE", required=True, help="NAME or PROJECT/NAME"
    )
    parser.add_argument("-p", "--project", metavar="PROJECT", help="one project, by id")
    parser.add_argument("-c", "--config", metavar="FILE", help=CONFIG_HELP)
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", nargs="?", const="json"
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
    target = resolve(args, "inspect")
    explicit_config(args, target.paths)  # SG0203 if it is not a file; it does not narrow
    data = boot.call_reviving(
        target.paths, InspectRequest(project=sel.project, service=sel.service)
    )
    doc = inspect_doc(data)
    if args.format == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(render_inspect(data, now=time.time()))
    sys.stdout.flush()
    unit = doc["unit"] or {}
    code = HEALTH_EXIT.get(str(unit.get("health")), 0)  # idle: 0
    return max(code, 1) if data.get("mismatch") else code


def _value(value: Any) -> str:
    """One-line form of a scalar, list, or small mapping."""
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        if set(value) >= {"hex", "names"}:  # a capability set
            names = value.get("names") or []
            if not names:
                return str(value["hex"])
            if len(names) > 6:
                return f"{value['hex']} ({len(names)} capabilities)"
            return f"{value['hex']} ({_value(names)})"
        return ", ".join(f"{k}={_pair(v)}" for k, v in value.items()) or "(none)"
    if value is None:
        return "-"
    return str(value)


def _pair(value: Any) -> str:
    """Inside ``k=v`` a pair of limits reads as ``soft/hard``, other lists as ``[a b]``."""
    if isinstance(value, list | tuple) and value:
        if all(isinstance(v, int) or str(v).isdigit() or v == "unlimited" for v in value):
            return "/".join(_value(v) for v in value)
        return "[" + " ".join(_value(v) for v in value) + "]"
    return _value(value)


def _lines(mapping: dict[str, Any], indent: str) -> list[str]:
    """``key  value`` rows; a mapping of mappings becomes an indented block."""
    width = max(len(str(k)) for k in mapping)
    rows: list[str] = []
    for key, value in mapping.items():
        nested = (
            isinstance(value, dict) and value and any(isinstance(v, dict) for v in value.values())
        )
        if nested:
            rows.append(f"{indent}{key}:")
            rows.extend(_lines(value, indent + "  "))
        else:
            rows.append(f"{indent}{str(key).ljust(width)}  {_value(value)}")
    return rows


def _section(title: str, mapping: Any) -> list[str]:
    if not isinstance(mapping, dict) or not mapping:
        return [f"{title}: (nothing)"]
    return [f"{title}:", *_lines(mapping, "  ")]


def render_inspect(data: dict[str, Any], *, now: float) -> str:
    """Pure text view of an inspect reply."""
    from systemg.views.render_status import last_exit_text, uptime_text

    lines: list[str] = []
    raw = data.get("unit")
    if isinstance(raw, dict):
        unit = UnitStatus.from_json(raw)
        lines.append(f"{unit.project}/{unit.service}")
        lines.append(f"  state      {unit.state}" + (f" ({unit.message})" if unit.message else ""))
        lines.append(f"  pid        {unit.pid if unit.pid is not None else '-'}")
        lines.append(f"  user       {unit.user or '-'}")
        lines.append(f"  uptime     {uptime_text(unit, now)}")
        lines.append(f"  restarts   {unit.restarts}")
        lines.append(f"  last exit  {last_exit_text(unit.last_exit)}")
        lines.append(f"  command    {unit.command or '-'}")
        lines.append(f"  enforced   {unit.enforcement}")
    health = data.get("health")
    if isinstance(health, dict) and health.get("health") not in (None, "unknown"):
        lines.append(f"health: {health.get('health')}")
        if health.get("notify_status"):
            lines.append(f"  STATUS={health['notify_status']}")
        if health.get("notify_dropped"):
            lines.append(f"  notify datagrams refused: {health['notify_dropped']}")
        if health.get("since_watchdog_ping_s") is not None:
            lines.append(
                f"  last WATCHDOG=1 {health['since_watchdog_ping_s']}s ago "
                f"(watchdog {health.get('watchdog_s')}s)"
            )
        for probe in health.get("probes") or []:
            if isinstance(probe, dict):
                lines.append(
                    f"  probe {probe.get('result')} in {probe.get('latency_s')}s: "
                    f"{probe.get('message')}"
                )
    runs = data.get("cron_runs") or []
    if runs:
        lines.append("cron runs (oldest first):")
        for run in runs:
            if isinstance(run, dict):
                at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(run["start"])))
                took = "" if run.get("duration_s") is None else f" in {run['duration_s']}s"
                how = " (sysg run)" if run.get("manual") else ""
                pid = f" pid {run['pid']}" if run.get("pid") else ""
                lines.append(
                    f"  {at}{pid} {run.get('result')}{took}{how}: {run.get('message') or '-'}"
                )
    lines.extend(_section("requested", data.get("requested")))
    lines.extend(_section("observed", data.get("observed")))
    for title, key in (("mismatch", "mismatch"), ("not applied", "not_applied")):
        items = data.get(key) or []
        if items:
            lines.append(f"{title}:")
            lines.extend(f"  - {item}" for item in items)
    return "\n".join(lines) + "\n"
