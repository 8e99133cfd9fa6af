"""Mode and privilege rules as a person meets them, through the real ``sysg`` executable.

Nothing here needs a supervisor: every case is decided before a request would be sent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.nobody import AS_NOBODY, world_readable_sysg
from tests.support.runtime import Runtime

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root to run sysg as nobody / as root")


def _root_env(rt: Runtime, home: Path, system: Path) -> dict[str, str]:
    """Root without SYSTEMG_STATE_DIR, with the system root moved into the test's dir."""
    env = {
        k: v
        for k, v in rt.env.items()
        if k not in ("SYSTEMG_STATE_DIR", "SYSTEMG_LOG_DIR", "XDG_DATA_HOME")
    }
    env.update(
        {
            "HOME": str(home),
            "SYSTEMG_SYSTEM_STATE_DIR": str(system / "lib"),
            "SYSTEMG_SYSTEM_LOG_DIR": str(system / "log"),
        }
    )
    return env


def test_status_without_supervisor_is_sg0206_exit_2(rt: Runtime) -> None:
    proc = rt.sysg("status")
    assert proc.returncode == 2
    assert "error[SG0206]: no supervisor is running" in proc.stderr
    assert "help: start one with `sysg start --daemonize`" in proc.stderr
    assert "sysg logs" not in proc.stderr
    assert proc.stdout == ""
    as_json = rt.sysg("status", "--format", "json")
    assert as_json.returncode == 2
    assert "SG0206" in as_json.stderr


def test_version_without_supervisor(rt: Runtime) -> None:
    proc = rt.sysg("version", check=True)
    assert proc.stdout.splitlines() == ["sysg 0.1.0 (this binary)", "supervisor not running"]
    doc = json.loads(rt.sysg("version", "--format", check=True).stdout)
    assert {k: doc[k] for k in ("cli", "supervisor", "supervisor_pid", "supervisor_binary")} == {
        "cli": "0.1.0",
        "supervisor": None,
        "supervisor_pid": None,
        "supervisor_binary": None,
    }


def test_bad_selector_is_refused_before_sending(rt: Runtime) -> None:
    proc = rt.sysg("status", "-s", "api/web", "-p", "other")
    assert proc.returncode == 1
    assert "error[SG0201]" in proc.stderr


@needs_root
def test_sys_as_nobody_is_sg0704() -> None:
    sysg = world_readable_sysg()
    with_env = Runtime()
    try:
        proc = with_env.sysg("--sys", "status", exe=sysg, prefix=AS_NOBODY)
        assert proc.returncode == 1, proc.stderr
        assert "error[SG0704]: --sys requires root" in proc.stderr
        assert "sudo sysg --sys" in proc.stderr
        after = with_env.sysg("start", "--sys", "--daemonize", exe=sysg, prefix=AS_NOBODY)
        assert after.returncode == 1
        assert "SG0704" in after.stderr
        assert not with_env.state.exists()  # refused before anything was created
    finally:
        with_env.close()


@needs_root
def test_drop_privileges_as_nobody_warns_once(rt: Runtime) -> None:
    sysg = world_readable_sysg()
    os.chmod(rt.root, 0o777)  # nobody's state root
    proc = rt.sysg("--drop-privileges", "status", exe=sysg, prefix=AS_NOBODY)
    assert proc.stderr.count("--drop-privileges") == 1
    assert "warning[SG0705]" in proc.stderr
    # SYSTEMG_STATE_DIR names this (absent) supervisor: no fallback to a system one that
    # may exist on the host, so "no supervisor" whatever else runs here.
    assert proc.returncode == 2, proc.stderr


@needs_root
def test_root_without_sys_while_system_state_exists_is_sg0702(rt: Runtime, tmp_path: Path) -> None:
    import subprocess

    from tests.support.runtime import SYSG

    system = tmp_path / "system"
    (system / "lib").mkdir(parents=True)
    (system / "lib" / "sysg.pid").write_text("1\n")
    env = _root_env(rt, tmp_path / "home", system)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SYSG, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
        )

    refused = run("status")
    assert refused.returncode == 1
    assert "error[SG0702]" in refused.stderr
    assert "sudo sysg --sys status" in refused.stderr
    # purge is excepted: it goes ahead (nothing of root's user mode to remove here).
    purge = run("purge", "-p", "nothing")
    assert "SG0702" not in purge.stderr
    # No system state: one SG0701 warning and carry on.
    (system / "lib" / "sysg.pid").unlink()
    warned = run("status")
    assert warned.returncode == 2
    assert warned.stderr.count("warning[SG0701]") == 1
    assert f"state goes to {tmp_path / 'home'}" in warned.stderr


def test_status_and_version_stay_light(rt: Runtime) -> None:
    """`sysg status` must not pay for YAML, psutil, rich (`sysg top`'s), the manifest or
    the daemon."""
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io\n"
        "from systemg.cli.main import main\n"
        "sink = io.StringIO()\n"
        "with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):\n"
        "    main(['status']); main(['version']); main(['status', '--format', 'json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'psutil', 'rich')\n"
        "               or m.startswith(('systemg.daemon', 'systemg.manifest')))\n"
        "print(heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=rt.env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
