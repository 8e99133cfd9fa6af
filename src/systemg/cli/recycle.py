"""Version drift: ``sysg restart`` against a supervisor of another systemg version.

After ``pip install -U systemg`` the resident supervisor still runs the old code. A restart
of everything (no ``-s``) then **recycles** it, as the upstream does: it validates every
manifest the new supervisor will load first (an invalid one: ``SG0303``, and nothing is
touched), stops the old supervisor and its services (``shutdown``), boots this version's
and starts those manifests. The services come back on new pids under the new supervisor.
``restart -s NAME`` never recycles (it asks the running supervisor, whatever its version).

Which manifests: ``-c FILE`` if given, else the ones the old supervisor registered (its
``version`` reply lists them; an older supervisor's state files say the same).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from systemg import __version__
from systemg.cli import boot, client, progress
from systemg.cli.deadlines import READ_ONLY, Wait, mutating
from systemg.cli.mode import Target
from systemg.cli.selectors import Selection
from systemg.errors import Code, Diagnostic, SysgError
from systemg.paths import Paths
from systemg.protocol.messages import StartRequest, VersionRequest


def drifted(paths: Paths) -> dict[str, Any] | None:
    """The running supervisor's ``version`` reply if its version is not this CLI's."""
    try:
        sup = client.call(paths, VersionRequest(), Wait(READ_ONLY))
    except SysgError:
        return None  # not answering is the caller's business (SG0205 on the real request)
    version = sup.get("version")
    return sup if isinstance(version, str) and version != __version__ else None


def registered(paths: Paths, sup: dict[str, Any]) -> list[str]:
    """The manifests the old supervisor loaded: from its reply, else from its state."""
    listed = sup.get("manifests")
    if isinstance(listed, list):
        return sorted({str(m) for m in listed if isinstance(m, str) and m})
    found: set[str] = set()
    try:
        entries = sorted(paths.projects_dir.iterdir())
    except OSError:
        return []
    for entry in entries:
        try:
            data = json.loads((entry / "state.json").read_text())
        except (OSError, ValueError):
            continue
        path = data.get("manifest_path") if isinstance(data, dict) else None
        if isinstance(path, str) and path:
            found.add(path)
    return sorted(found)


def recycle(
    args: argparse.Namespace,
    target: Target,
    sel: Selection,
    config: str | None,
    sup: dict[str, Any],
) -> int:
    from systemg.cli.commands.start import on_progress, report
    from systemg.cli.shutdown import shutdown
    from systemg.manifest.load import load_manifest

    old = f"{sup.get('version')} (pid {sup.get('pid')})"
    manifests = [config] if config else registered(target.paths, sup)
    problems: list[Diagnostic] = []
    for path in manifests:
        try:
            load_manifest(path, environ=os.environ)
        except SysgError as exc:  # ManifestError included: errors first, then warnings
            problems.extend(d for d in exc.diagnostics if d.severity == "error")
    if problems:
        raise SysgError(
            Diagnostic(
                Code.RECYCLE_REFUSED,
                f"the supervisor {old} runs another version than this sysg ({__version__}) "
                "and was not recycled: a manifest it would load is invalid (below); nothing "
                "was changed",
                hint="fix the manifest, then run `sysg restart` again",
            ),
            *problems,
        )
    sys.stderr.write(
        f"note: supervisor {old} is another version than this sysg ({__version__}); recycling it\n"
    )
    if not shutdown(target.paths, wait=mutating(args.timeout)):
        raise SysgError.of(
            Code.RECYCLE_REFUSED,
            f"the supervisor {old} would not stop, so it was not recycled",
            hint=f"see {target.paths.supervisor_log}; `sysg stop --supervisor` ends it",
        )
    boot.ensure_supervisor(target.paths, drop_privileges=target.drop_privileges)
    status = 0
    chosen: list[str | None] = list(manifests) or [None]
    for manifest in chosen:
        line = progress.Line() if progress.wanted(args) else None
        request = StartRequest(
            config=manifest,
            project=sel.project,
            drop_privileges=target.drop_privileges,
            environ=client.request_environ(),
            progress=line is not None,
        )
        try:
            data = client.call(target.paths, request, mutating(args.timeout), on_progress(line))
        finally:
            if line is not None:
                line.clear()
        status = max(status, report(data, args, verb="restarted"))
    return status
