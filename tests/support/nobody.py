"""Run ``sysg`` as another user (``nobody``) the way a person without sudo would.

The test venv usually lives under ``/root`` (mode 0700), which ``nobody`` cannot enter, so
this builds, once per session, a venv on ``/usr/bin/python3.11`` in a world-readable
place under ``/tmp`` with this checkout installed into it, and runs its ``sysg`` through
``setpriv --reuid=nobody --regid=nogroup --clear-groups``.

Parallel test workers (pytest-xdist) share that venv: the build runs under an exclusive
``flock`` on a lock file next to it, so one worker builds while the others wait, and none
sees (or removes) a venv that is only half made.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3.11"
AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")


def _source_digest() -> str:
    h = hashlib.sha256()
    for path in sorted((REPO / "src").rglob("*.py")):
        h.update(path.read_bytes())
    h.update((REPO / "pyproject.toml").read_bytes())
    return h.hexdigest()[:12]


def world_readable_sysg() -> str:
    """Path of a ``sysg`` that any user can execute (built on demand, cached by source hash)."""
    if not Path(SYSTEM_PYTHON).exists() or shutil.which("setpriv") is None:
        raise RuntimeError(f"needs {SYSTEM_PYTHON} and setpriv")
    venv = Path(f"/tmp/sysg-world-venv-{_source_digest()}")
    exe = venv / "bin" / "sysg"
    if exe.exists():
        return str(exe)
    with _locked(Path(f"{venv}.lock")):
        if not exe.exists():  # another worker may have built it while this one waited
            _build(venv)
    assert exe.exists(), f"no sysg in {venv}: {sys.executable}"
    return str(exe)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _build(venv: Path) -> None:
    """Build the venv under a temporary name, then rename it into place (under the lock)."""
    tmp = Path(f"{venv}.building.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(tmp)], check=True)
    # Build from a copy so the root-only checkout is not needed at run time.
    subprocess.run(
        [str(tmp / "bin" / "pip"), "install", "-q", "--no-warn-script-location", str(REPO)],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    # The venv's scripts hard-code the interpreter path: point them at the final name before
    # the rename, so that ``sysg`` exists under that name only once it can run.
    for script in (tmp / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            data = script.read_bytes()
            if data.startswith(b"#!") and str(tmp).encode() in data:
                script.write_bytes(data.replace(str(tmp).encode(), str(venv).encode()))
    cfg = tmp / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(tmp), str(venv)))
    subprocess.run(["chmod", "-R", "a+rX", str(tmp)], check=True)
    if venv.exists():  # a half-made venv of an interrupted build
        shutil.rmtree(venv, ignore_errors=True)
    tmp.rename(venv)
