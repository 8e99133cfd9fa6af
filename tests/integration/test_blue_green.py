"""Blue/green restarts with real processes and real ports (docs/manifest.md, "Blue/green").

The service is ``examples/rolling/server.py`` binding ``$PORT`` itself (no ``listen:``), so
its two generations need two slots. The switch scripts are the tests' own, written into the
runtime: ``switch.sh`` appends ``ACTIVE CANDIDATE UID $SYSG_ACTIVE_SLOT $SYSG_CANDIDATE_SLOT``
to ``switch.calls`` and points ``./upstream`` at the candidate; marker files make it fail
once, fail always, or hold until released; ``verify.sh`` fails while ``verify-fail`` exists.

- through ``examples/blue-green`` (its proxy on a third port): three restarts under an HTTP
  load drop no request, the slot alternates, the old generation is gone after each;
- each way a cut-over can fail (the candidate, the switch, the switch back, the
  verification, a death in the grace period, a stop during the switch): the restart exits 1
  with the right code, traffic is switched back exactly once when it had moved, the old pid
  serves on in its slot, the candidate is gone;
- the active slot survives the supervisor: a new one starts the service in it.

No wall-time assertion: counts of requests and calls, waits are polls with deadlines.
"""

from __future__ import annotations

import os
import shutil
import time
from itertools import pairwise
from pathlib import Path

import pytest

from tests.support import bluegreen
from tests.support.bluegreen import RUN, SWITCH, VERIFY, answers, environ_of, free_ports, manifest
from tests.support.httpload import Load
from tests.support.runtime import Runtime, epoch, pid_alive, pid_of, wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SERVER = EXAMPLES / "rolling" / "server.py"


def setup(rt: Runtime, **kw: object) -> tuple[int, int, Path]:
    a, b = free_ports(2)
    shutil.copy(SERVER, rt.work / "server.py")
    rt.write("switch.sh", SWITCH)
    rt.write("verify.sh", VERIFY)
    rt.write("run.sh", RUN)
    path = rt.write("systemg.yaml", manifest(a, b, **kw))  # type: ignore[arg-type]
    rt.sysg("start", "-c", str(path), "--daemonize", check=True, timeout=60)
    rt.wait_state("web", "running")
    wait_for(lambda: answers(a), what=f"web on port {a}")
    return a, b, path


def calls(rt: Runtime) -> list[str]:
    """``ACTIVE CANDIDATE`` of each switch_command run, in order (run as this user)."""
    found = bluegreen.calls(rt.work)
    assert all(uid == str(os.geteuid()) for _, _, uid in found), found
    return [f"{active} {candidate}" for active, candidate, _ in found]


def web(rt: Runtime) -> dict[str, object]:
    rows = [u for u in rt.status()["units"] if u["name"] == "web"]
    assert len(rows) == 1, rows  # no candidate or draining generation left
    return rows[0]


def upstream(rt: Runtime) -> str:
    path = rt.work / "upstream"
    return path.read_text().strip() if path.exists() else ""


def slot_file(rt: Runtime) -> str:
    return (rt.state / "projects" / web(rt)["project"]["id"] / "web.slot").read_text()  # type: ignore[index]


