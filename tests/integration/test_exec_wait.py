"""A launch whose exec is not confirmed yet (``daemon/execwait.py``): the supervisor goes
on while the child runs its steps, and what the fault pipe then says is what a waited-for
spawn said. The supervisor runs in this process on its real loop with real ``sleep``s; one
service's launcher hands back a fault pipe the test holds (the child a privileged spawn
clones would hold it until its exec or its fault), so each outcome happens when the test
says, counted by phases, never timed."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable

import pytest

from systemg.daemon import execwait
from systemg.daemon.phases import Phase
from systemg.errors import Code
from systemg.spawn.fault import RECORD, Step
from systemg.spawn.launcher import Child, fault_error, launch
from systemg.spawn.plan import SpawnPlan
from tests.support.inprocess import Harness
from tests.support.runtime import pid_alive


class Held:
    """A launcher: the real process for every service, and for ``service`` an unconfirmed
    exec whose fault pipe's write end the test holds (``write_end``)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.write_end = -1
        self.pid = 0

    def __call__(
        self, plan: SpawnPlan, stdout: int, stderr: int, /, *, confirm: bool = True
    ) -> Child:
        child = launch(plan, stdout=stdout, stderr=stderr)
        if plan.service != self.service or confirm:
            return child
        read_end, self.write_end = os.pipe2(os.O_CLOEXEC)
        self.pid = child.pid
        return Child(child.pid, child.pidfd, child.start_time, exec_fd=read_end)

    def confirm(self) -> None:
        os.close(self.write_end)

    def fault(self, step: Step, err: int) -> None:
        """What a child does when a step fails: one record, then it exits."""
        os.write(self.write_end, RECORD.pack(step, err))
        os.close(self.write_end)
        os.kill(self.pid, signal.SIGKILL)


def _until(h: Harness, holds: Callable[[], bool]) -> bool:
    """Run the supervisor's loop until ``holds()`` (looked at every 10 ms); False if never."""

    def start(then: Callable[[], None]) -> None:
        def look() -> None:
            if holds():
                then()
            else:
                h.loop.call_later(0.01, look)

        h.loop.call_later(0, look)  # from the loop: `then` stops it, so not before it runs

    return h.run_until(start)


def _up(h: Harness, name: str) -> bool:
    return _until(h, lambda: h.unit(name).state.phase is Phase.RUNNING)


def test_the_supervisor_goes_on_while_an_exec_is_unconfirmed(
    make: Callable[..., Harness],
) -> None:
    held = Held("db")
    h = make(held)
    started: list[bool] = []
    h.ops.start("p", None, lambda: started.append(True))
    # `other` starts and passes the 250 ms rule while db's child has not reached exec:
    # nothing waited for it, and db is not counted up before its exec.
    assert _up(h, "other")
    db = h.unit("db")
    assert (db.state.phase, db.state.pid) == (Phase.STARTING, held.pid)
    assert h.unit("web").state.phase is Phase.WAITING
    assert not started
    held.confirm()
    assert _up(h, "api"), "db's dependents never came up"
    assert db.state.phase is Phase.RUNNING
    assert db.exec_wait is None
    assert h.run_until(h.ops.stop_everything)


@pytest.mark.parametrize("exit_first", [False, True])
def test_a_fault_after_the_launch_fails_the_unit_as_a_waited_spawn_did(
    make: Callable[..., Harness], exit_first: bool
) -> None:
    held = Held("db")
    h = make(held)
    settled: list[bool] = []
    h.ops.start("p", None, lambda: settled.append(True))
    assert _up(h, "other")
    db = h.unit("db")
    if exit_first:
        # The exit is seen before the pipe is read: it reads the record first.
        os.write(held.write_end, RECORD.pack(Step.SETUID, errno.EPERM))
        os.close(held.write_end)
        os.kill(held.pid, signal.SIGKILL)
        assert db.exec_wait is not None
        db.exec_wait.loop.remove(db.exec_wait.fd)  # only the exit can tell now
    else:
        held.fault(Step.SETUID, errno.EPERM)
    assert _until(h, lambda: bool(settled)), "start never settled"
    assert db.state.phase is Phase.FAILED
    assert db.state.restarts == 0  # a spawn failure: not restarted
    # The very diagnostic a spawn that waited for its exec raised for this fault.
    assert db.plan is not None
    assert db.error == fault_error(db.plan, Step.SETUID, errno.EPERM).diagnostics[0]
    assert (db.error.code, db.error.path) == (Code.SETUID, "services.db.user")
    assert h.unit("web").state.phase is Phase.BLOCKED
    assert "cannot switch to user" in h.journal_file.read_text()
    assert _until(h, lambda: not pid_alive(held.pid))
    assert h.run_until(h.ops.stop_everything)


def test_a_child_that_never_reaches_exec_is_killed_and_fails_the_unit(
    make: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execwait, "PRE_EXEC_TIMEOUT_S", 0.5)
    held = Held("db")
    h = make(held)
    assert h.run_until(lambda then: h.ops.start("p", None, then)), "start never settled"
    db = h.unit("db")
    assert db.state.phase is Phase.FAILED
    assert db.error is not None
    assert "did not reach exec within" in db.error.message
    assert _until(h, lambda: not pid_alive(held.pid)), "the stuck child was not killed"
    assert h.unit("other").state.phase is Phase.RUNNING
    os.close(held.write_end)
    assert h.run_until(h.ops.stop_everything)


def test_a_stop_before_the_exec_is_confirmed_stops_it(make: Callable[..., Harness]) -> None:
    held = Held("db")
    h = make(held)
    h.ops.start("p", None, lambda: None)
    assert _up(h, "other")
    assert h.run_until(h.ops.stop_everything), "shutdown never finished"
    db = h.unit("db")
    assert (db.state.phase, db.state.pid, db.error) == (Phase.STOPPED, None, None)
    assert not pid_alive(held.pid)
    held.confirm()  # too late: nothing changes
    assert _until(h, lambda: db.exec_wait is None)
    assert db.state.phase is Phase.STOPPED
