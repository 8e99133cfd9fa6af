"""Fault: the fd holder is ``kill -9``'d while services run, then the supervisor too.

The supervisor must notice the holder's death (WARN in ``supervisor.log``), start a new
one and hand it every service's pipes again, without touching the services. The proof
that the new holder really holds them is the crash that follows: with the supervisor
killed as well, the services keep running and writing (their output piles up in pipes
only the new holder keeps open), and the next supervisor re-adopts them and drains it,
so every numbered line reaches the log exactly once.
"""

from __future__ import annotations

import array
import fcntl
import itertools
import os
import re
import signal
import termios

from tests.faults import harness
from tests.support.procscan import new_marker
from tests.support.runtime import Runtime, pid_alive, wait_for


def holder_pid(rt: Runtime) -> int | None:
    try:
        return int((rt.state / "fdholder.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def fd_targets(pid: int) -> dict[str, int]:
    """``readlink`` of each open fd of ``pid`` → that fd number."""
    out: dict[str, int] = {}
    for entry in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[os.readlink(f"/proc/{pid}/fd/{entry}")] = int(entry)
        except OSError:
            continue
    return out


def output_pipes(pid: int) -> list[str]:
    """The pipes a service writes its stdout and stderr to (``pipe:[inode]``)."""
    return [os.readlink(f"/proc/{pid}/fd/{n}") for n in (1, 2)]


def holds_all(holder: int, pipes: list[str]) -> bool:
    if not pid_alive(holder):
        return False
    held = fd_targets(holder)
    return all(p in held for p in pipes)


def unread_bytes(holder: int, pipe: str) -> int:
    """Bytes waiting in ``pipe``, seen through the holder's copy of its read end."""
    fd = os.open(f"/proc/{holder}/fd/{fd_targets(holder)[pipe]}", os.O_RDONLY | os.O_NONBLOCK)
    try:
        count = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, count)
        return count[0]
    finally:
        os.close(fd)


def test_holder_killed_then_supervisor_killed_loses_nothing(rt: Runtime) -> None:
    marker = new_marker()
    cgroups_before = harness.cgroup_dirs()
    names = ("tick1", "tick2")
    cfg = rt.write(
        "sysg.yaml",
        harness.manifest("fh", *(harness.ticker(n, marker) for n in names)),
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    bystanders = harness.Bystanders(rt, "fh", names)
    bystanders.record()
    pipes = [p for name in names for p in output_pipes(bystanders.pids[name])]
    supervisor = rt.supervisor_pid()
    assert supervisor is not None

    old = wait_for(lambda: holder_pid(rt), what="the fd holder's pid file")
    wait_for(lambda: holds_all(old, pipes), what="the holder to hold every pipe")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old), what="the holder to die")

    # Noticed and logged, and a new holder (another pid) holds every pipe again.
    log = rt.logs / "supervisor.log"
    wait_for(
        lambda: any(
            " WARN " in line and f"fd holder (pid {old})" in line
            for line in log.read_text().splitlines()
        ),
        what="a WARN about the lost fd holder",
    )
    new = wait_for(
        lambda: (p := holder_pid(rt)) is not None and p != old and holds_all(p, pipes) and p,
        what="a new holder holding every pipe",
    )
    assert rt.supervisor_pid() == supervisor
    bystanders.check()
    before_crash = {n: len(harness.numbers(bystanders.log(n), n)) for n in names}

    # Now the supervisor dies: only the new holder keeps the read ends open.
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not pid_alive(supervisor), what="the supervisor to die")
    for name in names:
        assert pid_alive(bystanders.pids[name]), f"{name} died with the supervisor"
    assert pid_alive(new)
    # The services keep printing into pipes nobody reads: their output waits there.
    for pipe in pipes[::2]:  # the stdout pipes
        wait_for(lambda p=pipe: unread_bytes(new, p) > 200, what="output written in the outage")

    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    revived = rt.supervisor_pid()
    assert revived is not None
    assert revived != supervisor
    # Same pids (re-adopted, not restarted), and 1..N with no gap across both faults.
    bystanders.check(min_lines=max(before_crash.values()) + 10)
    assert holder_pid(rt) == new, "the surviving holder is the one the new supervisor uses"
    harness.assert_clean_shutdown(rt, marker, cgroups_before)
    assert not pid_alive(new)


def test_holder_that_keeps_dying_is_restarted_with_backoff(rt: Runtime) -> None:
    """Killing each new holder as soon as it holds the pipes: every loss is logged with
    the delay before the next start — now, then doubling — and exactly one holder is
    started per loss (no tight loop). The supervisor and the service carry on, and a
    holder holds the pipes again at the end."""
    marker = new_marker()
    cgroups_before = harness.cgroup_dirs()
    cfg = rt.write("sysg.yaml", harness.manifest("fb", harness.ticker("tick", marker)))
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    bystanders = harness.Bystanders(rt, "fb", ("tick",))
    bystanders.record()
    supervisor = rt.supervisor_pid()
    pipes = output_pipes(bystanders.pids["tick"])
    killed: list[int] = []

    def fresh_holder() -> int | None:
        pid = holder_pid(rt)
        return pid if pid is not None and pid not in killed and holds_all(pid, pipes) else None

    for _ in range(5):
        pid = wait_for(fresh_holder, timeout=20, what="a new holder holding the pipes")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda p=pid: not pid_alive(p), what="the holder to die")
        killed.append(pid)
    wait_for(fresh_holder, timeout=20, what="a holder again after the backoff")
    lines = (rt.logs / "supervisor.log").read_text().splitlines()
    delays = [
        0.0 if m.group(1) == "now" else float(m.group(2))
        for line in lines
        if " WARN " in line
        and (m := re.search(r"fd holder \(pid \d+\) .*a new one starts (now|in ([\d.]+)s)", line))
    ]
    assert len(delays) == len(killed), lines
    assert delays[0] == 0.0, delays
    assert all(a < b for a, b in itertools.pairwise(delays)), delays
    # One holder per loss: each loss line names a holder the test killed, each once (a
    # holder killed before its "connected" line was written has none, so those lines are
    # not counted).
    lost = [
        int(m.group(1))
        for line in lines
        if " WARN " in line
        and (m := re.search(r"fd holder \(pid (\d+)\) .*a new one starts", line))
    ]
    assert sorted(lost) == sorted(killed), (lost, killed)
    assert rt.supervisor_pid() == supervisor
    bystanders.check()
    harness.assert_clean_shutdown(rt, marker, cgroups_before)
