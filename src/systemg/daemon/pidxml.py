"""``<state>/projects/<id>/pid.xml``: the upstream's pid map, kept beside our own state.

Our state is ``state.json`` and ``state.journal`` (``store.py``); tools and scripts written
for the upstream read ``pid.xml`` instead (``<services><name>web</name><pid>123</pid>
</services>`` per live service). The supervisor writes it as a view of the same facts: after
pids change, at most once per ``DELAY`` seconds per project (a cold start of N services is
N changes, not N rewrites of an N-line file), and never read back.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

DELAY = 0.1


def render(pids: list[tuple[str, int, int | None]]) -> str:
    """``(service, pid, kernel start time)`` of each live service -> the file's text."""
    lines = ["<PidFile>"]
    for name, pid, _start in pids:
        lines += ["  <services>", f"    <name>{escape(name)}</name>", f"    <pid>{pid}</pid>"]
        lines.append("  </services>")
    for name, _pid, start in pids:
        if start is not None:
            lines += [
                "  <service_starts>",
                f"    <name>{escape(name)}</name>",
                f"    <started>{start}</started>",
                "  </service_starts>",
            ]
    lines.append("</PidFile>")
    return "\n".join(lines) + "\n"
