"""The ``sysg status`` table: a ``StatusReply`` in, text out. Pure; time, colour and width
are parameters, so the goldens in ``tests/unit/test_views_render_status.py`` pin every byte.

Layout::

    supervisor pid 4242 (user mode) · healthy · 2 services

    PROJECT  SERVICE  STATE    PID   UPTIME  RESTARTS  LAST EXIT  CPU%  RSS
    hello    web      running  4250  3m12s   0         -          0.3   18.2M
    hello    worker   backoff  -     -       4         1          -     -

A unit whose requested settings were only partly applied (``enforcement == "partial"``)
gets a ``!`` after its state and a footnote pointing at ``sysg inspect``; a unit with a
``message`` (why it failed or is backing off) gets an indented line under the table.
Columns are padded on the plain text, then painted, so colour never shifts alignment.
"""

from __future__ import annotations

import signal

from systemg.protocol.messages import LastExit, StatusReply, UnitStatus

HEADERS = ("PROJECT", "SERVICE", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "CPU%", "RSS")
NUMERIC = frozenset({"PID", "RESTARTS", "CPU%", "RSS"})  # right-aligned
EMPTY = "No units being supervised"  # the upstream's words, which scripts match
NO_MATCH = "No matching units found."

_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_RED = "\x1b[31m"
_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_RESET = "\x1b[0m"

_STATE_COLOR = {
    "running": _GREEN,
    "starting": _YELLOW,
    "stopping": _YELLOW,
    "backoff": _YELLOW,
    "waiting": _YELLOW,
    "blocked": _YELLOW,
    "stopped": _DIM,
    "exited": _DIM,
    "failed": _RED,
    "killed": _RED,
    "oom-killed": _RED,
}
_HEALTH_COLOR = {"healthy": _GREEN, "warn": _YELLOW, "degraded": _YELLOW, "failing": _RED}
_CHECK_COLOR = {"healthy": _GREEN, "starting": _YELLOW, "unhealthy": _RED}
_LIVE = frozenset({"running", "starting", "stopping"})


