"""What a process's ``/proc/PID/mountinfo`` says about its file-system sandbox. Pure.

``mount_view(service, reference)`` compares the service's mount table with the reference
process's (the supervisor, or PID 1) and reduces it to the few facts the exposure checks score:
private ``/tmp`` and ``/dev`` (a different mount than the reference sees there), read-only
``/usr`` ``/etc`` ``/`` (``protect_system``), ``/home`` ``/root`` ``/run/user`` hidden or
read-only (``protect_home``), ``/proc/sys`` and the cgroup mounts read-only, ``/proc/kmsg`` and
the module directories covered, and the ``/proc`` mount options ``hidepid=`` and ``subset=``.

The visible mount at a path is the one on the deepest mount point above it, the last listed
when several are stacked there (the kernel lists mounts in the order they were made).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mount:
    """One ``mountinfo`` line: device, root inside the file system, where, how."""

    device: str  # major:minor
    root: str
    point: str
    options: frozenset[str]  # per-mount options: ro, nosuid, ...
    fstype: str
    super_options: frozenset[str]  # file-system options: hidepid=2, subset=pid, mode=755, ...

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


@dataclass(frozen=True, slots=True)
class MountView:
    """The sandbox facts the checks need (see the module docstring)."""

    private_tmp: bool = False
    private_dev: bool = False
    protect_system: str = "no"  # no | yes | full | strict, as systemd's ProtectSystem=
    protect_home: str = "no"  # no | read-only | tmpfs | yes, as systemd's ProtectHome=
    proc_sys_read_only: bool = False
    cgroup_read_only: bool = False
    kmsg_hidden: bool = False
    modules_hidden: bool = False
    hidepid: str | None = None  # the /proc mount's hidepid= value, None without one
    proc_subset_pid: bool = False


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    """Every well-formed line of a ``mountinfo`` file, in order (others are skipped)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 2:
            continue
        mounts.append(
            Mount(
                device=fields[2],
                root=_unescape(fields[3]),
                point=_unescape(fields[4]),
                options=frozenset(fields[5].split(",")),
                fstype=tail[0],
                super_options=frozenset(tail[2].split(",")) if len(tail) > 2 else frozenset(),
            )
        )
    return tuple(mounts)


def _under(path: str, point: str) -> bool:
    return point in ("/", path) or path.startswith(point.rstrip("/") + "/")


def visible(mounts: tuple[Mount, ...], path: str) -> Mount | None:
    """The mount a lookup of ``path`` lands on."""
    best: Mount | None = None
    for mount in mounts:
        if _under(path, mount.point) and (best is None or len(mount.point) >= len(best.point)):
            best = mount
    return best


def _identity(mount: Mount | None) -> tuple[str, str, str] | None:
    return None if mount is None else (mount.device, mount.root, mount.point)


def _private(own: tuple[Mount, ...], ref: tuple[Mount, ...], path: str) -> bool:
    """A mount made for the service: what it sees at ``path`` is not what the reference sees."""
    mine = visible(own, path)
    return (
        mine is not None and mine.point == path and _identity(mine) != _identity(visible(ref, path))
    )


def _ro(mounts: tuple[Mount, ...], path: str) -> bool:
    mount = visible(mounts, path)
    return mount is not None and mount.read_only


def _covered(own: tuple[Mount, ...], ref: tuple[Mount, ...], path: str) -> bool:
    """Hidden behind a mount of its own (systemd's inaccessible paths are mounted over)."""
    return _private(own, ref, path)


def _protect_system(own: tuple[Mount, ...]) -> str:
    if _ro(own, "/") and _ro(own, "/usr") and _ro(own, "/etc"):
        return "strict"
    if _ro(own, "/usr") and _ro(own, "/etc"):
        return "full"
    return "yes" if _ro(own, "/usr") else "no"


HOME_PATHS = ("/home", "/root", "/run/user")


def _protect_home(
    own: tuple[Mount, ...], ref: tuple[Mount, ...], modes: dict[str, int | None]
) -> str:
    """``yes`` when every home path is hidden (missing, or a fresh mount of mode 0),
    ``tmpfs`` when each is a fresh writable tmpfs, ``read-only`` when each is read-only.

    ``modes`` has the home paths that exist for the reference, each with the permission bits
    the service sees there (``stat`` through ``/proc/PID/root``), None when it sees nothing."""
    levels = set()
    for path, mode in modes.items():
        mount = visible(own, path)
        fresh = _private(own, ref, path)
        if mode is None or (fresh and mode & 0o777 == 0):
            levels.add("yes")
        elif fresh and mount is not None and mount.fstype == "tmpfs" and not mount.read_only:
            levels.add("tmpfs")
        elif _ro(own, path):
            levels.add("read-only")
        else:
            return "no"
    for level in ("read-only", "tmpfs", "yes"):  # the weakest path decides
        if level in levels:
            return level
    return "no"


def _proc_option(own: tuple[Mount, ...], key: str) -> str | None:
    proc = visible(own, "/proc")
    if proc is None or proc.fstype != "proc":
        return None
    for option in proc.super_options:
        name, _, value = option.partition("=")
        if name == key:
            return value
    return None


def mount_view(
    own: tuple[Mount, ...], ref: tuple[Mount, ...], home_modes: dict[str, int | None]
) -> MountView:
    cgroups = [
        m for m in own if m.point == "/sys/fs/cgroup" or m.point.startswith("/sys/fs/cgroup/")
    ]
    return MountView(
        private_tmp=_private(own, ref, "/tmp") and _private(own, ref, "/var/tmp"),
        private_dev=_private(own, ref, "/dev"),
        protect_system=_protect_system(own),
        protect_home=_protect_home(own, ref, home_modes),
        proc_sys_read_only=_ro(own, "/proc/sys"),
        cgroup_read_only=bool(cgroups) and all(m.read_only for m in cgroups),
        kmsg_hidden=_covered(own, ref, "/proc/kmsg"),
        modules_hidden=_covered(own, ref, "/usr/lib/modules") or _covered(own, ref, "/lib/modules"),
        hidepid=_proc_option(own, "hidepid"),
        proc_subset_pid=_proc_option(own, "subset") == "pid",
    )
