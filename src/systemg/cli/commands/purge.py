"""``sysg purge``: stop supervisors and remove state and logs (docs/commands.md, `sysg purge`).

- ``sysg purge``: the runtimes it covers are the current one — and, as root without an
  explicit ``SYSTEMG_STATE_DIR``, every runtime of root (the system one and root's user
  mode). If any of their supervisors has live services and ``--force`` is absent: ``SG0401``
  and nothing is deleted. Otherwise each supervisor is shut down (``SG0405`` if it will not
  exit), then the state and log directories are removed, each printed, and for the real
  system runtime the empty cgroup directories under the systemg cgroup roots (best effort).
- ``sysg purge -p ID``: one project's state only — through the supervisor (``forget``)
  when one runs, else from disk. A malformed id is ``SG0404``, an unknown one ``SG0403``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from systemg.cli import client
from systemg.cli.console import out
from systemg.cli.mode import Target, resolve, system_paths
from systemg.errors import Code, SysgError
from systemg.paths import Mode, Paths
from systemg.protocol.messages import ForgetRequest, StatusReply, StatusRequest

LIVE_STATES = frozenset({"starting", "running", "stopping", "backoff"})
CGROUP_ROOTS = (
    Path("/sys/fs/cgroup/systemg"),
    Path("/sys/fs/cgroup/unified/systemg"),
    Path("/sys/fs/cgroup/memory/systemg"),
    Path("/sys/fs/cgroup/cpu/systemg"),
    Path("/sys/fs/cgroup/cpu,cpuacct/systemg"),
    Path("/sys/fs/cgroup/pids/systemg"),  # limits.cgroup.pids_max on a v1 pids hierarchy
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("-p", "--project", metavar="PROJECT", help="remove one project's state")
    which.add_argument(
        "-c", "--config", metavar="FILE", help="remove the state of every project FILE declares"
    )
    parser.add_argument(
        "--force", action="store_true", help="stop running services instead of refusing"
    )


def run(args: argparse.Namespace) -> int:
    target = resolve(args, "purge")
    if args.project is not None:
        return purge_project(target.paths, args.project, force=args.force)
    if args.config is not None:
        for project in declared_projects(args, target.paths):
            purge_project(target.paths, project, force=args.force)
        return 0
    return purge_all(runtimes(target), force=args.force, cgroups=_is_real_system(target))


def declared_projects(args: argparse.Namespace, paths: Paths) -> list[str]:
    """The ids of the projects ``-c FILE`` declares (the file is loaded like ``validate``
    does; an invalid one is its ``SG02xx`` error and nothing is removed)."""
    from systemg.cli.selectors import explicit_config
    from systemg.manifest.load import load_manifest

    found = explicit_config(args, paths)
    assert found is not None  # -c was given
    result = load_manifest(found, environ=os.environ)
    return [project.id for project in result.manifest.projects]


def check_project_id(project: str) -> None:
    if not project or project in (".", "..") or "/" in project or "\0" in project:
        raise SysgError.of(
            Code.PURGE_BAD_ID,
            f"invalid project id {project!r}",
            hint="a project id is one path segment, e.g. `sysg purge -p api`",
        )


def purge_project(paths: Paths, project: str, *, force: bool) -> int:
    check_project_id(project)
    if client.accepts(paths):
        data = client.call(paths, ForgetRequest(project=project, force=force))
        removed = [str(p) for p in data.get("removed") or []]
    else:
        where = paths.project_state_dir(project)
        if not where.is_dir():
            raise SysgError.of(
                Code.PURGE_NO_PROJECT,
                f"no state for project {project!r} in {paths.projects_dir}",
                hint="`sysg status` lists the projects a running supervisor knows",
            )
        _remove(where)
        removed = [str(where)]
    for path in removed:
        out(f"removed {path}")
    out(f"Project '{project}' purged")
    return 0


def runtimes(target: Target) -> list[Paths]:
    """The runtimes a bare purge covers, the one in force first, without duplicates."""
    found = [target.paths]
    if os.geteuid() == 0 and not os.environ.get("SYSTEMG_STATE_DIR"):
        found += [system_paths(os.environ), Paths.for_mode(Mode.USER)]
    unique: list[Paths] = []
    for p in found:
        if all(p.state_dir != q.state_dir for q in unique):
            unique.append(p)
    return unique


def _is_real_system(target: Target) -> bool:
    env = os.environ
    return (
        os.geteuid() == 0
        and not env.get("SYSTEMG_STATE_DIR")
        and not env.get("SYSTEMG_SYSTEM_STATE_DIR")
    )


def live_units(paths: Paths) -> list[str]:
    """``project/service`` of every live unit of the supervisor on ``paths`` (if any)."""
    try:
        data = client.call(paths, StatusRequest())
    except SysgError as exc:
        if exc.code is Code.NO_SUPERVISOR:
            return []
        raise
    reply = StatusReply.from_json(data)
    return [f"{u.project}/{u.service}" for u in reply.units if u.state in LIVE_STATES]


def purge_all(targets: list[Paths], *, force: bool, cgroups: bool) -> int:
    from systemg.cli.shutdown import shutdown

    if not force:
        for paths in targets:
            live = live_units(paths)
            if live:
                names = ", ".join(live[:5]) + (" ..." if len(live) > 5 else "")
                raise SysgError.of(
                    Code.PURGE_REFUSED,
                    f"services are running ({names}); nothing was purged",
                    hint="stop them first (`sysg stop --supervisor`) or use `sysg purge --force`",
                )
    for paths in targets:
        if client.supervisor_pid(paths) or client.accepts(paths):
            shutdown(paths)
    removed: list[Path] = []
    for paths in targets:
        for path in (paths.log_dir, paths.state_dir):
            if path.exists() and not any(path.is_relative_to(r) for r in removed):
                _remove(path)
                removed.append(path)
                out(f"removed {path}")
    if cgroups:
        for path in remove_cgroup_dirs(CGROUP_ROOTS):
            out(f"removed {path}")
    out("All systemg state has been purged" if removed else "Nothing to purge")
    return 0


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink() and os.path.ismount(path):
            # A volume of its own (say /var/log/systemg on another disk): emptied, the
            # mount point itself stays (removing it would be EBUSY).
            for child in path.iterdir():
                _remove(child)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        raise SysgError.of(
            Code.PURGE_IO,
            f"could not remove {exc.filename or path}: {exc.strerror or exc}",
            hint="fix the permission or remove it by hand; the rest was already purged",
        ) from None


def remove_cgroup_dirs(roots: tuple[Path, ...]) -> list[Path]:
    """rmdir every empty cgroup directory under ``roots``, deepest first. Best effort."""
    removed: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        dirs = [Path(d) for d, _, _ in os.walk(root)]
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()  # a cgroup with processes or children refuses (EBUSY): kept
            except OSError:
                continue
            removed.append(d)
    return [d for d in removed if not any(d != r and d.is_relative_to(r) for r in removed)]
