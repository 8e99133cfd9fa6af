"""The ``sysg`` executable: route argv to the CLI or to the resident supervisor.

This is the only module allowed to know both ``cli`` and ``daemon`` (import-linter keeps
them independent). It imports nothing heavy at module level, so ``sysg --version`` pays
only for this file and the CLI's argument parser.

The supervisor is the same executable re-run as ``sysg [--sys] supervise ...`` so its
process name stays ``sysg`` and ``pgrep -x sysg`` finds it.
"""

from __future__ import annotations

import os
import sys

# Internal verbs that start long-lived processes instead of talking to one.
_INTERNAL = {"supervise": "systemg.daemon.main", "fdholder": "systemg.daemon.fdholder"}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        # The most scripted call of all: answer before importing argparse or anything else.
        from systemg import __version__

        try:
            sys.stdout.write(f"systemg {__version__}\n")
            sys.stdout.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    verb = next((a for a in args if not a.startswith("-")), None)
    if verb in _INTERNAL:
        import gc
        import importlib

        # Performance: no cyclic GC while the long-lived process imports its modules (~50
        # collections that find next to nothing), then every object imported so far goes
        # to the permanent generation (gc.freeze): later collections, e.g. while a cold
        # start spawns 100 services, never rescan the ~20k objects of the imported code,
        # and forked children share those pages instead of copying them when GC touches them.
        gc.disable()
        try:
            module = importlib.import_module(_INTERNAL[verb])
        finally:
            gc.freeze()
            gc.enable()
        entry = module.main
        code = int(entry(args))
        if argv is None and sys.gettrace() is None and sys.getprofile() is None:
            # Performance: the daemon has already stopped its services and closed its files;
            # tearing down the interpreter (freeing every module and object) would add
            # ~30 ms to `sysg stop --supervisor`/SIGTERM before the pid is gone. (Not under a
            # tracer or profiler: coverage and cProfile write their data at exit.)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    if verb in ("status", "stop"):
        # Performance: a plain `sysg status` / `sysg stop` in one request and no CLI
        # imports (cli/quick.py); anything unusual returns None: the full path below.
        from systemg.cli import quick

        try:
            quick_code = quick.status(args) if verb == "status" else quick.stop(args)
        except KeyboardInterrupt:
            return 130
        if quick_code is not None:
            return quick_code
    try:
        from systemg.cli.main import main as cli_main
    except KeyboardInterrupt:  # Ctrl-C while importing; cli_main guards everything after
        return 130
    return cli_main(args)
