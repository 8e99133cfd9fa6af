"""The spawn helper (``spawn/forkserver.py``): privileged services cloned by a small process,
as children of the supervisor, with the supervisor never forking itself; and every way the
helper can fail (killed, stopped, a request it cannot take) ends in exactly one service.

``os.fork`` is made to fail in the test process where a test proves the helper did the
work: the helper is a separate process, so only a spawn that really went through it can
succeed then."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from systemg.errors import Code, SpawnError
from systemg.manifest.model import Isolation, Limits
from systemg.spawn import fault
from systemg.spawn.forkserver import ForkServer, Unavailable
from tests.privileged.spawn_helpers import Spawner, py, wait

SLEEP = "import time; print('ready', flush=True); time.sleep(60)"


@pytest.fixture
def server() -> Iterator[ForkServer]:
    s = ForkServer()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def spawn(server: ForkServer) -> Iterator[Spawner]:
    s = Spawner(server)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def no_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> int:
        raise AssertionError("the test process forked: the spawn did not go through the helper")

    monkeypatch.setattr(os, "fork", refuse)


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def _children_running(code: str) -> list[int]:
    """Our children whose command line has ``code`` (the services of these tests)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                if ppid == os.getpid() and code.encode() in _cmdline(int(name)):
                    found.append(int(name))
            except (OSError, ValueError):
                pass
    return found


def test_service_is_our_child_and_the_helper_did_the_fork(
    spawn: Spawner, server: ForkServer, no_fork: None
) -> None:
    run = spawn.start(py(SLEEP, user="nobody", group="nogroup"))
    run.read_until("ready")
    assert run.status("PPid") == str(os.getpid())  # CLONE_PARENT: ours to watch and reap
    assert run.status("Uid").split() == ["65534"] * 4
    assert server.started == 1
    assert b"forkserver.serve" in _cmdline(server.pid)
    with open(f"/proc/{server.pid}/status") as fh:
        helper_rss = int(next(x for x in fh if x.startswith("VmRSS")).split()[1])
    assert helper_rss < 40_000, helper_rss  # a small interpreter, not a copy of ours
    # A second spawn reuses the same helper.
    spawn.start(py(SLEEP, name="two", user="nobody")).read_until("ready")
    assert server.started == 1
    # Its exit status is ours to read, as for a forked child.
    os.kill(run.pid, signal.SIGTERM)
    assert os.WTERMSIG(spawn.wait_exit(run)) == signal.SIGTERM


def test_pid_namespace_service_through_the_helper(
    spawn: Spawner, server: ForkServer, no_fork: None
) -> None:
    run = spawn.start(py(SLEEP, user="nobody", isolation=Isolation(pid=True)))
    run.read_until("ready")
    assert run.status("PPid") == str(os.getpid())  # the intermediate was reaped by us
    assert run.status("NSpid").split()[-1] == "1"
    assert server.started == 1


def test_fault_comes_back_through_the_helper(spawn: Spawner, no_fork: None) -> None:
    # The hard nofile limit here is 20000 and CAP_SYS_RESOURCE is not in the bounding set.
    with pytest.raises(SpawnError) as info:
        spawn.start(py(SLEEP, user="nobody", limits=Limits(nofile=65536)))
    diag = info.value.diagnostics[0]
    assert diag.code is Code.RLIMIT
    assert diag.path == "services.web.limits.nofile"
    assert "CAP_SYS_RESOURCE" in diag.message
    assert info.value.fault is not None
    assert info.value.fault.step == "rlimit_nofile"
    assert _children_running(SLEEP) == []  # the failed child was reaped


def test_a_killed_helper_is_replaced_and_nothing_is_lost(
    spawn: Spawner, server: ForkServer
) -> None:
    spawn.start(py(SLEEP, user="nobody")).read_until("ready")
    first = server.pid
    os.kill(first, signal.SIGKILL)
    wait(lambda: _state(first) == "Z", what="the helper to die")
    run = spawn.start(py(SLEEP, name="after", user="nobody"))
    run.read_until("ready")
    assert server.started == 2
    assert server.pid != first
    assert not os.path.exists(f"/proc/{first}")  # the dead helper was reaped, not left
    assert run.status("PPid") == str(os.getpid())


