"""The spawn helper: a small process that forks services for the supervisor.

Why: a fork copies the page tables of the process that forks, and the child then touches
(copies) every page its Python code writes to. From the ~25 MiB supervisor that is 4-10 ms
per privileged spawn, all of it on the supervisor's one thread. The helper is a fresh
interpreter (``python -I -S``) that imports only ``spawn.child`` and what it needs (~14 MiB,
most of it shared text), so forking it costs about what ``posix_spawn`` does plus the
Python steps of the child (bench/README.md, "privileged spawn").

How:

- ``ForkServer`` (in the supervisor) starts the helper on first use with ``posix_spawn``,
  one end of a ``SOCK_SEQPACKET`` socketpair as its fd 3. A request is one message: the
  pickled plan (``SpawnPlan`` flattened to ``types.SimpleNamespace``, so the helper needs no
  manifest import to read it), argv and environment, with ``SCM_RIGHTS`` carrying stdout,
  stderr, the fault pipe's write end and the plan's inherited fds. There is no reply on the
  socket: everything comes back on the fault pipe, which the launcher reads anyway.
- ``serve`` (in the helper) receives a request, points the plan's inherited fds at the
  received copies and calls ``linux.clone_parent``: the new process is the *supervisor's*
  child (``CLONE_PARENT``), so the supervisor watches, reaps and kills it exactly as one it
  forked itself. The child first writes ``(CLONED, its pid)`` to the fault pipe, then runs
  ``child.run`` unchanged: the same steps, in the same order, with the same ``(step,
  errno)`` record on the same pipe, read as before (``launcher._await_exec``). A failed
  clone is ``(CLONED, -errno)``, an unreadable request ``(CLONED, 0)``, both from the helper.
- The helper dies with the supervisor (``PR_SET_PDEATHSIG``, checked against the
  supervisor's pid — which may be 1 — and EOF on the socket) and ignores SIGINT (a
  Ctrl-C to a foreground supervisor's process group).

Failure: the helper never decides anything. If it cannot be started or the request cannot
be sent (too big for one message, more than 250 fds), ``ForkServer.send`` raises
``Unavailable`` and the launcher forks in-process as before. If the pipe then brings no
``CLONED`` record — the helper died, or did not answer within ``REPLY_TIMEOUT_S`` and was
killed — nothing was cloned (a cloned child writes that record first, and holds the pipe
open until it does) and the launcher forks in-process too; the next spawn starts a new
helper (the first answer of a new helper may take ``BOOT_TIMEOUT_S`` more: its interpreter
is still starting). A clone the kernel refuses (a seccomp filter on ``clone``) turns the
helper off for good; only EAGAIN/ENOMEM fail the spawn, as a fork would fail too.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import enum
import os
import select
import signal
import socket
import sys
import types
from collections.abc import Callable

from systemg.spawn import linux
from systemg.spawn.fault import encode_cloned

REPLY_TIMEOUT_S = 2.0  # a clone takes about a millisecond; past this the helper is stuck
BOOT_TIMEOUT_S = 10.0  # more for the first request: the helper's interpreter still starts
MAX_MESSAGE = 4 << 20
MAX_FDS = 250  # SCM_MAX_FD is 253
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from systemg.spawn import forkserver; forkserver.serve(3, int(sys.argv[2]))"  # noqa: E501


_PLAIN = frozenset({str, bytes, int, float, bool, type(None)})


class Unavailable(Exception):  # noqa: N818 - a state, not a bug
    """The helper cannot take this spawn: the caller forks in-process."""


def flatten(value: object) -> object:
    """A plan as plain data: dataclasses become ``SimpleNamespace`` (fields and properties,
    which the child reads as attributes too), enums their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        names += [k for k, v in vars(type(value)).items() if isinstance(v, property)]
        return types.SimpleNamespace(**{name: flatten(getattr(value, name)) for name in names})
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        if all(type(v) in _PLAIN for v in value):
            return value  # argv, env, fds, paths: most of a plan, as it is
        return tuple(flatten(v) for v in value)
    if isinstance(value, list):
        return [flatten(v) for v in value]
    if isinstance(value, dict):
        return {k: flatten(v) for k, v in value.items()}
    return value


