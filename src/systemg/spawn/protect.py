"""Read-only and inaccessible paths: ``protect_system``, ``protect_home``, ``*_paths``.

As systemd does it: in the service's private mount namespace, bind mounts made read-only or
covered by empty inaccessible ones. ``build`` runs in the supervisor (existence checks, the
table of roots); ``apply`` runs in the child, after the mount namespace is private and before
``/proc``, ``/tmp`` and ``/dev`` are mounted anew (those fresh mounts stay writable, as with
systemd's PrivateTmp= under ProtectSystem=strict).

The rule for a mount point is systemd's: the most specific listed path above it decides —
a ``read_only`` root makes it read-only, a ``read_write_paths`` hole or an exempt API
filesystem (``/dev``, ``/proc``, ``/sys`` under ``strict``) leaves it as it was. Read-only is
set per mount with ``mount_setattr(MOUNT_ATTR_RDONLY)``, which keeps each mount's other flags
(``nosuid``, ``noexec``...) untouched, unlike a legacy remount. Files and directories already
open (the log pipes, the notify socket, which ``connect`` reaches on a read-only mount) stay
usable.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

from systemg.errors import Code, Diagnostic, SpawnError
from systemg.spawn import linux

if TYPE_CHECKING:  # the spawn helper imports this module (``apply``): no manifest import
    from systemg.manifest.model import Isolation

SYSTEM = {"true": ("/usr", "/boot", "/efi"), "full": ("/usr", "/boot", "/efi", "/etc")}
HOME = ("/home", "/root", "/run/user")
API = ("/dev", "/proc", "/sys")


@dataclass(frozen=True, slots=True)
class ProtectPlan:
    read_only: tuple[str, ...] = ()  # roots made read-only with every mount below them
    keep: tuple[str, ...] = ()  # holes and exempt API filesystems: left as they are
    holes: tuple[str, ...] = ()  # read_write_paths: bound onto themselves first
    hidden_dirs: tuple[str, ...] = ()  # covered by an empty, mode 000, read-only tmpfs
    hidden_files: tuple[str, ...] = ()  # covered by an empty mode 000 file, read-only
    empty_dirs: tuple[str, ...] = ()  # protect_home: tmpfs, an empty read-only tmpfs
    blank_file: str = ""  # the mode 000 empty file bound over hidden files


def _exists(path: str) -> bool:
    return os.path.lexists(path)


def build(iso: Isolation, prefix: str, blank_file: str) -> ProtectPlan | None:
    """The plan for ``iso``, or None when it protects nothing. Raises ``SpawnError`` (SG0210)
    for a listed path that does not exist unless written ``-/path``."""
    if not iso.protects_paths:
        return None

    def listed(key: str, entries: tuple[str, ...]) -> list[str]:
        out = []
        for i, entry in enumerate(entries):
            optional = entry.startswith("-")
            path = entry[1:] if optional else entry
            if _exists(path):
                out.append(path)
            elif not optional:
                raise SpawnError(
                    Diagnostic(
                        Code.INVALID_VALUE,
                        f"{prefix}.isolation.{key}[{i}]: {path} does not exist",
                        path=f"{prefix}.isolation.{key}[{i}]",
                        hint=f'create it, remove it, or write "-{path}" to ignore it when missing',
                    )
                )
        return out

    read_only = listed("read_only_paths", iso.read_only_paths)
    holes = listed("read_write_paths", iso.read_write_paths)
    hidden = listed("inaccessible_paths", iso.inaccessible_paths)
    keep = list(holes)
    if iso.protect_system == "strict":
        read_only.insert(0, "/")
        keep.extend(API)
    else:
        read_only[:0] = [p for p in SYSTEM.get(iso.protect_system, ()) if _exists(p)]
    home = [p for p in HOME if _exists(p)]
    empty: list[str] = []
    if iso.protect_home == "read-only":
        read_only.extend(home)
    elif iso.protect_home == "true":
        hidden.extend(home)
    elif iso.protect_home == "tmpfs":
        empty.extend(p for p in home if os.path.isdir(p))
    dirs = [p for p in hidden if os.path.isdir(p) and not os.path.islink(p)]
    files = [p for p in hidden if p not in dirs]
    return ProtectPlan(
        read_only=tuple(dict.fromkeys(read_only)),
        keep=tuple(dict.fromkeys(keep)),
        holes=tuple(holes),
        hidden_dirs=tuple(dirs),
        hidden_files=tuple(files),
        empty_dirs=tuple(empty),
        blank_file=blank_file if files else "",
    )


def ensure_blank_file(directory: str) -> str:
    """``<directory>/inaccessible``: an empty regular file, mode 000, owned by root."""
    path = os.path.join(directory, "inaccessible")
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and st.st_size == 0 and stat.S_IMODE(st.st_mode) == 0:
            return path
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
    os.close(fd)
    os.chmod(path, 0)
    return path


# --- in the child ------------------------------------------------------------------------


def under(path: str, root: str) -> bool:
    return root in ("/", path) or path.startswith(root + "/")


def decides(path: str, plan: ProtectPlan) -> bool:
    """True when the most specific listed path above ``path`` is a read-only root."""
    best, read_only = -1, False
    for root in plan.read_only:
        if under(path, root) and len(root) > best:
            best, read_only = len(root), True
    for root in plan.keep:
        if under(path, root) and len(root) >= best:
            best, read_only = len(root), False
    return read_only


def unescape(field: str) -> str:
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points() -> list[str]:
    """Every mount point of this mount namespace, parents before children."""
    with open("/proc/self/mountinfo", "rb") as fh:
        text = fh.read().decode("utf-8", "surrogateescape")
    return [unescape(line.split(" ")[4]) for line in text.splitlines() if line]


def apply(plan: ProtectPlan) -> None:
    """Raise ``OSError`` on the first refusal (the child reports it as its fault)."""
    points = set(mount_points())
    for path in (*plan.holes, *plan.read_only):
        if path not in points:  # mount_setattr needs a mount point: make it one
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC, None)
            points.add(path)
    for point in mount_points():
        if decides(point, plan):
            try:
                linux.mount_setattr_readonly(point)
            except OSError as exc:
                # A mount point hidden under another mount, or gone: nothing to protect.
                if exc.errno not in (2, 13, 22):
                    raise
    hidden = linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    for path in plan.hidden_dirs:
        linux.mount("tmpfs", path, "tmpfs", hidden, "mode=000,size=4k")
    for path in plan.hidden_files:
        linux.mount(plan.blank_file, path, None, linux.MS_BIND, None)
        linux.mount_setattr_readonly(path)
    for path in plan.empty_dirs:
        linux.mount("tmpfs", path, "tmpfs", hidden & ~linux.MS_NOEXEC, "mode=755,size=4k")
