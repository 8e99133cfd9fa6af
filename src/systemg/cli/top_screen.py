"""``sysg top``'s full screen, built with rich: view state and snapshot in, a renderable out.

Pure (no terminal, no clock): ``commands/top.py`` hands it to ``rich.live.Live``; the
tests print it on a ``Console`` writing to a string. Layout, top to bottom::

    sysg top · 16:50:01 · supervisor pid 4242 (user mode) · healthy · 2 services
    SERVICE    STATE    HEALTH  PID   CPU%  CPU HISTORY  RSS    RSS HISTORY  RESTARTS ...
    hello/web  running  -       4250   0.3  ▁▁▁▂▁        18.2M  ▁▁▂▂▃               0 ...
    ╭─ log · hello/web ───────────────────────────────────────────────────────────────╮
    │ 16:49:58 stdout GET / 200                                                       │
    ╰─────────────────────────────────────────────────────────────────────────────────╯
    ↑↓/jk select · l log · r restart · s stop · q quit

The selected row is shown reversed; with more services than fit, the table scrolls so the
selection stays visible. The log pane takes the rows the table leaves (at least
``MIN_LOG`` lines), and the last line is the confirmation prompt while one is asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from systemg.cli.render_top import COLUMNS, NUMERIC, header_text, rows
from systemg.cli.top_state import Samples, TopState, UnitKey, label
from systemg.protocol.messages import StatusReply

MIN_LOG = 3
HELP = "↑↓/jk select · l log · r restart · s stop · q quit"

_STATE_STYLE = {
    "running": "green",
    "starting": "yellow",
    "stopping": "yellow",
    "backoff": "yellow",
    "waiting": "yellow",
    "blocked": "yellow",
    "draining": "yellow",
    "stopped": "dim",
    "exited": "dim",
    "queued": "dim",
    "failed": "red",
    "killed": "red",
    "oom-killed": "red",
}
_HEALTH_STYLE = {"healthy": "green", "warn": "yellow", "degraded": "yellow", "failing": "red"}
_CHECK_STYLE = {"healthy": "green", "starting": "yellow", "unhealthy": "red"}


def layout(services: int, height: int, follow: bool) -> tuple[int, int]:
    """(table rows shown, log lines shown) for a screen ``height`` lines tall.

    Fixed lines: the header, the column line and the footer; the log pane adds its two
    borders. The table gets what it needs first, leaving the log at least ``MIN_LOG``.
    """
    room = max(1, height - 3)
    if not follow:
        return min(services, room), 0
    pane = room - 2
    table = max(1, min(services, pane - MIN_LOG))
    return table, max(0, pane - max(table, 1))


def window(count: int, selected: int | None, size: int) -> tuple[int, int]:
    """The slice ``[start, end)`` of ``count`` rows to show in ``size`` lines, keeping the
    ``selected`` row (if any) in it and as close to the middle as the ends allow."""
    if count <= size:
        return 0, count
    if selected is None:
        return 0, size
    start = max(0, min(count - size, selected - size // 2))
    return start, start + size


def screen(
    reply: StatusReply,
    state: TopState,
    history: Mapping[UnitKey, Samples],
    log_lines: Sequence[str] | None,
    *,
    now: float,
    height: int,
    problem: str = "",
) -> RenderableType:
    """The whole screen. ``log_lines``: the selected service's last lines (None: no pane);
    ``problem``: why this snapshot is old (the supervisor stopped answering)."""
    header = Text(header_text(reply, now), no_wrap=True, overflow="ellipsis")
    health = reply.overall_health
    header.highlight_words([health], style=_HEALTH_STYLE.get(health, ""))
    if problem:
        header.append(f" · {problem}", style="bold red")
    follow = log_lines is not None
    table_rows, log_rows = layout(len(reply.units), height, follow)
    table = Table(box=None, pad_edge=False, padding=(0, 1))
    for name in COLUMNS:
        table.add_column(
            name,
            justify="right" if name in NUMERIC else "left",
            no_wrap=True,
            header_style="bold",
            overflow="ellipsis",
        )
    all_rows = rows(reply, history, now)
    keys = [(u.project, u.service) for u, _ in all_rows]
    selected = keys.index(state.selected) if state.selected in keys else None
    start, end = window(len(all_rows), selected, table_rows)
    for i in range(start, end):
        unit, cells = all_rows[i]
        styled: list[Text] = [Text(c) for c in cells]
        styled[1].stylize(_STATE_STYLE.get(unit.state, ""))
        styled[2].stylize(_CHECK_STYLE.get(unit.health, ""))
        table.add_row(*styled, style="reverse" if i == selected else None)
    parts: list[RenderableType] = [header]
    if not all_rows:
        parts.append(Text("No units being supervised"))
    else:
        parts.append(table)
    if follow and state.selected is not None:
        shown = list(log_lines or ())[-log_rows:] if log_rows else []
        body = Text("\n".join(shown) if shown else "(no log lines yet)", no_wrap=True)
        if not shown:
            body.stylize("dim")
        parts.append(
            Panel(
                body,
                title=f"log · {label(state.selected)}",
                title_align="left",
                height=log_rows + 2,
                box=box.ROUNDED,
            )
        )
    parts.append(footer(state))
    return Group(*parts)


def footer(state: TopState) -> Text:
    if state.confirm is not None:
        return Text(state.confirm.prompt, style="bold yellow")
    if state.notice:
        return Text(f"{state.notice} · {HELP}")
    return Text(HELP, style="dim")
