"""``isolation.pid`` through the real supervisor, with no process between it and the service.

The pid ``sysg status`` reports is PID 1 of the service's namespace (``NSpid: <host> 1``) and
a child of the supervisor itself (a child subreaper: the short-lived intermediate that
created the namespace is gone); that process's exit code and killing signal are reported,
``stop`` ends it, ``kill -9`` of the supervisor leaves it running and the next supervisor
re-adopts the same pid, and with ``listen:`` it sees ``LISTEN_PID=1`` and fd 3.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from tests.privileged.system_helpers import free_port, proc_status, sys_status, units, wait_unit
from tests.support.procscan import processes
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for
from tests.support.serial import HOST_GLOBAL

PY = "/usr/bin/python3"
# 64 MiB the service touches: its RSS, not the supervisor's (a forked copy of the
# supervisor as relay would show ~25 MiB).
BIG = (
    "import os, signal, sys, time\\n"
    "blob = bytearray(64 << 20)\\n"
    "for i in range(0, len(blob), 4096): blob[i] = 1\\n"
    "print('ready', os.getpid(), flush=True)\\n"
    "time.sleep(3600)"
)
SLEEP = "import time\\nprint('ready', flush=True)\\ntime.sleep(3600)"


def _start(rt: Runtime, services: str) -> None:
    text = f'version: "2"\nprojects:\n  pidns:\n    services:\n{services}'
    manifest = rt.write("pidns.yaml", text)
    proc = rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _service(name: str, code: str, extra: str = "") -> str:
    return (
        f"      {name}:\n"
        f'        exec: ["{PY}", "-c", "{code}"]\n'
        "        isolation:\n"
        "          pid: true\n"
        f"{extra}"
    )


def _assert_pid1_under_the_supervisor(rt: Runtime, pid: int) -> None:
    """``pid`` is PID 1 of its own namespace and the supervisor's own child."""
    st = proc_status(pid)
    assert st["NSpid"].split() == [str(pid), "1"], st["NSpid"]
    assert int(st["PPid"]) == rt.supervisor_pid()
    assert st["Name"] == "python3"


def _log(rt: Runtime, service: str) -> Path:
    return rt.logs / "pidns" / f"{service}.log"


def _wait_log(rt: Runtime, service: str, needle: str) -> str:
    def found() -> str | None:
        path = _log(rt, service)
        text = path.read_text(errors="replace") if path.exists() else ""
        return text if needle in text else None

    return wait_for(found, timeout=15, what=f"{needle!r} in {service}.log")


def test_status_pid_is_the_namespace_init_itself(rt: Runtime) -> None:
    _start(rt, _service("big", BIG))
    unit = wait_unit(rt, "big", "running")
    pid = int(pid_of(unit))
    _wait_log(rt, "big", "ready 1")  # getpid() inside: 1
    _assert_pid1_under_the_supervisor(rt, pid)
    # Nothing else between them: the supervisor's children are the service, the fd holder
    # and the spawn helper (a small interpreter that cloned the intermediate); no resident
    # relay (a forked copy of the supervisor) anywhere.
    sup = rt.supervisor_pid()
    holder = int((rt.state / "fdholder.pid").read_text())
    children = {p.pid for p in processes() if p.ppid == sup} - {pid, holder}
    assert len(children) == 1, children
    with open(f"/proc/{children.pop()}/cmdline", "rb") as fh:
        assert b"forkserver.serve" in fh.read()

    # RSS and CPU are the service's own: at least the 64 MiB it touched.
    def measured() -> dict[str, Any] | None:
        got = units(sys_status(rt))["big"]
        return got if (got.get("metrics") or {}).get("latest_rss_bytes") else None

    got = wait_for(measured, timeout=10, what="rss and cpu in status")
    assert pid_of(got) == pid
    rss = got["metrics"]["latest_rss_bytes"]
    assert rss >= 64 << 20, rss
    with open(f"/proc/{pid}/statm") as fh:
        resident = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert abs(rss - resident) < 16 << 20


def test_exit_code_and_killing_signal_of_the_service(rt: Runtime) -> None:
    go = rt.work / "go"
    code = (
        "import os, time\\n"
        "print('ready', flush=True)\\n"
        f"while not os.path.exists('{go}'): time.sleep(0.02)\\n"
        "raise SystemExit(3)"
    )
    _start(rt, _service("coder", code) + _service("victim", SLEEP))
    coder = int(pid_of(wait_unit(rt, "coder", "running")))
    victim = int(pid_of(wait_unit(rt, "victim", "running")))
    for pid in (coder, victim):
        _assert_pid1_under_the_supervisor(rt, pid)
    _wait_log(rt, "victim", "ready")
    os.kill(victim, signal.SIGKILL)  # from the host: an ancestor namespace may always
    go.touch()
    failed = wait_unit(rt, "coder", "exited")
    assert failed["last_exit"]["exit_code"] == 3, failed["last_exit"]
    assert "signal" not in failed["last_exit"]
    killed = wait_unit(rt, "victim", "killed")
    assert killed["last_exit"]["signal"] == signal.SIGKILL, killed["last_exit"]
    assert not pid_alive(coder)
    assert not pid_alive(victim)


