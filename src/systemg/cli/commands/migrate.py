"""``sysg migrate FILE [--in-place]``: a version "1" manifest, or one in the deprecated
single-project shape (``project:`` + top-level ``services:``), rewritten as version "2"
``projects:``.

Prints the version 2 manifest on stdout, or with ``--in-place`` replaces FILE atomically
(a temporary file in the same directory, fsync'd, then renamed over it, with FILE's mode)
after copying the original to ``FILE.bak``. The conversion itself is
``manifest/migrate.py`` (a text edit that keeps comments); the result is validated with the
loader ``sysg start`` uses before anything is printed or written, so a migrated file always
passes ``sysg validate``. Needs no supervisor.

Exit codes: 0 converted (or version 2 without ``project:`` already: the file is printed
unchanged, nothing is written), 1 a field has no version 2 form or the result does not
validate (nothing written), 2 FILE cannot be read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from systemg.cli.console import emit
from systemg.errors import Code, Diagnostic, ManifestError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE", help='the version "1" (or project: shaped) manifest'
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="rewrite FILE (the original is kept as FILE.bak) instead of printing",
    )


def run(args: argparse.Namespace) -> int:
    from systemg.manifest.load import load_manifest
    from systemg.manifest.migrate import migrate

    path = os.path.abspath(args.file)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        emit([Diagnostic(Code.CONFIG_UNREADABLE, f"cannot read {path}: {reason}")], args)
        return 2
    try:
        result = migrate(text, path)
    except ManifestError as exc:
        emit(exc.diagnostics, args)
        return 1
    try:
        load_manifest(path, environ=os.environ, text=result.text.encode())
    except ManifestError as exc:
        head = Diagnostic(
            Code.MIGRATE_UNSUPPORTED,
            "the migrated manifest does not validate; nothing was written",
            hint="fix the problems below in FILE, then run sysg migrate again",
            file=path,
        )
        emit([head, *exc.diagnostics], args)
        return 1
    for note in result.notes:
        sys.stderr.write(f"note: {note}\n")
    if not args.in_place:
        sys.stdout.write(result.text)
        sys.stdout.flush()
        return 0
    if not result.changed:
        return 0
    _replace(path, result.text.encode())
    sys.stderr.write(f"migrated {path} (the original is {path}.bak)\n")
    return 0


def _replace(path: str, data: bytes) -> None:
    """Keep ``path.bak``, then put ``data`` at ``path`` in one rename."""
    shutil.copy2(path, path + ".bak")
    mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".sysg-migrate-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dirfd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)
