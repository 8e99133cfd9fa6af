"""``-s``/``-p``/``-c`` flags shared by the commands, and the ``project/service`` form.

``-s web`` names a service in any project (the supervisor resolves it; several matches are
``SG0006``); ``-s api/web`` is ``-p api -s web``; ``-p`` disagreeing with the prefix is
``SG0201``. Checked here, before anything is sent.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from systemg.errors import Code, SysgError
from systemg.paths import Paths, find_config


@dataclass(frozen=True, slots=True)
class Selection:
    project: str | None = None
    service: str | None = None


CONFIG_HELP = (
    "the manifest (YAML); checked to exist. As upstream, it does not narrow what a running "
    "supervisor shows: -p/-s do"
)


def add_selector_arguments(
    parser: argparse.ArgumentParser, *, config: bool = True, service_required: bool = False
) -> None:
    if config:
        parser.add_argument("-c", "--config", metavar="FILE", help="the manifest (YAML)")
    parser.add_argument(
        "-s",
        "--service",
        metavar="SERVICE",
        required=service_required,
        help="one service: NAME or PROJECT/NAME",
    )
    parser.add_argument("-p", "--project", metavar="PROJECT", help="one project, by id")


def parse_selector(service: str | None, project: str | None) -> Selection:
    """Split ``project/service`` and check it against ``-p``."""
    if project is not None and not project.strip():
        raise SysgError.of(Code.USAGE, "-p needs a project id", hint="e.g. `-p api`")
    if service is None:
        return Selection(project or None, None)
    if "/" in service:
        prefix, _, name = service.partition("/")
        if not prefix or not name or "/" in name:
            raise SysgError.of(
                Code.USAGE,
                f"invalid service selector {service!r}",
                hint="use NAME or PROJECT/NAME, e.g. `-s api/web`",
            )
        if project is not None and project != prefix:
            raise SysgError.of(
                Code.SELECTOR_MISMATCH,
                f"-p {project!r} does not match the project in -s {service!r}",
                hint=f"use `-s {prefix}/{name}` alone, or `-p {project} -s {name}`",
            )
        return Selection(prefix, name)
    if not service.strip():
        raise SysgError.of(Code.USAGE, "-s needs a service name", hint="e.g. `-s web`")
    return Selection(project, service)


def selection(args: argparse.Namespace) -> Selection:
    return parse_selector(getattr(args, "service", None), getattr(args, "project", None))


def explicit_config(args: argparse.Namespace, paths: Paths) -> str | None:
    """The absolute path of ``-c FILE`` (None without ``-c``); SG0203 if it is not a file."""
    explicit = getattr(args, "config", None)
    if not explicit:
        return None
    found = find_config(explicit, paths)
    if found is None or not found.is_file():
        raise SysgError.of(
            Code.CONFIG_UNREADABLE,
            f"manifest not found: {explicit}",
            hint="check the path given to -c",
        )
    return str(found)
