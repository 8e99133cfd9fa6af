"""``sudo sysg purge``: every runtime of root — the system one and root's user mode — is
stopped and removed, each path printed. The system root is moved into the test's directory
with ``SYSTEMG_SYSTEM_STATE_DIR``/``SYSTEMG_SYSTEM_LOG_DIR`` so the real one is untouched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.runtime import SYSG, Runtime, pid_alive, supervisor_processes, wait_for

MANIFEST = 'version: "2"\nservices:\n  idle:\n    command: "exec sleep 300"\n'


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: purges root's runtimes")
def test_root_purge_stops_and_removes_every_runtime(rt: Runtime) -> None:
    base = {
        k: v
        for k, v in rt.env.items()
        if k not in ("SYSTEMG_STATE_DIR", "SYSTEMG_LOG_DIR", "XDG_DATA_HOME")
    }
    home = rt.root / "home"
    system_state, system_logs = rt.root / "sys-lib", rt.root / "sys-log"
    user_state = home / ".local" / "share" / "systemg"
    rt.write("systemg.yaml", MANIFEST)

    def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SYSG, *args], env=env, cwd=rt.work, capture_output=True, text=True, timeout=60
        )

    as_system = {
        **base,
        "SYSTEMG_STATE_DIR": str(system_state),
        "SYSTEMG_LOG_DIR": str(system_logs),
    }
    as_user = {**base, "HOME": str(home)}
    purger = {
        **as_user,
        "SYSTEMG_SYSTEM_STATE_DIR": str(system_state),
        "SYSTEMG_SYSTEM_LOG_DIR": str(system_logs),
    }
    try:
        started = run(as_system, "--sys", "start", "--daemonize")
        assert started.returncode == 0, started.stderr
        user = run(as_user, "start", "--daemonize")
        assert user.returncode == 0, user.stderr
        assert "warning[SG0701]" in user.stderr
        sups = supervisor_processes(system_state) + _user_supervisors(user_state)
        assert len(sups) == 2

        refused = run(purger, "purge")
        assert refused.returncode == 1
        assert "error[SG0401]" in refused.stderr
        assert system_state.exists()
        assert user_state.exists()

        purged = run(purger, "purge", "--force")
        assert purged.returncode == 0, purged.stderr
        assert "SG0702" not in purged.stderr
        for path in (system_state, system_logs, user_state):
            assert f"removed {path}" in purged.stdout
            assert not path.exists()
        assert "All systemg state has been purged" in purged.stdout
        wait_for(lambda: not any(pid_alive(p) for p in sups), timeout=5)
    finally:
        for env in (as_system, as_user):
            if run(env, "status").returncode != 2:
                run(env, "stop", "--supervisor")


def _user_supervisors(state: Path) -> list[int]:
    pid_file = state / "sysg.pid"
    return [int(pid_file.read_text())] if pid_file.exists() else []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs")
def test_a_log_dir_that_is_a_mount_point_is_emptied_not_removed(rt: Runtime) -> None:
    # /var/log/systemg on a volume of its own: purge empties it (rmdir would be EBUSY).
    rt.logs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(rt.logs)], check=True)
    try:
        rt.write("systemg.yaml", MANIFEST)
        rt.sysg("start", "--daemonize", check=True)
        rt.sysg("stop", "--supervisor", check=True)
        assert any(rt.logs.iterdir())
        done = rt.sysg("purge")
        assert done.returncode == 0, done.stderr
        assert "All systemg state has been purged" in done.stdout
        assert os.path.ismount(rt.logs)
        assert list(rt.logs.iterdir()) == []
        assert not rt.state.exists()
    finally:
        subprocess.run(["umount", str(rt.logs)], check=False)
