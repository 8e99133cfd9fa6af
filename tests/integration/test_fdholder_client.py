"""``HolderClient`` against a real ``sysg fdholder``, with this test process as its
supervisor (``sysg.pid`` names it), on a real loop:

- a holder that stops reading (``SIGSTOP``) never blocks ``put``: packets that would block
  wait in a queue and go out once it reads again;
- a holder that is killed is reported (WARN), reaped and replaced, and the replacement
  holds every remembered entry;
- a fd closed since it was put is handed over as a pipe at EOF, never as whatever file
  has its number now;
- a supervisor that dies while its new holder is still booting (no socket bound yet) loses
  no pipe: what it put waits in the holder's inherited socket, and a successor gets it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from systemg.daemon.holderclient import HolderClient, Link
from systemg.daemon.journal import Journal
from systemg.daemon.loop import Loop
from systemg.spawn.detach import spawn_detached
from tests.support.loops import run_until
from tests.support.runtime import SYSG, pid_alive


def refs(pid: int, target: str) -> int:
    """How many of ``pid``'s fds are ``target`` (``pipe:[INODE]``)."""
    out = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            out += os.readlink(f"/proc/{pid}/fd/{fd}") == target
    return out


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def state() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="sgh", dir="/tmp"))  # short: a socket path
    (root / "sysg.pid").write_text(f"{os.getpid()}\n")
    try:
        yield root
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((root / "fdholder.pid").read_text()), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def test_stalled_holder_never_blocks_and_a_killed_one_is_refilled(state: Path) -> None:
    loop = Loop()
    journal = Journal(state / "journal.log")
    spawned: list[int] = []

    def spawn(conn_fd: int) -> int:
        argv = [SYSG, "fdholder", "--conn", "3", str(state)]
        pid = spawn_detached(argv, state / "holder.log", os.environ, conn_fd=conn_fd)
        spawned.append(pid)
        return pid

    client = HolderClient(state / "fdholder.sock", loop, journal, spawn)
    r, w = os.pipe2(os.O_CLOEXEC)
    stale_r, stale_w = os.pipe2(os.O_CLOEXEC)
    others: list[int] = []
    try:
        assert not client.connect()  # nothing listens yet
        client.start()
        run_until(loop, lambda: client.link is Link.UP)
        first = client.pid
        assert first == spawned[0]

        # A holder that stops reading: the socket fills, puts queue, nothing blocks.
        conn = client._conn
        assert conn is not None
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        os.kill(first, signal.SIGSTOP)
        keys = [f"p/s{i}/{i}" for i in range(60)]
        for key in keys:
            client.put(key, [r, r])
        assert client._queue, "the socket never filled: the test proves nothing"
        client.put("p/stale/1", [stale_r, stale_w])
        client.drop(keys[-1])
        os.kill(first, signal.SIGCONT)
        run_until(loop, lambda: not client._queue)
        # Counted by what the fds are (our pipe), not by how many the holder has: its own
        # transient fds (the pid file it writes as it boots) would make a total flaky.
        pipe = f"pipe:[{os.fstat(r).st_ino}]"
        run_until(loop, lambda: refs(first, pipe) == 2 * (len(keys) - 1))

        # The service closed one stream; its number now belongs to another file.
        os.close(stale_r)
        others.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        os.kill(first, signal.SIGKILL)
        run_until(loop, lambda: client.link is Link.UP and client.pid != first)
        run_until(loop, lambda: not client._queue)
        assert not os.path.exists(f"/proc/{first}"), "the dead holder was not reaped"
        second = client.pid
        assert second is not None
        assert second == spawned[1]
        log = (state / "journal.log").read_text()
        assert f"WARN  fd holder (pid {first}) lost" in log, log
        assert f"new fd holder (pid {second}) connected" in log, log

        held = client.fetch_all()
        try:
            assert set(held) == {*keys[:-1], "p/stale/1"}
            pipe = os.fstat(r)
            for key in keys[:-1]:
                got = os.fstat(held[key][0])
                assert (got.st_dev, got.st_ino) == (pipe.st_dev, pipe.st_ino), key
            stale_out, stale_err = held["p/stale/1"]
            assert stat.S_ISFIFO(os.fstat(stale_out).st_mode), "sent whatever had the number"
            assert os.read(stale_out, 1) == b"", "the stand-in is at EOF"
            assert os.fstat(stale_err).st_ino == os.fstat(stale_w).st_ino  # still the same
        finally:
            for fds in held.values():
                for fd in fds:
                    os.close(fd)
        client.shutdown()
        deadline = time.monotonic() + 10
        while pid_alive(second) and time.monotonic() < deadline:
            time.sleep(0.01)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(second, 0)
        assert not (state / "fdholder.sock").exists()
        assert not (state / "fdholder.pid").exists()
    finally:
        if client.link is not Link.CLOSED:
            client.shutdown()  # a failed assertion must not leak the connection
        for fd in (r, w, stale_w, *others):
            os.close(fd)
        loop.close()


def _spawner(state: Path, spawned: list[int]):  # type: ignore[no-untyped-def]
    """Spawns a holder that stops itself before it execs Python (a shell in between, named
    ``fdholder`` so it looks like one booting): it is surely not booted until SIGCONT."""

    def spawn(conn_fd: int) -> int:
        argv = ["/bin/sh", "-c", 'kill -STOP $$; exec "$@"', "fdholder"]
        argv += [SYSG, "fdholder", "--conn", "3", str(state)]
        pid = spawn_detached(argv, state / "holder.log", os.environ, conn_fd=conn_fd)
        spawned.append(pid)
        deadline = time.monotonic() + 30
        while "T (stopped)" not in Path(f"/proc/{pid}/status").read_text():
            assert time.monotonic() < deadline, "the holder's shell never stopped"
            time.sleep(0.001)
        return pid

    return spawn


def test_a_supervisor_killed_while_its_holder_boots_loses_no_pipe(state: Path) -> None:
    loop = Loop()
    spawned: list[int] = []
    client = HolderClient(
        state / "fdholder.sock", loop, Journal(state / "j.log"), _spawner(state, spawned)
    )
    r, w = os.pipe2(os.O_CLOEXEC)
    successor: HolderClient | None = None
    try:
        client.start()
        assert client.link is Link.UP, "a new holder is connected from the fork on"
        client.put("p/svc/1", [r, r])
        assert not client._queue, "the put is in the holder's socket, not our queue"
        assert not (state / "fdholder.sock").exists(), "the holder booted: proves nothing"
        # The supervisor dies: every fd it had closes (its end of the link, the read end).
        client._teardown()
        os.close(r)
        r = -1
        # The service writes on: with no reader anywhere this would be EPIPE.
        assert os.write(w, b"written while nobody supervised\n") > 0
        os.kill(spawned[0], signal.SIGCONT)
        successor = HolderClient(
            state / "fdholder.sock", loop, Journal(state / "j2.log"), _spawner(state, spawned)
        )
        assert successor.connect(), "the booting holder was not waited for"
        assert successor.pid == spawned[0]
        held = successor.fetch_all()
        assert set(held) == {"p/svc/1"}
        assert os.read(held["p/svc/1"][0], 100) == b"written while nobody supervised\n"
        for fd in held["p/svc/1"]:
            os.close(fd)
        successor.shutdown()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(spawned[0], 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            for pid in spawned:
                os.kill(pid, signal.SIGKILL)
        for c in (client, successor):
            if c is not None and c.link is not Link.CLOSED:
                c.shutdown()
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
        loop.close()
