"""Fault cases where the supervisor itself is hit (issue 9): ``kill -9`` during a cold start
and during a restart, and ``SIGSTOP``/``SIGCONT``. A real supervisor (the installed
``sysg``) runs ticker bystanders; afterwards the harness invariants must hold: the
bystanders kept their pid and every line, every service runs exactly once (counted as
session leaders carrying the service's own marker), status answers, and ``stop
--supervisor`` leaves nothing behind.

Nothing here measures time: the kill lands on an observable step (a child of the
supervisor appears, a service's TERM trap runs), the freeze lasts until the services'
pipes hold a given amount of unread output.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import termios
from pathlib import Path

import pytest

from tests.faults import harness
from tests.faults.harness import Bystanders, assert_clean_shutdown, cgroup_dirs, leaders
from tests.support.procscan import new_marker, thread_count
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for

SLEEPERS = 50
TICKERS = ("t0", "t1", "t2", "t3")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def ticker_leaders(marker: str, name: str) -> list[int]:
    return [p.pid for p in leaders(marker) if f"echo {name} " in p.cmdline]


def one_each(expected: dict[str, str]) -> dict[str, int]:
    """``service -> its main process``, once every service (``name -> marker``) runs,
    checking that none runs twice: a duplicate or an orphan fails here."""

    def all_up() -> dict[str, list[int]] | None:
        found = {name: [p.pid for p in leaders(tag)] for name, tag in expected.items()}
        return found if all(found.values()) else None

    found = wait_for(all_up, timeout=30, what="a process for every service")
    twice = {name: pids for name, pids in found.items() if len(pids) > 1}
    assert not twice, f"services running more than once: {twice}"
    return {name: pids[0] for name, pids in found.items()}


def kill_supervisor(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="the supervisor to die")


def finished(client: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = client.communicate(timeout=120)  # a safety net: it must return by itself
    return subprocess.CompletedProcess(client.args, client.returncode, out, err)


# --- 1. kill -9 during a cold start of 50 services ----------------------------------


def cold_manifest(marker: str) -> str:
    """Four tickers, then 50 ``sleep 1000.<marker><nn>`` that start once all four are up
    (one burst of 50 spawns, after the tickers were recorded running)."""
    sleepers = [
        harness.service(
            f"s{i:02d}", command=f"exec sleep 1000.{marker}{i:02d}", depends_on=list(TICKERS)
        )
        for i in range(SLEEPERS)
    ]
    return harness.manifest("cold", *(harness.ticker(n, marker) for n in TICKERS), *sleepers)


@pytest.mark.slow
@pytest.mark.parametrize(
    "when",
    [
        "pid-file",
        "mid-burst",
    ],
)
def test_kill_9_during_cold_start_then_a_new_supervisor_runs_each_service_once(
    rt: Runtime, when: str
) -> None:
    m = new_marker()
    try:
        _cold_start_killed(rt, m, when)
    finally:
        harness.kill_marked(m)  # orphans a faulty supervisor lost: killed by pid


def _cold_start_killed(rt: Runtime, m: str, when: str) -> None:
    before = cgroup_dirs()
    cfg = rt.write("cold.yaml", cold_manifest(m))
    services = {n: f"echo {n} $i; sleep 0.02; done; : {m}" for n in TICKERS}
    services |= {f"s{i:02d}": f"1000.{m}{i:02d}" for i in range(SLEEPERS)}
    client = rt.popen("start", "-c", str(cfg), "--daemonize")
    sup = wait_for(rt.supervisor_pid, interval=0.001, what="the supervisor's pid file")
    survivors: dict[str, tuple[int, int]] = {}
    if when == "mid-burst":
        # The tickers are up (recorded) and the burst of 50 has begun: a few sleepers exist.
        wait_for(
            lambda: sum(f"1000.{m}" in cmdline(c) for c in children(sup)) >= 3,
            timeout=30,
            interval=0.001,
            what="the first sleepers of the burst",
        )
    kill_supervisor(sup)
    answer = finished(client)
    harness.assert_clean_error(answer)
    alive = {p.pid for p in leaders(m)}
    if when == "mid-burst":
        spawned = [p for p in leaders(m) if f"1000.{m}" in p.cmdline]
        assert 0 < len(spawned) < SLEEPERS, f"{len(spawned)} sleepers: not inside the burst"
        for name in TICKERS:
            (pid,) = ticker_leaders(m, name)
            survivors[name] = harness.identity(pid) or (0, 0)
    lines_before = {n: len(harness.numbers(rt.logs / "cold" / f"{n}.log", n)) for n in TICKERS}

    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True, timeout=120)
    new = rt.supervisor_pid()
    assert new is not None
    assert new != sup
    # Exactly one main process per service: nothing started twice, nothing orphaned.
    mains = one_each(services)
    units = {u["name"]: u for u in rt.status()["units"]}
    assert {u["phase"] for u in units.values()} == {"running"}, units
    assert {n: pid_of(units[n]) for n in services} == mains, "status names other processes"
    # What ran before the kill was re-adopted (same pid, same kernel start time).
    for pid in alive:
        assert pid in mains.values(), f"pid {pid} ({cmdline(pid)}) is not a service's process"
    for name, ident in survivors.items():
        assert harness.identity(mains[name]) == ident, f"{name} was restarted"
    by = Bystanders(rt, "cold", TICKERS, pids={n: mains[n] for n in TICKERS})
    by.check(min_lines=max(lines_before.values()) + 10)
    assert_clean_shutdown(rt, m, before)


# --- 2. kill -9 during `sysg restart` ------------------------------------------------


def restart_manifest(marker: str, version: int, stopping: Path) -> str:
    """Tickers (never changed) and two changed services, ``top`` depending on ``base``.

    A restart stops ``top`` first; its TERM trap touches ``stopping`` and takes two
    seconds to exit, so ``base`` still runs its old definition when the supervisor dies.
    The marker of ``base`` is ``1000.<m>1<version>``, of ``top`` ``1000.<m>2<version>``.
    """
    base = f"trap 'exit 0' TERM; sleep 1000.{marker}1{version} & wait"
    top = f"trap 'touch {stopping}; sleep 2; exit 0' TERM; sleep 1000.{marker}2{version} & wait"
    return harness.manifest(
        "rs",
        harness.service("base", command=base),
        harness.service("top", command=top, depends_on=["base"]),
    )


def bystander_manifest(project: str, marker: str) -> str:
    """The tickers, in a project of their own: ``restart -p`` of the other project never
    touches them, and an unchanged project is bounced by ``restart`` (as upstream)."""
    return harness.manifest(project, harness.ticker("t0", marker), harness.ticker("t1", marker))


@pytest.mark.slow
def test_kill_9_during_restart_converges_after_a_new_supervisor(rt: Runtime) -> None:
    m = new_marker()
    try:
        _restart_killed(rt, m)
    finally:
        harness.kill_marked(m)


def _restart_killed(rt: Runtime, m: str) -> None:
    before = cgroup_dirs()
    stopping = rt.work / "top-stopping"
    cfg = rt.write("rs.yaml", restart_manifest(m, 1, stopping))
    rt.sysg(
        "start",
        "-c",
        str(rt.write("by.yaml", bystander_manifest("rsby", m))),
        "--daemonize",
        check=True,
    )
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    by = Bystanders(rt, "rsby", ("t0", "t1"))
    by.record()
    idents = {n: harness.identity(p) for n, p in by.pids.items()}
    sup = rt.supervisor_pid()
    assert sup is not None

    rt.write("rs.yaml", restart_manifest(m, 2, stopping))
    client = rt.popen("restart", "-p", "rs")
    wait_for(stopping.exists, timeout=30, interval=0.005, what="top to be stopping")
    kill_supervisor(sup)
    answer = finished(client)
    # The client either says the supervisor went away, or (it revives one and asks again)
    # reports the restart; never a traceback. Which restart it reported is checked below.
    assert "Traceback" not in answer.stderr + answer.stdout, answer.stderr
    if answer.returncode != 0:
        harness.assert_clean_error(answer)

    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True, timeout=120)
    assert rt.supervisor_pid() not in (None, sup)
    rt.sysg("restart", "-p", "rs", check=True, timeout=120)
    wanted = {n: f"echo {n} $i; sleep 0.02; done; : {m}" for n in by.names}
    wanted |= {"base": f"1000.{m}1", "top": f"1000.{m}2"}
    mains = one_each(wanted)
    units = {u["name"]: u for u in rt.status()["units"]}
    assert {n: u["phase"] for n, u in units.items()} == dict.fromkeys(wanted, "running")
    assert {n: pid_of(units[n]) for n in wanted} == mains
    for name, version_tag in (("base", f"1000.{m}12"), ("top", f"1000.{m}22")):
        assert version_tag in units[name]["command"], units[name]
        assert version_tag in cmdline(mains[name]), (
            f"{name}: status says {units[name]['command']!r}, pid {mains[name]} runs "
            f"{cmdline(mains[name])!r}"
        )
    for name, ident in idents.items():
        assert harness.identity(mains[name]) == ident, f"{name} was restarted"
    by.check(min_lines=50)
    assert_clean_shutdown(rt, m, before)


# --- 3. SIGSTOP, then SIGCONT ---------------------------------------------------------


def unread(holder: int, service_pid: int) -> tuple[int, int]:
    """``(bytes waiting, capacity)`` of ``service_pid``'s stdout pipe, seen through the
    read end ``holder`` has open."""
    pipe = os.readlink(f"/proc/{service_pid}/fd/1")
    for entry in os.listdir(f"/proc/{holder}/fd"):
        try:
            if os.readlink(f"/proc/{holder}/fd/{entry}") != pipe:
                continue
            fd = os.open(f"/proc/{holder}/fd/{entry}", os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            count = bytearray(4)
            fcntl.ioctl(fd, termios.FIONREAD, count)
            return int.from_bytes(count, "little"), fcntl.fcntl(fd, 1032)  # F_GETPIPE_SZ
        finally:
            os.close(fd)
    raise AssertionError(f"pid {holder} holds no read end of {pipe}")


# Once ``go`` exists, 200000 numbered lines (~2.5 MB) as fast as the shell goes: more
# than the 1 MiB pipe, so while the supervisor is frozen the writer blocks on a full pipe.
FLOOD = (
    "while [ ! -e {go} ]; do sleep 0.01; done; "
    "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); echo flood $i; done; exec sleep 1000.{m}"
)


@pytest.mark.slow
def test_sigstop_then_sigcont_loses_nothing_and_status_fails_fast_meanwhile(
    rt: Runtime,
) -> None:
    m = new_marker()
    before = cgroup_dirs()
    go = rt.work / "go"
    flood = harness.service("flood", command=FLOOD.format(m=m, go=go))
    by = harness.start_with_bystanders(rt, "fz", m, flood, names=("t0", "t1"))
    sup = rt.supervisor_pid()
    assert sup is not None
    writer = pid_of(rt.unit("flood"))
    counts = {n: len(harness.numbers(by.log(n), n)) for n in by.names}
    os.kill(sup, signal.SIGSTOP)
    try:
        go.touch()
        # Frozen: the flood fills its pipe and blocks; the tickers' lines pile up unread.
        wait_for(
            lambda: (got := unread(sup, writer))[0] >= got[1] - 4096,
            timeout=60,
            what="the flood's pipe to fill up",
        )
        for name in by.names:
            wait_for(
                lambda n=name: unread(sup, by.pids[n])[0] >= 1000,
                timeout=30,
                what=f"{name}'s output to pile up",
            )
        assert pid_alive(writer), "the flood died on a full pipe"
        # Status must not hang on a frozen supervisor: it says so (the timeout is a net).
        frozen = rt.sysg("status", timeout=60)
        harness.assert_clean_error(frozen, "SG0205")
        assert str(sup) in frozen.stderr
    finally:
        os.kill(sup, signal.SIGCONT)
    assert rt.status()["supervisor_pid"] == sup
    assert thread_count(sup) == 1
    wait_for(
        lambda: len(harness.numbers(by.log("flood"), "flood")) >= 200000,
        timeout=120,
        what="every flood line in the log",
    )
    lines = harness.numbers(by.log("flood"), "flood")
    assert lines == list(range(1, 200001)), "flood: lines lost or repeated"
    assert pid_of(rt.unit("flood")) == writer
    by.check(min_lines=max(counts.values()) + 100)
    assert_clean_shutdown(rt, m, before)
