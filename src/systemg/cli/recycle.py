"""Version drift: ``sysg restart`` against a supervisor of another systemg version.

After ``pip install -U systemg`` the resident supervisor still runs the old code. A restart
without ``-s`` then **recycles** it, as the upstream does: it validates every manifest the
new supervisor will load first (an invalid one: ``SG0303``, and nothing is touched), ends
the old supervisor the way a crash would (``_end_keeping_services``: its services run on),
boots this version's — which re-adopts every service by pid and start time — and then runs
the restart that was asked for against it. So ``restart`` bounces everything, ``restart -p
P`` only P, and the services of other projects keep their pids throughout.
``restart -s NAME`` never recycles (it asks the running supervisor, whatever its version).

Which manifests: ``-c FILE`` if given, else the ones the old supervisor registered (its
``version`` reply lists them; an older supervisor's state files say the same).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from systemg import __version__
from systemg.cli import boot, client
from systemg.cli.deadlines import READ_ONLY, Wait
from systemg.cli.mode import Target
from systemg.errors import Code, Diagnostic, SysgError
from systemg.paths import Paths
from systemg.protocol.messages import VersionRequest


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


def replace_supervisor(target: Target, config: str | None, sup: dict[str, Any]) -> None:
    """Validate, end the old supervisor keeping its services, boot this version's (which
    re-adopts them); the caller then sends its restart. Raises SG0303 when refused."""
    from systemg.cli import liveness
    from systemg.manifest.load import load_manifest

    old = f"{sup.get('version')} (pid {sup.get('pid')})"
    # Everything the new supervisor will load: what the old one registered (it re-adopts
    # those projects), and FILE.
    manifests = sorted({*registered(target.paths, sup), *([config] if config else [])})
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
    pid = liveness.identify(target.paths)
    sys.stderr.write(
        f"note: supervisor {old} is another version than this sysg ({__version__}); "
        "recycling it (its services are re-adopted by the new one)\n"
    )
    if pid is not None and not _end_keeping_services(pid):
        raise SysgError.of(
            Code.RECYCLE_REFUSED,
            f"the supervisor {old} would not exit, so it was not recycled",
            hint=f"see {target.paths.supervisor_log}; `sysg stop --supervisor` ends it",
        )
    boot.ensure_supervisor(target.paths, drop_privileges=target.drop_privileges)


def _end_keeping_services(pid: int, timeout: float = 10.0) -> bool:
    """End the old supervisor the way a crash would, so its services run on: every change
    of its state is on disk when it happens (``store``), its fd holder keeps the services'
    pipes, and the next supervisor re-adopts each one by pid and start time. (Its own
    shutdown would stop them all, other projects included.)"""
    import signal
    import time

    from systemg import proc
    from systemg.cli import liveness

    start = proc.start_time(pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.start_time(pid) != start or liveness.state(pid) in ("", "Z"):
            return True
        time.sleep(0.02)
    return False
