"""A corrupt ``state.json`` never keeps a supervisor from booting.

A previous supervisor is killed (``kill -9``) while its service runs; meanwhile two other
projects' state files are damaged (an empty file, as a power loss can leave it, and
valid JSON of the wrong shape). The next supervisor boots, re-adopts the good project's
service (same pid), answers ``status``, and ``supervisor.log`` names each bad file.
"""

from __future__ import annotations

import os
import signal

from tests.support.procscan import new_marker
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for

BAD = {
    "empty": b"",
    "shape": b"[]",  # json.loads is fine with it; the record is not
    "types": b'{"project_id":"types","manifest_path":"/m.yaml","services":{"w":{"pid":"1"}}}',
}


def test_supervisor_boots_past_corrupt_state_files(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f'version: "2"\nprojects:\n  good:\n    services:\n      db:\n'
        f'        command: "exec sleep 1000.{m}"\n',
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    pid = pid_of(rt.unit("db"))
    old = rt.supervisor_pid()
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old), timeout=5, what="the supervisor to die")
    for project, content in BAD.items():
        directory = rt.state / "projects" / project
        directory.mkdir(mode=0o700)
        (directory / "state.json").write_bytes(content)

    # `status` finds a recorded live service and boots a new supervisor to re-adopt it.
    proc = rt.sysg("status", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    new = rt.supervisor_pid()
    assert new is not None
    assert new != old
    assert pid_alive(new)
    units = rt.status()["units"]
    assert [(u["project"]["id"], u["name"], pid_of(u)) for u in units] == [("good", "db", pid)]

    journal = (rt.logs / "supervisor.log").read_text()
    for project, content in BAD.items():
        state = rt.state / "projects" / project / "state.json"
        assert f"state file {state} is unreadable" in journal, journal
        assert (state.parent / "state.json.corrupt").read_bytes() == content
    assert rt.sysg("stop", "--supervisor").returncode == 0
    wait_for(lambda: not pid_alive(pid), what="the service to stop")
