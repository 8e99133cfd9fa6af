"""Where CLI output goes: diagnostics to stderr, results to stdout, colour decided once.

Colour is on only when the stream is a terminal, ``--plain`` is absent and ``NO_COLOR`` is
unset. Rendering itself stays pure (``render``, ``render_status``); this module only writes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import TextIO

from systemg.errors import Diagnostic


def use_color(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    out = sys.stderr if stream is None else stream
    return bool(out.isatty() and not getattr(args, "plain", False) and "NO_COLOR" not in os.environ)


def emit(diagnostics: Iterable[Diagnostic], args: argparse.Namespace) -> None:
    """Render each diagnostic to stderr."""
    from systemg.cli.render import render_diagnostic

    color = use_color(args)
    for d in diagnostics:
        sys.stderr.write(render_diagnostic(d, color=color))
    sys.stderr.flush()


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
