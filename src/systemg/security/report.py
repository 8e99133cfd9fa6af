"""The ``security.v1`` document: one entry per service with every check and the overall score.

Pure: judged items in, JSON-able dict out. Field names are stable (``docs/commands.md``); the
per-check fields follow ``systemd-analyze security --json``'s (``set``, ``name``,
``json_field``, ``description``, ``exposure``) plus ``weight``, ``badness``, ``range`` as its
debug output shows them and systemg's ``basis`` and ``systemd``.
"""

from __future__ import annotations

from typing import Any

from systemg.security.exposure import Item, Score, above

SCHEMA = "security.v1"


def _tenths(value: int | None) -> str | None:
    return None if value is None else f"{value // 10}.{value % 10}"


def check_json(item: Item, score: Score) -> dict[str, Any]:
    c = item.check
    return {
        "set": item.good,
        "name": c.name,
        "json_field": c.json_field,
        "description": item.description,
        "weight": c.weight,
        "badness": item.badness,
        "range": c.range,
        "exposure": _tenths(score.item_tenths(item)),
        "basis": c.basis,
        "systemd": c.systemd,
    }


def service_json(
    unit: dict[str, Any], pid: int, items: tuple[Item, ...], score: Score, threshold: float | None
) -> dict[str, Any]:
    return {
        "project": unit.get("project"),
        "service": unit.get("service"),
        "pid": pid,
        "exposure": score.value,
        "exposure_text": _tenths(score.tenths),
        "label": score.label,
        "above_threshold": threshold is not None and above(score, threshold),
        "checks": [check_json(item, score) for item in items],
    }


def skipped_json(unit: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "project": unit.get("project"),
        "service": unit.get("service"),
        "state": unit.get("state"),
        "reason": reason,
    }


def document(
    services: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    *,
    supervisor_pid: int,
    threshold: float | None,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA,
        "supervisor_pid": supervisor_pid,
        "threshold": threshold,
        "services": services,
        "skipped": skipped,
    }
