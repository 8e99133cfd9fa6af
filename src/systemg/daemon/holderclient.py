"""The supervisor's side of the fd holder (``daemon.fdholder``): hand it every output pipe,
notice when it goes, and put everything back into a new one.

The client remembers what it holds (key → the fds, which stay the supervisor's own; ``drop``
forgets), so a holder that dies costs nothing but a restart. It runs on the supervisor's
loop and never blocks it:

- The socket is non-blocking. A packet that would block (``EAGAIN``) is queued and the
  queue flushed when the socket is writable. The queue holds *keys*: a put sends the fds
  the key holds at the moment it is sent. A fd the supervisor closed since (its service
  shut that stream, the number may be reused) is replaced by a pipe already at EOF — what
  the original had become — and never sent as whatever now has its number.
- The holder is watched by a pidfd on the pid ``SO_PEERCRED`` gives for the connection (a
  holder that survived a previous supervisor is not our child; the pid file is not
  trusted), and by the connection itself. Either end → ``_lost``: a WARN in the journal,
  the old process is killed if it still runs (it cannot be trusted to hold the same
  thing as we do), reaped if it is our child, and a new holder is started.
- Starting never waits: ``start`` makes a socketpair, spawns ``sysg fdholder --conn 3``
  with the other end, and is connected at once. Everything remembered is put again right
  away; the packets wait in the holder's socket until it has booted, and that socket is
  the holder's from the fork on, so a supervisor killed while the holder still boots (a
  cold start) loses no pipe. A holder that dies before it ever reads is noticed by its
  pidfd like any other.
- A lost holder is replaced at once; one that keeps dying (or never comes up) after a
  doubling delay (``BACKOFF`` .. ``MAX_DELAY``), never in a tight loop. A holder that
  stayed up ``STABLE`` seconds resets the delay.

Two calls block, both outside the loop and bounded: ``fetch_all`` (once at boot, before
the loop runs) and ``shutdown`` (after it stopped).
"""

from __future__ import annotations

import contextlib
import enum
import os
import select
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from systemg.daemon.fdholder import write_pid_file
from systemg.daemon.journal import Journal
from systemg.daemon.loop import Loop, Timer
from systemg.protocol.holder import (
    MAX_FDS,
    MAX_PACKET,
    End,
    Entry,
    Op,
    encode,
    parse_reply,
)

# At boot, for a holder that is alive but has not bound its socket yet (a Python start-up:
# ~0.2 s idle, over 2 s on a loaded 2-CPU host, where the suite saw 2 s run out). Only
# waited while the pid file names a live holder, so a normal boot never waits for it.
BOOT_WAIT = 10.0
BACKOFF = 0.25
MAX_DELAY = 30.0
STABLE = 10.0
FETCH_TIMEOUT = 5.0
SHUTDOWN_TIMEOUT = 2.0


class Link(enum.Enum):
    UP = "up"  # connected, watched
    DOWN = "down"  # lost; waiting for the old one to die, or for the backoff delay
    CLOSED = "closed"  # shutdown