def test_restarts_through_the_example_proxy_drop_nothing(rt: Runtime) -> None:
    proxy, blue, green = free_ports(3)
    shutil.copytree(EXAMPLES / "blue-green", rt.work / "blue-green")
    shutil.copytree(EXAMPLES / "rolling", rt.work / "rolling")
    rt.env.update(PROXY_PORT=str(proxy), BLUE_PORT=str(blue), GREEN_PORT=str(green))
    path = rt.work / "blue-green" / "systemg.yaml"
    rt.sysg("start", "-c", str(path), "--daemonize", check=True, timeout=60)
    rt.wait_state("web", "running")
    wait_for(lambda: answers(proxy) and answers(blue), what="proxy and web")
    pids = [int(pid_of(web(rt)))]  # type: ignore[call-overload]
    slots = [str(blue)]
    assert web(rt)["slot"] == str(blue)
    with Load("127.0.0.1", proxy) as load:
        load.wait_requests(200)
        for _ in range(3):
            done = rt.sysg("restart", "-s", "web", timeout=90)
            assert done.returncode == 0, (done.stdout, done.stderr)
            unit = web(rt)
            pid = int(pid_of(unit))  # type: ignore[call-overload]
            assert pid != pids[-1]
            assert not pid_alive(pids[-1])
            slot = str(green) if slots[-1] == str(blue) else str(blue)
            assert unit["slot"] == slot
            assert environ_of(pid)["PORT"] == slot
            assert (rt.work / "blue-green" / "upstream").read_text().strip() == slot
            assert slot_file(rt) == f"{slot}\n"
            pids.append(pid)
            slots.append(slot)
            load.wait_requests(200)
    assert load.failed == 0, f"{load.failures} of {load.total()} requests failed"
    assert load.ok >= 800
    assert set(pids) <= load.pids | {pids[0]}  # every generation answered through the proxy
    log = (rt.logs / "bluegreen" / "web.log").read_text()
    for old, new in pairwise(slots):
        assert f"switching traffic from slot {old}" in log
        assert f"traffic is on slot {new}; verifying" in log