class ForkServer:
    """The supervisor's handle on its spawn helper (one per supervisor, passed to the
    launcher; no module state). ``log`` gets one line when a helper starts or is lost."""

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self._log = log or (lambda _text: None)
        self._sock: socket.socket | None = None
        self._pid = 0
        self._pidfd = -1
        self._answered = False  # the current helper has answered once (it has booted)
        self._disabled = ""  # why the helper is not used any more (clone refused)
        self.started = 0  # helpers started so far (tests, status)

    @property
    def pid(self) -> int:
        return self._pid

    def send(self, plan: object, argv: list[bytes], env: dict[bytes, bytes],
             fds: list[int]) -> None:  # fmt: skip
        """Ask for a child that runs ``child.run(plan, ...)`` with ``fds`` = stdout, stderr,
        fault pipe, then the plan's inherited fds; the answer comes on the fault pipe
        (``fault.CLONED``). ``Unavailable`` if the helper cannot take it."""
        if len(fds) > MAX_FDS or self._disabled or not linux.clone_parent_supported():
            raise Unavailable("not through the helper")
        import pickle  # performance: imported by the first privileged spawn, not at boot

        try:
            data = pickle.dumps((flatten(plan), argv, env), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # a plan it cannot carry: fork in-process
            raise Unavailable(f"cannot send the plan: {exc}") from None
        if len(data) > MAX_MESSAGE:
            raise Unavailable("request too large")
        sock = self._ensure()
        try:
            sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        except OSError as exc:
            if exc.errno != 90:  # EMSGSIZE: too big for this socket, the helper is fine
                self.lost("cannot be reached")
            raise Unavailable(str(exc)) from None

    def reply_timeout(self) -> float:
        """How long the answer to the request just sent may take."""
        return REPLY_TIMEOUT_S if self._answered else REPLY_TIMEOUT_S + BOOT_TIMEOUT_S

    def answered(self) -> None:
        self._answered = True

    def disable(self, why: str) -> None:
        """Stop using a helper for good (the kernel refuses its clone): in-process forks."""
        self._disabled = why
        self._discard(f"{why}; privileged services are forked by the supervisor from now on")

    def lost(self, why: str) -> None:
        """Give up on the current helper (killed and reaped); the next spawn starts another."""
        self._discard(why)

    def close(self) -> None:
        """End the helper (EOF on its socket) and reap it."""
        self._discard(None)

    def _running(self) -> bool:
        return self._pidfd >= 0 and not select.select([self._pidfd], [], [], 0)[0]

    def _ensure(self) -> socket.socket:
        if self._sock is not None and self._running():
            return self._sock
        if self._sock is not None:
            self._discard("exited")
        kind = socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, kind)
        except OSError as exc:  # out of fds: fork in-process this time
            raise Unavailable(str(exc)) from None
        pid = 0
        try:
            with contextlib.suppress(OSError):
                ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_MESSAGE)
            root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", "-c", _BOOT, root, str(os.getpid())],
                {"LC_ALL": "C"},
                file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)],
                setsigmask=(),
            )
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            ours.close()
            if pid:  # started but cannot be watched: not ours to use
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            self._log(f"spawn helper: cannot start ({exc}); forking in the supervisor")
            raise Unavailable(str(exc)) from None
        finally:
            theirs.close()
        self._sock, self._pid, self._pidfd = ours, pid, pidfd
        self._answered = False
        self.started += 1
        self._log(f"spawn helper started (pid {pid})")
        return ours

    def _discard(self, why: str | None) -> None:
        if self._sock is None:
            return
        self._sock.close()
        self._sock = None
        if why is not None:
            self._log(f"spawn helper pid {self._pid} {why}; the next spawn starts another")
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
        # EOF ends it at once; a killed one is gone at once too. Reaped here, not left to
        # the stray reaper (which skips it while the pidfd is open).
        if select.select([self._pidfd], [], [], 1.0)[0]:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
        os.close(self._pidfd)
        self._pidfd, self._pid = -1, 0


# --- the helper process ----------------------------------------------------------------
def serve(fd: int, parent: int) -> None:
    """The helper's whole life: answer requests on ``fd`` until EOF or the death of
    ``parent`` (the supervisor's pid; it may be 1, as a container's init)."""
    import gc
    import pickle

    from systemg.spawn import child

    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)  # the supervisor died before the line above
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()  # imports done: keep the collector off the pages the clones share
    conn = socket.socket(fileno=fd)
    space = socket.CMSG_SPACE(MAX_FDS * 4)
    while True:
        try:
            data, ancdata, _flags, _ = conn.recvmsg(MAX_MESSAGE, space)
        except InterruptedError:
            continue
        fds: list[int] = []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[: len(payload) - len(payload) % 4])
                fds.extend(received)
        if not data:
            os._exit(0)
        answer = b""
        try:
            plan, argv, env = pickle.loads(data)
            plan.inherited_fds = tuple(fds[3:])
            old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            try:
                pid = linux.clone_parent()
                if pid == 0:  # pragma: no cover - the child never returns
                    try:
                        os.write(fds[2], encode_cloned(os.getpid()))
                        child.run(plan, argv=argv, env=env, stdout=fds[0], stderr=fds[1],
                                  fault_fd=fds[2])  # fmt: skip
                    finally:
                        os._exit(127)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        except OSError as exc:
            answer = encode_cloned(-(exc.errno or 5))
        except Exception:  # an unreadable request: the supervisor forks it itself
            answer = encode_cloned(0)
        if answer and len(fds) > 2:
            with contextlib.suppress(OSError):
                os.write(fds[2], answer)
        for received_fd in fds:
            os.close(received_fd)