def human_duration(seconds: float) -> str:
    """``45s``, ``3m12s``, ``2h05m``, ``3d04h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def human_bytes(n: int) -> str:
    """``512B``, ``12.0K``, ``18.2M``, ``1.5G`` (powers of 1024)."""
    value = float(n)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{int(value)}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def last_exit_text(last: LastExit | None) -> str:
    if last is None:
        return "-"
    if last.oom_killed:
        return "oom"
    if last.signal is not None:
        try:
            return signal.Signals(last.signal).name
        except ValueError:
            return f"signal {last.signal}"
    return "-" if last.code is None else str(last.code)


def uptime_text(unit: UnitStatus, now: float) -> str:
    if unit.state not in _LIVE or unit.pid is None:
        return "-"
    if unit.uptime_s is not None:
        return human_duration(unit.uptime_s)
    if unit.started_at is not None:
        return human_duration(now - unit.started_at)
    return "-"


def state_text(unit: UnitStatus) -> str:
    return unit.state + ("!" if unit.enforcement == "partial" else "")


def row(unit: UnitStatus, now: float, *, health: bool = False) -> tuple[str, ...]:
    return (
        unit.project,
        unit.service,
        state_text(unit),
        *((("-" if unit.health == "unknown" else unit.health),) if health else ()),
        "-" if unit.pid is None else str(unit.pid),
        uptime_text(unit, now),
        str(unit.restarts),
        last_exit_text(unit.last_exit),
        "-" if unit.cpu_percent is None else f"{unit.cpu_percent:.1f}",
        "-" if unit.rss_bytes is None else human_bytes(unit.rss_bytes),
    )


def cron_text(unit: UnitStatus, now: float) -> str:
    """``  p/job: cron 0 30 2 * * * (Europe/Berlin) · next in 3h 2m · last ok 14h ago``"""
    cron = unit.cron
    assert cron is not None
    text = f"  {unit.project}/{unit.service}: cron {cron.expression} ({cron.timezone})"
    if cron.next_run is not None:
        text += f" · next in {human_duration(max(0.0, cron.next_run - now))}"
    elif not cron.scheduled:
        text += " · not scheduled (start its project)"
    last = cron.last_run
    if last is not None:
        ago = human_duration(max(0.0, now - last.start))
        detail = f" ({last.message})" if last.result not in ("ok", "running") else ""
        text += f" · last {last.result}{detail} {ago} ago"
    return text


def project_lines(units: tuple[UnitStatus, ...]) -> list[str]:
    """``Project: Shop (shop) · daemon · 2 services``, one per project, in table order: its
    display name (the id alone when it has none), and ``foreground`` while an attached
    ``sysg start`` streams it (the upstream's project heading)."""
    seen: dict[str, list[UnitStatus]] = {}
    for unit in units:
        seen.setdefault(unit.project, []).append(unit)
    out = []
    for project, members in seen.items():
        name = members[0].project_name
        title = f"{name} ({project})" if name and name != project else project
        mode = "foreground" if any(u.attached for u in members) else "daemon"
        plural = "service" if len(members) == 1 else "services"
        out.append(f"Project: {title} · {mode} · {len(members)} {plural}")
    return out


def headers(units: tuple[UnitStatus, ...]) -> tuple[str, ...]:
    """The columns: HEALTH only when some unit has a readiness check (notify, probe)."""
    if any(u.health != "unknown" for u in units):
        return (*HEADERS[:3], "HEALTH", *HEADERS[3:])
    return HEADERS


def _paint(text: str, code: str | None, color: bool) -> str:
    return f"{code}{text}{_RESET}" if color and code else text


def _clip(line: str, width: int | None) -> str:
    return line if not width or len(line) <= width else line[: max(1, width - 1)] + "…"


def render_status(
    reply: StatusReply,
    *,
    now: float,
    color: bool = False,
    width: int | None = None,
    filtered: bool = False,
) -> str:
    """The whole ``sysg status`` text, ending in a newline."""
    units = reply.units
    plural = "service" if len(units) == 1 else "services"
    health = _paint(reply.overall_health, _HEALTH_COLOR.get(reply.overall_health), color)
    lines = [
        _clip(
            f"supervisor pid {reply.supervisor_pid} ({reply.mode} mode) · {health} · "
            f"{len(units)} {plural}",
            None if color else width,
        )
    ]
    if not units:
        lines.append(NO_MATCH if filtered else EMPTY)
        return "\n".join(lines) + "\n"
    lines.extend(_clip(line, width) for line in project_lines(units))
    cols = headers(units)
    rows = [row(u, now, health=cols is not HEADERS) for u in units]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(cols)]

    def fmt(cells: tuple[str, ...], unit: UnitStatus | None) -> str:
        parts = []
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            padded = cell.rjust(w) if cols[i] in NUMERIC else cell.ljust(w)
            if i == len(cells) - 1:
                padded = padded.rstrip()
            if unit is not None and cols[i] == "STATE":
                padded = _paint(padded, _STATE_COLOR.get(unit.state), color)
            if unit is not None and cols[i] == "HEALTH":
                padded = _paint(padded, _CHECK_COLOR.get(unit.health), color)
            parts.append(padded)
        text = "  ".join(parts).rstrip()
        return text if color else _clip(text, width)

    lines.append("")
    header = fmt(cols, None)
    lines.append(_paint(header, _BOLD, color))
    lines.extend(fmt(r, u) for r, u in zip(rows, units, strict=True))
    notes = [f"  {u.project}/{u.service}: {u.message}" for u in units if u.message]
    notes += [
        f"  {u.project}/{u.service}: STATUS={u.notify_status}"
        for u in units
        if u.notify_status and not u.message
    ]
    notes += [cron_text(u, now) for u in units if u.cron is not None]
    partial = [u for u in units if u.enforcement == "partial"]
    if notes or partial:
        lines.append("")
    lines.extend(_clip(n, width) for n in notes)
    if partial:
        first = partial[0]
        lines.append(
            _clip(
                "! partial: some requested settings were not applied "
                f"(see `sysg inspect -s {first.project}/{first.service}`)",
                width,
            )
        )
    return "\n".join(lines) + "\n"
