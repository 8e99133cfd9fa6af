"""``/proc/PID/stat``, read once, in one place: a process's state and its identity.

Identity is pid + start time (field 22, clock ticks since boot): a reused pid has another
start time, so neither the supervisor nor the CLI ever mistakes a new process for a
service it recorded. Parsing starts after the last ``)``, because the command name in
field 2 may itself contain spaces and parentheses.
"""

from __future__ import annotations


def stat_fields(pid: int) -> list[bytes] | None:
    """Fields 3.. of ``/proc/PID/stat`` (index 0 is the state letter), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in (b"Z", b"X")


def start_time(pid: int, *, zombie_ok: bool = False) -> int | None:
    """Field 22 of ``/proc/PID/stat``; None when the process is gone (or a zombie, unless
    ``zombie_ok``: a service that died at once still has the identity it was born with)."""
    fields = stat_fields(pid)
    if fields is None or (not zombie_ok and fields[0] in (b"Z", b"X")):
        return None
    return int(fields[19])
