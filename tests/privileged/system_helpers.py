"""Helpers for the end-to-end privileged tests: the real ``sysg`` CLI, the real supervisor, and
the kernel's view of the services it runs (``/proc/PID/*``).

Everything a test starts is reachable from its ``Runtime`` (``rt.close`` stops the supervisor
and kills by pid what status reported); the helpers here only read, poll and make requests.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import pwd
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.support.nobody import world_readable_sysg
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for

CAP_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
PY = "/usr/bin/python3"


def proc_status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def cap_masks(pid: int) -> dict[str, int]:
    st = proc_status(pid)
    return {key: int(st[key], 16) for key in CAP_SETS}


def proc_limits(pid: int) -> dict[str, tuple[str, str]]:
    rows = {"Max open files": "nofile", "Max processes": "nproc", "Max locked memory": "memlock"}
    out: dict[str, tuple[str, str]] = {}
    with open(f"/proc/{pid}/limits") as fh:
        for line in fh:
            for title, name in rows.items():
                if line.startswith(title):
                    soft, hard = line[len(title) :].split()[:2]
                    out[name] = (soft, hard)
    return out


def proc_nice(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[16])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Like the servers under test (http.server sets it): connections of earlier tests left
    # in TIME_WAIT must not make the port look taken.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False
        raise
    finally:
        sock.close()
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def privileged_port() -> int:
    """Port 80 if it is free, else the first free port below 1024 (binding any of them needs
    root or CAP_NET_BIND_SERVICE, which is what the tests using it are about). Tests that
    call it are in ``HOST_GLOBAL``: none of this suite binds one meanwhile, and another run
    on the machine holding port 80 does not fail them."""
    for port in (80, *range(81, 1024)):
        if port_free(port):
            return port
    pytest.skip("no free privileged port on 127.0.0.1")


def need_port(port: int) -> None:
    if not port_free(port):
        pytest.skip(f"127.0.0.1:{port} is already in use on this machine")


def http_get(port: int, path: str = "/", timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def listener_pid(port: int) -> int | None:
    """The pid of the process holding a listening TCP socket on ``port`` (from /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            next(fh)
            for line in fh:
                parts = line.split()
                if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(parts[9])
    if not inodes:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in targets:
                        status = proc_status(int(entry))
                        # The supervisor holds listen sockets too: prefer a non-sysg process.
                        if "sysg" not in status.get("Name", ""):
                            return int(entry)
    return None


def units(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A ``status.v1`` document's units by name."""
    return {u["name"]: u for u in data.get("units", [])}


def sys_status(rt: Runtime) -> dict[str, Any]:
    proc = rt.sysg("--sys", "status", "--format", "json")
    assert proc.stdout.strip(), proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    for unit in data.get("units", []):
        if pid := pid_of(unit):
            rt.seen_pids.add(pid)
    return data


def wait_unit(
    rt: Runtime, service: str, phase: str, *, timeout: float = 20.0, pid_not: int | None = None
) -> dict[str, Any]:
    """Poll ``sysg --sys status`` until ``service`` is in ``phase`` (our own phase)."""

    def reached() -> dict[str, Any] | None:
        unit = units(sys_status(rt)).get(service)
        if unit is None or unit["phase"] != phase:
            return None
        if pid_not is not None and pid_of(unit) in (None, pid_not):
            return None
        return unit

    return wait_for(reached, timeout=timeout, what=f"{service} to be {phase}")


def read_until(path: Path, needle: str, timeout: float = 15.0) -> str:
    def found() -> str | None:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return None
        return text if needle in text else None

    return wait_for(found, timeout=timeout, what=f"{needle!r} in {path}")


def audit_lines(rt: Runtime) -> list[dict[str, Any]]:
    path = rt.logs / "audit.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def nobody_home(rt: Runtime, name: str = "nobody-home") -> Path:
    """A HOME for ``nobody`` under the runtime root (no user supervisor lives there yet)."""
    home = rt.root / name
    home.mkdir()
    pw = pwd.getpwnam("nobody")
    os.chown(home, pw.pw_uid, pw.pw_gid)
    return home


def world_sysg() -> str:
    try:
        return world_readable_sysg()
    except RuntimeError as exc:
        pytest.skip(str(exc))


def kill_supervisor_of(state: Path) -> None:
    """Last-resort cleanup of a supervisor (and fd holder) recorded in ``state`` (by pid)."""
    for name in ("sysg.pid", "fdholder.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int((state / name).read_text().strip())
            if pid_alive(pid):
                os.kill(pid, 9)


def cgroup_dirs(project: str) -> list[Path]:
    """Every cgroup directory named after ``project`` under the systemg roots that exists."""
    roots = [
        Path("/sys/fs/cgroup/unified/systemg"),
        Path("/sys/fs/cgroup/systemg"),
        Path("/sys/fs/cgroup/memory/systemg"),
        Path("/sys/fs/cgroup/cpu/systemg"),
        Path("/sys/fs/cgroup/cpu,cpuacct/systemg"),
        Path("/sys/fs/cgroup/pids/systemg"),
    ]
    return [r / project for r in roots if (r / project).is_dir()]


def remove_cgroup_dirs(project: str) -> None:
    """Cleanup after a failed test: rmdir the project's cgroup dirs (deepest first)."""
    for top in cgroup_dirs(project):
        for d, _, _ in sorted(os.walk(top), key=lambda t: -len(Path(t[0]).parts)):
            with contextlib.suppress(OSError):
                os.rmdir(d)


def chown_tree(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    for d, _, files in os.walk(path):
        os.chown(d, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(d, f), pw.pw_uid, pw.pw_gid)


__all__ = [
    "CAP_SETS",
    "PY",
    "audit_lines",
    "cap_masks",
    "cgroup_dirs",
    "chown_tree",
    "free_port",
    "http_get",
    "kill_supervisor_of",
    "listener_pid",
    "need_port",
    "nobody_home",
    "port_free",
    "privileged_port",
    "proc_limits",
    "proc_nice",
    "proc_status",
    "read_until",
    "remove_cgroup_dirs",
    "sys_status",
    "units",
    "wait_unit",
    "world_sysg",
]
