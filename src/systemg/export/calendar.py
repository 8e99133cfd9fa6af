"""A cron expression (6 fields, seconds first) -> systemd ``OnCalendar=`` expressions.

The fields are read by cronsim (the parser ``sysg`` schedules with), so names, ranges,
steps, ``L``, ``LW`` and ``#`` mean here exactly what they mean to the supervisor. Each
field's set of values is written back in systemd.time(7) syntax (``*``, ``A..B``, lists).

cron's day rule: when neither day-of-month nor day-of-week starts with ``*``, a day matches
if **either** matches; systemd's weekday and day components must **both** match, so that case
becomes two expressions (a timer takes several ``OnCalendar=`` lines and fires at their
union). ``L`` (last day) is systemd's ``~01``; ``5L`` (last Friday) ``Fri *-*~07/1``;
``MON#2`` ``Mon *-*-08..14``; ``LW`` (last weekday) ``Mon..Fri *-*~01`` plus ``Fri *-*~02..03``.
What cannot be written (a last-weekday rule AND a day list) raises ``CalendarError``.
The time zone is appended as systemd 252 reads it: ``UTC``, an IANA name, or nothing for
``local`` (the host's zone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cronsim import CronSim, CronSimError

_DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # any moment: only the parsed fields are used


class CalendarError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Date:
    """One date part: ``weekdays`` (None = any) and a day component (``-DD`` or ``~DD``)."""

    weekdays: frozenset[int] | None
    days: str  # "-*", "-01..05", "~01", "~07/1"


def _runs(items: Iterable[int], name: Callable[[int], str]) -> str:
    """Sorted values as a list, three or more consecutive ones as ``A..B``."""
    ordered = sorted(set(items))
    out: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(f"{name(ordered[i])}..{name(ordered[j])}")
        else:
            out.extend(name(v) for v in ordered[i : j + 1])
        i = j + 1
    return ",".join(out)


def values(items: Iterable[int], lo: int, hi: int) -> str:
    """A set of field values in systemd syntax: ``*`` for the whole range, else values and
    ``A..B`` runs, two digits each (as systemd normalises them)."""
    if set(items) == set(range(lo, hi + 1)):
        return "*"
    return _runs(items, lambda v: f"{v:02d}")


def _weekdays(days: frozenset[int]) -> str:
    return _runs(days, lambda v: _DAY_NAMES[v])


def _day_of_month_dates(days: set[int]) -> list[_Date]:
    plain = {d for d in days if d > 0}
    out: list[_Date] = []
    if plain:
        out.append(_Date(None, "-" + values(plain, 1, 31)))
    if CronSim.LAST in days:
        out.append(_Date(None, "~01"))
    if CronSim.LAST_WEEKDAY in days:
        out.append(_Date(frozenset(range(1, 6)), "~01"))
        out.append(_Date(frozenset({5}), "~02..03"))
    return out


def _day_of_week_dates(weekdays: set[int | tuple[int, int]]) -> list[_Date]:
    plain = frozenset(d % 7 for d in weekdays if isinstance(d, int))
    out: list[_Date] = [_Date(plain, "-*")] if plain else []
    for entry in sorted(e for e in weekdays if isinstance(e, tuple)):
        day, nth = entry
        if nth == CronSim.LAST:
            out.append(_Date(frozenset({day % 7}), "~07/1"))
        else:
            out.append(_Date(frozenset({day % 7}), f"-{7 * nth - 6:02d}..{7 * nth:02d}"))
    return out


def _both(dom: set[int], dow: list[_Date]) -> list[_Date]:
    """cron's AND of a day-of-month set and day-of-week rules (one of them ``*``-based)."""
    plain = {d for d in dom if d > 0}
    if plain != dom:
        raise CalendarError("a last-day rule combined with a day of the week")
    out: list[_Date] = []
    for date in dow:
        if date.days == "-*":
            out.append(_Date(date.weekdays, "-" + values(plain, 1, 31)))
        elif date.days.startswith("-"):
            first, last = (int(v) for v in date.days[1:].split(".."))
            both = plain & set(range(first, last + 1))
            if both:
                out.append(_Date(date.weekdays, "-" + values(both, 1, 31)))
        else:
            raise CalendarError("a last-weekday rule combined with days of the month")
    return out


def on_calendar(expression: str, timezone: str) -> tuple[str, ...]:
    """The ``OnCalendar=`` values whose union fires exactly when ``expression`` is due."""
    try:
        cron = CronSim(expression, _EPOCH)
    except CronSimError as exc:
        raise CalendarError(str(exc)) from None
    fields = expression.split()
    all_days = set(range(1, 32))
    all_weekdays = set(range(8))
    if cron.day_and:
        if cron.days == all_days and fields[3].startswith("*"):
            dates = _day_of_week_dates(cron.weekdays) if cron.weekdays != all_weekdays else []
            dates = dates or [_Date(None, "-*")]
        elif cron.weekdays == all_weekdays or cron.weekdays == set(range(7)):
            dates = _day_of_month_dates(cron.days)
        else:
            dates = _both(cron.days, _day_of_week_dates(cron.weekdays))
    else:
        dates = _day_of_month_dates(cron.days) + _day_of_week_dates(cron.weekdays)
    if not dates:
        raise CalendarError("no day can match")
    month = values(cron.months, 1, 12)
    clock = ":".join(
        (
            values(cron.hours, 0, 23),
            values(cron.minutes, 0, 59),
            values(cron.seconds, 0, 59),
        )
    )
    zone = "" if timezone == "local" else f" {timezone}"
    out: list[str] = []
    for date in dates:
        week = f"{_weekdays(date.weekdays)} " if date.weekdays is not None else ""
        text = f"{week}*-{month}{date.days} {clock}{zone}"
        if text not in out:
            out.append(text)
    return tuple(out)
