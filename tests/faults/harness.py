"""The fault suite's invariants, checked after every injected fault.

A fault case starts a real supervisor with some *bystander* services that print numbered
lines, injects one fault, and then calls ``Bystanders.check`` and ``assert_clean_shutdown``:

- every bystander kept its pid (the fault touched nothing it should not have);
- no numbered line was lost: each bystander's log holds 1..N with no gap or duplicate;
- ``status`` answers;
- ``stop --supervisor`` leaves no process of the test, no cgroup directory, no socket, pid
  or holder file behind.

Services carry a unique marker in their command line (``procscan.new_marker``) so the
process scan finds exactly what this test started.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import procscan
from tests.support.runtime import Runtime, pid_of, wait_for

CGROUP_ROOTS = (Path("/sys/fs/cgroup/unified"), *Path("/sys/fs/cgroup").glob("*"))


def ticker(name: str, marker: str, *, every: str = "0.02") -> str:
    """YAML for a service printing ``<name> <n>`` for n = 1, 2, ... forever."""
    return (
        f"  {name}:\n"
        f'    command: "i=0; while :; do i=$((i+1)); echo {name} $i; sleep {every}; done; '
        f': {marker}"\n'
    )


def numbers(log: Path, name: str) -> list[int]:
    pattern = re.compile(rf" stdout {re.escape(name)} (\d+)$")
    out: list[int] = []
    for rotated in sorted(log.parent.glob(log.name + ".*"), reverse=True):
        out.extend(_numbers_in(rotated, pattern))
    out.extend(_numbers_in(log, pattern))
    return out


def _numbers_in(path: Path, pattern: re.Pattern[str]) -> list[int]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [int(m.group(1)) for m in map(pattern.search, text.splitlines()) if m]


@dataclass
class Bystanders:
    """Services that must not notice the fault."""

    rt: Runtime
    project: str
    names: tuple[str, ...]
    pids: dict[str, int] = field(default_factory=dict)

    def record(self) -> None:
        for name in self.names:
            unit = self.rt.wait_state(name, "running")
            self.pids[name] = int(pid_of(unit))

    def log(self, name: str) -> Path:
        return self.rt.logs / self.project / f"{name}.log"

    def check(self, *, min_lines: int = 3) -> None:
        """Same pids, status answers, and every numbered line present exactly once."""
        for name in self.names:
            unit = self.rt.unit(name)
            assert unit["phase"] == "running", f"{name}: {unit}"
            assert pid_of(unit) == self.pids[name], f"{name} changed pid: {unit}"
            seen = wait_for(
                lambda n=name: self._at_least(n, min_lines),
                what=f"{name} to log {min_lines} lines",
            )
            assert seen == list(range(1, len(seen) + 1)), _gaps(name, seen)

    def _at_least(self, name: str, count: int) -> list[int] | None:
        seen = numbers(self.log(name), name)
        return seen if len(seen) >= count else None


def _gaps(name: str, seen: list[int]) -> str:
    """Which numbers are missing or doubled, and where (to tell a lost read from a resent one)."""
    counts = Counter(seen)
    missing = sorted(set(range(1, max(seen) + 1)) - counts.keys())
    doubled = sorted(n for n, c in counts.items() if c > 1)
    disorder = next((i for i in range(1, len(seen)) if seen[i] != seen[i - 1] + 1), None)
    around = seen[max(0, (disorder or 0) - 3) : (disorder or 0) + 3]
    return (
        f"{name}: lines lost or repeated: {len(seen)} lines up to {max(seen)}, missing "
        f"{missing[:20]}, doubled {doubled[:20]}, first break at line {disorder}: {around}"
    )


def cgroup_dirs(
    marker_dirs: tuple[str, ...] = ("systemg",), *, projects: Iterable[str] | None = None
) -> set[Path]:
    """Cgroup directories under ``<root>/systemg`` (only ``<root>/systemg/<project>/...`` of
    ``projects`` when given: other tests, and other people's runs on the machine, have
    cgroups of their own there at the same time)."""
    found: set[Path] = set()
    for root in CGROUP_ROOTS:
        for name in marker_dirs:
            candidate = root / name
            if not candidate.is_dir():
                continue
            tops = [candidate] if projects is None else [candidate / p for p in projects]
            for top in tops:
                if top != candidate and top.is_dir():
                    found.add(top)
                found.update(p for p in top.rglob("*") if p.is_dir())
    return found


def runtime_projects(rt: Runtime) -> set[str]:
    """The ids of the projects this runtime's supervisors ran (``<state>/projects/<id>``
    outlives the supervisor), which name their cgroup directories."""
    projects = rt.state / "projects"
    return {p.name for p in projects.iterdir()} if projects.is_dir() else set()


def assert_clean_shutdown(rt: Runtime, marker: str, cgroups_before: set[Path]) -> None:
    """``stop --supervisor`` ends everything: processes, cgroups, sockets, pid files."""
    supervisor = rt.supervisor_pid()
    proc = rt.sysg("stop", "--supervisor", timeout=60)
    assert proc.returncode == 0, proc.stderr
    if supervisor is not None:
        wait_for(lambda: not _alive(supervisor), what="the supervisor to exit")
    wait_for(lambda: not procscan.with_marker(marker), what="every service to be gone")
    wait_for(lambda: not rt.supervisor_processes(), what="no supervisor left")
    for leftover in ("control.sock", "sysg.pid", "fdholder.sock", "fdholder.pid"):
        wait_for(lambda n=leftover: not (rt.state / n).exists(), what=f"{leftover} to be removed")
    projects = runtime_projects(rt)
    assert projects, f"no project state under {rt.state}"
    own = cgroup_dirs(projects=projects)
    assert own <= cgroups_before, own - cgroups_before


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def manifest(project: str, *services: str) -> str:
    """A version-2 manifest with one project; ``services`` are ``ticker``-style blocks."""
    body = "".join("    " + line + "\n" for s in services for line in s.splitlines())
    return f'version: "2"\nprojects:\n  {project}:\n    services:\n{body}'


# --- helpers for the fault cases ------------------------------------------------------


def service(name: str, **keys: object) -> str:
    """YAML for one service block in ``ticker``'s layout; values are written as JSON,
    which YAML reads as the same strings, lists and mappings."""
    return f"  {name}:\n" + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in keys.items())


def start_with_bystanders(
    rt: Runtime, project: str, marker: str, *services: str, names: tuple[str, ...] = ("tick_a",)
) -> Bystanders:
    """Start a supervisor running ``services`` beside ``ticker`` bystanders (pids recorded).

    The exit code of ``start`` is not checked: a faulty service may well fail to come up.
    """
    text = manifest(project, *(ticker(n, marker) for n in names), *services)
    path = rt.write(f"{project}.yaml", text)
    rt.sysg("start", "-c", str(path), "--daemonize")
    bystanders = Bystanders(rt, project, names)
    bystanders.record()
    return bystanders


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks (fields 14 and 15 of ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def ticks_over_polls(pid: int, polls: int = 100, every: float = 0.02) -> int:
    """CPU ticks ``pid`` used while this test slept ``polls`` times for ``every`` seconds.

    Each sleep lasts at least ``every``, so the window is at least ``polls * every``
    seconds (``2 * polls`` ticks at the usual 100 Hz); a process spinning on one core
    uses about that many ticks, an idle one a handful.
    """
    before = cpu_ticks(pid)
    for _ in range(polls):
        time.sleep(every)
    return cpu_ticks(pid) - before


def vm_kib(pid: int, key: str = "VmRSS") -> int:
    """A ``/proc/PID/status`` memory line (``VmRSS``, ``VmHWM``, ...) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


