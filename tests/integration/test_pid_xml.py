"""``projects/<id>/pid.xml``, the upstream's pid map: written beside our state for tools that
read it, naming each live service's pid, one file per project (same-named services of two
projects never collide), and emptied of a service once it is stopped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.support.runtime import Runtime, pid_of, wait_for

MANIFEST = """\
version: "2"
projects:
  alpha:
    services:
      worker: {command: "exec sleep 3000", restart_policy: always}
      web: {command: "exec sleep 3001", restart_policy: always}
  beta:
    services:
      worker: {command: "exec sleep 3000", restart_policy: always}
"""


def pids_in(rt: Runtime, project: str) -> dict[str, int]:
    root = ET.fromstring((rt.state / "projects" / project / "pid.xml").read_text())
    return {s.findtext("name", ""): int(s.findtext("pid", "0")) for s in root.iter("services")}


@pytest.mark.timeout(90)
def test_pid_xml_per_project_follows_the_live_pids(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    alpha = {n: pid_of(rt.unit(n, "alpha")) for n in ("worker", "web")}
    beta = pid_of(rt.unit("worker", "beta"))
    wait_for(lambda: pids_in(rt, "alpha") == alpha, what="alpha's pid.xml")
    assert pids_in(rt, "beta") == {"worker": beta}
    text = (rt.state / "projects" / "alpha" / "pid.xml").read_text()
    assert f"<name>worker</name>\n    <pid>{alpha['worker']}</pid>" in text
    rt.sysg("stop", "-p", "alpha", "-s", "web", check=True)
    wait_for(lambda: pids_in(rt, "alpha") == {"worker": alpha["worker"]}, what="web gone")
    rt.sysg("restart", "-p", "alpha", "-s", "worker", check=True)
    new = pid_of(rt.unit("worker", "alpha"))
    assert new != alpha["worker"]
    wait_for(lambda: pids_in(rt, "alpha") == {"worker": new}, what="the new pid")
    assert pids_in(rt, "beta") == {"worker": beta}
