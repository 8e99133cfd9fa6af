"""A private runtime root per test, and a way to run the real ``sysg`` against it.

``Runtime`` owns a short temp directory (Unix socket paths must stay under 108 bytes),
points ``SYSTEMG_STATE_DIR``/``SYSTEMG_LOG_DIR`` at it, runs the installed ``sysg``
executable (the one next to this interpreter) and, on ``close``, stops the supervisor and
kills by pid anything it started that is still alive. Nothing here sleeps a fixed time:
``wait_for`` polls with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SYSG = str(Path(sys.executable).parent / "sysg")


def wait_for(
    predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)
        last = predicate()
    return last


def pid_of(unit: Mapping[str, Any]) -> int | None:
    """The live process of a ``status.v1`` unit (``process.pid``; absent when it has none)."""
    pid = (unit.get("process") or {}).get("pid")
    return None if pid is None else int(pid)


def live_pid(unit: Mapping[str, Any]) -> int:
    """``pid_of`` for a unit that must have a process (fails the test, showing the unit)."""
    pid = pid_of(unit)
    assert pid is not None, unit
    return pid


def epoch(rfc3339: str) -> float:
    """Epoch seconds of a ``status.v1`` time (RFC 3339, UTC: ``2026-05-01T12:00:00.123Z``)."""
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def started_at(unit: Mapping[str, Any]) -> float:
    """Epoch seconds the unit's live process started (its ``uptime.started_at``)."""
    return epoch(unit["uptime"]["started_at"])


def units_by_name(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A ``status.v1`` document's units by service name (the last row of a name wins)."""
    return {u["name"]: u for u in doc["units"]}


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


class Runtime:
    def __init__(self, base: Path | None = None, *, extra_env: Mapping[str, str] | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="sg", dir=base or "/tmp"))
        os.chmod(self.root, 0o755)
        self.state = self.root / "state"
        self.logs = self.root / "logs"
        self.work = self.root / "work"
        self.work.mkdir()
        os.chmod(self.work, 0o755)
        self.env = dict(os.environ)
        self.env.pop("LISTEN_FDS", None)
        self.env.pop("LISTEN_PID", None)
        self.env.update(
            {
                "SYSTEMG_STATE_DIR": str(self.state),
                "SYSTEMG_LOG_DIR": str(self.logs),
                "NO_COLOR": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        self.env.update(extra_env or {})
        self.seen_pids: set[int] = SeenPids()
        self.children: list[subprocess.Popen[str]] = []

    # --- files ----------------------------------------------------------------------
    def write(self, name: str, text: str, mode: int = 0o644) -> Path:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, mode)
        return path

    # --- running sysg ---------------------------------------------------------------
    def sysg(
        self,
        *args: str,
        check: bool = False,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        prefix: tuple[str, ...] = (),
        exe: str = SYSG,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*prefix, exe, *args],
            cwd=self.work,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"sysg {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """The real ``sysg`` in the background (text pipes, no stdin), in this runtime;
        ``close`` kills and reaps it if the test did not (a failed assertion must not leave
        a zombie child in the worker for a later test to find)."""
        child = subprocess.Popen(
            [SYSG, *args],
            cwd=kwargs.pop("cwd", self.work),
            env=kwargs.pop("env", self.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            **kwargs,
        )
        self.children.append(child)
        return child

    def status(self, *args: str) -> dict[str, Any]:
        """``sysg status --format json``: the ``status.v1`` document (docs/commands.md)."""
        proc = self.sysg("status", "--format", "json", *args)
        assert proc.stdout.strip(), f"no status output: {proc.stderr}"
        data: dict[str, Any] = json.loads(proc.stdout)
        for unit in data.get("units", []):
            if pid := pid_of(unit):
                self.seen_pids.add(pid)
        return data

    def unit(self, service: str, project: str | None = None) -> dict[str, Any]:
        """The first ``status.v1`` unit named ``service`` (in ``project``, by id)."""
        for unit in self.status()["units"]:
            if unit["name"] == service and (project is None or unit["project"]["id"] == project):
                return dict(unit)
        raise AssertionError(f"no unit {service!r} in status")

    def supervisor_pid(self) -> int | None:
        try:
            return int((self.state / "sysg.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def supervisor_processes(self) -> list[int]:
        """Pids of live ``sysg ... supervise`` processes whose environment names this root."""
        return supervisor_processes(self.state)

    def wait_state(self, service: str, phase: str, timeout: float = 15.0) -> dict[str, Any]:
        """Poll status until ``service`` is in ``phase``: our own precise phase (the unit's
        ``phase``: ``backoff``, ``blocked``, ``stopping``, ...), not the upstream ``state``."""

        def reached() -> dict[str, Any] | None:
            unit = self.unit(service)
            return unit if unit["phase"] == phase else None

        return wait_for(reached, timeout=timeout, what=f"{service} to be {phase}")

    # --- cleanup --------------------------------------------------------------------
    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.communicate(timeout=10)
        pid = self.supervisor_pid()
        if pid and pid_alive(pid):
            with contextlib.suppress(Exception):
                self.status()
            with contextlib.suppress(Exception):
                self.sysg("stop", "--supervisor", timeout=30)
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not pid_alive(pid), timeout=10)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        # A supervisor that never wrote its pid file (killed during boot) is found by the
        # state dir it was started for.
        from tests.support.procscan import supervisors_for

        for stray in supervisors_for(self.state):
            with contextlib.suppress(ProcessLookupError):
                os.kill(stray, signal.SIGKILL)
        for p in self.seen_pids:
            if pid_alive(p) and _same_process(self.seen_pids, p):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        _kill_fdholder(self.state)
        shutil.rmtree(self.root, ignore_errors=True)


class SeenPids(set[int]):
    """Pids a test saw, each with its kernel start time: ``close`` kills a pid only if it
    is still that process (a fork storm can recycle pids into unrelated processes)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[int, int | None] = {}

    def add(self, pid: int) -> None:
        self.started.setdefault(pid, _start_time(pid))
        super().add(pid)

    def update(self, *others: Iterable[int]) -> None:
        for other in others:
            for pid in other:
                self.add(pid)


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _same_process(seen: set[int], pid: int) -> bool:
    if not isinstance(seen, SeenPids):
        return True  # a plain set assigned by a test: trust it
    started = seen.started.get(pid)
    # Gone when it was seen: whatever has that pid now is someone else.
    return started is not None and _start_time(pid) == started


def supervisor_processes(state: Path) -> list[int]:
    """Live processes with ``supervise`` in argv and ``SYSTEMG_STATE_DIR=<state>`` in environ."""
    marker = f"SYSTEMG_STATE_DIR={state}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if b"supervise" in argv and marker in env and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def _kill_fdholder(state: Path) -> None:
    """The fd holder outlives a killed supervisor by design; tests end it by its pid file."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int((state / "fdholder.pid").read_text().strip()), signal.SIGKILL)


@contextlib.contextmanager
def runtime(**kwargs: Any) -> Iterator[Runtime]:
    rt = Runtime(**kwargs)
    try:
        yield rt
    finally:
        rt.close()