# --- helpers for the supervisor fault cases -------------------------------------------


def leaders(marker: str) -> list[procscan.Proc]:
    """The main processes of services whose command line holds ``marker``.

    Every service runs in a session of its own, so its main process is the one whose pid
    is its session id; a ``sleep`` a shell service runs, or a group member, is not.
    """
    return [p for p in procscan.with_marker(marker) if p.pid == p.sid]


def identity(pid: int) -> tuple[int, int] | None:
    """``(pid, kernel start time)``: what re-adoption trusts, never the command line."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return (pid, int(stat.rsplit(")", 1)[1].split()[19]))


def assert_clean_error(proc: subprocess.CompletedProcess[str], *codes: str) -> None:
    """A CLI that failed said so the way users are promised: ``error[SG....]``, no
    traceback; with ``codes``, one of those codes."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode != 0, proc.stdout
    found = re.findall(r"error\[(SG\d{4})\]", proc.stderr)
    assert found, f"exit {proc.returncode} without error[SG...]: {proc.stderr!r}"
    if codes:
        assert set(found) & set(codes), f"expected {codes}, got {found}: {proc.stderr}"


def kill_marked(marker: str) -> None:
    """SIGKILL what this test started and a faulty supervisor lost track of (by pid)."""
    for proc in procscan.with_marker(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
