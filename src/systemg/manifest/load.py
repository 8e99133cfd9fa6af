"""``load_manifest``: the one impure entry point of the manifest layer (it reads files).

path -> bytes (``trust.read_file``) -> located tree with includes (``tree.Composer``) ->
``Manifest`` (``parse.build``). Raises ``ManifestError`` carrying every diagnostic of the file
and what it includes, sorted by position; never any other exception for bad input.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

from systemg.errors import Code, Diagnostic, ManifestError
from systemg.manifest.check import Checker
from systemg.manifest.model import Manifest
from systemg.manifest.parse import build
from systemg.manifest.tree import Composer
from systemg.manifest.trust import read_file


@dataclass(frozen=True, slots=True)
class LoadResult:
    manifest: Manifest
    warnings: tuple[Diagnostic, ...]


def load_manifest(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str],
    require_trusted: bool = False,
    text: bytes | None = None,
) -> LoadResult:
    """Read, parse and validate the manifest at ``path``.

    ``environ`` supplies ``${VAR}`` values. ``require_trusted`` (a root supervisor) refuses
    any manifest, include or env file that is a symlink, not root-owned, or group/world-writable.
    ``text``: the manifest's content, not read from ``path`` (``sysg migrate`` validates what
    it is about to write); includes and env files are still read relative to ``path``.
    """
    absolute = os.path.abspath(os.fspath(path))
    trusted_read = functools.partial(read_file, trusted=require_trusted)

    def read(name: str) -> bytes:
        return text if text is not None and name == absolute else trusted_read(name)

    composer = Composer(read, os.path.dirname(absolute))
    checker = Checker(environ)
    root = composer.compose_root(absolute)
    manifest = None
    try:
        if root is not None:
            manifest = build(root, path=absolute, ck=checker, read=read)
    except RecursionError:
        checker.errors.append(
            Diagnostic(Code.INVALID_YAML, "the manifest is nested too deeply", file=absolute)
        )
    errors = sorted(
        (*composer.diagnostics, *checker.errors), key=functools.partial(_order, absolute)
    )
    if errors or manifest is None:
        if not errors:
            errors = [Diagnostic(Code.INTERNAL, "the manifest could not be parsed", file=absolute)]
        raise ManifestError(*errors, *checker.warnings)
    return LoadResult(manifest, tuple(checker.warnings))


def _order(root: str, d: Diagnostic) -> tuple[bool, str, int, int]:
    return (d.file != root, d.file, d.line or 0, d.column or 0)
