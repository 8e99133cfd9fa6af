"""``sysg`` argument parsing and dispatch, with a lazy command table.

Each command lives in ``systemg.cli.commands.<name>`` and exposes::

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int

Only the module of the command being run is imported, so ``sysg --version`` and
``sysg status`` never pay for YAML, psutil or the daemon. Global flags (``--sys``,
``--drop-privileges``, ``--plain``, ``-v``) are accepted before or after the subcommand.

Every ``SysgError`` is rendered as ``error[SGxxxx]: message`` with a ``help:`` line and
turned into an exit code; no traceback reaches the user, not even for a bug (``main``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

from systemg import __version__

if TYPE_CHECKING:
    from systemg.errors import SysgError

# name -> one-line help. The module is imported only when the command runs (or for --help).
COMMANDS: dict[str, str] = {
    "start": "start the supervisor (if needed) and the services of a manifest",
    "stop": "stop services, a project, or the supervisor",
    "restart": "re-read the manifest and reconcile: start added, stop removed, restart changed",
    "status": "show every service: state, pid, uptime, restarts, last exit, CPU, RSS",
    "top": "a live full-screen view: CPU/RSS history, logs, restart or stop with a key",
    "logs": "show or follow service logs (works without a supervisor)",
    "inspect": "one service in depth: what was requested and what the kernel shows",
    "security": "exposure report of each running service, scored as systemd-analyze security",
    "run": "run a cron job now, once, and exit with its exit code",
    "validate": "check a manifest and report every problem with its line",
    "export": "write systemd units for a manifest's services (export systemd)",
    "migrate": 'convert a version "1" manifest to version "2" (stdout, or --in-place)',
    "purge": "stop supervisors and remove state and logs",
    "doctor": "check that state files, the pid file and the process table agree",
    "version": "show the CLI and supervisor versions",
    "completion": "print the bash or zsh completion script",
}
# Hidden: what the completion scripts run for service and project names (cli/complete.py).
COMPLETE = "__complete"


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


def build_parser(only: str | None, *, every: bool = False) -> argparse.ArgumentParser:
    """Build the parser; with ``only`` set, import just that command's module (``every``:
    all of them, for the completion scripts)."""
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
        if name == only or every:
            command_module(name).add_arguments(sp)
    return parser


def _guess_command(argv: list[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Nothing escapes as a traceback (``-v`` shows one for a bug):

    - ``SysgError``: rendered, exit 1 (2 for ``SG0206``);
    - Ctrl-C: exit 130; a closed stdout (``sysg status | head -1``): exit 0, silently;
    - anything else is a bug: ``error[SG0001]: internal error: ...``, exit 70 (EX_SOFTWARE).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    return guarded(lambda: _run(args_list), verbose=bool({"-v", "--verbose"} & set(args_list)))


def guarded(body: Callable[[], int], *, verbose: bool = False, plain: bool = False) -> int:
    """``body()`` as ``main`` runs a command: a ``SysgError`` rendered (exit 1, 2 for
    ``SG0206``), Ctrl-C 130, a closed stdout 0, anything else ``SG0001`` (exit 70)."""
    from systemg.errors import SysgError

    try:
        return body()
    except SysgError as exc:
        return report(exc, plain=plain)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        silence_stdout()
        return 0
    except Exception as exc:
        return _internal_error(exc, verbose=verbose)


def _run(args_list: list[str]) -> int:
    if args_list[:1] == [COMPLETE]:
        from systemg.cli.complete import complete

        return complete(args_list[1:])
    name = _guess_command(args_list)
    parser = build_parser(name)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    from systemg.errors import SysgError

    try:
        return int(command_module(args.command).run(args))
    except SysgError as exc:
        return report(exc, plain=getattr(args, "plain", False))


def report(exc: SysgError, *, plain: bool = False) -> int:
    """Render ``exc`` to stderr as ``error[SGxxxx]: ...``; its exit code (2 for ``SG0206``)."""
    import os

    from systemg.cli.render import render_error
    from systemg.errors import Code

    color = sys.stderr.isatty() and not plain and "NO_COLOR" not in os.environ
    sys.stderr.write(render_error(exc, color=color))
    return 2 if exc.code is Code.NO_SUPERVISOR else 1


EX_SOFTWARE = 70


def _internal_error(exc: Exception, *, verbose: bool) -> int:
    import traceback

    from systemg.cli.render import render_diagnostic
    from systemg.errors import Code, Diagnostic

    if verbose:
        traceback.print_exception(exc)
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    hint = (
        "this is a bug in sysg: please report it with the traceback above"
        if verbose
        else "this is a bug in sysg: please report it with the traceback that "
        "the same command prints with -v"
    )
    try:
        sys.stderr.write(
            render_diagnostic(Diagnostic(Code.INTERNAL, f"internal error: {what}", hint=hint))
        )
        sys.stderr.flush()
    except OSError:
        pass
    return EX_SOFTWARE


def silence_stdout() -> None:
    """stdout's reader went away: point fd 1 at /dev/null so the interpreter's final
    flush does not print a second BrokenPipeError."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
