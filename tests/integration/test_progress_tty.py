"""The progress line in a real terminal (a pty) against a real supervisor with 21 services,
and its absence when stdout is a pipe or with ``--plain``.

One service (``migrate``) is a one-shot the others of every fourth wait for, so the line
has something to say while they wait (``svc00 waiting for migrate``).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from tests.support.runtime import SYSG, Runtime

PROGRESS = b"\r\x1b[K"


def manifest() -> str:
    lines = [
        'version: "2"',
        "projects:",
        "  big:",
        "    services:",
        '      migrate: {command: "sleep 1; exit 0", restart_policy: never}',
    ]
    for i in range(20):
        dep = ", depends_on: [{service: migrate, condition: completed}]" if i % 4 == 0 else ""
        lines.append(f'      svc{i:02d}: {{command: "exec sleep 300", stop_timeout: 5s{dep}}}')
    return "\n".join(lines) + "\n"


def in_pty(rt: Runtime, *args: str, timeout: float = 60.0) -> tuple[int, bytes]:
    """Run sysg with stdout and stderr on a pty; its exit code and all it wrote."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, nothing else
        os.chdir(rt.work)
        os.execve(SYSG, [SYSG, *args], {**rt.env, "TERM": "xterm", "COLUMNS": "120"})
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def test_progress_on_a_terminal_then_the_usual_summary(rt: Runtime) -> None:
    rt.write("systemg.yaml", manifest())
    rc, out = in_pty(rt, "start", "--daemonize")
    assert rc == 0, out
    text = out.decode()
    assert PROGRESS + b"starting " in out
    assert "/21" in text
    assert "svc00 waiting for migrate" in text
    # The last line drawn is erased before the summary, which is all that stays.
    assert text.endswith("\r\x1b[KProject 'big' started (21 services)\r\n")
    assert all(u["phase"] in ("running", "exited") for u in rt.status()["units"])

    rc, out = in_pty(rt, "restart", "-s", "migrate")
    assert rc == 0, out
    assert PROGRESS + b"restarting " in out
    assert out.decode().endswith("\r\x1b[KService 'migrate' restarted\r\n")

    rc, out = in_pty(rt, "stop")
    assert rc == 0, out
    assert PROGRESS + b"stopping " in out
    assert out.decode().endswith("\r\x1b[KAll services stopped\r\n")


def _drain(master: int) -> bytes:
    """What the terminal got; EIO once its last writer closed it (with nothing left)."""
    out = b""
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def test_no_progress_when_piped_or_plain(rt: Runtime) -> None:
    rt.write("systemg.yaml", manifest())
    piped = rt.sysg("start", "--daemonize")  # stdout and stderr are pipes
    assert piped.returncode == 0
    assert piped.stdout == "Project 'big' started (21 services)\n"
    assert "\x1b" not in piped.stderr
    assert "starting" not in piped.stderr
    # stdout piped, stderr still the terminal: no progress either.
    master, fd = pty.openpty()
    try:
        proc = subprocess.run(
            [SYSG, "restart"],
            stdout=subprocess.PIPE,
            stderr=fd,
            env=rt.env,
            timeout=60,
            cwd=rt.work,
            check=False,
        )
        os.close(fd)
        fd = -1
        noise = _drain(master)
    finally:
        if fd >= 0:
            os.close(fd)
        os.close(master)
    assert proc.returncode == 0
    assert proc.stdout == b"Project 'big' restarted (21 services)\n"
    assert b"restarting" not in noise
    assert PROGRESS not in noise
    rc, out = in_pty(rt, "--plain", "stop")
    assert rc == 0
    assert out == b"All services stopped\r\n"
