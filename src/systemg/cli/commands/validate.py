"""``sysg validate [-c FILE] [--format [json]]``: report every problem ``sysg start`` would
refuse.

Needs no supervisor and imports no daemon code. *valid*: the loader accepts the file;
*startable*: valid, and the supervisor of this mode could start it (``validate_report``:
a service that switches user or group needs a root one). Exit 0 when valid and startable
(warnings allowed), 1 otherwise, unreadable files included (the ``kind`` says which).

``--format`` alone means json; the JSON document is ``validate_report.report_json``. The
text output renders each diagnostic (code, ``file:line:column``, caret, hint) with its kind
and documentation section, then one verdict line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from systemg.errors import Code, Diagnostic, ManifestError, SysgError

if TYPE_CHECKING:
    from systemg.manifest.load import LoadResult

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2  # load_or_report's, for export; validate itself says 1
FORMATS = ("text", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", metavar="FILE", help="manifest (default ./systemg.yaml, ./sysg.yaml)"
    )
    parser.add_argument(
        "--format",
        metavar="FORMAT",
        nargs="?",
        const="json",
        default="text",
        help="text (default) or json (--format alone)",
    )


def run(args: argparse.Namespace) -> int:
    _check_format(args.format)
    loaded, code = load_or_report(args)
    if loaded is None:
        return EXIT_INVALID if code else EXIT_VALID
    from systemg.cli.validate_report import mode_findings

    file, result = loaded
    root = bool(getattr(args, "sys_mode", False)) or os.geteuid() == 0
    findings = mode_findings(
        result.manifest, root=root, user_exists=_user_exists, group_exists=_group_exists
    )
    startable = not any(f.severity == "error" for f in findings)
    projects = result.manifest.projects
    services = sum(len(p.services) for p in projects)
    summary = f"({len(projects)} project(s), {services} service(s))"
    _report(
        file,
        (*result.warnings, *findings),
        args,
        valid=True,
        startable=startable,
        summary=summary,
    )
    return EXIT_VALID if startable else EXIT_INVALID


def _check_format(fmt: str) -> None:
    if fmt in FORMATS:
        return
    hint = "use --format json (or no --format for text)"
    if fmt == "xml":
        raise SysgError.of(Code.USAGE, "--format xml is not supported by sysg validate", hint=hint)
    raise SysgError.of(Code.USAGE, f"unknown --format {fmt!r}", hint=hint)


def load_or_report(args: argparse.Namespace) -> tuple[tuple[str, LoadResult] | None, int]:
    """Find and load ``args.config`` as ``validate`` does: ``((file, result), 0)``, or
    ``(None, exit code)`` once every problem has been reported: 1 invalid, 2 unreadable
    (``export`` shares this and keeps those two codes)."""
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
        shown = os.path.abspath("systemg.yaml")
        _report(shown, (missing,), args, valid=False, unreadable=True)
        return None, EXIT_UNREADABLE
    file = str(found)
    try:
        result = load_manifest(found, environ=os.environ)
    except ManifestError as exc:
        unreadable = any(
            d.code is Code.CONFIG_UNREADABLE and d.file in ("", file) for d in exc.diagnostics
        )
        _report(file, exc.diagnostics, args, valid=False, unreadable=unreadable)
        return None, EXIT_UNREADABLE if unreadable else EXIT_INVALID
    return (file, result), EXIT_VALID


def _report(
    file: str,
    diagnostics: tuple[Diagnostic, ...],
    args: argparse.Namespace,
    *,
    valid: bool,
    startable: bool = False,
    unreadable: bool = False,
    summary: str = "",
) -> None:
    from systemg.cli.validate_report import classify, report_json

    if getattr(args, "format", "text") == "json":
        doc = report_json(file, diagnostics, valid=valid, startable=startable)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    from systemg.cli.render import render_diagnostic

    ok = valid and startable
    stream = sys.stdout if ok else sys.stderr
    color = stream.isatty() and not getattr(args, "plain", False) and "NO_COLOR" not in os.environ
    sources: dict[str, str | None] = {}
    out: list[str] = []
    for d in diagnostics:
        if d.file and d.file not in sources:
            sources[d.file] = _source(d.file)
        kind = classify(d)
        note = f"kind: {kind.name} (see {kind.doc})"
        out.append(render_diagnostic(d, color=color, source=sources.get(d.file), notes=(note,)))
    errors = sum(1 for d in diagnostics if d.severity == "error")
    if ok:
        out.append(f"✓ valid  {file} {summary}".rstrip() + "\n")
    elif unreadable:
        out.append(f"✗ unreadable  {file}\n")
    elif valid:
        out.append(f"✗ not startable in this mode  {file} · {errors} problem(s)\n")
    else:
        out.append(f"✗ invalid  {file} · {errors} problem(s)\n")
    stream.write("\n".join(out))


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _source(path: str) -> str | None:
    """The text of ``path`` for the caret display; None when it is unreadable or huge."""
    try:
        p = Path(path)
        if not p.is_file() or p.stat().st_size > 4 * 1024 * 1024:
            return None
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
