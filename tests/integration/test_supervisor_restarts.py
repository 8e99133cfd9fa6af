"""Restart policies with real processes: clean and failing exits, signals, backoff
doubling, ``max_restarts`` → failed, and no zombies after a long crash loop."""

from __future__ import annotations

import os
from datetime import datetime
from itertools import pairwise

import pytest

from tests.support.procscan import new_marker, with_marker, zombie_children
from tests.support.runtime import Runtime, pid_of, wait_for


def runs(rt: Runtime, project: str, service: str) -> list[float]:
    """Epoch times of each ``run`` line the service printed (one per process)."""
    path = rt.logs / project / f"{service}.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        stamp, stream, text = line.split(" ", 2)
        if stream == "stdout" and text.startswith("run"):
            out.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    return out


EXITS = {
    "clean": "exit 0",
    "failing": "exit 3",
    "signal": "kill -9 $$",
}


@pytest.mark.parametrize(
    ("policy", "exit_kind", "restarts", "state"),
    [
        ("always", "clean", True, "failed"),
        ("always", "failing", True, "failed"),
        ("on-failure", "clean", False, "exited"),
        ("on-failure", "failing", True, "failed"),
        ("on-failure", "signal", True, "failed"),
        ("never", "clean", False, "exited"),
        ("never", "failing", False, "exited"),
        ("never", "signal", False, "killed"),
    ],
)
def test_policy_with_exit(
    rt: Runtime, policy: str, exit_kind: str, restarts: bool, state: str
) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  pol:
    services:
      job:
        command: "echo run {m}; {EXITS[exit_kind]}"
        restart_policy: {policy}
        backoff: 50ms
        max_restarts: 2
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize")
    unit = rt.wait_state("job", state)
    expected_restarts = 2 if restarts else 0
    assert unit["restarts"] == expected_restarts
    assert pid_of(unit) is None
    last = unit["last_exit"]
    assert last is not None
    if exit_kind == "signal":
        assert (last.get("exit_code"), last["signal"]) == (None, 9)
    else:
        assert (last["exit_code"], last.get("signal")) == (0 if exit_kind == "clean" else 3, None)
    # The service's own output: one "run" line per process started.
    wait_for(lambda: len(runs(rt, "pol", "job")) == expected_restarts + 1, timeout=5)
    if state == "failed":
        assert "max_restarts" in unit["message"]
    # The upstream's words (status.v1): a clean finish is done, anything else failed.
    done = exit_kind == "clean" and state == "exited"
    assert (unit["state"], unit["health"]) == (
        ("done", "healthy") if done else ("failed", "failing")
    )
    assert unit["intent"] == ("once" if policy == "never" else "unspecified")
    health = rt.status()["overall_health"]
    assert health == ("healthy" if done else "failing")
    assert not with_marker(m)


def test_always_keeps_a_clean_exiting_service_running(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  pol:
    services:
      job:
        command: "echo run; sleep 0.3; exit 0; : {m}"
        restart_policy: always
        backoff: 0
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize")
    first = pid_of(rt.unit("job"))
    unit = wait_for(
        lambda: (u := rt.unit("job"))["restarts"] >= 2 and u["phase"] == "running" and u,
        timeout=15,
        what="two restarts",
    )
    assert pid_of(unit) != first
    assert unit["last_exit"]["exit_code"] == 0
    rt.sysg("stop", "-s", "job", check=True)
    stopped = rt.unit("job")
    assert stopped["phase"] == "stopped"
    # A manual stop is never followed by a restart.
    restarts = stopped["restarts"]
    runs_now = len(runs(rt, "pol", "job"))
    wait_for(lambda: not with_marker(m), timeout=5)
    assert rt.unit("job")["phase"] == "stopped"
    assert rt.unit("job")["restarts"] == restarts
    assert len(runs(rt, "pol", "job")) == runs_now


@pytest.mark.slow
def test_backoff_doubles(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  bo:
    services:
      flap:
        command: "echo run {m}; exit 1"
        restart_policy: on-failure
        backoff: 200ms
        max_restarts: 4
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize")
    unit = rt.wait_state("flap", "failed", timeout=30)
    assert unit["restarts"] == 4
    times = wait_for(lambda: (t := runs(rt, "bo", "flap")) and len(t) == 5 and t, timeout=5)
    gaps = [b - a for a, b in pairwise(times)]
    # Expected ~0.2, 0.4, 0.8, 1.6 s plus spawn overhead: never shorter than the delay,
    # each clearly longer than the one before.
    for gap, delay in zip(gaps, [0.2, 0.4, 0.8, 1.6], strict=True):
        assert gap >= delay * 0.95, gaps
    for shorter, longer in pairwise(gaps):
        assert longer > shorter * 1.25, gaps
    assert gaps[-1] < 1.6 * 2, gaps  # doubling, not worse


def test_max_restarts_two_is_failed_and_stays_down(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  mr:
    services:
      crashy:
        command: "echo run {m}; sleep 0.05; exit 2"
        restart_policy: always
        backoff: 10ms
        max_restarts: 2
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize")
    unit = rt.wait_state("crashy", "failed")
    assert unit["restarts"] == 2
    assert unit["last_exit"]["exit_code"] == 2
    assert rt.sysg("status").returncode == 2  # failing
    assert len(runs(rt, "mr", "crashy")) == 3
    assert rt.unit("crashy")["phase"] == "failed"
    assert not with_marker(m)
    # A manual start resets the budget.
    rt.sysg("start", "-s", "crashy", "--daemonize")
    wait_for(lambda: len(runs(rt, "mr", "crashy")) == 6, timeout=10, what="3 more runs")
    assert rt.wait_state("crashy", "failed")["restarts"] == 2


@pytest.mark.slow
def test_no_zombies_after_100_crash_restart_cycles(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  zz:
    services:
      flap:
        command: "echo run; exit 0; : {m}"
        restart_policy: always
        backoff: 0
""",
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize")
    sup = rt.supervisor_pid()
    assert sup is not None
    # The baseline once it runs steadily: the fd holder is connected to asynchronously
    # right after boot (its socket and pidfd would otherwise count as a "leak").
    wait_for(lambda: rt.unit("flap")["restarts"] >= 5, timeout=30, what="5 restarts")
    fds_at_start = len(os.listdir(f"/proc/{sup}/fd"))
    most = 0

    def cycles() -> bool:
        nonlocal most
        # While it crash-loops, at most the one process that just died awaits reaping.
        most = max(most, len(zombie_children(sup)))
        return bool(rt.unit("flap")["restarts"] >= 100)

    wait_for(cycles, timeout=90, interval=0.05, what="100 restarts")
    assert most <= 1
    rt.sysg("stop", "-s", "flap", check=True)
    assert rt.unit("flap")["phase"] == "stopped"
    wait_for(lambda: not zombie_children(sup), timeout=5, what="no zombie children")
    # Nor leaked descriptors: every generation's pidfd and pipes were closed.
    assert len(os.listdir(f"/proc/{sup}/fd")) <= fds_at_start
    assert len(runs(rt, "zz", "flap")) >= 101
    assert not with_marker(m)
    assert rt.sysg("status").returncode in (0, 1)  # still answering
