"""``sysg export systemd [-c F] [-p P] [-s S] [-o DIR] [--prefix NAME] [--install]``.

Loads the manifest exactly as ``sysg validate`` does (an invalid one exports nothing: its
problems are printed and the exit code is validate's), maps each selected project to
systemd units (``systemg.export``) and prints them as one stream with ``# file: NAME``
headers, or writes them atomically into ``-o DIR``, or with ``--install`` (root only) into
``/etc/systemd/system``, then prints the ``systemctl`` line to run — it never runs
systemctl. Every setting without a systemd equivalent is a ``# sysg:`` comment in its unit
and a line on stderr. Exit 0 when nothing was dropped, 3 when something was (the units are
still written), 1/2 for an invalid/unreadable manifest or a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from systemg.errors import Code, SysgError

if TYPE_CHECKING:
    from systemg.export.units import UnitFile

EXIT_DROPPED = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("to", choices=("systemd",), metavar="systemd", help="what to export to")
    parser.add_argument("-c", "--config", metavar="FILE", help="the manifest (YAML)")
    parser.add_argument("-p", "--project", metavar="PROJECT", help="one project, by id")
    parser.add_argument(
        "-s", "--service", metavar="SERVICE", help="one service: NAME or PROJECT/NAME"
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="DIR", help="write the unit files into DIR")
    out.add_argument(
        "--install",
        action="store_true",
        help="(root) write the units into /etc/systemd/system and print the systemctl line",
    )
    parser.add_argument(
        "--prefix", metavar="NAME", help="unit names NAME-<service> and NAME.target (one project)"
    )


def run(args: argparse.Namespace) -> int:
    from systemg.cli.commands.validate import load_or_report
    from systemg.cli.selectors import parse_selector

    selected = parse_selector(args.service, args.project)
    if args.prefix is not None:
        _check_prefix(args.prefix)
    if args.install and os.geteuid() != 0:
        raise SysgError.of(
            Code.REQUIRES_ROOT,
            "--install requires root: it writes into /etc/systemd/system",
            hint="run it with sudo, or write the units elsewhere with -o DIR",
        )
    loaded, code = load_or_report(args)
    if loaded is None:
        return code
    from systemg.export.project import Options, export_project
    from systemg.export.units import Dropped
    from systemg.spawn.sockets import host_address

    _, result = loaded
    projects = [p for p in result.manifest.projects if selected.project in (None, p.id)]
    if selected.service is not None:
        projects = [p for p in projects if p.service(selected.service) is not None]
    if not projects:
        what = selected.service or selected.project
        raise SysgError.of(
            Code.NOT_FOUND,
            f"no service or project '{what}' in the manifest",
            hint="check the name with `sysg validate`, or drop -s/-p to export everything",
        )
    if selected.service is not None and len(projects) > 1:
        raise SysgError.of(
            Code.AMBIGUOUS_SERVICE,
            f"service '{selected.service}' is in several projects: "
            + ", ".join(p.id for p in projects),
            hint=f"use -s PROJECT/{selected.service}",
        )
    if args.prefix is not None and len(projects) > 1:
        raise SysgError.of(
            Code.USAGE,
            "--prefix names the units of one project; the manifest has "
            + ", ".join(p.id for p in projects),
            hint="add -p PROJECT",
        )
    options = Options(
        prefix=args.prefix,
        services=(selected.service,) if selected.service else None,
        resolve_host=host_address,
    )
    units: list[UnitFile] = []
    dropped: list[Dropped] = []
    targets: list[str] = []
    for project in projects:
        exported = export_project(project, options)
        units.extend(exported.units)
        dropped.extend(exported.dropped)
        targets.append(exported.units[-1].name)
    _emit(args, units, targets)
    if dropped:
        sys.stderr.write(
            f"sysg export: {len(dropped)} setting(s) have no systemd equivalent "
            "(written as # sysg: comments in the units):\n"
        )
        sys.stderr.writelines(f"  {d.line()}\n" for d in dropped)
        return EXIT_DROPPED
    return 0


def _emit(args: argparse.Namespace, units: list[UnitFile], targets: list[str]) -> None:
    from systemg.export import writer

    files = units
    if args.install or args.output:
        directory = writer.install_dir(os.environ) if args.install else Path(args.output)
        try:
            written = writer.write_units(directory, files)
        except OSError as exc:
            raise SysgError.of(
                Code.CONFIG_UNREADABLE,
                f"cannot write the units into {directory}: {exc.strerror or exc}",
                hint="check that the directory is writable",
            ) from None
        sys.stdout.writelines(f"wrote {p}\n" for p in written)
        if args.install:
            # The last line, bare, so a script can run it: sysg never runs systemctl.
            sys.stdout.write(
                "systemctl daemon-reload && systemctl enable --now " + " ".join(targets) + "\n"
            )
        return
    sys.stdout.write(writer.stream(files))


def _check_prefix(prefix: str) -> None:
    from systemg.manifest.values import GrammarError, check_name

    try:
        check_name(prefix, "unit name prefix")
    except GrammarError as exc:
        raise SysgError.of(Code.USAGE, f"--prefix: {exc}", hint=exc.hint) from None
