"""``--drop-privileges`` through the real CLI and supervisor (docs/security.md §1, issue 4 §3).

The flag travels with the start request to the supervisor that spawns, so a supervisor that is
already running without it still drops the services of that request.
"""

from __future__ import annotations

import grp

from tests.privileged.system_helpers import CAP_SETS, cap_masks, proc_status, units, wait_unit
from tests.privileged.system_helpers import sys_status as status
from tests.support.runtime import Runtime, pid_of

SLEEP = '["/usr/bin/python3", "-c", "import time\\nwhile True: time.sleep(1)"]'
MANIFEST = f"""\
version: "2"
projects:
  drop:
    services:
      web:
        exec: {SLEEP}
      api:
        exec: {SLEEP}
      named:
        exec: {SLEEP}
        user: www-data
"""


def test_system_drop_privileges_reaches_a_running_supervisor(rt: Runtime) -> None:
    manifest = rt.write("drop.yaml", MANIFEST)
    nogroup = grp.getgrnam("nogroup").gr_gid
    # A supervisor already running without the flag (it starts `api`, as root).
    rt.sysg("--sys", "start", "-c", str(manifest), "--service", "api", "--daemonize", check=True)
    api = wait_unit(rt, "api", "running")
    assert proc_status(pid_of(api))["Uid"].split() == ["0"] * 4
    assert units(status(rt))["web"]["phase"] == "stopped"

    proc = rt.sysg(
        "--sys", "--drop-privileges", "start", "-c", str(manifest), "--service", "web",
        "--daemonize", check=True,
    )  # fmt: skip
    assert "Service 'web' started" in proc.stdout
    data = units(status(rt))
    web = data["web"]
    assert web["phase"] == "running"
    assert web["process"]["user"] == "nobody"
    st = proc_status(pid_of(web))
    assert st["Uid"].split() == ["65534"] * 4
    assert st["Gid"].split() == [str(nogroup)] * 4
    assert st["Groups"].split() == [str(nogroup)]
    assert cap_masks(pid_of(web)) == dict.fromkeys(CAP_SETS, 0)
    with open(f"/proc/{pid_of(web)}/environ", "rb") as fh:
        environ = fh.read().split(b"\0")
    assert b"USER=nobody" in environ
    assert b"LOGNAME=nobody" in environ
    # Only `web` was started by that request; `api` kept running as root, untouched.
    assert data["named"]["phase"] == "stopped"
    assert pid_of(data["api"]) == pid_of(api)
    assert proc_status(pid_of(api))["Uid"].split() == ["0"] * 4


def test_system_drop_privileges_on_a_fresh_supervisor_leaves_named_users(rt: Runtime) -> None:
    manifest = rt.write("drop.yaml", MANIFEST)
    rt.sysg("--sys", "--drop-privileges", "start", "-c", str(manifest), "--daemonize", check=True)
    data = units(status(rt))
    assert {name: u["phase"] for name, u in data.items()} == dict.fromkeys(
        ("web", "api", "named"), "running"
    )
    for name in ("web", "api"):
        assert proc_status(pid_of(data[name]))["Uid"].split() == ["65534"] * 4
    assert proc_status(pid_of(data["named"]))["Uid"].split() == ["33"] * 4
    # The flag after the subcommand is the same flag.
    rt.sysg("--sys", "stop", "-s", "web", check=True)
    rt.sysg("--sys", "start", "-s", "web", "--drop-privileges", "--daemonize", check=True)
    web = units(status(rt))["web"]
    assert proc_status(pid_of(web))["Uid"].split() == ["65534"] * 4
