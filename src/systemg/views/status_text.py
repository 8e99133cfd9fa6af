"""``sysg status``'s output for one reply: the table or the ``status.v1`` JSON, and the
health its exit code is made of. One function for both places that render it: the CLI
(``cli/commands/status.py``, from the reply it read) and the supervisor (asked for a
``view`` by the fast path, ``cli/quick.py``), so the two give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import replace

from systemg.protocol.messages import StatusReply
from systemg.views.status_doc import HEALTH_EXIT, status_doc

VIEWS = ("table", "json")


def exit_code(health: str) -> int:
    """``sysg status``'s exit code: 0 healthy, 1 warn, 2 failing (anything else 1)."""
    return HEALTH_EXIT.get(health, 1)


def status_text(
    reply: StatusReply,
    view: str,
    *,
    now: float,
    color: bool = False,
    width: int | None = None,
    filtered: bool = False,
) -> tuple[str, str]:
    """``(text, health)``: what ``sysg status`` writes to stdout for ``reply`` in ``view``
    (``table`` or ``json``), and the document's ``overall_health``."""
    doc = status_doc(reply)
    health = str(doc["overall_health"])
    if view == "json":
        return json.dumps(doc, indent=2) + "\n", health
    from systemg.views.render_status import render_status

    # The header says the document's word, the one the exit code is made of.
    text = render_status(
        replace(reply, overall_health=health),
        now=now,
        color=color,
        width=width,
        filtered=filtered,
    )
    return text, health
