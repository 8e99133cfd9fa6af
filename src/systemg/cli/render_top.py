"""``sysg top``'s cells and its plain view, pure: a ``StatusReply`` and history in, text out.

The cells (``top_row``) are shared by both views: the full-screen one (``top_screen``, on
rich) and the plain repeating table printed when stdout is not a terminal, which is
``render_plain``: one block per snapshot, a header line, the column line, one row per
service, then a blank line. No rich here, so the plain view (and ``sysg status``) never
import it. Time is a parameter.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from systemg.cli.logfiles import LogLine
from systemg.cli.top_state import Samples, UnitKey, sparkline
from systemg.protocol.messages import StatusReply, UnitStatus
from systemg.views.render_status import human_bytes, last_exit_text, state_text, uptime_text

SPARK_WIDTH = 12
COLUMNS = (
    "SERVICE",
    "STATE",
    "HEALTH",
    "PID",
    "CPU%",
    "CPU HISTORY",
    "RSS",
    "RSS HISTORY",
    "RESTARTS",
    "LAST EXIT",
    "UPTIME",
)
NUMERIC = frozenset({"PID", "CPU%", "RSS", "RESTARTS"})  # right-aligned


def top_row(
    unit: UnitStatus, samples: Samples | None, now: float, spark_width: int = SPARK_WIDTH
) -> tuple[str, ...]:
    """One service's cells, in ``COLUMNS`` order."""
    history = samples or Samples()
    return (
        f"{unit.project}/{unit.service}",
        state_text(unit),
        "-" if unit.health == "unknown" else unit.health,
        "-" if unit.pid is None else str(unit.pid),
        "-" if unit.cpu_percent is None else f"{unit.cpu_percent:.1f}",
        # CPU from 0 to 100 % (more for several cores): an idle service stays flat and low.
        sparkline(history.cpu, spark_width, ceiling=100.0),
        "-" if unit.rss_bytes is None else human_bytes(unit.rss_bytes),
        # RSS from its own minimum: a slow leak of a big process still shows as a slope.
        sparkline(history.rss, spark_width, floor=None),
        str(unit.restarts),
        last_exit_text(unit.last_exit),
        uptime_text(unit, now),
    )


def header_text(reply: StatusReply, now: float) -> str:
    units = len({(u.project, u.service) for u in reply.units})
    plural = "service" if units == 1 else "services"
    clock = time.strftime("%H:%M:%S", time.localtime(now))
    return (
        f"sysg top · {clock} · supervisor pid {reply.supervisor_pid} ({reply.mode} mode) · "
        f"{reply.overall_health} · {units} {plural}"
    )


def rows(
    reply: StatusReply, history: Mapping[UnitKey, Samples], now: float
) -> list[tuple[UnitStatus, tuple[str, ...]]]:
    return [(u, top_row(u, history.get((u.project, u.service)), now)) for u in reply.units]


def render_plain(
    reply: StatusReply,
    history: Mapping[UnitKey, Samples],
    *,
    now: float,
    width: int | None = None,
) -> str:
    """One snapshot of the plain view, ending in a blank line."""
    lines = [header_text(reply, now)]
    table = rows(reply, history, now)
    if not table:
        lines.append("No units being supervised")
    else:
        cells = [r for _, r in table]
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(COLUMNS)]
        for line in (COLUMNS, *cells):
            parts = [
                c.rjust(w) if COLUMNS[i] in NUMERIC else c.ljust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            ]
            lines.append("  ".join(parts).rstrip())
    if width:
        lines = [ln if len(ln) <= width else ln[: max(1, width - 1)] + "…" for ln in lines]
    return "\n".join(lines) + "\n\n"


# A service's output is shown, never obeyed: control characters (ESC starting a sequence
# that would move the cursor or recolour the screen, CR, BEL...) are shown as ``^[``, ``^M``.
_VISIBLE = {i: "^" + chr(i + 64) for i in range(32)} | {9: "    ", 127: "^?"}
_VISIBLE |= dict.fromkeys(range(0x80, 0xA0), "\ufffd")  # C1 controls (0x9b is a CSI too)


def log_text(raw: bytes) -> str:
    """A stored log line (``<ts> <stream> <text>``) as the log pane shows it:
    ``HH:MM:SS stream text`` (UTC, as stored); a line that does not parse, as it is."""
    line = LogLine.parse(raw)
    text = line.text.decode("utf-8", "replace").translate(_VISIBLE)
    if not line.ts:
        return text
    return f"{line.ts[11:19]} {line.stream} {text}"


def log_pane_lines(raws: Sequence[bytes]) -> list[str]:
    return [log_text(r) for r in raws]