def test_a_candidate_that_exits_never_moves_traffic(rt: Runtime) -> None:
    a, b, path = setup(rt)
    old = int(pid_of(web(rt)))  # type: ignore[call-overload]
    path.write_text(manifest(a, b, env="        BROKEN: '1'\n"))
    done = rt.sysg("restart", "-s", "web", timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "SG0102" in done.stderr
    assert "BROKEN is set: refusing to start" in done.stderr
    assert calls(rt) == []
    unit = web(rt)
    assert (pid_of(unit), unit["phase"], unit["slot"]) == (old, "running", str(a))
    assert not answers(b)


@pytest.mark.parametrize("always", [False, True], ids=["switch-fails", "switch-back-fails-too"])
def test_a_failed_switch_is_switched_back(rt: Runtime, always: bool) -> None:
    a, b, _ = setup(rt)
    old = int(pid_of(web(rt)))  # type: ignore[call-overload]
    (rt.work / ("switch-fail-always" if always else "switch-fail-once")).touch()
    done = rt.sysg("restart", "-s", "web", timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "SG0112" in done.stderr
    assert f"switch_command failed moving traffic to slot {b}: exited with code 3" in done.stderr
    assert "deployment.blue_green.switch_command" in done.stderr
    if always:
        assert f"the switch back to slot {a} failed too" in done.stderr
        assert "traffic was switched back" not in done.stderr
    else:
        assert f"traffic was switched back to slot {a}" in done.stderr
        assert upstream(rt) == str(a)
    assert calls(rt) == [f"{a} {b}", f"{b} {a}"]  # forward once, back once
    unit = web(rt)
    assert (pid_of(unit), unit["phase"], unit["slot"]) == (old, "running", str(a))
    wait_for(lambda: not answers(b), what="the candidate to be stopped")
    log = (rt.logs / str(unit["project"]["id"]) / "web.log").read_text()  # type: ignore[index]
    assert f" switch no route to {b}\n" in log  # the switch's own output, labelled
    assert "internal error" not in (rt.logs / "supervisor.log").read_text()


def test_a_failed_verification_is_switched_back(rt: Runtime) -> None:
    a, b, _ = setup(rt)
    old = int(pid_of(web(rt)))  # type: ignore[call-overload]
    (rt.work / "verify-fail").touch()
    done = rt.sysg("restart", "-s", "web", timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "SG0104" in done.stderr
    assert f"switch_verify failed after 3 attempt(s) on slot {b}" in done.stderr
    assert f"traffic was switched back to slot {a}" in done.stderr
    assert calls(rt) == [f"{a} {b}", f"{b} {a}"]
    assert upstream(rt) == str(a)
    unit = web(rt)
    assert (pid_of(unit), unit["slot"]) == (old, str(a))
    wait_for(lambda: not answers(b), what="the candidate to be stopped")
    # Then it works, into the other slot, and the old generation is retired.
    (rt.work / "verify-fail").unlink()
    done = rt.sysg("restart", "-s", "web", timeout=60)
    assert done.returncode == 0, (done.stdout, done.stderr)
    unit = web(rt)
    assert unit["slot"] == str(b)
    assert upstream(rt) == str(b)
    assert not pid_alive(old)


def test_a_death_in_the_grace_period_switches_traffic_back(rt: Runtime) -> None:
    a, b, _ = setup(rt, grace="60s", run_sh=True)
    old = int(pid_of(web(rt)))  # type: ignore[call-overload]
    log = rt.logs / web(rt)["project"]["id"] / "web.log"  # type: ignore[index]
    restart = rt.popen("restart", "-s", "web")
    wait_for(lambda: "drains for 60s" in log.read_text(), timeout=60, what="the switch")
    assert upstream(rt) == str(b)
    (rt.work / f"die-{b}").touch()  # the new generation stops by itself, in its probation
    out, err = restart.communicate(timeout=60)
    assert restart.returncode == 1, (out, err)
    assert "SG0102" in err
    assert "the new generation died during its grace period" in err
    assert f"traffic was switched back to slot {a}" in err
    assert calls(rt) == [f"{a} {b}", f"{b} {a}"]
    assert upstream(rt) == str(a)
    unit = web(rt)
    assert (pid_of(unit), unit["phase"], unit["slot"]) == (old, "running", str(a))
    assert slot_file(rt) == f"{a}\n"


def test_a_stop_during_the_switch_stops_both_and_switches_back(rt: Runtime) -> None:
    a, b, _ = setup(rt)
    old = int(pid_of(web(rt)))  # type: ignore[call-overload]
    (rt.work / "hold").touch()
    restart = rt.popen("restart", "-s", "web")
    wait_for(lambda: calls(rt) == [f"{a} {b}"], timeout=60, what="the switch to run")
    stop = rt.sysg("stop", "-s", "web", timeout=60)
    assert stop.returncode == 0, (stop.stdout, stop.stderr)
    assert not pid_alive(old)
    assert not answers(b)
    (rt.work / "hold").unlink()
    out, err = restart.communicate(timeout=60)
    assert restart.returncode == 1, (out, err)
    assert calls(rt) == [f"{a} {b}", f"{b} {a}"]
    assert upstream(rt) == str(a)
    # The restart ends as every restart does, by starting its group (after the stop, as
    # for a rolling restart): in the slot that has the traffic.
    unit = rt.wait_state("web", "running")
    pid = int(pid_of(unit))  # type: ignore[call-overload]
    assert pid != old
    assert unit["slot"] == str(a)
    assert environ_of(pid)["PORT"] == str(a)


def test_a_new_supervisor_starts_in_the_active_slot(rt: Runtime) -> None:
    a, b, path = setup(rt, state_path="run/web.slot")
    done = rt.sysg("restart", "-s", "web", timeout=60)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert (rt.work / "run" / "web.slot").read_text() == f"{b}\n"
    rt.sysg("stop", "--supervisor", check=True, timeout=60)
    rt.sysg("start", "-c", str(path), "--daemonize", check=True, timeout=60)
    unit = rt.wait_state("web", "running")
    pid = int(pid_of(unit))  # type: ignore[call-overload]
    assert unit["slot"] == str(b)
    assert environ_of(pid)["PORT"] == str(b)
    wait_for(lambda: answers(b), what=f"web on port {b}")
    assert not answers(a)
    # A slot file naming no slot: slot 0, with a warning in the journal.
    rt.sysg("stop", "--supervisor", check=True, timeout=60)
    (rt.work / "run" / "web.slot").write_text("9\n")
    rt.sysg("start", "-c", str(path), "--daemonize", check=True, timeout=60)
    unit = rt.wait_state("web", "running")
    assert unit["slot"] == str(a)
    assert "which is not one of" in (rt.logs / "supervisor.log").read_text()


def test_a_restart_during_the_switch_back_restarts_in_the_old_slot(rt: Runtime) -> None:
    """The second restart does not roll while the first one's switch back runs: it stops
    and starts the service in the slot the traffic goes back to; both get their answer."""
    a, b, _ = setup(rt, grace="60s", run_sh=True)
    log = rt.logs / web(rt)["project"]["id"] / "web.log"  # type: ignore[index]
    first = rt.popen("restart", "-s", "web")
    wait_for(lambda: "drains for 60s" in log.read_text(), timeout=60, what="the switch")
    (rt.work / "hold").touch()  # the switch back will wait
    (rt.work / f"die-{b}").touch()
    wait_for(lambda: len(calls(rt)) == 2, timeout=60, what="the switch back to start")
    second = rt.popen("restart", "-s", "web")
    wait_for(
        lambda: "web: running -> stopping" in (rt.logs / "supervisor.log").read_text(),
        timeout=60,
        what="the second restart to stop the service",
    )
    (rt.work / "hold").unlink()
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert first.returncode == 1, (out1, err1)
    assert f"traffic was switched back to slot {a}" in err1
    assert second.returncode == 0, (out2, err2)
    assert calls(rt) == [f"{a} {b}", f"{b} {a}"]
    unit = rt.wait_state("web", "running")
    assert unit["slot"] == str(a)
    assert environ_of(int(pid_of(unit)))["PORT"] == str(a)  # type: ignore[arg-type]
    assert upstream(rt) == str(a)
    assert not answers(b)
    assert "internal error" not in (rt.logs / "supervisor.log").read_text()


def test_a_switch_cut_short_by_the_supervisors_end_is_switched_at_the_next_start(
    rt: Runtime,
) -> None:
    a, b, path = setup(rt)
    (rt.work / "hold").touch()
    restart = rt.popen("restart", "-s", "web")
    wait_for(lambda: calls(rt) == [f"{a} {b}"], timeout=60, what="the switch to run")
    rt.sysg("stop", "--supervisor", check=True, timeout=60)
    restart.communicate(timeout=60)
    (rt.work / "hold").unlink()  # the switch, left behind, moves the traffic to b after all
    wait_for(lambda: upstream(rt) == str(b), timeout=30, what="the orphaned switch")
    rt.sysg("start", "-c", str(path), "--daemonize", check=True, timeout=60)
    unit = rt.wait_state("web", "running")
    assert unit["slot"] == str(a)  # the slot file still says a: the switch never committed
    wait_for(lambda: len(calls(rt)) == 2, timeout=30, what="the switch to the running slot")
    assert calls(rt) == [f"{a} {b}", f"{b} {a}"]
    wait_for(lambda: upstream(rt) == str(a), timeout=30, what="traffic back on a")
    assert (
        "a switch was cut short; switching traffic to slot"
        in (rt.logs / "supervisor.log").read_text()
    )
    # The marker is gone once it worked: the next start switches nothing.
    rt.sysg("restart", "-c", str(path), check=True, timeout=60)
    assert calls(rt)[2:] == [f"{a} {b}"]  # that restart rolled: one switch, no realignment
    assert upstream(rt) == str(b)


def test_the_old_generation_crashing_during_the_switch_is_not_brought_back(rt: Runtime) -> None:
    a, b, _ = setup(rt, extra="    backoff: 100ms\n")
    old = int(pid_of(web(rt)))  # type: ignore[call-overload]
    (rt.work / "hold").touch()
    restart = rt.popen("restart", "-s", "web")
    wait_for(lambda: calls(rt) == [f"{a} {b}"], timeout=60, what="the switch to run")
    os.kill(old, 9)
    wait_for(lambda: not answers(a), timeout=30, what="the old generation to die")
    (rt.work / "hold").unlink()
    out, err = restart.communicate(timeout=60)
    assert restart.returncode == 0, (out, err)
    unit = web(rt)
    assert (unit["slot"], unit["phase"]) == (str(b), "running")
    # Its restart was due 100 ms after the kill; ten times that later nothing serves on a.
    time.sleep(1.0)
    assert not answers(a)
    assert len([u for u in rt.status()["units"] if u["name"] == "web"]) == 1


def test_slots_that_change_restart_in_place_and_move_the_traffic(rt: Runtime) -> None:
    a, b, path = setup(rt)
    c, d = free_ports(2)
    path.write_text(manifest(c, d))
    done = rt.sysg("restart", "-c", str(path), timeout=60)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert f"its blue_green slots change ({a} is not one of {c}, {d})" in done.stderr
    assert "switching to immediate restart semantics" in done.stderr
    unit = rt.wait_state("web", "running")
    assert unit["slot"] == str(c)
    wait_for(lambda: upstream(rt) == str(c), timeout=30, what="traffic moved to c")
    assert calls(rt)[-1].split()[1] == str(c)
    assert slot_file(rt) == f"{c}\n"
    assert not answers(a)
    assert not answers(b)


def test_liveness_and_verification_follow_the_slot(rt: Runtime) -> None:
    live = (
        "    liveness:\n"
        '      url: "http://127.0.0.1:{slot}/"\n'
        "      interval: 200ms\n"
        "      failures: 2\n"
    )
    _a, b, _ = setup(rt, extra=live, verify='url: "http://127.0.0.1:{candidate_slot}/"')
    done = rt.sysg("restart", "-s", "web", timeout=60)
    assert done.returncode == 0, (done.stdout, done.stderr)
    pid = int(pid_of(web(rt)))  # type: ignore[call-overload]
    assert web(rt)["slot"] == str(b)
    ended = time.time()

    def probed_after() -> bool:
        probe = web(rt)["last_probe"]
        return probe is not None and epoch(probe["at"]) > ended + 1.0

    wait_for(probed_after, timeout=30, what="liveness probes after the switch")
    unit = web(rt)
    assert (pid_of(unit), unit["phase"], unit["last_probe"]["result"]) == (pid, "running", "pass")  # type: ignore[index]


def test_a_slot_file_that_is_a_fifo_is_not_waited_on(rt: Runtime) -> None:
    a, b = free_ports(2)
    shutil.copy(SERVER, rt.work / "server.py")
    rt.write("switch.sh", SWITCH)
    rt.write("verify.sh", VERIFY)
    os.mkfifo(rt.work / "slot")
    path = rt.write("systemg.yaml", manifest(a, b, state_path="slot"))
    rt.sysg("start", "-c", str(path), "--daemonize", check=True, timeout=60)
    unit = rt.wait_state("web", "running")
    assert unit["slot"] == str(a)
    assert "is not a regular file; ignored" in (rt.logs / "supervisor.log").read_text()


def test_a_supervisor_killed_mid_switch_is_realigned_by_the_next_one(rt: Runtime) -> None:
    """SIGKILL in the middle of the switch: the restart's client brings up a new supervisor,
    which re-adopts the old generation (the table's), stops the candidate, switches the
    traffic back to the old slot, and then runs the restart it is asked again — not rolling
    while that switch runs, so in the old slot."""
    a, b, _ = setup(rt)
    old = int(pid_of(web(rt)))  # type: ignore[call-overload]
    (rt.work / "hold").touch()
    restart = rt.popen("restart", "-s", "web")
    wait_for(lambda: calls(rt) == [f"{a} {b}"], timeout=60, what="the switch to run")
    supervisor = rt.supervisor_pid()
    assert supervisor is not None
    os.kill(supervisor, 9)
    (rt.work / "hold").unlink()  # whether the orphaned switch finishes or not
    out, err = restart.communicate(timeout=60)
    assert restart.returncode == 0, (out, err)
    assert "re-adopting" in err
    journal = (rt.logs / "supervisor.log").read_text()
    assert f"re-adopted pid {old}" in journal
    assert "a switch was cut short; switching traffic to slot" in journal
    assert "left by a rolling restart" in journal  # the candidate, stopped
    wait_for(lambda: len(calls(rt)) == 2, timeout=30, what="the switch to the running slot")
    assert calls(rt) == [f"{a} {b}", f"{b} {a}"]
    unit = rt.wait_state("web", "running")
    assert unit["slot"] == str(a)
    assert environ_of(int(pid_of(unit)))["PORT"] == str(a)  # type: ignore[arg-type]
    wait_for(lambda: upstream(rt) == str(a), timeout=30, what="traffic on the old slot")
    assert not answers(b)


def test_a_slot_file_that_cannot_be_written_is_said_and_the_restart_still_works(
    rt: Runtime,
) -> None:
    _a, b, _ = setup(rt, state_path="switch.sh/slot")  # under a regular file: never a dir
    done = rt.sysg("restart", "-s", "web", timeout=60)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert web(rt)["slot"] == str(b)
    assert upstream(rt) == str(b)
    journal = (rt.logs / "supervisor.log").read_text()
    assert f"cannot record slot {b} in" in journal


def test_reordered_slots_keep_the_serving_one_even_when_the_candidate_fails(
    rt: Runtime,
) -> None:
    a, b, path = setup(rt)
    old = int(pid_of(web(rt)))  # type: ignore[call-overload]
    path.write_text(manifest(b, a, env="        BROKEN: '1'\n"))  # reordered, and broken
    done = rt.sysg("restart", "-c", str(path), timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "SG0102" in done.stderr
    unit = web(rt)
    assert (pid_of(unit), unit["slot"]) == (old, str(a))  # still a, the slot it serves
    assert calls(rt) == []
    path.write_text(manifest(b, a))
    done = rt.sysg("restart", "-c", str(path), timeout=60)
    assert done.returncode == 0, (done.stdout, done.stderr)
    unit = web(rt)
    assert unit["slot"] == str(b)  # the other one, by value
    assert environ_of(int(pid_of(unit)))["PORT"] == str(b)  # type: ignore[arg-type]
    assert calls(rt) == [f"{a} {b}"]
    assert not pid_alive(old)


def _switch_processes(a: int, b: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:4] == [b"sh", b"switch.sh", str(a).encode(), str(b).encode()]:
                found.append(int(entry))
    return found


def test_a_switch_left_running_by_the_last_supervisor_is_stopped_before_realigning(
    rt: Runtime,
) -> None:
    a, b, path = setup(rt)
    (rt.work / "hold").touch()
    restart = rt.popen("restart", "-s", "web")
    wait_for(lambda: calls(rt) == [f"{a} {b}"], timeout=60, what="the switch to run")
    rt.sysg("stop", "--supervisor", check=True, timeout=60)
    restart.communicate(timeout=60)
    assert _switch_processes(a, b)  # still waiting on `hold`, orphaned
    rt.sysg("start", "-c", str(path), "--daemonize", check=True, timeout=60)
    wait_for(lambda: len(calls(rt)) == 2, timeout=30, what="the realigning switch")
    wait_for(lambda: not _switch_processes(a, b), timeout=30, what="the orphan to be stopped")
    assert "stopping switch pid" in (rt.logs / "supervisor.log").read_text()
    (rt.work / "hold").unlink()
    wait_for(lambda: upstream(rt) == str(a), timeout=30, what="traffic on a")
    assert calls(rt) == [f"{a} {b}", f"{b} {a}"]
    assert rt.wait_state("web", "running")["slot"] == str(a)


def test_an_unwritable_slot_file_does_not_switch_again_at_every_restart(rt: Runtime) -> None:
    _a, b, _ = setup(rt, state_path="switch.sh/slot", extra="    backoff: 100ms\n")
    done = rt.sysg("restart", "-s", "web", timeout=60)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert len(calls(rt)) == 1
    for _ in range(2):  # crashes, restarted by its policy in the same slot
        pid = int(pid_of(web(rt)))  # type: ignore[call-overload]
        os.kill(pid, 9)
        wait_for(
            lambda pid=pid: (u := web(rt))["phase"] == "running" and pid_of(u) not in (None, pid),
            timeout=30,
            what="the restart by policy",
        )
    assert len(calls(rt)) == 1  # this supervisor knows where the traffic is
    assert web(rt)["slot"] == str(b)
