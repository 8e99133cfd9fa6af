"""``kill -9`` of the supervisor: services keep running, the next supervisor re-adopts
them (same pids, no duplicates), output written meanwhile reaches the log, and a
``sysg stop --supervisor`` then stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.procscan import new_marker, supervisors_for, with_marker
from tests.support.runtime import SYSG, Runtime, pid_alive, pid_of, wait_for


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_supervisor(rt: Runtime) -> int:
    sup = rt.supervisor_pid()
    assert sup is not None
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not pid_alive(sup), timeout=5, what="supervisor dead")
    return sup


@pytest.mark.slow
@pytest.mark.parametrize("revive", ["start", "status"])
def test_kill_9_supervisor_then_readopt_and_stop(rt: Runtime, revive: str) -> None:
    m = new_marker()
    go = rt.work / "go"
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  ad:
    services:
      db:
        command: "exec sleep 1000.{m}1"
      writer:
        command: "echo before-{m}; while [ ! -e {go} ]; do sleep 0.02; done; \
echo during-outage-{m}; echo to-stderr-{m} >&2; exec sleep 1000.{m}2"
        depends_on: [db]
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    before = {u["name"]: u for u in rt.status()["units"]}
    assert {u["phase"] for u in before.values()} == {"running"}
    log = rt.logs / "ad" / "writer.log"
    wait_for(lambda: log.exists() and f"before-{m}" in log.read_text(), timeout=5)

    old = kill_supervisor(rt)
    assert all(pid_alive(pid_of(u)) for u in before.values())  # services survive
    # The writer prints while no supervisor runs, then execs into its sleep.
    go.touch()
    wait_for(
        lambda: cmdline(pid_of(before["writer"])).startswith("sleep"),
        timeout=10,
        what="writer to print during the outage",
    )
    assert pid_alive(pid_of(before["writer"]))  # its output pipe did not break

    if revive == "start":
        rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    status = rt.status()  # with "status": this call alone must bring the supervisor back
    new = rt.supervisor_pid()
    assert new is not None
    assert new != old
    assert supervisors_for(rt.state) == [new]
    after = {u["name"]: u for u in status["units"]}
    for name in ("db", "writer"):
        assert after[name]["phase"] == "running"
        assert pid_of(after[name]) == pid_of(before[name])  # re-adopted, not restarted
    # Identity by pid: exactly one process of each, no duplicate was started.
    assert len(with_marker(f"1000.{m}1")) == 1
    assert len(with_marker(f"1000.{m}2")) == 1
    wait_for(
        lambda: f"during-outage-{m}" in log.read_text(), timeout=5, what="outage output in log"
    )
    lines = log.read_text().splitlines()
    texts = [line.split(" ", 1)[1] for line in lines]
    assert texts.index(f"stdout before-{m}") < texts.index(f"stdout during-outage-{m}")
    assert f"stderr to-stderr-{m}" in texts

    rt.sysg("stop", "--supervisor", check=True)
    assert not pid_alive(new)
    for name in ("db", "writer"):
        assert not pid_alive(pid_of(before[name]))
    assert not with_marker(m)


def test_adopted_service_crash_is_noticed(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  adc:
    services:
      svc:
        command: "exec sleep 1000.{m}"
        restart_policy: always
        backoff: 100ms
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    pid = pid_of(rt.unit("svc"))
    kill_supervisor(rt)
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    assert pid_of(rt.unit("svc")) == pid  # re-adopted
    os.kill(pid, signal.SIGKILL)
    unit = wait_for(
        lambda: (u := rt.unit("svc"))["phase"] == "running" and pid_of(u) != pid and u,
        timeout=10,
        what="restart of the adopted service",
    )
    assert unit["restarts"] >= 1
    assert len(with_marker(m)) == 1
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


def test_service_that_died_during_the_outage_is_started_again(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  add:
    services:
      svc:
        command: "exec sleep 1000.{m}"
        restart_policy: on-failure
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    pid = pid_of(rt.unit("svc"))
    kill_supervisor(rt)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), timeout=5)
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    unit = wait_for(
        lambda: (u := rt.unit("svc"))["phase"] == "running" and u,
        timeout=15,
        what="svc running again",
    )
    assert pid_of(unit) != pid
    assert len(with_marker(m)) == 1
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


@pytest.mark.slow
def test_sigterm_while_the_supervisor_recovers_is_not_lost(rt: Runtime) -> None:
    """SIGTERM as soon as the new supervisor's socket accepts, while it is still
    re-starting services that died during the outage: it must still stop them all and
    exit 0 (it used to be swallowed before the loop ran, or kill the supervisor)."""
    m = new_marker()
    services = "".join(f'      s{i}:\n        command: "exec sleep 1000.{m}"\n' for i in range(12))
    cfg = rt.write("sysg.yaml", f'version: "2"\nprojects:\n  boot:\n    services:\n{services}')
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    pids = [pid_of(u) for u in rt.status()["units"]]
    kill_supervisor(rt)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # died meanwhile: recovery starts them again
    sup = subprocess.Popen(
        [SYSG, "supervise"],
        cwd=rt.work,
        env=rt.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def accepting() -> bool:
            if rt.supervisor_pid() != sup.pid:
                return False  # the old socket file may still be there
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(rt.state / "control.sock"))
                except OSError:
                    return False
            return True

        wait_for(accepting, timeout=10, interval=0.001, what="new supervisor listening")
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=30) == 0
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
    wait_for(lambda: not with_marker(m), timeout=5, what="no service left")
