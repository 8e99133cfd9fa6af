"""Process bookkeeping for the benchmark: /proc scans, samples, and stopping by pid.

Everything here reads the kernel's view (``/proc``) so sysg and supervisord are measured
with the same instrument. Services are ``sleep <TOKEN><index>`` processes whose argument is
unique to this run, so a scan never mistakes another engineer's ``sleep`` for ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable


def cmdline(pid: int | str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def scan_sleeps(prefix: str) -> dict[str, int]:
    """argument -> pid of every running (exec'd) ``sleep <prefix>...`` process."""
    want = b"sleep\0" + prefix.encode()
    found: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        raw = cmdline(entry)
        if raw.startswith(want):
            # A zombie has an empty cmdline, so a dead service never counts as running.
            found[raw.split(b"\0")[1].decode()] = int(entry)
    return found


def wait_sleeps(prefix: str, want: int, timeout: float, poll: float = 0.001) -> float | None:
    """perf_counter() when at least ``want`` services with ``prefix`` run, or None.

    A full scan reads every /proc/PID/cmdline (~1.5 ms of CPU with 150 processes), which
    on a 2-CPU machine would compete with the supervisor being timed. So a pid whose
    cmdline already matched is not read again (a ``sleep`` never execs anything else), nor
    is a process that existed before the call (services are new processes); a full scan
    every 50 turns covers a recycled pid. The final count is confirmed by a full scan.
    """
    want_b = b"sleep\0" + prefix.encode()
    matched: set[str] = set()
    old = {e for e in os.listdir("/proc") if e.isdigit()}
    deadline = time.perf_counter() + timeout
    turn = 0
    while time.perf_counter() < deadline:
        turn += 1
        skip = matched if turn % 50 == 0 else matched | old
        for entry in os.listdir("/proc"):
            if entry.isdigit() and entry not in skip and cmdline(entry).startswith(want_b):
                matched.add(entry)
        if len(matched) >= want:
            now = time.perf_counter()
            if len(scan_sleeps(prefix)) >= want:
                return now
            matched.clear()  # one died meanwhile: start over
        time.sleep(poll)
    return None


def wait_no_sleeps(prefix: str, timeout: float, poll: float = 0.001) -> float | None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not scan_sleeps(prefix):
            return time.perf_counter()
        time.sleep(poll)
    return None


def wait_new_pid(arg: str, before: set[str], timeout: float) -> float | None:
    """perf_counter() when a pid not in ``before`` runs ``sleep arg`` (fine-grained).

    Only /proc entries that were not there before the kill are read each turn, so one turn
    costs one ``listdir`` (~0.2 ms): the resolution is far below the 5 ms target.
    """
    want = b"sleep\0" + arg.encode() + b"\0"
    deadline = time.perf_counter() + timeout
    while True:
        now = time.perf_counter()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and entry not in before and cmdline(entry) == want:
                return time.perf_counter()
        if now > deadline:
            return None
        # 0.5 ms between turns: fine enough for a 5 ms target without taking a core away
        # from the supervisor being measured (this machine has two).
        time.sleep(0.0005)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"


def wait_gone(pids: Iterable[int], timeout: float, poll: float = 0.001) -> float | None:
    pids = list(pids)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not any(pid_alive(p) for p in pids):
            return time.perf_counter()
        time.sleep(poll)
    return None


def read_pidfile(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def memory(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MiB from /proc/PID/smaps_rollup."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] in ("Rss:", "Pss:"):
                values[parts[0]] = int(parts[1]) / 1024
    return values["Rss:"], values["Pss:"]


def cpu_and_switches(pid: int) -> tuple[float, int]:
    """(CPU seconds, voluntary+nonvoluntary context switches), summed over all threads.

    CPU comes from /proc/PID/task/TID/schedstat (nanoseconds on the CPU), not from
    utime+stime, whose 10 ms tick is coarser than a whole idle window of a quiet daemon.
    """
    cpu = 0.0
    switches = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            cpu += int(f.read().split()[0]) / 1e9
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
    return cpu, switches


def pids_mentioning(text: str) -> list[int]:
    """Pids (not ours) whose cmdline or environment contains ``text`` (a unique temp path):
    catches a daemon interrupted before it wrote its pid file, and CLIs still running."""
    needle = text.encode()
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            env = b""
        if needle in cmdline(entry) or needle in env:
            found.append(int(entry))
    return found


def kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def reap() -> None:
    """Collect exited children of the benchmark (CLIs we ran, daemons that forked)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def comm(pid: int | str) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def pids_in_dir(root: str) -> list[int]:
    """Pids (not ours) whose working directory is ``root`` or below it: s6-supervise and
    runsv chdir into their service directory, and the services and loggers they start
    inherit it, so this finds a whole s6/runit tree even after its scanner died."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == root or cwd.startswith(root + "/"):
            found.append(int(entry))
    return found


def children_map() -> dict[int, list[int]]:
    """ppid -> pids, from one /proc scan."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(roots: Iterable[int]) -> set[int]:
    """``roots`` and every process descending from them."""
    kids = children_map()
    seen: set[int] = set()
    todo = [p for p in roots if p]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo += kids.get(pid, [])
    return seen
