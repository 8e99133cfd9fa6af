"""Rolling restarts with real processes (docs/manifest.md, "Rolling restarts"), in user mode.

The service is ``examples/rolling/server.py``: it serves HTTP on the socket sysg holds
(``listen:``), says READY=1, and on SIGTERM finishes what it accepted. Under an HTTP load from
127.0.0.1 (client threads, a new connection per request):

- three ``sysg restart -s web`` of the rolling service: zero failed or refused requests, a new
  pid each time, the old one ``draining`` in status while the new one is up;
- the same server binding its own fixed ``PORT`` (no ``listen:``) falls back to
  stop-then-start with the upstream warning, and the load sees failures — so the first test
  proves something;
- a new generation that exits at start leaves the old pid serving, and the restart exits 1
  with SG0102 and the new one's last log line.

No wall-time assertion: the counts are of requests, the waits are polls with deadlines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest

from tests.support.httpload import Load
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rolling" / "server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def manifest(
    port: int,
    *,
    listen: bool = True,
    env: str = "",
    strategy: str = "rolling",
    grace: str = "300ms",
) -> str:
    sock = f'    listen: ["127.0.0.1:{port}"]\n' if listen else ""
    vars_ = f"      PORT: '{port}'\n" if not listen else ""
    return (
        'version: "2"\n'
        "services:\n"
        "  web:\n"
        "    exec: [python3, server.py]\n"
        f"{sock}"
        "    notify: true\n"
        "    start_timeout: 20s\n"
        "    env:\n"
        "      vars:\n"
        f"{vars_}"
        "        GENERATION: g\n"
        f"{env}"
        "    deployment:\n"
        f"      strategy: {strategy}\n"
        f"      grace_period: {grace}\n"
    ).replace("      PORT", "        PORT")


def setup(rt: Runtime, port: int, **kw: bool | str) -> Path:
    shutil.copy(EXAMPLE, rt.work / "server.py")
    path = rt.write("systemg.yaml", manifest(port, **kw))  # type: ignore[arg-type]
    rt.sysg("start", "-c", str(path), "--daemonize", check=True, timeout=60)
    rt.wait_state("web", "running")
    return path


def web_rows(rt: Runtime) -> list[dict[str, object]]:
    return [u for u in rt.status()["units"] if u["name"] == "web"]


def test_rolling_restart_under_load_drops_nothing(rt: Runtime) -> None:
    port = free_port()
    # 2 s of draining: long enough for `sysg status` to see it on a loaded machine.
    setup(rt, port, grace="2s")
    pids = [int(pid_of(rt.unit("web")))]
    seen_draining = False
    with Load("127.0.0.1", port) as load:
        load.wait_requests(200)
        for _ in range(3):
            restart = rt.popen("restart", "-s", "web")
            rows: list[dict[str, object]] = []

            def switched(old: int = pids[-1], restart: subprocess.Popen[str] = restart) -> bool:
                nonlocal rows
                rows = web_rows(rt)
                return any(r["phase"] == "draining" and pid_of(r) == old for r in rows) or (
                    restart.poll() is not None
                )

            wait_for(switched, timeout=60, what="the old generation to drain")
            if any(r["phase"] == "draining" for r in rows):
                seen_draining = True
                assert rows[0]["phase"] == "running", rows
                assert pid_of(rows[0]) != pids[-1], rows
            out, err = restart.communicate(timeout=60)
            assert restart.returncode == 0, (out, err)
            new = int(pid_of(rt.unit("web")))
            assert new != pids[-1]
            assert not pid_alive(pids[-1])
            pids.append(new)
            load.wait_requests(200)
    assert load.failed == 0, f"{load.failures} of {load.total()} requests failed"
    assert load.ok >= 800
    assert seen_draining, "status never showed the old generation as draining"
    assert set(pids) <= load.pids | {pids[0]}  # every generation answered (the first one too)
    log = (rt.logs / rt.unit("web")["project"]["id"] / "web.log").read_text()
    for old, new in pairwise(pids):
        assert f"pid {new} is up; pid {old} drains" in log
        assert f"pid {old} stopped; pid {new} serves" in log
        # While both run, the other generation's lines say which pid wrote them.
        assert f"stdout [pid {new}] pid {new} serving on" in log
        assert f"stdout [pid {old}] pid {old} stopped accepting" in log
    data = json.loads(rt.sysg("status", "--format", "json", check=True).stdout)
    assert [u["phase"] for u in data["units"] if u["name"] == "web"] == ["running"]


@pytest.mark.parametrize("strategy", ["immediate", "rolling"])
def test_stop_then_start_on_a_fixed_port_drops_requests(rt: Runtime, strategy: str) -> None:
    """The server binds its own PORT: an immediate restart (asked for, or the rolling one's
    fallback, with the upstream warning) leaves a gap the load sees."""
    port = free_port()
    setup(rt, port, listen=False, strategy=strategy)
    with Load("127.0.0.1", port) as load:
        load.wait_requests(200)
        for _ in range(3):
            done = rt.sysg("restart", "-s", "web", timeout=60)
            assert done.returncode == 0, done.stderr
            warned = "switching to immediate restart semantics" in done.stderr
            assert warned is (strategy == "rolling"), done.stderr
            load.wait_requests(200)
    assert load.failed > 0, "an immediate restart under load should drop requests"
    journal = (rt.logs / "supervisor.log").read_text()
    assert ("switching to immediate restart semantics" in journal) is (strategy == "rolling")


FAILURES = {
    # how the new generation fails: (manifest edit, code, a line of its output in the error)
    "exits": ("        BROKEN: '1'\n", "SG0102", "BROKEN is set: refusing to start"),
    "never ready": ("        NO_READY: '1'\n", "SG0104", "serving on"),
    "pre_start fails": ("PRE", "SG0103", "migration failed"),
}


@pytest.mark.parametrize("how", list(FAILURES))
def test_failing_new_generation_leaves_the_old_one_serving(rt: Runtime, how: str) -> None:
    port = free_port()
    path = setup(rt, port)
    before = rt.unit("web")
    edit, code, line = FAILURES[how]
    text = manifest(port, env="" if edit == "PRE" else edit)
    if edit == "PRE":
        text += "      pre_start: echo migration failed; exit 4\n"
    if how == "never ready":
        text = text.replace("start_timeout: 20s", "start_timeout: 2s")
    path.write_text(text)
    with Load("127.0.0.1", port) as load:
        load.wait_requests(100)
        done = rt.sysg("restart", "-s", "web", timeout=60)
        load.wait_requests(100)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert code in done.stderr
    assert line in done.stderr
    after = rt.unit("web")
    assert (pid_of(after), after["phase"]) == (pid_of(before), "running")
    assert load.failed == 0
    if how == "never ready":
        # It served from the shared socket while starting (it accepts as soon as it runs);
        # what counts is that no request failed and the old one serves on.
        assert pid_of(before) in load.pids
    else:
        assert load.pids == {pid_of(before)}
    assert [r["phase"] for r in web_rows(rt)] == ["running"]


def test_stop_during_a_rollout_stops_both_generations(rt: Runtime) -> None:
    port = free_port()
    path = setup(rt, port)
    path.write_text(manifest(port).replace("grace_period: 300ms", "grace_period: 60s"))
    old = int(pid_of(rt.unit("web")))
    restart = rt.popen("restart", "-s", "web")
    rows = wait_for(
        lambda: [r for r in web_rows(rt) if r["phase"] == "draining"] and web_rows(rt),
        timeout=60,
        what="a draining generation",
    )
    new = int(pid_of(rows[0]))  # type: ignore[call-overload]
    assert new != old
    table = rt.sysg("status", check=True).stdout
    assert any("draining" in line and str(old) in line for line in table.splitlines()), table
    rt.sysg("stop", check=True, timeout=60)
    restart.communicate(timeout=60)
    assert not pid_alive(old)
    assert not pid_alive(new)


def test_reconcile_and_project_restart_roll_too(rt: Runtime) -> None:
    port = free_port()
    path = setup(rt, port)
    first = int(pid_of(rt.unit("web")))
    with Load("127.0.0.1", port) as load:
        load.wait_requests(200)
        path.write_text(manifest(port).replace("GENERATION: g", "GENERATION: g2"))
        done = rt.sysg("restart", "-c", str(path), timeout=60)
        assert done.returncode == 0, done.stderr
        second = int(pid_of(rt.unit("web")))
        load.wait_requests(200)
        # The registered manifest, re-read: a project restart (unchanged services keep
        # their pids, as before; a changed rolling one rolls).
        path.write_text(manifest(port).replace("GENERATION: g", "GENERATION: g3"))
        done = rt.sysg("restart", timeout=60)
        assert done.returncode == 0, done.stderr
        third = int(pid_of(rt.unit("web")))
        load.wait_requests(200)
    assert len({first, second, third}) == 3
    assert load.failed == 0, f"{load.failures} of {load.total()} requests failed"
    assert {second, third} <= load.pids


def test_supervisor_killed_mid_switch_leaves_one_generation(rt: Runtime) -> None:
    """kill -9 of the supervisor while the old generation drains: the next supervisor adopts
    the recorded (new) pid and stops the old one it finds in the state file."""
    port = free_port()
    path = setup(rt, port)
    path.write_text(manifest(port).replace("grace_period: 300ms", "grace_period: 60s"))
    old = int(pid_of(rt.unit("web")))
    restart = rt.popen("restart", "-s", "web")
    rows = wait_for(
        lambda: [r for r in web_rows(rt) if r["phase"] == "draining"] and web_rows(rt),
        timeout=60,
        what="a draining generation",
    )
    new = int(pid_of(rows[0]))  # type: ignore[call-overload]
    sup = rt.supervisor_pid()
    assert sup is not None
    os.kill(sup, signal.SIGKILL)
    restart.communicate(timeout=60)
    wait_for(lambda: not pid_alive(sup), what="the supervisor to be gone")
    assert [(r["phase"], pid_of(r)) for r in web_rows(rt)] == [("running", new)]  # revives it
    wait_for(lambda: not pid_alive(old), timeout=30, what="the old generation to be stopped")
    assert pid_alive(new)


PROBATION = """\
version: "2"
services:
  web:
    exec: [python3, gen.py]
    restart_policy: always
    deployment:
      strategy: rolling
      pre_start: "echo x >> pre-count"
      grace_period: 3s
  api:
    command: "exec sleep 3000"
    depends_on: [web]
