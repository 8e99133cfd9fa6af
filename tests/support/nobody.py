"""Run ``sysg`` as another user (``nobody``) the way a person without sudo would.

The test venv usually lives under ``/root`` (mode 0700), which ``nobody`` cannot enter, so
this builds, once per session, a venv on ``/usr/bin/python3.11`` in a world-readable
place under ``/tmp`` with this checkout installed into it, and runs its ``sysg`` through
``setpriv --reuid=nobody --regid=nogroup --clear-groups``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
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
    tmp = Path(f"{venv}.building.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(tmp)], check=True)
    # Build from a copy so the root-only checkout is not needed at run time.
    subprocess.run(
        [str(tmp / "bin" / "pip"), "install", "-q", "--no-warn-script-location", str(REPO)],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    # The venv's scripts hard-code the interpreter path: rebuild them for the final name.
    if venv.exists():
        shutil.rmtree(venv, ignore_errors=True)
    subprocess.run(["chmod", "-R", "a+rX", str(tmp)], check=True)
    tmp.rename(venv)
    for script in (venv / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            data = script.read_bytes()
            if data.startswith(b"#!") and str(tmp).encode() in data:
                script.write_bytes(data.replace(str(tmp).encode(), str(venv).encode()))
    cfg = venv / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(tmp), str(venv)))
    assert exe.exists(), f"no sysg in {venv}: {sys.executable}"
    return str(exe)
