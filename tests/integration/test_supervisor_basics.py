"""The resident supervisor with real processes: the status round trip, start order by
``depends_on``, one supervisor per state root, one thread, and SIGTERM shutdown."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.support.procscan import new_marker, supervisors_for, thread_count, with_marker
from tests.support.runtime import SYSG, Runtime, pid_alive, pid_of, started_at, wait_for

READY_S = 0.25  # lifecycle.READY_AFTER_S: a service is up once it survived this long


def stamping(name: str, work: Path, marker: str) -> str:
    """A service command that records its own start time (ns), then sleeps."""
    return f"date +%s%N > {work}/{name}.started; exec sleep 1000.{marker}"


def started_ns(rt: Runtime, name: str) -> int:
    return int((rt.work / f"{name}.started").read_text())


def test_start_status_stop_round_trip(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  rt:
    services:
      web:
        command: "exec sleep 1000.{m}"
      worker:
        command: "exec sleep 1000.{m}"
        depends_on: [web]
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    data = rt.status()
    assert data["schema_version"] == "status.v1"
    assert data["overall_health"] == "healthy"
    assert data["supervisor_pid"] == rt.supervisor_pid()
    units = {u["name"]: u for u in data["units"]}
    assert set(units) == {"web", "worker"}
    for unit in units.values():
        for key in ("name", "project", "kind", "state", "intent", "health", "process", "uptime"):
            assert key in unit
        assert (unit["state"], unit["health"]) == ("running", "healthy")
        assert unit["project"]["id"] == "rt"
        assert unit["phase"] == "running"
        assert pid_alive(pid_of(unit))
        assert unit["restarts"] == 0
        assert unit.get("last_exit") is None
    assert {p.pid for p in with_marker(m)} == {pid_of(u) for u in units.values()}
    # exit code 0 = healthy
    assert rt.sysg("status").returncode == 0

    stop = rt.sysg("stop", "-s", "worker", check=True)
    assert "worker" in stop.stdout
    assert rt.unit("worker")["phase"] == "stopped"
    assert pid_of(rt.unit("worker")) is None
    assert not pid_alive(pid_of(units["worker"]))
    assert pid_of(rt.unit("web")) == pid_of(units["web"])

    rt.sysg("stop", "-p", "rt", check=True)
    after = rt.status()
    assert {u["phase"] for u in after["units"]} == {"stopped"}
    wait_for(lambda: not with_marker(m), timeout=5, what="services to be gone")
    # idempotent
    rt.sysg("stop", "-p", "rt", check=True)
    rt.sysg("stop", "--supervisor", check=True)
    assert rt.sysg("status").returncode == 2  # no supervisor


def test_parallel_start_order_chain(rt: Runtime) -> None:
    m = new_marker()
    w = rt.work
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  chain:
    services:
      c:
        command: "{stamping("c", w, m)}"
        depends_on: [b]
      b:
        command: "{stamping("b", w, m)}"
        depends_on: [a]
      a:
        command: "{stamping("a", w, m)}"
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    units = {u["name"]: u for u in rt.status()["units"]}
    assert {u["phase"] for u in units.values()} == {"running"}
    # The services' own clocks: each started only after its dependency was up (250 ms).
    a, b, c = (started_ns(rt, n) for n in "abc")
    assert b - a >= READY_S * 1e9 * 0.9
    assert c - b >= READY_S * 1e9 * 0.9
    # And the supervisor agrees.
    assert started_at(units["b"]) >= started_at(units["a"]) + READY_S
    assert started_at(units["c"]) >= started_at(units["b"]) + READY_S
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


def test_parallel_start_order_diamond(rt: Runtime) -> None:
    m = new_marker()
    w = rt.work
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  diamond:
    services:
      d:
        command: "{stamping("d", w, m)}"
        depends_on: [b, c]
      b:
        command: "{stamping("b", w, m)}"
        depends_on: [a]
      c:
        command: "{stamping("c", w, m)}"
        depends_on: [a]
      a:
        command: "{stamping("a", w, m)}"
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    units = {u["name"]: u for u in rt.status()["units"]}
    assert {u["phase"] for u in units.values()} == {"running"}
    a, b, c, d = (started_ns(rt, n) for n in "abcd")
    ready_ns = READY_S * 1e9 * 0.9
    assert b - a >= ready_ns
    assert c - a >= ready_ns
    assert d - max(b, c) >= ready_ns
    # b and c do not wait for each other: both start once a is up (parallel start).
    assert abs(started_at(units["b"]) - started_at(units["c"])) < READY_S
    assert started_at(units["d"]) >= max(started_at(units["b"]), started_at(units["c"]))
    rt.sysg("stop", "--supervisor", check=True)
    assert not with_marker(m)


def test_second_start_does_not_start_a_second_supervisor(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  one:
    services:
      s:
        command: "exec sleep 1000.{m}"
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    first = rt.supervisor_pid()
    pid = pid_of(rt.unit("s"))
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    assert rt.supervisor_pid() == first
    assert supervisors_for(rt.state) == [first]
    assert pid_of(rt.unit("s")) == pid  # already running: not started again
    assert len(with_marker(m)) == 1
    # Two racing CLIs against a running supervisor: still exactly one.
    procs = [
        subprocess.Popen(
            [SYSG, "start", "-c", str(cfg), "--daemonize"],
            cwd=rt.work,
            env=rt.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert supervisors_for(rt.state) == [first]
    assert len(with_marker(m)) == 1


def test_racing_first_starts_boot_one_supervisor(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  race:
    services:
      s:
        command: "exec sleep 1000.{m}"
""",
    )
    procs = [
        subprocess.Popen(
            [SYSG, "start", "-c", str(cfg), "--daemonize"],
            cwd=rt.work,
            env=rt.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert supervisors_for(rt.state) == [rt.supervisor_pid()]
    assert len(with_marker(m)) == 1
    assert rt.unit("s")["phase"] == "running"


def test_supervisor_has_one_thread(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  thr:
    services:
      a:
        command: "while :; do echo tick; sleep 0.05; done; : {m}"
      b:
        command: "exec sleep 1000.{m}"
        depends_on: [a]
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    pid = rt.supervisor_pid()
    assert pid is not None
    assert {u["phase"] for u in rt.status()["units"]} == {"running"}
    assert thread_count(pid) == 1
    rt.sysg("logs", "-s", "a", "-n", "5")
    rt.sysg("stop", "-s", "b", check=True)
    assert thread_count(pid) == 1


def test_sigterm_stops_services_in_reverse_dependency_order_then_exits_0(
    rt: Runtime,
) -> None:
    m = new_marker()
    order = rt.work / "stop-order"
    # Each service notes (with a shell builtin) when SIGTERM reached it, then exits.
    svc = "trap 'echo {name} >> " + f"{order}; exit 0' TERM; sleep 1000.{m} & wait"
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  down:
    services:
      a:
        command: "{svc.format(name="a")}"
      b:
        command: "{svc.format(name="b")}"
        depends_on: [a]
      c:
        command: "{svc.format(name="c")}"
        depends_on: [b]
      lone:
        command: "{svc.format(name="lone")}"
""",
    )
    # Run the supervisor as our own child, so its exit status is ours to read.
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
        wait_for((rt.state / "control.sock").exists, timeout=10, what="socket")
        rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
        assert rt.supervisor_pid() == sup.pid
        pids = [pid_of(u) for u in rt.status()["units"]]
        assert len(pids) == 4
        assert all(pid_alive(p) for p in pids)
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=30) == 0
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
    lines = order.read_text().split()
    assert sorted(lines) == ["a", "b", "c", "lone"]
    assert lines.index("c") < lines.index("b") < lines.index("a")
    assert not any(pid_alive(p) for p in pids)
    assert not with_marker(m)
    assert not (rt.state / "sysg.pid").exists()
    assert not (rt.state / "control.sock").exists()


def test_status_without_supervisor_exits_2(rt: Runtime) -> None:
    proc = rt.sysg("status", "--format", "json")
    assert proc.returncode == 2
    assert not supervisors_for(rt.state)
