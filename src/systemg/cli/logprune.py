"""``sysg logs --prune``: remove rotated backups by age and by total size.

The decision is pure (``plan``): first every backup last written before ``now -
max_age``, then, oldest first, backups until the rest of the selection's backups total at
most ``max_size``. "Oldest" is the file's modification time, i.e. the time of its newest
line; among equal times the higher number (``.5`` before ``.4``) goes first. Because a
service's backups grow older with their number, removing oldest first only ever removes
the highest numbers, so the remaining ones stay ``.1`` … ``.k`` with no gap.

Never an active file: only ``<service>.log.<number>`` names are candidates. A backup the
supervisor rotates away meanwhile is simply not there to remove (not an error).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from systemg.cli.logfiles import ServiceLogFile

_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    number: int
    size: int
    mtime: float


def backups_of(log: ServiceLogFile) -> list[Backup]:
    """Every ``<service>.log.<number>`` beside the active file (gaps included)."""
    found: list[Backup] = []
    prefix = log.path.name + "."
    try:
        entries = list(os.scandir(log.path.parent))
    except FileNotFoundError:
        return []
    for entry in entries:
        suffix = entry.name[len(prefix) :]
        if not entry.name.startswith(prefix) or not _NUMBER.fullmatch(suffix):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if entry.is_file(follow_symlinks=False):
            found.append(Backup(Path(entry.path), int(suffix), st.st_size, st.st_mtime))
    return found


def plan(
    backups: Iterable[Backup], *, max_size: int | None, max_age: float | None, now: float
) -> list[Backup]:
    """The backups to remove, oldest first (see the module docstring)."""
    oldest_first = sorted(backups, key=lambda b: (b.mtime, -b.number, str(b.path)))
    remove: list[Backup] = []
    keep: list[Backup] = []
    for backup in oldest_first:
        if max_age is not None and backup.mtime < now - max_age:
            remove.append(backup)
        else:
            keep.append(backup)
    if max_size is not None:
        total = sum(b.size for b in keep)
        for backup in keep:
            if total <= max_size:
                break
            remove.append(backup)
            total -= backup.size
    return remove


def remove(chosen: Iterable[Backup]) -> list[Backup]:
    """Delete ``chosen``; return those actually removed (one already gone is skipped)."""
    done: list[Backup] = []
    for backup in chosen:
        try:
            os.unlink(backup.path)
        except FileNotFoundError:
            continue
        done.append(backup)
    return done
