"""Rolling restarts with real processes (spec lifecycle §7), in user mode.

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
import shutil
import socket
import subprocess
from itertools import pairwise
from pathlib import Path

from tests.support.httpload import Load
from tests.support.runtime import Runtime, pid_alive, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rolling" / "server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def manifest(port: int, *, listen: bool = True, env: str = "") -> str:
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
        "      strategy: rolling\n"
        "      grace_period: 300ms\n"
    ).replace("      PORT", "        PORT")


def setup(rt: Runtime, port: int, **kw: bool | str) -> Path:
    shutil.copy(EXAMPLE, rt.work / "server.py")
    path = rt.write("systemg.yaml", manifest(port, **kw))  # type: ignore[arg-type]
    rt.sysg("start", "-c", str(path), "--daemonize", check=True, timeout=60)
    rt.wait_state("web", "running")
    return path


def web_rows(rt: Runtime) -> list[dict[str, object]]:
    return [u for u in rt.status()["units"] if u["service"] == "web"]


def test_rolling_restart_under_load_drops_nothing(rt: Runtime) -> None:
    port = free_port()
    setup(rt, port)
    pids = [int(rt.unit("web")["pid"])]
    seen_draining = False
    with Load("127.0.0.1", port) as load:
        load.wait_requests(200)
        for _ in range(3):
            restart = rt.popen("restart", "-s", "web")
            rows: list[dict[str, object]] = []

            def switched(old: int = pids[-1], restart: subprocess.Popen[str] = restart) -> bool:
                nonlocal rows
                rows = web_rows(rt)
                return any(r["state"] == "draining" and r["pid"] == old for r in rows) or (
                    restart.poll() is not None
                )

            wait_for(switched, timeout=60, what="the old generation to drain")
            if any(r["state"] == "draining" for r in rows):
                seen_draining = True
                assert rows[0]["state"] == "running", rows
                assert rows[0]["pid"] != pids[-1], rows
            out, err = restart.communicate(timeout=60)
            assert restart.returncode == 0, (out, err)
            new = int(rt.unit("web")["pid"])
            assert new != pids[-1]
            assert not pid_alive(pids[-1])
            pids.append(new)
            load.wait_requests(200)
    assert load.failed == 0, f"{load.failures} of {load.total()} requests failed"
    assert load.ok >= 800
    assert seen_draining, "status never showed the old generation as draining"
    assert set(pids) <= load.pids | {pids[0]}  # every generation answered (the first one too)
    log = (rt.logs / rt.unit("web")["project"] / "web.log").read_text()
    for old, new in pairwise(pids):
        assert f"pid {new} is up; pid {old} drains" in log
        assert f"pid {old} stopped; pid {new} serves" in log
    data = json.loads(rt.sysg("status", "--format", "json", check=True).stdout)
    assert [u["state"] for u in data["units"] if u["service"] == "web"] == ["running"]


def test_fixed_port_without_listen_falls_back_and_drops_requests(rt: Runtime) -> None:
    port = free_port()
    setup(rt, port, listen=False)
    with Load("127.0.0.1", port) as load:
        load.wait_requests(200)
        for _ in range(3):
            done = rt.sysg("restart", "-s", "web", timeout=60)
            assert done.returncode == 0, done.stderr
            assert "switching to immediate restart semantics" in done.stderr
            load.wait_requests(200)
    assert load.failed > 0, "an immediate restart under load should drop requests"
    journal = (rt.logs / "supervisor.log").read_text()
    assert "switching to immediate restart semantics" in journal


def test_failing_new_generation_leaves_the_old_one_serving(rt: Runtime) -> None:
    port = free_port()
    path = setup(rt, port)
    before = rt.unit("web")
    path.write_text(manifest(port, env="        BROKEN: '1'\n"))
    with Load("127.0.0.1", port) as load:
        load.wait_requests(100)
        done = rt.sysg("restart", "-s", "web", timeout=60)
        load.wait_requests(100)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "SG0102" in done.stderr
    assert "BROKEN is set: refusing to start" in done.stderr
    after = rt.unit("web")
    assert (after["pid"], after["state"]) == (before["pid"], "running")
    assert load.failed == 0
    assert load.pids == {before["pid"]}
    assert [r["state"] for r in web_rows(rt)] == ["running"]


def test_stop_during_a_rollout_stops_both_generations(rt: Runtime) -> None:
    port = free_port()
    path = setup(rt, port)
    path.write_text(manifest(port).replace("grace_period: 300ms", "grace_period: 60s"))
    old = int(rt.unit("web")["pid"])
    restart = rt.popen("restart", "-s", "web")
    rows = wait_for(
        lambda: [r for r in web_rows(rt) if r["state"] == "draining"] and web_rows(rt),
        timeout=60,
        what="a draining generation",
    )
    new = int(rows[0]["pid"])  # type: ignore[call-overload]
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
    first = int(rt.unit("web")["pid"])
    with Load("127.0.0.1", port) as load:
        load.wait_requests(200)
        path.write_text(manifest(port).replace("GENERATION: g", "GENERATION: g2"))
        done = rt.sysg("restart", "-c", str(path), timeout=60)
        assert done.returncode == 0, done.stderr
        second = int(rt.unit("web")["pid"])
        load.wait_requests(200)
        # The registered manifest, re-read: a project restart (unchanged services keep
        # their pids, as before; a changed rolling one rolls).
        path.write_text(manifest(port).replace("GENERATION: g", "GENERATION: g3"))
        done = rt.sysg("restart", timeout=60)
        assert done.returncode == 0, done.stderr
        third = int(rt.unit("web")["pid"])
        load.wait_requests(200)
    assert len({first, second, third}) == 3
    assert load.failed == 0, f"{load.failures} of {load.total()} requests failed"
    assert {second, third} <= load.pids
