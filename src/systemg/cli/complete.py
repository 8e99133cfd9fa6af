"""``sysg __complete services|projects [--sys]``: names for the completion scripts.

Hidden (not in ``sysg --help``): the scripts of ``sysg completion`` run it while the user
waits for Tab, so it must be quick and quiet. It asks the running supervisor for its status
with a short deadline and prints one name per line: each service name, plus
``PROJECT/NAME`` for a name that two projects share (``-s`` needs it then), or each
project id. No supervisor, a frozen one, a refused connection: nothing is printed, exit 0.
"""

from __future__ import annotations

import os
import sys

DEADLINE_S = 1.0


def names(units: list[tuple[str, str]], what: str) -> list[str]:
    """What to offer for ``what`` given the (project, service) of every unit (pure)."""
    if what == "projects":
        return sorted({p for p, _ in units})
    count: dict[str, int] = {}
    for _, service in units:
        count[service] = count.get(service, 0) + 1
    out = {s for _, s in units}
    out |= {f"{p}/{s}" for p, s in units if count[s] > 1}
    return sorted(out)


def complete(argv: list[str]) -> int:
    what = argv[0] if argv else ""
    if what not in ("services", "projects"):
        return 2
    from systemg.cli import client
    from systemg.cli.deadlines import Wait
    from systemg.cli.mode import system_paths
    from systemg.errors import SysgError
    from systemg.paths import Mode, Paths
    from systemg.protocol.messages import StatusRequest

    # As the commands do: --sys is the system supervisor; without it the user's own, or
    # the system one when the user runs none (an operator's status/stop fall back to it).
    system = system_paths(os.environ)
    candidates = [system] if "--sys" in argv else [Paths.for_mode(Mode.USER), system]
    paths = next((p for p in candidates if p.socket.exists()), None)
    if paths is None:
        return 0
    try:
        data = client.call(paths, StatusRequest(), Wait(DEADLINE_S))
    except (SysgError, OSError):
        return 0
    units = [
        (str(u.get("project")), str(u.get("service")))
        for u in data.get("units") or ()
        if isinstance(u, dict)
    ]
    sys.stdout.write("".join(f"{n}\n" for n in names(units, what)))
    return 0
