"""``sysg`` argument parsing and dispatch, with a lazy command table.

Each command lives in ``systemg.cli.commands.<name>`` and exposes::

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int

Only the module of the command being run is imported, so ``sysg --version`` and
``sysg status`` never pay for YAML, psutil or the daemon. Global flags (``--sys``,
``--drop-privileges``, ``--plain``, ``-v``) are accepted before or after the subcommand.

Every ``SysgError`` is rendered as ``error[SGxxxx]: message`` with a ``help:`` line and
turned into an exit code; no traceback reaches the user for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from systemg import __version__

# name -> one-line help. The module is imported only when the command runs (or for --help).
COMMANDS: dict[str, str] = {
    "start": "start the supervisor (if needed) and the services of a manifest",
    "stop": "stop services, a project, or the supervisor",
    "restart": "re-read the manifest and reconcile: start added, stop removed, restart changed",
    "status": "show every service: state, pid, uptime, restarts, last exit, CPU, RSS",
    "logs": "show or follow service logs (works without a supervisor)",
    "inspect": "one service in depth: what was requested and what the kernel shows",
    "validate": "check a manifest and report every problem with its line",
    "purge": "stop supervisors and remove state and logs",
    "version": "show the CLI and supervisor versions",
}


def _add_global_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Subparsers use SUPPRESS so a flag given before the subcommand is not reset after it.
    default = argparse.SUPPRESS if not top else None
    parser.add_argument(
        "--sys",
        dest="sys_mode",
        action="store_true",
        default=False if top else default,
        help="system mode: /var/lib/systemg and /var/log/systemg (requires root)",
    )
    parser.add_argument(
        "--drop-privileges",
        action="store_true",
        default=False if top else default,
        help="as root, run services without `user:` as nobody",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        default=False if top else default,
        help="no colour (also NO_COLOR)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else default,
        help="print progress for each service",
    )


def command_module(name: str) -> ModuleType:
    return importlib.import_module(f"systemg.cli.commands.{name}")


def build_parser(only: str | None) -> argparse.ArgumentParser:
    """Build the parser; with ``only`` set, import just that command's module."""
    parser = argparse.ArgumentParser(
        prog="sysg",
        description="systemg: supervise the services of one YAML manifest.",
    )
    parser.add_argument("--version", action="version", version=f"systemg {__version__}")
    _add_global_flags(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        _add_global_flags(sp, top=False)
        if name == only:
            command_module(name).add_arguments(sp)
    return parser


def _guess_command(argv: list[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    name = _guess_command(args_list)
    parser = build_parser(name)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    from systemg.errors import Code, SysgError

    try:
        return int(command_module(args.command).run(args))
    except SysgError as exc:
        from systemg.cli.render import render_error

        sys.stderr.write(render_error(exc, color=_use_color(args)))
        return 2 if exc.code is Code.NO_SUPERVISOR else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _use_color(args: argparse.Namespace) -> bool:
    import os

    return bool(
        sys.stderr.isatty() and not getattr(args, "plain", False) and "NO_COLOR" not in os.environ
    )
