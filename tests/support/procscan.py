"""What the kernel says about processes: scans of ``/proc`` for leak, zombie and
duplicate checks in the supervisor tests.

Services in those tests carry a unique marker in their command line (``sleep 1000.<digits>``
or a ``: marker`` no-op), so a scan finds exactly the processes one test started, even
with other tests' services running on the same machine.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def new_marker() -> str:
    """Digits for ``sleep 1000.<marker>``: unique per call, valid for ``sleep``.

    From the OS's random source, not ``random``: tests run in parallel workers
    (pytest-xdist), and a plugin or Hypothesis seeding ``random`` the same way in two of
    them would give two concurrent tests the same marker."""
    return f"{secrets.randbelow(9 * 10**11) + 10**11}"


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    cmdline: str


def _read(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(b")", 1)[1].split()
    return Proc(
        pid=pid,
        state=fields[0].decode(),
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        cmdline=raw.replace(b"\0", b" ").decode("utf-8", "replace").strip(),
    )


def processes() -> Iterator[Proc]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = _read(int(entry))
            if proc is not None:
                yield proc


def live(proc: Proc) -> bool:
    return proc.state not in ("Z", "X")


def with_marker(marker: str) -> list[Proc]:
    """Live processes whose command line contains ``marker``."""
    return [p for p in processes() if marker in p.cmdline and live(p) and p.pid != os.getpid()]


def in_group_or_session(ids: set[int]) -> list[Proc]:
    """Live processes whose process group or session is one of ``ids``."""
    return [p for p in processes() if live(p) and (p.pgid in ids or p.sid in ids)]


def zombie_children(ppid: int) -> list[Proc]:
    return [p for p in processes() if p.ppid == ppid and p.state == "Z"]


def supervisors_for(state_dir: Path) -> list[int]:
    """Live ``sysg supervise`` processes whose state root is ``state_dir``."""
    wanted = f"SYSTEMG_STATE_DIR={state_dir}".encode()
    out: list[int] = []
    for proc in processes():
        if not live(proc) or "supervise" not in proc.cmdline.split():
            continue
        try:
            environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ:
            out.append(proc.pid)
    return out


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))
