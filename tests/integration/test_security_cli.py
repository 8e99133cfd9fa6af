"""``sysg security`` in user mode, as whoever runs the suite: the CLI reads the /proc of its
own services (no root needed), scores them, and ``--threshold`` sets the exit code."""

from __future__ import annotations

import json
import os
import pwd

from tests.support.runtime import Runtime, pid_of, wait_for

MANIFEST = """\
version: "2"
projects:
  sec:
    services:
      plain:
        command: "exec sleep 300"
      done:
        command: "true"
        restart_policy: never
"""


def test_user_mode_report_of_own_services(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    wait_for(lambda: pid_of(rt.unit("plain")), what="plain running")
    wait_for(lambda: not pid_of(rt.unit("done")), what="done exited")
    proc = rt.sysg("security", "--format", "json", check=True)
    doc = json.loads(proc.stdout)
    (entry,) = doc["services"]
    assert entry["service"] == "plain"
    assert [s["service"] for s in doc["skipped"]] == ["done"]
    checks = {c["json_field"]: c for c in entry["checks"]}
    assert len(checks) == 86
    me = pwd.getpwuid(os.geteuid()).pw_name
    expected = {"root": 10, "nobody": 9}.get(me, 0)  # systemd: nobody "should not be used"
    assert checks["UserOrDynamicUser"]["badness"] == expected
    assert checks["PrivateNetwork"]["set"] is False
    assert 0.0 < entry["exposure"] <= 10.0
    assert rt.sysg("security", "--threshold", "0").returncode == 1
    assert rt.sysg("security", "--threshold", "10").returncode == 0
    text = rt.sysg("security", check=True).stdout
    assert "→ Overall exposure level for sec/plain: " in text
    assert "sec/done: not assessed (not running: " in text


def test_no_supervisor_is_sg0206(rt: Runtime) -> None:
    proc = rt.sysg("security")
    assert proc.returncode == 2
    assert "SG0206" in proc.stderr
