"""What a selection means to `start` and `restart` beyond the happy path (issue 16):

- `start -s X` against a running supervisor is a request to it: it returns once X is up,
  with or without a terminal (it used to attach and wait forever without one);
- Ctrl-C of an attached `start -s X` stops X only, never a sibling someone else started;
- `restart` with no supervisor starts the manifest instead of failing with SG0206.

Real supervisors and processes under a private runtime root.
"""

from __future__ import annotations

import signal

import pytest

from tests.support.runtime import Runtime, live_pid, pid_alive, wait_for

MANIFEST = """\
version: "2"
projects:
  demo:
    services:
      web:
        command: "exec sleep 3000"
        restart_policy: always
        stop_timeout: 3s
      api:
        command: "while true; do echo api-tick; sleep 0.2; done"
        restart_policy: always
        stop_timeout: 3s
"""


@pytest.mark.timeout(90)
def test_start_of_a_selection_against_a_running_supervisor_returns(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", "-s", "web", check=True)
    # No --daemonize and no terminal (stdin is /dev/null): this must not attach.
    done = rt.sysg("start", "-p", "demo", "-s", "api", timeout=30)
    assert done.returncode == 0, done.stderr
    assert "Service 'api' started" in done.stdout
    api = rt.unit("api")
    assert api["state"] == "running"
    assert pid_alive(live_pid(api))


@pytest.mark.timeout(90)
def test_ctrl_c_of_an_attached_service_start_stops_only_that_service(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    proc = rt.popen("start", "-s", "api")
    try:
        assert proc.stdout is not None
        wait_for(lambda: "api | api-tick" in proc.stdout.readline(), timeout=30, what="stream")
        # Someone else starts the sibling while this terminal is attached to api.
        rt.sysg("start", "--daemonize", "-s", "web", check=True)
        web = rt.unit("web")
        assert web["state"] == "running"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Project 'demo' stopped" not in out
        assert rt.unit("api")["state"] == "stopped"
        after = rt.unit("web")
        assert after["state"] == "running"
        assert live_pid(after) == live_pid(web)
        assert pid_alive(live_pid(web))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(90)
def test_restart_with_no_supervisor_starts_the_manifest(rt: Runtime) -> None:
    rt.write("stack.yaml", MANIFEST)
    assert rt.supervisor_pid() is None
    done = rt.sysg("restart", "-c", "stack.yaml", "--daemonize")
    assert done.returncode == 0, done.stderr
    assert "SG0206" not in done.stderr
    assert "Project 'demo' started (2 services)" in done.stdout
    web = rt.unit("web")
    assert web["state"] == "running"
    assert pid_alive(live_pid(web))
    # And without --daemonize, once it is stopped for good, the same.
    rt.sysg("stop", "--supervisor", check=True)
    again = rt.sysg("restart", "-c", "stack.yaml")
    assert again.returncode == 0, again.stderr
    assert rt.unit("api")["state"] == "running"


@pytest.mark.timeout(90)
def test_verbose_start_names_each_service_it_started(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    done = rt.sysg("start", "--daemonize", "-v", check=True)
    for name in ("web", "api"):
        pid = live_pid(rt.unit(name))
        assert f"  started demo/{name}: running (pid {pid})" in done.stdout
