"""Stopping with real processes: SIGTERM then SIGKILL after ``stop_timeout``, and nothing
left behind of a service that forked grandchildren."""

from __future__ import annotations

import time

from tests.support.procscan import in_group_or_session, new_marker, with_marker
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for


def test_stop_escalates_to_sigkill_for_a_service_ignoring_sigterm(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  esc:
    services:
      stubborn:
        command: "trap '' TERM; echo ready; exec sleep 1000.{m}"
        stop_timeout: 1s
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    pid = pid_of(rt.unit("stubborn"))
    assert pid_alive(pid)
    began = time.monotonic()
    rt.sysg("stop", "-s", "stubborn", check=True)
    took = time.monotonic() - began
    # stop returns only once death is verified: SIGTERM was ignored, SIGKILL after ~1 s.
    assert not pid_alive(pid)
    assert took >= 0.9
    unit = rt.unit("stubborn")
    assert unit["phase"] == "stopped"
    assert pid_of(unit) is None
    assert unit["last_exit"]["signal"] == 9
    assert not with_marker(m)
    assert "did not stop in time, sending SIGKILL" in (rt.logs / "supervisor.log").read_text()


def test_grandchildren_are_gone_after_stop(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  gc:
    services:
      forker:
        command: "sleep 1000.{m} & sleep 1000.{m} & wait"
      stubborn_kids:
        command: "(trap '' TERM; exec sleep 1000.{m}) & (trap '' TERM; sleep 1000.{m}) & wait"
        stop_timeout: 10s
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    leaders = {pid_of(u) for u in rt.status()["units"]}
    wait_for(lambda: len(with_marker(m)) >= 6, timeout=5, what="all grandchildren")
    assert in_group_or_session(leaders)
    began = time.monotonic()
    rt.sysg("stop", "-p", "gc", check=True)
    # The group leaders die on SIGTERM; their TERM-ignoring grandchildren are killed with
    # the group at once, not after stop_timeout.
    assert time.monotonic() - began < 8
    wait_for(lambda: not with_marker(m), timeout=5, what="no process with the marker")
    assert not in_group_or_session(leaders)
    rt.sysg("stop", "--supervisor", check=True)
