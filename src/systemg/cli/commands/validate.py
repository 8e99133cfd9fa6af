"""``sysg validate [-c FILE] [--format json]``: report every problem ``sysg start`` would refuse.

Needs no supervisor and imports no daemon code. Exit 0 valid (warnings allowed), 1 invalid,
2 unreadable (no file found, missing, permission denied, not a regular file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from systemg.errors import Code, Diagnostic, ManifestError

if TYPE_CHECKING:
    from systemg.manifest.load import LoadResult

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", metavar="FILE", help="manifest (default ./systemg.yaml, ./sysg.yaml)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    loaded, code = load_or_report(args)
    if loaded is None:
        return code
    file, result = loaded
    projects = result.manifest.projects
    services = sum(len(p.services) for p in projects)
    summary = f"({len(projects)} project(s), {services} service(s))"
    return _report(file, result.warnings, EXIT_VALID, args, summary=summary)


def load_or_report(args: argparse.Namespace) -> tuple[tuple[str, LoadResult] | None, int]:
    """Find and load ``args.config`` as ``validate`` does: ``((file, result), 0)``, or
    ``(None, exit code)`` once every problem has been reported (``export`` shares this)."""
    from systemg.manifest.load import load_manifest
    from systemg.paths import Mode, Paths, find_config

    mode = Mode.SYSTEM if getattr(args, "sys_mode", False) else Mode.USER
    found = find_config(args.config, Paths.for_mode(mode))
    if found is None:
        missing = Diagnostic(
            Code.CONFIG_UNREADABLE,
            "no manifest found: neither ./systemg.yaml nor ./sysg.yaml exists",
            hint="pass the file with -c FILE",
        )
        return None, _report("", (missing,), EXIT_UNREADABLE, args, summary=None)
    file = str(found)
    try:
        result = load_manifest(found, environ=os.environ)
    except ManifestError as exc:
        unreadable = any(
            d.code is Code.CONFIG_UNREADABLE and d.file in ("", file) for d in exc.diagnostics
        )
        code = EXIT_UNREADABLE if unreadable else EXIT_INVALID
        return None, _report(file, exc.diagnostics, code, args, summary=None)
    return (file, result), EXIT_VALID


def _report(
    file: str,
    diagnostics: tuple[Diagnostic, ...],
    code: int,
    args: argparse.Namespace,
    *,
    summary: str | None,
) -> int:
    if getattr(args, "format", "text") == "json":
        doc = {
            "file": file,
            "valid": code == EXIT_VALID,
            "diagnostics": [d.to_json() for d in diagnostics],
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return code
    from systemg.cli.render import render_diagnostic

    stream = sys.stdout if code == EXIT_VALID else sys.stderr
    color = stream.isatty() and not getattr(args, "plain", False) and "NO_COLOR" not in os.environ
    sources: dict[str, str | None] = {}
    out: list[str] = []
    for d in diagnostics:
        if d.file and d.file not in sources:
            sources[d.file] = _source(d.file)
        out.append(render_diagnostic(d, color=color, source=sources.get(d.file)))
    errors = sum(1 for d in diagnostics if d.severity == "error")
    shown = file or "(no file)"
    if code == EXIT_VALID:
        out.append(f"✓ valid  {shown} {summary or ''}".rstrip() + "\n")
    elif code == EXIT_UNREADABLE:
        out.append(f"✗ unreadable  {shown}\n")
    else:
        out.append(f"✗ invalid  {shown} · {errors} problem(s)\n")
    stream.write("\n".join(out))
    return code


def _source(path: str) -> str | None:
    """The text of ``path`` for the caret display; None when it is unreadable or huge."""
    try:
        p = Path(path)
        if not p.is_file() or p.stat().st_size > 4 * 1024 * 1024:
            return None
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
