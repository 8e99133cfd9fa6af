"""The supervisor spawns privileged services through its spawn helper (``spawn/forkserver.py``):
the services are still its own children, it keeps one thread, a helper that dies is replaced
on the next spawn, and the helper ends with the supervisor."""

from __future__ import annotations

import os
import signal

from tests.privileged.system_helpers import proc_status, sys_status, units
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for

MANIFEST = """\
version: "2"
projects:
  helped:
    services:
      one:
        exec: ["/bin/sleep", "3600"]
        user: nobody
      two:
        exec: ["/bin/sleep", "3601"]
        user: nobody
        isolation:
          pid: true
      plain:
        exec: ["/bin/sleep", "3602"]
"""


def _helpers(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    cmd = fh.read()
                if b"forkserver.serve" in cmd and proc_status(int(name))["PPid"] == str(parent):
                    found.append(int(name))
            except (OSError, KeyError):
                pass
    return found


def test_privileged_services_come_from_the_helper_as_supervisor_children(rt: Runtime) -> None:
    manifest = rt.write("helped.yaml", MANIFEST)
    rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize", check=True)
    sup = rt.supervisor_pid()
    assert sup is not None
    data = units(sys_status(rt))
    for name in ("one", "two", "plain"):
        status = proc_status(pid_of(data[name]))
        assert status["PPid"] == str(sup), (name, status["PPid"])
    assert proc_status(pid_of(data["one"]))["Uid"].split() == ["65534"] * 4
    assert proc_status(sup)["Threads"] == "1"
    helpers = _helpers(sup)
    assert len(helpers) == 1, helpers
    assert "spawn helper started" in (rt.logs / "supervisor.log").read_text()

    # A helper that dies is replaced by the next spawn; nothing else changes.
    os.kill(helpers[0], signal.SIGKILL)
    rt.sysg("--sys", "restart", "-s", "one", check=True)
    wait_for(lambda: units(sys_status(rt))["one"]["phase"] == "running", what="one running")
    again = _helpers(sup)
    assert len(again) == 1, again
    assert again != helpers
    assert not os.path.exists(f"/proc/{helpers[0]}")  # reaped by the supervisor, not left a zombie
    assert pid_of(units(sys_status(rt))["two"]) == pid_of(data["two"])

    rt.sysg("--sys", "stop", "--supervisor", check=True)
    wait_for(lambda: not pid_alive(again[0]), what="the helper to end with the supervisor")