@dataclass(frozen=True, slots=True)
class Held:
    fds: tuple[int, ...]
    ids: tuple[tuple[int, int] | None, ...]  # (st_dev, st_ino) of each fd when put


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class HolderClient:
    def __init__(
        self,
        sock_path: Path,
        loop: Loop,
        journal: Journal,
        spawn: Callable[[int], int],
    ) -> None:
        """``spawn(fd)`` starts a new ``sysg fdholder`` that inherits the socket ``fd`` (its
        connection to us) and returns its pid (our child)."""
        self.sock_path = sock_path
        self.loop = loop
        self.journal = journal
        self._spawn = spawn
        self._pid_file = sock_path.with_name("fdholder.pid")
        self.link = Link.DOWN
        self.pid: int | None = None
        self._conn: socket.socket | None = None
        self._pidfd: int | None = None
        self._writing = False
        self._held: dict[str, Held] = {}
        self._in_holder: set[str] = set()  # keys the holder has once the queue is sent
        self._queue: deque[tuple[Op, str]] = deque()
        self._children: set[int] = set()  # holders we spawned and have not reaped
        self._timer: Timer | None = None
        self._failures = 0  # consecutive: reset by a holder that stayed up STABLE seconds
        self._delay = 0.0  # before the next start, once the lost one is gone
        self._connected_at = 0.0
        self._replacing = False  # log the reconnection of a replacement

    # --- what the supervisor calls ------------------------------------------------------
    def put(self, key: str, fds: list[int]) -> None:
        self._held[key] = Held(tuple(fds), tuple(_identity(fd) for fd in fds))
        if self.link is Link.UP:
            if (Op.PUT, key) not in self._queue:
                self._queue.append((Op.PUT, key))
            self._in_holder.add(key)
            self._flush()

    def drop(self, key: str) -> None:
        self._held.pop(key, None)
        with contextlib.suppress(ValueError):
            self._queue.remove((Op.PUT, key))
        if key in self._in_holder:
            self._in_holder.discard(key)
            self._queue.append((Op.DEL, key))
            self._flush()

    def connect(self) -> bool:
        """Boot: connect to a holder that survived a previous supervisor, if one listens."""
        # Before the loop runs: a holder busy accepting (backlog full), or one a supervisor
        # killed moments ago started and that has not bound its socket yet (it may hold
        # that supervisor's pipes), is waited for briefly.
        deadline = time.monotonic() + BOOT_WAIT
        while (got := self._attempt()) is not True and time.monotonic() < deadline:
            if got is False and not self._holder_booting():
                break
            time.sleep(0.01)
        return bool(got)

    def _holder_booting(self) -> bool:
        """The pid file names a live ``sysg fdholder`` (its socket may not be bound yet), or
        a supervisor's child about to become one (forked, not yet exec'd)."""
        try:
            pid = int(self._pid_file.read_text().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except (OSError, ValueError):
            return False
        return b"fdholder" in argv or b"supervise" in argv

    def start(self) -> None:
        """Spawn a new holder, connected from the fork on, and give it everything."""
        self._cancel_timer()
        if self.link is Link.CLOSED:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = self._spawn(theirs.fileno())
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            ours.close()
            delay = self._next_delay()
            self.journal.warn(f"cannot start the fd holder: {exc} (retrying in {delay:g}s)")
            self._timer = self.loop.call_later(delay, self.start)
            return
        finally:
            theirs.close()
        self._children.add(pid)
        with contextlib.suppress(OSError):
            # Named at once, so a supervisor that follows us waits for it (``connect``).
            write_pid_file(self._pid_file, pid)
        ours.setblocking(False)
        self._in_holder = set(self._held)
        self._queue = deque((Op.PUT, key) for key in self._held)
        self._up(ours, pid, pidfd)

    def fetch_all(self) -> dict[str, list[int]]:
        """Take back everything a surviving holder holds: key → fds, now the caller's.

        Runs once at boot, before the loop: it blocks, for at most ``FETCH_TIMEOUT`` s in
        all (acceptable there — nothing is being served yet, and the pipes are needed
        before re-adoption). An entry nobody ``put``s back before the loop's first turn
        is dropped from the holder (its service was not re-adopted).
        """
        out: dict[str, list[int]] = {}
        conn = self._conn
        if self.link is not Link.UP or conn is None:
            return out
        deadline = time.monotonic() + FETCH_TIMEOUT
        error = ""
        try:
            conn.settimeout(FETCH_TIMEOUT)
            conn.send(encode(Op.GET))
            while True:
                conn.settimeout(max(0.001, deadline - time.monotonic()))
                data, fds, flags, _addr = socket.recv_fds(conn, MAX_PACKET, MAX_FDS)
                if not data and not fds:
                    error = "it closed the connection"
                    break
                reply = parse_reply(data, len(fds), flags)
                if isinstance(reply, End):
                    break
                if not isinstance(reply, Entry):
                    _close_all(fds)
                    continue
                for fd in fds:
                    os.set_inheritable(fd, False)  # recv_fds does not set close-on-exec
                _close_all(out.pop(reply.key, []))
                out[reply.key] = fds
        except OSError as exc:  # socket.timeout is an OSError
            error = f"no answer ({exc})"
        finally:
            with contextlib.suppress(OSError):
                conn.setblocking(False)
        self._in_holder |= set(out)
        unclaimed = set(out)
        self.loop.call_later(0, lambda: self._forget(unclaimed))
        if error:
            self._lost(f"it did not give the held pipes back: {error}")
        return out

    def shutdown(self) -> None:
        """The supervisor exits with no service alive: tell the holder to exit too.

        Runs after the loop stopped, so it may wait (bounded) for a holder still starting.
        """
        self._cancel_timer()
        conn = self._conn
        if self.link is Link.UP and conn is not None:
            with contextlib.suppress(OSError):
                conn.settimeout(SHUTDOWN_TIMEOUT)
                conn.send(encode(Op.EXIT))
        else:
            for pid in self._children:  # a holder that never answered: SIGTERM cleans up
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
            self._remove_stale()
        self._teardown()
        self._close_pidfd()
        self.link = Link.CLOSED

    def _remove_stale(self) -> None:
        """Files of a holder that was killed (nobody listens, its pid is gone)."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        probe.setblocking(False)
        try:
            probe.connect(str(self.sock_path))
        except ConnectionRefusedError:
            with contextlib.suppress(OSError):
                self.sock_path.unlink()
        except OSError:
            pass
        finally:
            probe.close()
        pid_file = self.sock_path.with_name("fdholder.pid")
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                pid_file.unlink()

    # --- connecting -----------------------------------------------------------------------
    def _attempt(self) -> bool | None:
        """One non-blocking connect: True connected, False nobody listens, None busy."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setblocking(False)
        try:
            sock.connect(str(self.sock_path))
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, _gid = struct.unpack("3i", raw)
            if uid not in (0, os.getuid()):
                raise PermissionError(f"fd holder socket belongs to uid {uid}")
            pidfd = os.pidfd_open(pid)
        except BlockingIOError:
            sock.close()
            return None
        except OSError:
            sock.close()
            return False
        self._up(sock, pid, pidfd)
        return True

    def _up(self, sock: socket.socket, pid: int, pidfd: int) -> None:
        self._cancel_timer()
        self._conn, self.pid, self._pidfd = sock, pid, pidfd
        self.link = Link.UP
        self._connected_at = self.loop.clock()
        self._writing = False
        self.loop.set_writer(sock.fileno(), self._on_readable, None)
        self.loop.add_reader(pidfd, lambda: self._lost("it died"))
        if self._replacing:
            self._replacing = False
            self.journal.info(
                f"new fd holder (pid {pid}) connected: it holds the pipes of "
                f"{len(self._held)} service process(es) again"
            )
        self._flush()

    # --- losing it ------------------------------------------------------------------------
    def _lost(self, why: str) -> None:
        if self.link is not Link.UP:
            return
        if self._pidfd is not None and _exited(self._pidfd):
            why = "it died"
        if self.loop.clock() - self._connected_at >= STABLE:
            self._failures = 0
        self._delay = self._next_delay()
        self.journal.warn(
            f"fd holder (pid {self.pid}) lost ({why}): a new one starts "
            + (f"in {self._delay:g}s" if self._delay else "now")
            + " (until it runs, services would not survive a supervisor crash)"
        )
        self._teardown()
        self.link = Link.DOWN
        self._replacing = True
        self._in_holder.clear()
        self._queue.clear()
        pidfd = self._pidfd
        if pidfd is None:
            self._gone()
            return
        # Killed if it still runs (a holder we lost touch with may hold stale entries);
        # the next one starts once the pidfd says this one is gone.
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        self.loop.remove(pidfd)
        self.loop.add_reader(pidfd, self._gone)

    def _gone(self) -> None:
        self._close_pidfd()
        self._reap_children()
        with contextlib.suppress(OSError, ValueError):
            if int(self._pid_file.read_text().strip()) == self.pid:
                self._pid_file.unlink()  # named by us at its spawn; it died before removing it
        if self.link is not Link.DOWN:
            return
        self._cancel_timer()
        self._timer = self.loop.call_later(self._delay, self.start)

    def _teardown(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self.loop.remove(conn.fileno())
            conn.close()
        self._writing = False

    def _close_pidfd(self) -> None:
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is None:
            return
        self.loop.remove(pidfd)
        with contextlib.suppress(ChildProcessError, OSError):
            reaped = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)  # if our child
            if reaped is not None:
                # Reaped: the pid is free for reuse and must never be waited for again.
                self._children.discard(reaped.si_pid)
        os.close(pidfd)

    def _reap_children(self) -> None:
        for pid in list(self._children):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._children.discard(pid)

    def _next_delay(self) -> float:
        """0 for the first of a run of failures, then BACKOFF, doubling, up to MAX_DELAY."""
        failures, self._failures = self._failures, self._failures + 1
        return 0.0 if failures == 0 else float(min(BACKOFF * 2 ** (failures - 1), MAX_DELAY))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- io -------------------------------------------------------------------------------
    def _forget(self, keys: set[str]) -> None:
        for key in keys - set(self._held):
            self.drop(key)

    def _flush(self) -> None:
        conn = self._conn
        if self.link is not Link.UP or conn is None:
            return
        while self._queue:
            op, key = self._queue[0]
            spare: list[int] = []
            try:
                if op is Op.PUT:
                    held = self._held.get(key)
                    if held is not None:
                        socket.send_fds(conn, [encode(op, key)], self._current(held, spare))
                else:
                    conn.send(encode(op, key))
            except BlockingIOError:
                self._want_write(True)
                return
            except OSError as exc:
                self._lost(f"its connection broke: {exc.strerror or exc}")
                return
            finally:
                _close_all(spare)
            self._queue.popleft()
        self._want_write(False)

    @staticmethod
    def _current(held: Held, spare: list[int]) -> list[int]:
        """The key's fds, each still the file it was when put, or a pipe already at EOF."""
        out = []
        for fd, ident in zip(held.fds, held.ids, strict=True):
            if ident is not None and _identity(fd) == ident:
                out.append(fd)
                continue
            r, w = os.pipe2(os.O_CLOEXEC)
            os.close(w)
            spare.append(r)
            out.append(r)
        return out

    def _want_write(self, wanted: bool) -> None:
        if wanted != self._writing and self._conn is not None:
            self._writing = wanted
            self.loop.set_writer(
                self._conn.fileno(), self._on_readable, self._flush if wanted else None
            )

    def _on_readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        for _ in range(64):
            try:
                data, fds, _flags, _addr = socket.recv_fds(conn, MAX_PACKET, MAX_FDS)
            except BlockingIOError:
                return
            except OSError as exc:
                self._lost(f"its connection broke: {exc.strerror or exc}")
                return
            _close_all(fds)  # late answers to a get that timed out: nothing is expected
            if not data and not fds:
                self._lost("its connection closed")
                return


def _exited(pidfd: int) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