def test_stop_ends_the_namespace_init(rt: Runtime) -> None:
    # A namespace init ignores SIGTERM from an ancestor namespace unless it handles it:
    # ``plain`` has no handler, so stop escalates to SIGKILL after stop_timeout;
    # ``handler`` exits 7 on SIGTERM, which is what status then says.
    handler = (
        "import signal, sys, time\\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\\n"
        "print('ready', flush=True)\\n"
        "time.sleep(3600)"
    )
    _start(
        rt,
        _service("plain", SLEEP, "        stop_timeout: 1s\n")
        + _service("handler", handler, "        stop_timeout: 30s\n"),
    )
    plain = int(pid_of(wait_unit(rt, "plain", "running")))
    handled = int(pid_of(wait_unit(rt, "handler", "running")))
    for pid in (plain, handled):
        _assert_pid1_under_the_supervisor(rt, pid)
    _wait_log(rt, "plain", "ready")
    _wait_log(rt, "handler", "ready")

    began = time.monotonic()
    stop = rt.sysg("--sys", "stop", "-s", "plain", check=True)
    assert "Service 'plain' stopped" in stop.stdout
    assert time.monotonic() - began >= 0.9  # SIGTERM ignored; killed at stop_timeout
    unit = wait_unit(rt, "plain", "stopped")
    assert unit["last_exit"]["signal"] == signal.SIGKILL, unit["last_exit"]
    assert not pid_alive(plain)

    rt.sysg("--sys", "stop", "-s", "handler", check=True)
    unit = wait_unit(rt, "handler", "stopped")
    assert unit["last_exit"]["exit_code"] == 7, unit["last_exit"]
    assert not pid_alive(handled)


def test_kill_9_of_the_supervisor_then_status_readopts_the_same_pid(rt: Runtime) -> None:
    _start(rt, _service("kept", SLEEP))
    pid = int(pid_of(wait_unit(rt, "kept", "running")))
    _assert_pid1_under_the_supervisor(rt, pid)
    started = proc_status(pid)
    old = rt.supervisor_pid()
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old), timeout=5, what="the supervisor to die")
    assert pid_alive(pid)  # the service survives its supervisor

    unit = units(sys_status(rt))["kept"]  # brings a new supervisor up, which re-adopts
    new = rt.supervisor_pid()
    assert new is not None
    assert new != old
    assert unit["phase"] == "running"
    assert pid_of(unit) == pid
    assert proc_status(pid)["NSpid"] == started["NSpid"]
    journal = (rt.logs / "supervisor.log").read_text(errors="replace")
    assert f"re-adopted pid {pid}" in journal

    rt.sysg("--sys", "stop", "-s", "kept", check=True)
    wait_unit(rt, "kept", "stopped")
    wait_for(lambda: not pid_alive(pid), timeout=10, what="the re-adopted service to exit")


def test_listen_pid_is_1_and_fd_3_is_the_socket(rt: Runtime) -> None:
    port = free_port()
    code = (
        "import os, socket\\n"
        "s = socket.socket(fileno=3)\\n"
        "print('ready', flush=True)\\n"
        "while True:\\n"
        "    c, _ = s.accept()\\n"
        "    c.sendall(('%d %s' % (os.getpid(), os.environ['LISTEN_PID'])).encode())\\n"
        "    c.close()"
    )
    _start(rt, _service("web", code, f'        listen: ["127.0.0.1:{port}"]\n'))
    pid = int(pid_of(wait_unit(rt, "web", "running")))
    _assert_pid1_under_the_supervisor(rt, pid)
    _wait_log(rt, "web", "ready")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        answer = conn.recv(100).decode()
    assert answer == "1 1"
    with open(f"/proc/{pid}/environ", "rb") as fh:
        environ = fh.read().split(b"\0")
    assert b"LISTEN_PID=1" in environ
    assert b"LISTEN_FDS=1" in environ
    assert os.readlink(f"/proc/{pid}/fd/3").startswith("socket:")


@HOST_GLOBAL  # the cgroup tree
def test_oom_kill_of_the_namespace_init_is_reported(rt: Runtime) -> None:
    """The memory cgroup kills PID 1 of the namespace itself: ``oom-killed``, SIGKILL."""
    from tests.privileged.system_helpers import remove_cgroup_dirs

    if not Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
        import pytest

        pytest.skip("no cgroup v1 memory controller at /sys/fs/cgroup/memory")
    hog = (
        "import time\\n"
        "print('allocating', flush=True)\\n"
        "b = bytearray(b'x') * (256 << 20)\\n"
        "time.sleep(3600)"
    )
    extra = (
        "        restart_policy: never\n"
        "        limits:\n          cgroup:\n            memory_max: 64M\n"
    )
    text = f'version: "2"\nprojects:\n  pidns:\n    services:\n{_service("hog", hog, extra)}'
    manifest = rt.write("pidns.yaml", text)
    try:
        proc = rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize")
        assert "oom-killed" in proc.stderr or proc.returncode == 0, proc.stderr
        unit = wait_unit(rt, "hog", "oom-killed", timeout=60)
        assert unit["last_exit"]["oom_killed"] is True
        assert unit["last_exit"]["signal"] == 9
        assert "allocating" in _log(rt, "hog").read_text()
    finally:
        rt.sysg("--sys", "stop", "--supervisor")
        remove_cgroup_dirs("pidns")
