"""The child watcher: one process's pidfd and output pipes on the loop, and its exit.

Separate from ``Unit`` so that one unit can own more than one process at a time (its main
process, a probe or hook command, the new generation of a rolling restart): each launched
process gets its own ``Watched``, with callbacks for its output and its exit.

- **Output.** Each pipe read end is non-blocking and watched; what one ``os.read`` returns
  goes to ``on_output(stream, data)``. A readable pipe is read at most ``limit`` times per
  wake-up, so one chatty process cannot starve the loop. EOF (or a read error) closes the
  fd and calls ``on_eof(stream)`` exactly once per stream.
- **Exit.** The pidfd becomes readable the instant the process dies. Our own child is
  reaped (``waitpid(WNOHANG)``) and its raw wait status passed on; an adopted process (not
  our child: a previous supervisor's) has no status to read (``status=None``). Before
  ``on_exit`` runs, every pipe is drained completely, so output written right before the
  exit is in the log before the exit is. Pipes stay watched after the exit until EOF (a
  grandchild may still hold a write end).

- **Strays.** The supervisor is a child subreaper (so a pid namespace's PID 1 is re-parented
  to it when the intermediate exits): every orphaned descendant of a service becomes its
  child too. ``reap_strays`` (on SIGCHLD) reaps those that exited; a child with a pidfd
  open in this process is its watcher's to reap (with its status) and is left alone.

Invariants: ``on_exit`` runs at most once; after ``close()`` no callback runs and every fd
this object owned is closed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from systemg import proc
from systemg.daemon.loop import Loop

READ_CHUNK = 256 * 1024  # measured: 1 MiB reads were slower (cache), 64-256 KiB alike
READS_PER_WAKEUP = 64


@dataclass(frozen=True, slots=True)
class Exit:
    pid: int
    status: int | None  # raw wait status; None when the process was not our child


OnOutput = Callable[[str, bytes], None]
OnEof = Callable[[str], None]
OnExit = Callable[[Exit], None]


class Watched:
    """One process being watched: ``Watched(loop, pid, pidfd, ...)`` takes ownership of
    ``pidfd`` and the pipe fds and registers them with the loop at once."""

    def __init__(
        self,
        loop: Loop,
        pid: int,
        pidfd: int,
        *,
        is_child: bool,
        pipes: dict[str, int],
        on_output: OnOutput,
        on_eof: OnEof,
        on_exit: OnExit,
    ) -> None:
        self.loop = loop
        self.pid = pid
        self.pidfd: int | None = pidfd
        self.is_child = is_child
        self.pipes = dict(pipes)
        self._on_output, self._on_eof, self._on_exit = on_output, on_eof, on_exit
        for stream, fd in self.pipes.items():
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._reader(stream, fd))
        loop.add_reader(pidfd, self._exited)

    @property
    def alive(self) -> bool:
        return self.pidfd is not None

    def fds(self) -> list[int]:
        return [self.pipes[s] for s in ("stdout", "stderr") if s in self.pipes]

    # --- output ---------------------------------------------------------------------
    def _reader(self, stream: str, fd: int) -> Callable[[], None]:
        def on_readable() -> None:
            self.drain(stream, fd)

        return on_readable

    def drain(self, stream: str, fd: int, *, limit: int = READS_PER_WAKEUP) -> None:
        for _ in range(limit):
            if self.pipes.get(stream) != fd:
                return
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close_pipe(stream, fd)
                return
            self._on_output(stream, data)

    def drain_all(self) -> None:
        """Everything already in the pipes (used at exit: nothing written before is lost)."""
        for stream, fd in list(self.pipes.items()):
            self.drain(stream, fd, limit=1 << 20)

    def _close_pipe(self, stream: str, fd: int) -> None:
        self.loop.remove(fd)
        del self.pipes[stream]
        os.close(fd)
        self._on_eof(stream)

    # --- exit -----------------------------------------------------------------------
    def _exited(self) -> None:
        if self.pidfd is None:
            return
        status: int | None = None
        if self.is_child:
            try:
                reaped, raw = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                reaped, raw = self.pid, -1
            if reaped == 0:
                return  # spurious wake-up: a pidfd is readable only once the process exited
            status = raw if raw >= 0 else None
        self._close_pidfd()
        self.drain_all()
        self._on_exit(Exit(self.pid, status))

    def _close_pidfd(self) -> None:
        if self.pidfd is not None:
            self.loop.remove(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None

    def close(self) -> None:
        """Stop watching: close the pidfd and the pipes; no callback runs after this."""
        self._close_pidfd()
        for fd in self.pipes.values():
            self.loop.remove(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pipes.clear()


def reap_strays() -> list[tuple[int, int]]:
    """Reap exited children that nobody watches; ``(pid, raw status)`` of each.

    One ``waitid`` when no child is a zombie (the usual case on a SIGCHLD: the watched
    child that caused it was reaped by its pidfd callback first); the children and the
    fd table are looked at only when a zombie is found."""
    try:
        if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return []
    except ChildProcessError:
        return []  # no children at all
    me = os.getpid()  # one thread: it is the parent of every child, re-parented ones too
    try:
        with open(f"/proc/{me}/task/{me}/children") as fh:
            children = [int(pid) for pid in fh.read().split()]
    except (OSError, ValueError):
        return []
    zombies = [pid for pid in children if (proc.stat_fields(pid) or [b""])[0] == b"Z"]
    if not zombies:
        return []
    watched = _pidfd_targets()
    reaped = []
    for pid in zombies:
        if pid in watched:
            continue
        try:
            done, raw = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if done:
            reaped.append((done, raw))
    return reaped


def _pidfd_targets() -> set[int]:
    """The pids of every pidfd open in this process (``Pid:`` of its fdinfo)."""
    pids = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if "pidfd" not in os.readlink(f"/proc/self/fd/{name}"):
                continue
            with open(f"/proc/self/fdinfo/{name}") as fh:
                for line in fh:
                    if line.startswith("Pid:"):
                        pids.add(int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            continue
    return pids