def test_a_stopped_helper_is_killed_and_the_spawn_forked_here_once(
    spawn: Spawner, server: ForkServer
) -> None:
    spawn.start(py(SLEEP, user="nobody")).read_until("ready")
    stuck = server.pid
    os.kill(stuck, signal.SIGSTOP)
    code = SLEEP + " # stopped-helper"
    run = spawn.start(py(code, name="late", user="nobody"))
    run.read_until("ready")
    assert not os.path.exists(f"/proc/{stuck}")  # killed and reaped
    assert server.pid == 0  # no helper until the next spawn needs one
    assert _children_running(code) == [run.pid]  # exactly one service, not two
    assert run.status("Uid").split() == ["65534"] * 4


def test_a_request_the_helper_cannot_take_is_refused_before_it_starts(
    server: ForkServer,
) -> None:
    with pytest.raises(Unavailable):
        server.send(object(), [b"/bin/true"], {}, list(range(3, 3 + 251)))
    assert server.started == 0


def test_helper_ends_with_its_supervisor(server: ForkServer, spawn: Spawner) -> None:
    spawn.start(py(SLEEP, user="nobody")).read_until("ready")
    pid = server.pid
    server.close()
    assert not os.path.exists(f"/proc/{pid}")


def test_cloned_records_are_not_faults() -> None:
    data = fault.encode_cloned(1234) + fault.RECORD.pack(fault.Step.EXEC, 2)
    assert fault.decode_all(data) == (None, (fault.Step.EXEC, 2))
    assert fault.decode_all(fault.encode_cloned(99)) == (None, None)


# Both run in a child Python: PID 1 of a new pid namespace, and a seccomp filter, are not
# undone in the test process.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SPAWN_TWICE = """
import os, sys
sys.path[:0] = [{root!r}, {src!r}]
from systemg.spawn.forkserver import ForkServer
from tests.privileged.spawn_helpers import Spawner, py
{prelude}
logs = []
server = ForkServer(logs.append)
spawn = Spawner(server)
try:
    for i in range(2):
        run = spawn.start(py("print('ready', flush=True)", name=f"s{{i}}", user="nobody"))
        run.read_until("ready")
        print("spawned", i, "ppid", run.status("PPid"), "uid", run.status("Uid").split()[0])
    print("started", server.started, "me", os.getpid())
finally:
    spawn.close()
    server.close()
print("\\n".join(logs))
"""


def _spawn_twice(prelude: str = "", *wrapper: str) -> str:
    code = _SPAWN_TWICE.format(root=_ROOT, src=os.path.join(_ROOT, "src"), prelude=prelude)
    proc = subprocess.run(
        [*wrapper, sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_helper_works_for_a_supervisor_that_is_pid_1() -> None:
    # A container's init: the helper's parent is 1 and that is not its supervisor's death.
    out = _spawn_twice("", "unshare", "--pid", "--fork", "--mount-proc")
    assert "started 1 me 1" in out, out
    assert out.count("ppid 1 uid 65534") == 2, out
    assert "unanswered" not in out, out


def test_a_refused_clone_makes_the_supervisor_fork_itself_from_then_on() -> None:
    # A seccomp filter (inherited by the helper) refuses clone(CLONE_PARENT) with EPERM.
    prelude = """
import struct
from systemg.spawn import linux
def ins(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)
linux.seccomp_load(b"".join([
    ins(0x20, 0, 0, 0), ins(0x15, 0, 2, 56), ins(0x20, 0, 0, 16),
    ins(0x45, 1, 0, 0x8000), ins(0x06, 0, 0, 0x7FFF0000), ins(0x06, 0, 0, 0x00050001),
]))
"""
    if os.uname().machine != "x86_64":
        pytest.skip("the filter names x86_64's clone syscall number")
    out = _spawn_twice(prelude)
    assert out.count("spawned") == 2, out
    assert "started 1" in out, out  # one helper, then none: not one per spawn
    assert "cannot clone (Operation not permitted)" in out, out


def test_no_helper_for_want_of_fds_forks_here_and_leaks_nothing(
    spawn: Spawner, server: ForkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fds(*_args: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(socket, "socketpair", no_fds)
    before = len(os.listdir("/proc/self/fd"))
    for i in range(3):
        run = spawn.start(py(SLEEP, name=f"f{i}", user="nobody"))
        run.read_until("ready")
        assert run.status("PPid") == str(os.getpid())
    assert server.started == 0
    # Each running service holds its pidfd and output pipe here (two fds), nothing more.
    assert len(os.listdir("/proc/self/fd")) == before + 2 * 3
