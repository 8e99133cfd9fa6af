"""The code `sysg start` gives a service that exits before it is up: SG0105 when this run's
output says its address is taken, SG0102 otherwise, even if an earlier run's log lines said
"address already in use" (docs/commands.md, SG0105). Real sockets and processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest

from tests.support.runtime import Runtime, pid_alive, wait_for

MANIFEST = """\
version: "2"
projects:
  demo:
    services:
      web:
        command: >-
          {command}
        notify: true
        restart_policy: never
"""
BIND = "python3 -c \"import socket; socket.socket().bind(('127.0.0.1', {port}))\""


@pytest.mark.timeout(120)
def test_port_in_use_is_sg0105_and_only_for_the_run_that_said_so(rt: Runtime) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    try:
        rt.write("systemg.yaml", MANIFEST.format(command=BIND.format(port=port)))
        first = rt.sysg("start", "--daemonize")
        assert first.returncode == 1
        assert "error[SG0105]" in first.stderr
        assert "already in use" in first.stderr
        assert not any(w in first.stderr for w in ("lsof", "netstat", "kill -9"))
    finally:
        squatter.close()
    # The log still holds that run's "Address already in use"; this run fails otherwise.
    rt.write("systemg.yaml", MANIFEST.format(command="echo bad config >&2; exit 3"))
    second = rt.sysg("restart")
    assert second.returncode == 1
    assert "SG0102" in second.stderr, second.stderr
    assert "SG0105" not in second.stderr


PRE_START = """\
version: "2"
projects:
  demo:
    services:
      sibling:
        command: "exec sleep 3000"
        restart_policy: always
      hung:
        command: "exec sleep 4717"
        depends_on: [sibling]
        deployment:
          pre_start: "exec sleep 4718"
"""


@pytest.mark.timeout(120)
def test_a_hung_pre_start_is_killed_at_its_budget_sg0108(rt: Runtime) -> None:
    rt.write("systemg.yaml", PRE_START)
    # The upstream's override of the 5 min budget, read by the supervisor at boot.
    done = rt.sysg("start", "--daemonize", env={"SYSG_PRE_START_TIMEOUT_SECS": "2"}, timeout=60)
    assert done.returncode == 1
    assert "error[SG0108]" in done.stderr
    assert "services.hung.deployment.pre_start" in done.stderr
    assert rt.unit("sibling")["state"] == "running"
    assert rt.unit("hung")["state"] != "running"
    ps = subprocess.run(["pgrep", "-f", "sleep 471[78]"], capture_output=True, text=True)
    assert ps.stdout.split() == []  # neither the pre_start nor the service runs


@pytest.mark.timeout(120)
def test_stopping_a_service_in_its_pre_start_ends_the_pre_start(rt: Runtime) -> None:
    rt.write("systemg.yaml", PRE_START.replace("4718", "4728").replace("4717", "4727"))
    start = rt.popen("start", "--daemonize")  # waits for hung's pre_start (5 min budget)
    pid: int | None = None

    def pre_start_pid() -> int | None:
        ps = subprocess.run(["pgrep", "-f", "sleep 4728"], capture_output=True, text=True)
        return int(ps.stdout.split()[0]) if ps.stdout.split() else None

    try:
        pid = wait_for(pre_start_pid, timeout=30, what="the pre_start to run")
        rt.sysg("stop", "-s", "hung", check=True)
        wait_for(lambda: not pid_alive(pid), timeout=10, what="the pre_start to be killed")
        assert rt.unit("hung")["state"] == "stopped"
        assert rt.unit("sibling")["state"] == "running"
        start.communicate(timeout=30)  # the start settles once hung is stopped
    finally:
        if start.poll() is None:
            start.kill()
            start.wait()
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(120)
def test_a_running_service_that_crashes_on_a_taken_port_is_named_in_the_journal(
    rt: Runtime,
) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    try:
        late = "sleep 0.6; " + BIND.format(port=port)  # up by the 250 ms rule, then the bind
        rt.write(
            "systemg.yaml",
            MANIFEST.format(command=late).replace("        notify: true\n", ""),
        )
        rt.sysg("start", "--daemonize", check=True)
        journal = rt.logs / "supervisor.log"
        wait_for(lambda: "SG0105" in journal.read_text(), timeout=30, what="the SG0105 line")
        assert "demo/web: SG0105: its address is already in use" in journal.read_text()
    finally:
        squatter.close()
