"""Readiness with real processes (docs/manifest.md, "Readiness"): a service is up on READY=1
(``notify``) or when its health check passes, not after 250 ms; a dependent waits for
that; a service that never becomes ready fails ``start`` with the upstream code and its
last log lines; a watchdog that stops being fed kills and restarts the service.

Clients are the real ones: ``systemd-notify`` from the host's systemd package, and a few
lines of Python that use only ``socket``.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from systemg.daemon.notify import socket_path
from tests.support.procscan import new_marker, with_marker
from tests.support.runtime import Runtime, pid_of, wait_for

PY_NOTIFY = (
    "import os, socket, sys, time\n"
    "def tell(msg):\n"
    "    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
    "    s.sendto(msg.encode(), os.environ['NOTIFY_SOCKET'])\n"
    "    s.close()\n"
    "print('env', os.environ.get('WATCHDOG_USEC'), os.environ.get('WATCHDOG_PID'),"
    " os.getpid(), flush=True)\n"
    "time.sleep(float(sys.argv[1]))\n"
    "tell('READY=1\\nSTATUS=serving from python')\n"
    "for _ in range(int(sys.argv[2])):\n"
    "    time.sleep(0.1); tell('WATCHDOG=1')\n"
    "time.sleep(1000)\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def started_ns(path: Path) -> int:
    return int(path.read_text())


def stamp(name: str, work: Path) -> str:
    return f"date +%s%N > {work}/{name}.started"


def test_a_dependent_waits_for_its_dependencys_health_check(rt: Runtime) -> None:
    m = new_marker()
    port = free_port()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  hc:
    services:
      db:
        command: "{stamp("db", rt.work)}; sleep 1.5; exec python3 -m http.server {port} \\
          --bind 127.0.0.1 # {m}"
        deployment:
          health_check: {{url: "http://127.0.0.1:{port}/", interval: 100ms, retries: 50}}
      web:
        command: "{stamp("web", rt.work)}; exec sleep 1000.{m}"
        depends_on: [db]
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr
    units = {u["name"]: u for u in rt.status()["units"]}
    assert units["db"]["phase"] == units["web"]["phase"] == "running"
    assert units["db"]["readiness"] == "healthy"
    assert units["db"]["last_probe"]["result"] == "pass"
    # web started only once db answered HTTP: db slept 1.5 s before it could (the 250 ms
    # rule would have released web long before).
    gap = started_ns(rt.work / "web.started") - started_ns(rt.work / "db.started")
    assert gap >= 1.5e9
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


def test_a_notify_service_that_never_sends_ready_fails_start_with_its_last_lines(
    rt: Runtime,
) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  nr:
    services:
      silent:
        command: "echo warming up the cache; exec sleep 1000.{m}"
        notify: true
        start_timeout: 1s
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 1
    assert "SG0104" in proc.stderr
    assert "sent no READY=1 within start_timeout 1s" in proc.stderr
    assert "warming up the cache" in proc.stderr  # its last log lines
    unit = wait_for(lambda: (u := rt.unit("silent"))["phase"] == "failed" and u)
    assert unit["readiness"] == "unhealthy"
    wait_for(lambda: not with_marker(m), what="the unready service to be stopped")


@pytest.mark.skipif(shutil.which("systemd-notify") is None, reason="systemd-notify not installed")
def test_systemd_notify_marks_the_service_up_and_its_status_is_shown(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  sn:
    services:
      api:
        command: "sleep 0.5; systemd-notify --ready --status='accepting connections'; \\
          exec sleep 1000.{m}"
        notify: true
        start_timeout: 20s
      client:
        command: "exec sleep 1000.{m}"
        depends_on: [api]
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr
    api = rt.unit("api")
    assert api["phase"] == "running"
    assert api["readiness"] == "healthy"
    assert api["notify_status"] == "accepting connections"
    assert rt.unit("client")["phase"] == "running"
    text = rt.sysg("status").stdout
    assert "HEALTH" in text
    assert "STATUS=accepting connections" in text
    rt.sysg("stop", "--supervisor", check=True)


def test_plain_python_notify_client_and_a_watchdog_that_stops_being_fed(rt: Runtime) -> None:
    m = new_marker()
    script = rt.write("notify.py", PY_NOTIFY)
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  wd:
    services:
      api:
        exec: [python3, "{script}", "0.2", "5", "{m}"]
        notify: true
        watchdog: 1s
        restart_policy: on-failure
        backoff: 100ms
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr
    first = rt.unit("api")
    assert first["notify_status"] == "serving from python"
    # sd_watchdog_enabled(3): WATCHDOG_USEC, and WATCHDOG_PID naming the service itself.
    pid = pid_of(first)
    logs = rt.sysg("logs", "-s", "api", "-n", "50").stdout
    assert f"env 1000000 {pid} {pid}" in logs, logs

    # Five pings, then silence: SIGABRT, then the restart policy (it counts as a failure).
    def restarted() -> dict[str, object] | None:
        unit = rt.unit("api")
        return unit if unit["restarts"] >= 1 and unit["phase"] == "running" else None

    again = wait_for(restarted, timeout=20, what="the watchdog restart")
    assert pid_of(again) != pid_of(first)
    assert again["last_exit"]["signal"] == 6  # SIGABRT
    log = (rt.logs / "supervisor.log").read_text()
    assert "watchdog timeout: no WATCHDOG=1 for 1s" in log
    rt.sysg("stop", "--supervisor", check=True)


def test_a_tcp_check_that_never_passes_fails_with_unreachable(rt: Runtime) -> None:
    port = free_port()
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  tc:
    services:
      db:
        command: "exec sleep 1000.{m}"
        deployment:
          health_check: {{tcp: "127.0.0.1:{port}", interval: 100ms, retries: 3}}
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 1
    assert "SG0022" in proc.stderr
    assert "health check failed after 3 attempt(s)" in proc.stderr
    wait_for(lambda: not with_marker(m), what="the unhealthy service to be stopped")
    assert rt.unit("db")["phase"] == "failed"


def test_a_command_check_runs_and_logs_with_its_own_label(rt: Runtime) -> None:
    m = new_marker()
    flag = rt.work / "ready.flag"
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  cc:
    services:
      db:
        command: "sleep 0.5; touch {flag}; exec sleep 1000.{m}"
        deployment:
          health_check: {{command: "echo probing; test -f {flag}", interval: 100ms,
                          retries: 100}}
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr
    assert rt.unit("db")["readiness"] == "healthy"
    log = (rt.logs / "cc" / "db.log").read_text()
    assert " probe probing" in log
    logs = rt.sysg("logs", "-s", "cc/db", "--format", "json").stdout
    assert '"stream": "probe"' in logs or '"stream":"probe"' in logs
    rt.sysg("stop", "--supervisor", check=True)


def test_condition_completed_waits_for_a_one_shot_to_exit_zero(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  cd:
    services:
      migrate:
        command: "sleep 0.8; date +%s%N > {rt.work}/migrate.done"
      web:
        command: "{stamp("web", rt.work)}; exec sleep 1000.{m}"
        depends_on: [{{service: migrate, condition: completed}}]
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr
    assert rt.unit("web")["phase"] == "running"
    assert started_ns(rt.work / "web.started") >= started_ns(rt.work / "migrate.done")
    rt.sysg("stop", "--supervisor", check=True)


def test_a_datagram_from_a_foreign_process_is_ignored(rt: Runtime) -> None:
    """A live process outside the service's tree (this test) cannot make it ready or set
    its STATUS=: the supervisor drops and counts the datagram, and the service's own
    READY=1 still works afterwards."""
    m = new_marker()
    gate = rt.root / "gate"
    script = rt.write(
        "gated.py",
        "import os, socket, sys, time\n"
        f"while not os.path.exists('{gate}'):\n"
        "    time.sleep(0.02)\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "s.sendto(b'READY=1\\nSTATUS=the real one', os.environ['NOTIFY_SOCKET'])\n"
        "time.sleep(1000)\n",
    )
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  fg:
    services:
      api:
        exec: [python3, "{script}", "{m}"]
        notify: true
        start_timeout: 30s
""",
    )
    starting = rt.popen("start", "-c", str(cfg), "--daemonize")
    try:
        unit = wait_for(
            lambda: (u := _unit_or_none(rt, "api")) and pid_of(u) and u,
            timeout=20,
            what="the service to be launched",
        )
        path = socket_path(rt.state, "fg", "api")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as forger:
            forger.sendto(b"READY=1\nSTATUS=forged", str(path))
        inspect = wait_for(
            lambda: (j := _inspect(rt))["readiness"]["notify_dropped"] == 1 and j,
            what="the forged datagram to be counted",
        )
        assert inspect["readiness"]["notify_status"] is None
        after = rt.unit("api")
        assert after["phase"] == "starting"
        assert pid_of(after) == pid_of(unit)
        assert starting.poll() is None  # `start` still waits for the real READY=1
        log = (rt.logs / "supervisor.log").read_text()
        assert "dropped a datagram" in log
        assert "outside main pid" in log
        gate.touch()
        _, err = starting.communicate(timeout=30)
        assert starting.returncode == 0, err
    finally:
        if starting.poll() is None:
            starting.kill()
        starting.communicate()
    up = rt.unit("api")
    assert up["phase"] == "running"
    assert up["notify_status"] == "the real one"
    rt.sysg("stop", "--supervisor", check=True)
    wait_for(lambda: not with_marker(m), what="the service to be gone")


def _unit_or_none(rt: Runtime, service: str) -> dict[str, Any] | None:
    try:
        return rt.unit(service)
    except Exception:
        return None


def _inspect(rt: Runtime) -> dict[str, Any]:
    proc = rt.sysg("inspect", "-s", "fg/api", "--format", "json")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]
