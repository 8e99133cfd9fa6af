"""A root supervisor only loads manifests no one but root could have written (docs/security.md §2).

Each case goes through the real ``sysg --sys start`` and a real root supervisor: a clear
reason, a nonzero exit, and nothing started (no project registered, no process spawned).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.privileged.system_helpers import sys_status
from tests.support.runtime import Runtime

SERVICE = """\
        exec: ["/usr/bin/python3", "-c", "import time\\nwhile True: time.sleep(1)"]
"""


def manifest(body: str = SERVICE, extra: str = "") -> str:
    return f'version: "2"\nprojects:\n  trust:\n    services:\n      svc:\n{body}{extra}'


def world_writable(rt: Runtime) -> tuple[Path, str]:
    path = rt.write("m.yaml", manifest())
    os.chmod(path, 0o666)  # chmod: the umask would have hidden the bits
    return path, f"{path} is group- or world-writable (mode 0666)"


def group_writable(rt: Runtime) -> tuple[Path, str]:
    path = rt.write("m.yaml", manifest())
    os.chmod(path, 0o664)
    return path, f"{path} is group- or world-writable (mode 0664)"


def symlinked(rt: Runtime) -> tuple[Path, str]:
    real = rt.write("real.yaml", manifest())
    link = rt.work / "m.yaml"
    link.symlink_to(real)
    return link, f"{link} is a symbolic link"


def not_root_owned(rt: Runtime) -> tuple[Path, str]:
    path = rt.write("m.yaml", manifest())
    os.chown(path, 65534, 65534)
    return path, f"{path} is owned by uid 65534, not root"


def bad_include(rt: Runtime) -> tuple[Path, str]:
    inc = rt.write("svc.yaml", SERVICE.replace("        ", ""))
    os.chmod(inc, 0o666)
    path = rt.write(
        "m.yaml",
        'version: "2"\nprojects:\n  trust:\n    services:\n      svc: !include svc.yaml\n',
    )
    return path, f"{inc} is group- or world-writable (mode 0666)"


def bad_env_file(rt: Runtime) -> tuple[Path, str]:
    env = rt.write("svc.env", "GREETING=hello\n")
    os.chmod(env, 0o646)
    path = rt.write("m.yaml", manifest(extra=f"        env:\n          file: {env}\n"))
    return path, f"{env} is group- or world-writable (mode 0646)"


CASES: dict[str, Callable[[Runtime], tuple[Path, str]]] = {
    "world-writable": world_writable,
    "group-writable": group_writable,
    "symlink": symlinked,
    "not-root-owned": not_root_owned,
    "include-world-writable": bad_include,
    "env-file-world-writable": bad_env_file,
}


@pytest.mark.parametrize("case", list(CASES))
def test_system_root_supervisor_refuses_untrusted_manifest(rt: Runtime, case: str) -> None:
    path, reason = CASES[case](rt)
    proc = rt.sysg("--sys", "start", "-c", str(path), "--daemonize")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "SG0703" in proc.stderr, proc.stderr
    assert reason in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    # Nothing started: the supervisor (booted by this start) knows no project.
    if rt.supervisor_pid() is not None:
        assert sys_status(rt)["units"] == []
    # The same file, fixed, is accepted (the refusal was about trust, nothing else).
    if case not in ("symlink",):
        for p in rt.work.iterdir():
            os.chown(p, 0, 0)
            os.chmod(p, 0o644)
        fixed = rt.sysg("--sys", "start", "-c", str(path), "--daemonize")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
