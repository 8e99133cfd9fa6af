"""``sysg doctor``: the state files, the pid file and /proc must agree. Real supervisors and
processes, and state files written the way the store writes them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from systemg import proc
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for

MANIFEST = """\
version: "2"
projects:
  demo:
    services:
      web:
        command: "exec sleep 3000"
        restart_policy: always
"""


def doctor(rt: Runtime) -> tuple[int, dict[str, object]]:
    done = rt.sysg("doctor", "--format", "json")
    return done.returncode, json.loads(done.stdout)


def rules(doc: dict[str, object]) -> list[tuple[str, str]]:
    return [(f["severity"], f["rule"]) for f in doc["findings"]]  # type: ignore[attr-defined, index]


def test_a_consistent_world_then_a_killed_supervisor_then_dead_services(rt: Runtime) -> None:
    assert doctor(rt) == (0, {"mode": "user", "ok": True, "findings": []})
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    assert doctor(rt)[0] == 0
    assert "ok: state, pid file and processes agree" in rt.sysg("doctor", check=True).stdout
    web = pid_of(rt.unit("web"))
    sup = rt.supervisor_pid()
    assert web is not None
    assert sup is not None
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not pid_alive(sup), what="the supervisor to die")
    rc, doc = doctor(rt)
    assert rc == 0  # warnings only: the service runs on, the next command re-adopts it
    assert ("warn", "unsupervised") in rules(doc)
    assert rt.sysg("doctor", "--strict").returncode == 1
    os.kill(web, signal.SIGKILL)
    wait_for(lambda: not pid_alive(web), what="the service to die")
    rc, doc = doctor(rt)
    assert rc == 1
    assert rules(doc)[0] == ("error", "running-pid-dead")


def test_a_reused_pid_and_a_running_record_without_pid_are_errors(rt: Runtime) -> None:
    # A process that is alive, recorded with another start time: its pid was reused.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = proc.start_time(other.pid)
        assert start is not None
        project = rt.state / "projects" / "demo"
        project.mkdir(parents=True)
        state = {
            "project_id": "demo",
            "manifest_path": str(rt.work / "systemg.yaml"),
            "services": {
                "web": {"pid": other.pid, "start_time": start - 1, "phase": "running"},
                "api": {"pid": None, "phase": "running"},
                "db": {"pid": None, "phase": "stopped"},
            },
        }
        (project / "state.json").write_text(json.dumps(state))
        rc, doc = doctor(rt)
        assert rc == 1
        assert sorted(rules(doc)) == [("error", "pid-reuse"), ("error", "running-without-pid")]
    finally:
        other.kill()
        other.wait()
