"""Which process is a runtime's supervisor, and what state it is in — from files only.

``sysg.pid`` names the supervisor, but a pid file can outlive its process and the pid be
reused, so a pid counts as our supervisor only when the process

- runs ``sysg ... supervise`` (``supervise`` is one of its argv words), and
- started no later than ``sysg.pid`` was written (a process born after the file cannot have
  written it: that is a reused pid), with ``START_SLACK`` for the boot time's rounding.

Without a usable pid file, the process holding the ``flock`` on ``supervisor.lock`` (read
from ``/proc/locks``, never by taking the lock) is the supervisor, if it runs ``supervise``.
The services a supervisor recorded in ``<state>/projects/<id>/state.json`` are alive when
the recorded pid still has the recorded start time (``/proc/PID/stat`` field 22) — the same
identity the supervisor uses to re-adopt them; never a command-line match.

Nothing here signals anything; ``cli/shutdown.py`` does, and only to a pid found here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from systemg import proc
from systemg.paths import Paths

START_SLACK = 2.0  # seconds: /proc/stat's btime is whole seconds


def recorded_pid(paths: Paths) -> int | None:
    """The number in ``sysg.pid`` (None if missing or garbage), alive or not."""
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def supervisor_pid(paths: Paths) -> int | None:
    """The pid in ``sysg.pid`` if that process is alive, else None (no identity check)."""
    pid = recorded_pid(paths)
    return pid if pid is not None and proc.alive(pid) else None


def is_supervisor(pid: int) -> bool:
    """True if ``pid`` runs ``sysg ... supervise`` (guards against a recycled pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    return b"supervise" in argv


def started_at(pid: int) -> float | None:
    """When ``pid`` started, in epoch seconds (boot time + start ticks), or None if gone."""
    ticks = proc.start_time(pid)
    if ticks is None:
        return None
    try:
        with open("/proc/stat", "rb") as fh:
            btime = next(int(row.split()[1]) for row in fh if row.startswith(b"btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def identify(paths: Paths) -> int | None:
    """The live supervisor of ``paths`` (checked as above), or None."""
    pid = recorded_pid(paths)
    if pid is not None and proc.alive(pid) and is_supervisor(pid):
        born = started_at(pid)
        try:
            written = paths.pid_file.stat().st_mtime
        except OSError:
            written = None
        if born is not None and written is not None and born <= written + START_SLACK:
            return pid
    holder = lock_holder(paths)
    if holder is not None and is_supervisor(holder):
        return holder
    return None


def state(pid: int) -> str:
    """The state letter of ``/proc/PID/stat`` (``R``, ``S``, ``T`` ...), ``""`` if gone."""
    fields = proc.stat_fields(pid)
    return fields[0].decode() if fields else ""


def frozen(pid: int) -> bool:
    """Stopped by a signal (``T``: SIGSTOP/SIGTSTP) or a tracer (``t``)."""
    return state(pid) in ("T", "t")


def lock_holder(paths: Paths) -> int | None:
    """The live pid holding a lock on ``supervisor.lock``, read from ``/proc/locks``.

    Probing by taking the lock ourselves could make a booting supervisor lose it, so we
    only read the kernel's table (``N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE ...``).
    """
    try:
        inode = paths.lock_file.stat().st_ino
        with open("/proc/locks") as fh:
            table = fh.read()
    except OSError:
        return None
    for row in table.splitlines():
        parts = row.split()
        if len(parts) >= 6 and parts[4].lstrip("-").isdigit():
            ident = parts[5].rsplit(":", 1)
            if len(ident) == 2 and ident[1] == str(inode) and proc.alive(int(parts[4])):
                return int(parts[4])
    return None


@dataclass(frozen=True, slots=True)
class RecordedService:
    """A service process a supervisor recorded, still alive with the same identity."""

    project: str
    service: str
    pid: int
    start_time: int

    @property
    def label(self) -> str:
        return f"{self.project}/{self.service}"


def recorded_services(paths: Paths) -> list[tuple[str, str, dict[str, object]]]:
    """``(project, service, record)`` for every service a supervisor recorded: each
    project's ``state.json`` with its journal lines replayed, as the store loads them."""
    try:
        entries = sorted(paths.projects_dir.iterdir())
    except OSError:
        return []
    found: list[tuple[str, str, dict[str, object]]] = []
    for entry in entries:
        try:
            data = json.loads((entry / "state.json").read_text())
        except (OSError, ValueError):
            continue
        services = data.get("services") if isinstance(data, dict) else None
        if not isinstance(services, dict):
            continue
        services = dict(services)
        _replay_journal(entry / "state.journal", data.get("seq", 0), services)
        for name, record in sorted(services.items()):
            if isinstance(record, dict):
                found.append((entry.name, str(name), record))
    return found


def live_services(paths: Paths) -> list[RecordedService]:
    """Every recorded service whose pid still has its recorded start time."""
    found: list[RecordedService] = []
    for project, name, record in recorded_services(paths):
        pid, start = record.get("pid"), record.get("start_time")
        if not (isinstance(pid, int) and isinstance(start, int)) or pid <= 0:
            continue
        if proc.start_time(pid) == start:
            found.append(RecordedService(project, name, pid, start))
    return found


def _replay_journal(path: Path, seq: object, services: dict[str, object]) -> None:
    """Apply the lines of a project's state journal newer than its snapshot (``seq``), as
    the supervisor's ``store`` does on load; unreadable lines are skipped."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    last = seq if isinstance(seq, int) else 0
    for line in data.split(b"\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        n, name, record = entry.get("seq"), entry.get("service"), entry.get("record")
        if isinstance(n, int) and n > last and isinstance(name, str):
            last = n
            services[name] = record
