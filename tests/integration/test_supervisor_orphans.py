"""Orphans a service leaves: the supervisor is a child subreaper (so a pid namespace's init
is re-parented to it), hence their parent too, and reaps them when they exit."""

from __future__ import annotations

from tests.support.procscan import new_marker, processes, with_marker, zombie_children
from tests.support.runtime import Runtime, wait_for


def test_an_orphan_of_a_service_is_reaped_by_the_supervisor(rt: Runtime) -> None:
    m = new_marker()
    go = rt.work / "go"
    # The subshell exits at once: its background sleep is orphaned while the service runs.
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  orph:
    services:
      parent:
        command: "(sh -c 'while [ ! -e {go} ]; do sleep 0.02; done; : {m}' &); \
exec sleep 1000.{m}"
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    sup = rt.supervisor_pid()
    assert sup is not None
    assert rt.unit("parent")["phase"] == "running"
    orphan = wait_for(
        lambda: next((p for p in with_marker(f": {m}") if p.ppid == sup), None),
        what="the orphan, re-parented to the supervisor",
    )
    go.touch()
    wait_for(
        lambda: all(p.pid != orphan.pid for p in processes()),
        what="the orphan to be reaped (not left a zombie)",
    )
    assert zombie_children(sup) == []
    assert rt.unit("parent")["phase"] == "running"  # the service and supervisor carry on
    log = (rt.logs / "supervisor.log").read_text(errors="replace")
    assert f"reaped pid {orphan.pid} (exit 0), an orphan of a service" in log
