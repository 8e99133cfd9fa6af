"""The files of a blue/green service (docs/manifest.md, "Blue/green"), read and written on
the supervisor's thread, so never in a way that can block it or be redirected:

* the **slot file** (``state_path``, or ``projects/<id>/<service>.slot``): the value of the
  slot that has the traffic and a newline, mode 0644 (a proxy's script may read it),
  replaced by rename (``store.write_atomic``: its temporary file is created anew). It is
  read with ``O_NOFOLLOW | O_NONBLOCK``, and only if it is a regular file, at most 256
  bytes: a symlink, a FIFO or a device there is ignored, never followed or waited on;
* the **marker** (``projects/<id>/<service>.switching``): ``SLOT PID START_TIME`` of the
  switch under way, from its start until a result says where the traffic is. A marker
  found later means a switch was cut short; its process, if it still runs (same pid and
  start time), is what ``orphan`` returns.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from systemg import proc
from systemg.daemon.store import write_atomic
from systemg.manifest.model import BlueGreen
from systemg.paths import Paths

_MAX_READ = 256


def slot_path(paths: Paths, project_id: str, service: str, bg: BlueGreen) -> Path:
    if bg.state_path is not None:
        return Path(bg.state_path)
    return paths.project_state_dir(project_id) / f"{service}.slot"


def marker_path(paths: Paths, project_id: str, service: str) -> Path:
    return paths.project_state_dir(project_id) / f"{service}.switching"


class Unreadable(Exception):  # noqa: N818 - it is the reason, said as such
    """The file is there but cannot be used; the message says why."""


def read_slot(path: Path) -> str | None:
    """The slot file's value; None when there is none (raises ``Unreadable``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unreadable(f"cannot read the active slot from {path}: {exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Unreadable(f"{path} is not a regular file; ignored")
        return os.read(fd, _MAX_READ).decode(errors="replace").strip()
    except OSError as exc:
        raise Unreadable(f"cannot read the active slot from {path}: {exc}") from None
    finally:
        os.close(fd)


def write_slot(path: Path, value: str) -> None:
    """Raises ``OSError`` (nothing is half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, f"{value}\n".encode(), 0o644)


def mark(path: Path, slot: str, pid: int | None) -> None:
    """Raises ``OSError``."""
    started = None if pid is None else proc.start_time(pid)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, f"{slot} {pid or 0} {started or 0}\n".encode())


def unmark(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def orphan(path: Path) -> int | None:
    """The switch the marker names, if that very process still runs."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            _slot, pid_text, start_text = os.read(fd, _MAX_READ).decode().split()
        finally:
            os.close(fd)
        pid, started = int(pid_text), int(start_text)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return pid if pid > 0 and proc.start_time(pid) == started else None
