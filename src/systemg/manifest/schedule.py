"""``cron`` and ``persistent`` (docs/manifest.md, "Scheduled jobs"): parsing, and when a job is
next due.

The expression grammar and the calendar arithmetic are cronsim's (a maintained parser; its
handling of daylight saving time is the one Debian's cron has: a time that does not exist
on the spring-forward day runs at the first moment after the gap, and a time that exists
twice on the fall-back day runs once, at its first occurrence). Pure: ``next_due`` takes
the moment to count from.

Invariants of the result: a ``CronSpec`` has a 6-field expression (seconds first) that
cronsim accepts, and a time zone that resolves; ``persistent`` is only set on a job; a job
ignores ``restart_policy`` with a warning (it runs when its schedule says, never because it
exited).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from systemg.errors import Code
from systemg.manifest.check import Checker, child
from systemg.manifest.model import CronSpec
from systemg.manifest.readiness import Fields
from systemg.manifest.tree import Node

SCHEDULE_KEYS = ("cron", "persistent")
CRON_KEYS = ("expression", "timezone")
_EXAMPLE = 'e.g. cron: {expression: "0 30 2 * * *", timezone: Europe/Berlin}'


class ScheduleError(ValueError):
    pass


def zone(name: str) -> tzinfo:
    """The ``tzinfo`` of a ``timezone`` value (``ScheduleError`` if unknown). ``local`` is
    ``/etc/localtime`` (with its DST rules); without one, the current UTC offset."""
    if name == "UTC":
        return UTC
    # Performance: zoneinfo and cronsim (~5 ms with calendar and locale) are imported by a
    # manifest that schedules something, not by every supervisor boot.
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo("localtime" if name == "local" else name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        if name == "local":
            offset = datetime.now().astimezone().tzinfo
            return offset if offset is not None else UTC
        raise ScheduleError(f"'{name}' is not a time zone this machine knows") from None


def normalize(expression: str) -> str:
    """Six fields, seconds first: ``0 `` before a 5-field one; a 7th (year) field ``*`` is
    tolerated and dropped, as upstream."""
    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    elif len(fields) == 7 and fields[6] == "*":
        fields = fields[:6]
    if len(fields) != 6:
        raise ScheduleError(
            f"'{expression}' has {len(expression.split())} fields; a cron expression has 6 "
            "(sec min hour day month weekday) or 5 (min hour day month weekday)"
        )
    return " ".join(fields)


def next_due(spec_expression: str, tz_name: str, after: datetime) -> datetime:
    """The first moment strictly after ``after`` (aware) at which the job is due, in its zone.

    A job at fixed times (its minute and hour fields are not ``*``-based) follows the wall
    clock, as Debian's cron does: a time skipped by a spring-forward change runs at the
    first moment after the gap, and a time repeated by a fall-back change runs once, at
    its first occurrence. Counting from ``after`` (not from the last result), a repeat is
    never due again: its first occurrence is not after ``after``. Other jobs (every N
    minutes) follow real time: they run through both passes of a repeated hour.
    """
    from cronsim import CronSim, CronSimError

    tz = zone(tz_name)
    start = after.astimezone(tz)
    fields = spec_expression.split()
    wall = tz is not UTC and not fields[1].startswith("*") and not fields[2].startswith("*")
    try:
        it = CronSim(spec_expression, start.replace(tzinfo=None) if wall else start)
        for _ in range(_MAX_STEPS):
            found = next(it)
            moment = _on_the_wall(found, tz) if wall else found
            if moment > after:
                return moment
    except CronSimError as exc:
        raise ScheduleError(str(exc)) from None
    except StopIteration:
        pass
    raise ScheduleError(f"'{spec_expression}' is never due after {after.isoformat()}")


_MAX_STEPS = 10_000


def _on_the_wall(naive: datetime, tz: tzinfo) -> datetime:
    """``naive`` wall time in ``tz``: its first occurrence, or the first time after a gap."""
    moment = naive.replace(tzinfo=tz, fold=0)
    while moment.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != (
        moment.replace(tzinfo=None)
    ):  # does not exist (spring forward): move on a minute at a time, as cronsim does
        moment = (moment.replace(tzinfo=None) + timedelta(minutes=1)).replace(tzinfo=tz, fold=0)
    return moment


def settings(ck: Checker, f: Fields, path: str) -> dict[str, Any]:
    """The ``Service`` fields of ``cron`` and ``persistent`` in ``f``."""
    out: dict[str, Any] = {}
    if "cron" in f:
        cpath = child(path, "cron")
        node = f["cron"][1]
        m = ck.mapping(node, cpath)
        if m is not None:
            cf = ck.fields(m, cpath, CRON_KEYS)
            expression: str | None = None
            tz_name = "local"
            if "expression" not in cf:
                ck.error(
                    Code.MISSING_KEY,
                    child(cpath, "expression"),
                    "cron needs an expression",
                    m.loc,
                    _EXAMPLE,
                )
            else:
                expression = _expression(ck, cf["expression"][1], child(cpath, "expression"))
            if "timezone" in cf:
                tpath = child(cpath, "timezone")
                tnode = cf["timezone"][1]
                value = ck.string(tnode, tpath, what="a time zone")
                if value is not None:
                    try:
                        zone(value)
                        tz_name = value
                    except ScheduleError as exc:
                        ck.error(
                            Code.INVALID_VALUE,
                            tpath,
                            str(exc),
                            tnode,
                            "write UTC, local, or an IANA name such as Europe/Berlin "
                            "(see /usr/share/zoneinfo)",
                        )
            if expression is not None:
                out["cron"] = CronSpec(normalize(expression), tz_name, written=expression)
        if "restart_policy" in f:
            # Ignored, said out loud: the upstream accepts it on a job (its own examples
            # write `restart_policy: never` there) and a job never restarts off-schedule.
            ck.warn(
                Code.INVALID_VALUE,
                child(path, "restart_policy"),
                "ignored on a cron job: it runs when its schedule says, never because it exited",
                f["restart_policy"][0],
                "remove restart_policy (a failed run is recorded, onerr fires, and the next "
                "run comes at the next due time)",
            )
    if "persistent" in f:
        ppath = child(path, "persistent")
        persistent = ck.boolean(f["persistent"][1], ppath)
        if persistent and "cron" not in f:
            ck.error(
                Code.INVALID_VALUE,
                ppath,
                "persistent applies to cron jobs only",
                f["persistent"][0],
                "add a cron: schedule, or remove persistent",
            )
        elif persistent:
            out["persistent"] = True
    return out


def _expression(ck: Checker, node: Node, path: str) -> str | None:
    from cronsim import CronSim, CronSimError

    text = ck.string(node, path, what="a cron expression")
    if text is None:
        return None
    try:
        normal = normalize(text)
        CronSim(normal, datetime.now(UTC))
    except ScheduleError as exc:
        ck.error(Code.INVALID_VALUE, path, str(exc), node, _EXAMPLE)
        return None
    except CronSimError as exc:
        ck.error(
            Code.INVALID_VALUE,
            path,
            f"'{text}' is not a valid cron expression: {exc}",
            node,
            _EXAMPLE,
        )
        return None
    return text
