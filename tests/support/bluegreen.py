"""Blue/green fixtures shared by the user-mode and system-mode tests (docs/manifest.md,
"Blue/green"): the switch and verify scripts, a manifest, and small probes of ports and
processes.

``switch.sh`` appends ``ACTIVE CANDIDATE UID $SYSG_ACTIVE_SLOT $SYSG_CANDIDATE_SLOT`` to
``switch.calls`` and points ``./upstream`` at the candidate; ``switch-fail-once``,
``switch-fail-always`` and ``hold`` (wait while it exists) in its directory change that.
``verify.sh`` fails while ``verify-fail`` exists, else checks ``./upstream``. ``run.sh`` runs
the server and stops it once ``die-$PORT`` exists.
"""

from __future__ import annotations

import socket
from pathlib import Path

SWITCH = """\
#!/bin/sh
echo "$1 $2 $(id -u) $SYSG_ACTIVE_SLOT $SYSG_CANDIDATE_SLOT" >> switch.calls
while [ -f hold ]; do sleep 0.05; done
if [ -f switch-fail-always ]; then echo "no route to $2" >&2; exit 3; fi
if [ -f switch-fail-once ]; then rm switch-fail-once; echo "no route to $2" >&2; exit 3; fi
printf '%s\\n' "$2" > upstream
"""
VERIFY = """\
#!/bin/sh
if [ -f verify-fail ]; then echo "verify: $1 refused" >&2; exit 1; fi
[ "$(cat upstream)" = "$1" ]
"""
# Serves on $PORT; once die-$PORT exists it stops by itself (SIGTERM: the server exits 0).
RUN = """\
#!/bin/sh
(while [ ! -f "die-$PORT" ]; do sleep 0.05; done; kill $$) &
exec python3 server.py
"""
MANIFEST = """\
version: "2"
services:
  web:
    COMMAND
    restart_policy: on-failure
EXTRA
    env:
      vars:
        GENERATION: g
ENV
    deployment:
      strategy: rolling
      grace_period: GRACE
      blue_green:
        slots: ["PORT_A", "PORT_B"]
        switch_command: sh switch.sh {active_slot} {candidate_slot}
STATE
        candidate_health_check:
          url: "http://127.0.0.1:{slot}/"
          interval: 100ms
          retries: 100
        switch_verify:
          VERIFY
          interval: 100ms
          retries: 3
"""


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def manifest(
    a: int,
    b: int,
    *,
    grace: str = "300ms",
    env: str = "",
    state_path: str = "",
    run_sh: bool = False,
    extra: str = "",
    verify: str = "command: sh verify.sh {candidate_slot}",
) -> str:
    """``extra``: lines at the service's level (``backoff: 100ms\n``, a ``liveness`` block)."""
    command = "command: sh run.sh" if run_sh else "exec: [python3, server.py]"
    state = f"        state_path: {state_path}\n" if state_path else ""
    return (
        MANIFEST.replace("COMMAND", command)
        .replace("EXTRA\n", extra)
        .replace("VERIFY", verify)
        .replace("ENV\n", env)
        .replace("GRACE", grace)
        .replace("PORT_A", str(a))
        .replace("PORT_B", str(b))
        .replace("STATE\n", state)
    )


def calls(work: Path) -> list[tuple[str, str, str]]:
    """``(active, candidate, uid)`` of each switch_command run, in order; its environment
    must say the same slots as its arguments."""
    path = work / "switch.calls"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        active, candidate, uid, env_active, env_candidate = line.split()
        assert (env_active, env_candidate) == (active, candidate), line
        out.append((active, candidate, uid))
    return out


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in raw if b"=" in e)
