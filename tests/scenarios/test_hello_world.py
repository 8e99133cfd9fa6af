"""Use case: a person runs the hello-world example as the README says, end to end.

Start it detached, see both services running (web healthy: its HTTP health check passed
before the worker, which depends on it, was started), read the worker's output, kill the web
server and watch it come back with a new pid, edit the manifest and ``sysg restart``, then
``sysg stop --supervisor`` — and nothing of it is left in the process table.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

from tests.support.runtime import Runtime, epoch, pid_alive, pid_of, started_at, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-world"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pids_under(root: Path) -> list[int]:
    """Processes whose cwd or argv mentions the example copy (what `ps` would show)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            argv = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if (cwd.startswith(str(root)) or str(root).encode() in argv) and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def test_hello_world_end_to_end(rt: Runtime) -> None:
    app = rt.work / "hello-world"
    shutil.copytree(EXAMPLE, app)
    port = _free_port()
    manifest = app / "systemg.yaml"
    manifest.write_text(manifest.read_text().replace("8765", str(port)))

    start = rt.sysg("start", "-c", "hello-world/systemg.yaml", "--daemonize")
    assert start.returncode == 0, start.stderr
    assert "Project 'hello' started (2 services)" in start.stdout

    status = rt.sysg("status")
    assert status.returncode == 0, status.stderr
    assert "hello    web      running" in status.stdout
    assert "hello    worker   running" in status.stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        assert b"hello from systemg" in resp.read()
    units = {u["name"]: u for u in rt.status()["units"]}
    # `sysg start` returned only once web answered its health check (a 2xx on GET /).
    assert units["web"]["readiness"] == "healthy"
    assert units["web"]["last_probe"]["result"] == "pass"
    assert units["worker"]["readiness"] == "unknown"  # no check: up after 250 ms alive
    # depends_on waited for web to be up: the worker started after web's probe passed
    # (started_at comes from /proc start time, 10 ms ticks: hence the small tolerance).
    assert started_at(units["worker"]) >= epoch(units["web"]["last_probe"]["at"]) - 0.05

    def worker_fetched() -> bool:
        logs = rt.sysg("logs", "-s", "worker", "-n", "20")
        return "200" in logs.stdout and "hello from systemg" in logs.stdout

    wait_for(worker_fetched, timeout=20, interval=0.3, what="the worker's fetch lines")

    # Kill the web server: restart_policy always brings it back with a new pid.
    old = pid_of(rt.unit("web"))
    os.kill(old, signal.SIGKILL)

    def new_web() -> int | None:
        unit = rt.unit("web")
        return pid_of(unit) if unit["phase"] == "running" and pid_of(unit) != old else None

    new = wait_for(new_web, timeout=20, interval=0.1, what="web back with a new pid")
    assert not pid_alive(old)
    wait_for(lambda: rt.sysg("status").returncode == 0, timeout=20, interval=0.2)

    # Edit the manifest: the worker fetches every second now. Restart reconciles: worker
    # changed (new pid), web unchanged (same pid).
    worker_old = pid_of(rt.unit("worker"))
    manifest.write_text(manifest.read_text().replace('/", "2"]', '/", "1"]'))
    restart = rt.sysg("restart", "-c", "hello-world/systemg.yaml")
    assert restart.returncode == 0, restart.stderr
    units = {u["name"]: u for u in rt.status()["units"]}
    assert pid_of(units["web"]) == new
    assert pid_of(units["worker"]) != worker_old
    assert units["worker"]["phase"] == "running"

    stop = rt.sysg("stop", "--supervisor")
    assert stop.returncode == 0, stop.stderr
    assert "Supervisor stopped" in stop.stdout
    assert rt.supervisor_processes() == []
    assert _pids_under(app) == []
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    assert str(app) not in ps.stdout
    assert f"http.server {port}" not in ps.stdout
