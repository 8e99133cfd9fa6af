"""``/proc/PID/stat``, read once, in one place: a process's state and its identity (and,
for the few callers that need it, a variable of its environment).

Identity is pid + start time (field 22, clock ticks since boot): a reused pid has another
start time, so neither the supervisor nor the CLI ever mistakes a new process for a
service it recorded. Parsing starts after the last ``)``, because the command name in
field 2 may itself contain spaces and parentheses.
"""

from __future__ import annotations

import os


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


def environ_value(pid: int, name: str) -> str | None:
    """The value of ``name`` in the environment ``pid`` was started with (None when it has
    none, or it cannot be read: gone, or another user's without the right to trace it)."""
    prefix = name.encode() + b"="
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            entries = fh.read(1 << 20).split(b"\0")
    except OSError:
        return None
    for entry in entries:
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


INVOCATION_VAR = b"INVOCATION_ID="


def find_invocations(tokens: set[str]) -> dict[str, tuple[int, int]]:
    """Live session leaders whose environment carries ``INVOCATION_ID=<token>``, by token:
    ``{token: (pid, start_time)}``.

    Every service is started with a fresh random ``INVOCATION_ID`` (as systemd does), and
    the token is recorded *before* the launch. A supervisor killed between a launch and
    recording its pid leaves a process only this finds; a 128-bit token cannot be matched
    by chance, unlike a command line. Only session leaders count: a service's children
    inherit the variable, but the service itself is the leader of its session.
    """
    found: dict[str, tuple[int, int]] = {}
    if not tokens:
        return found
    wanted = {INVOCATION_VAR + t.encode() for t in tokens}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return found
    for entry in entries:
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read(1 << 20).split(b"\0")
        except OSError:
            continue
        hits = wanted.intersection(environ)
        if not hits:
            continue
        fields = stat_fields(pid)
        if fields is None or fields[0] in (b"Z", b"X") or int(fields[3]) != pid:
            continue  # gone, or a child of the service (same variable, not the leader)
        token = next(iter(hits))[len(INVOCATION_VAR) :].decode()
        found[token] = (pid, int(fields[19]))
    return found
