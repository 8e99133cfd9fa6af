"""The progress line of ``sysg start`` / ``restart`` / ``stop`` on a terminal.

``render_progress`` is pure: a progress event of the supervisor (``daemon/progress.py``)
and the terminal width in, one line out::

    starting 37/100 · web ready · db waiting for migrate

``Line`` draws it on stderr, rewritten in place (``\\r`` + erase to end of line), and
erases it before anything else is printed (the summary, problems, attached output), so
what stays on the screen is exactly what a non-terminal run prints. ``wanted`` decides:
only when stdout and stderr are both terminals, ``--plain`` is absent and ``TERM`` is not
``dumb``; otherwise the request does not even ask for progress events.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any, TextIO

GERUND = {"start": "starting", "stop": "stopping", "restart": "restarting"}
STATE_WORDS = {
    "running": "ready",
    "exited": "exited",
    "backoff": "backing off",
    "oom-killed": "killed (OOM)",
}
SEP = " · "


def wanted(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> bool:
    stdout = sys.stdout if out is None else out
    stderr = sys.stderr if err is None else err
    return bool(
        stdout.isatty()
        and stderr.isatty()
        and not getattr(args, "plain", False)
        and os.environ.get("TERM") != "dumb"
    )


def _state(item: dict[str, Any], *, change: bool) -> str:
    """A unit's state in words; a change *to* running reads "ready" (it just came up)."""
    state = str(item.get("state", ""))
    waiting = [str(d) for d in item.get("waiting_for") or ()]
    if state == "waiting" and waiting:
        return "waiting for " + ", ".join(waiting)
    if state == "running" and not change:
        return state
    return STATE_WORDS.get(state, state)


def render_progress(event: dict[str, Any], width: int = 80) -> str:
    """One line, at most ``width - 1`` columns (the last column would wrap on some terminals)."""
    verb = GERUND.get(str(event.get("verb")), str(event.get("verb", "")))
    head = f"{verb} {int(event.get('done', 0))}/{int(event.get('total', 0))}"
    parts = [head]
    recent = [i for i in event.get("recent") or () if isinstance(i, dict)]
    pending = [i for i in event.get("pending") or () if isinstance(i, dict)]
    shown: set[str] = set()
    # The newest change first, then what is still pending (a name once).
    items = [(i, True) for i in recent[-1:]] + [(i, False) for i in pending]
    for item, change in items:
        name = str(item.get("service", "?"))
        if name in shown:
            continue
        shown.add(name)
        parts.append(f"{name} {_state(item, change=change)}")
    limit = max(10, width - 1)
    line = parts[0]
    for part in parts[1:]:
        if len(line) + len(SEP) + len(part) > limit:
            break
        line += SEP + part
    return line[:limit]


class Line:
    """The one progress line on ``stream`` (stderr)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.text = ""

    def show(self, event: dict[str, Any]) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        self.text = render_progress(event, width)
        self.stream.write("\r\x1b[K" + self.text)
        self.stream.flush()

    def clear(self) -> None:
        if self.text:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.text = ""

    def above(self, write: Any) -> None:
        """Run ``write()`` (which prints lines) with the progress line out of the way."""
        text = self.text
        self.clear()
        write()
        if text:
            self.text = text
            self.stream.write(text)
            self.stream.flush()
