"""Run real services through ``build_plan`` + ``launch`` and read the kernel's view of them.

``Spawner`` owns everything a test starts: it kills each process group by pid and reaps it,
closes pidfds and pipes, and removes the cgroup directories the plans created.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from dataclasses import dataclass, field, replace
from typing import Any

from systemg.manifest.model import Service
from systemg.spawn import cgroups
from systemg.spawn.forkserver import ForkServer
from systemg.spawn.launcher import Child, launch
from systemg.spawn.plan import PlanResult, SpawnContext, SpawnPlan, build_plan

PY = "/usr/bin/python3"


def py(code: str, **kwargs: Any) -> Service:
    """A service running ``code`` under the system Python (readable by every user)."""
    name = kwargs.pop("name", "web")
    return Service(name=name, argv=(PY, "-c", code), **kwargs)


def root_ctx(**kwargs: Any) -> SpawnContext:
    env = dict(os.environ)
    env.update(kwargs.pop("env", {}))
    return SpawnContext(is_root=True, supervisor_env=tuple(env.items()), **kwargs)


@dataclass
class Running:
    child: Child
    plan: SpawnPlan
    result: PlanResult
    out: int  # read end of the service's stdout+stderr
    buf: bytearray = field(default_factory=bytearray)

    @property
    def pid(self) -> int:
        return self.child.pid

    def read_until(self, marker: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while marker.encode() not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {marker!r} in output: {bytes(self.buf)!r}")
            ready, _, _ = select.select([self.out], [], [], left)
            if ready:
                chunk = os.read(self.out, 65536)
                if not chunk:
                    if marker.encode() not in self.buf:
                        raise AssertionError(f"EOF before {marker!r}: {bytes(self.buf)!r}")
                    break
                self.buf += chunk
        return self.buf.decode(errors="replace")

    def line(self, prefix: str, timeout: float = 10.0) -> str:
        """The rest of the first complete output line that starts with ``prefix``."""
        deadline = time.monotonic() + timeout
        while True:
            for text in self.buf.decode(errors="replace").splitlines(keepends=True):
                if text.startswith(prefix) and text.endswith("\n"):
                    return text[len(prefix) :].strip()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line {prefix!r} in output: {bytes(self.buf)!r}")
            ready, _, _ = select.select([self.out], [], [], left)
            if ready:
                chunk = os.read(self.out, 65536)
                if not chunk:
                    raise AssertionError(f"EOF before {prefix!r}: {bytes(self.buf)!r}")
                self.buf += chunk

    def proc(self, name: str, pid: int | None = None) -> str:
        with open(f"/proc/{pid or self.pid}/{name}") as fh:
            return fh.read()

    def status(self, key: str, pid: int | None = None) -> str:
        for line in self.proc("status", pid).splitlines():
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
        raise KeyError(key)

    def environ(self, pid: int | None = None) -> dict[str, str]:
        with open(f"/proc/{pid or self.pid}/environ", "rb") as fh:
            raw = fh.read()
        pairs = [e.decode().split("=", 1) for e in raw.split(b"\0") if e]
        return dict(pairs)


def wait(predicate: Any, *, timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Spawner:
    """Launches through ``forkserver`` (the spawn helper) when given, else forks here."""

    def __init__(self, forkserver: ForkServer | None = None) -> None:
        self.forkserver = forkserver
        self.running: list[Running] = []
        self.reaped: dict[int, int] = {}

    def start(
        self,
        service: Service,
        ctx: SpawnContext | None = None,
        *,
        project: str = "sgtest",
        fds: tuple[int, ...] = (),
        names: tuple[str, ...] = (),
    ) -> Running:
        result = build_plan(service, project, ctx or root_ctx(), inherited_fds=fds, fd_names=names)
        return self.launch(result)

    def launch(self, result: PlanResult) -> Running:
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            child = launch(result.plan, stdout=w, stderr=w, forkserver=self.forkserver)
        except BaseException:
            os.close(r)
            cgroups.remove_cgroup(result.plan)
            raise
        finally:
            os.close(w)
        run = Running(child, result.plan, result, r)
        self.running.append(run)
        return run

    def wait_exit(self, run: Running, timeout: float = 10.0) -> int:
        """Reap ``run`` and return its raw wait status."""
        deadline = time.monotonic() + timeout
        while run.pid not in self.reaped:
            pid, status = os.waitpid(run.pid, os.WNOHANG)
            if pid:
                self.reaped[pid] = status
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"pid {run.pid} did not exit")
            time.sleep(0.02)
        return self.reaped[run.pid]

    def close(self) -> None:
        for run in self.running:
            if run.pid not in self.reaped:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(run.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    self.reaped[run.pid] = os.waitpid(run.pid, 0)[1]
            with contextlib.suppress(OSError):
                os.close(run.child.pidfd)
            with contextlib.suppress(OSError):
                os.close(run.out)
            # Give the kernel a moment to empty the cgroup before rmdir.
            if run.plan.cgroup is not None:
                with contextlib.suppress(AssertionError):
                    wait(lambda r=run: _cgroup_empty(r.plan), timeout=5, what="cgroup empty")
            cgroups.remove_cgroup(run.plan)


def _cgroup_empty(plan: SpawnPlan) -> bool:
    assert plan.cgroup is not None
    for path in plan.cgroup.procs:
        with contextlib.suppress(OSError), open(path) as fh:
            if fh.read().strip() and not plan.cgroup.plain:
                return False
    return True


__all__ = ["PY", "Running", "Spawner", "py", "replace", "root_ctx", "wait"]
