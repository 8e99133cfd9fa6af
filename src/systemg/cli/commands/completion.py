"""``sysg completion bash|zsh``: print the shell completion script.

The script is generated from the parser ``sysg`` itself parses with (``cli/completion.py``),
so it completes every command and flag of this version; service and project names come
from the running supervisor when the user presses Tab. Install it for bash as
``/usr/share/bash-completion/completions/sysg`` and for zsh as ``_sysg`` in a directory of
``$fpath`` (``scripts/install-systemg.sh`` does both), or load it for one shell with
``source <(sysg completion bash)``.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete for")


def run(args: argparse.Namespace) -> int:
    from systemg.cli.completion import bash_script, spec_of, zsh_script
    from systemg.cli.main import build_parser

    spec = spec_of(build_parser(None, every=True))
    sys.stdout.write(bash_script(spec) if args.shell == "bash" else zsh_script(spec))
    return 0