"""
GEN = """\
import os, sys, time
if open("mode").read().strip() == "fail":
    time.sleep(0.6)  # up by the 250 ms rule, then gone inside the grace period
    print("new generation gave out", file=sys.stderr, flush=True)
    sys.exit(42)
print(f"gen {os.getpid()} serving", flush=True)
while True:
    time.sleep(1)
"""


def test_a_new_generation_that_dies_in_its_grace_period_is_rolled_back(rt: Runtime) -> None:
    rt.write("gen.py", GEN)
    rt.write("mode", "good\n")
    rt.write("systemg.yaml", PROBATION)
    rt.sysg("start", "--daemonize", check=True)
    old, api = pid_of(rt.unit("web")), pid_of(rt.unit("api"))
    assert old is not None
    rt.write("mode", "fail\n")
    done = rt.sysg("restart", "-s", "web", timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "SG0102" in done.stderr
    assert "new generation gave out" in done.stderr
    web = rt.unit("web")
    assert (pid_of(web), web["phase"]) == (old, "running")
    assert pid_alive(old)
    assert [r["phase"] for r in web_rows(rt)] == ["running"]
    # Restarted with web, as -s does, and not held by the failed new generation. The reply
    # of `restart -s web` answers for web alone, so api may still be in its 250 ms start.
    wait_for(lambda: rt.unit("api")["phase"] == "running", timeout=15, what="api up again")
    assert api is not None
    assert (rt.work / "pre-count").read_text().count("x") == 2  # once per launch, no respawn
    log = (rt.logs / rt.unit("web")["project"]["id"] / "web.log").read_text()
    assert f"the new generation failed in its grace period; pid {old} serves on" in log
    # And a later good restart replaces it.
    rt.write("mode", "good\n")
    again = rt.sysg("restart", "-s", "web", timeout=60)
    assert again.returncode == 0, again.stderr
    new = pid_of(rt.unit("web"))
    assert new not in (None, old)
    wait_for(lambda: not pid_alive(old), timeout=20, what="the old generation to stop")


def test_stop_supervisor_in_the_grace_period_is_not_a_failed_probation(rt: Runtime) -> None:
    # The new generation stopped by the shutdown must not roll back (which restarted the
    # old one's dependents after their stop and left one running past the supervisor).
    rt.write("gen.py", GEN)
    rt.write("mode", "good\n")
    rt.write("systemg.yaml", PROBATION.replace("grace_period: 3s", "grace_period: 30s"))
    rt.sysg("start", "--daemonize", check=True)
    pids = {pid_of(rt.unit("web")), pid_of(rt.unit("api"))}
    restart = rt.popen("restart", "-s", "web")
    try:
        rows = wait_for(
            lambda: [r for r in web_rows(rt) if r["phase"] == "draining"] and web_rows(rt),
            timeout=60,
            what="a draining generation",
        )
        pids |= {pid_of(r) for r in rows}  # type: ignore[arg-type]
        rt.sysg("stop", "--supervisor", check=True)
        restart.communicate(timeout=60)
    finally:
        if restart.poll() is None:
            restart.kill()
            restart.wait()
    journal = (rt.logs / "supervisor.log").read_text()
    assert "rolled back" not in journal
    for pid in pids - {None}:
        wait_for(lambda pid=pid: not pid_alive(pid), timeout=20, what=f"pid {pid} to end")
    ps = subprocess.run(["pgrep", "-f", "python3 gen.py"], capture_output=True, text=True)
    assert [int(p) for p in ps.stdout.split() if int(p) in pids] == []
