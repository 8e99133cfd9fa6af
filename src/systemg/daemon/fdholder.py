"""Keep services' output pipes open while no supervisor is there to read them.

Why this exists: a service's stdout/stderr is a pipe whose read end the supervisor holds.
If the supervisor is killed (``kill -9``, OOM), the kernel closes that read end, and the
service's next write gets ``SIGPIPE`` — the service dies, or its output is lost. So
every read end is also handed (``SCM_RIGHTS``) to this tiny process, ``sysg fdholder``,
which does nothing but hold them. With the supervisor gone, a service's writes fill the
pipe buffer (raised to 1 MiB) and then block: the service pauses, nothing is lost. A new
supervisor fetches the read ends back and drains them, so the output written during the
outage lands in the log in order.

The wire format is ``protocol.holder`` (``SOCK_SEQPACKET`` on ``<state>/fdholder.sock``,
``0600``). The supervisor that starts a holder does not connect to that path: it keeps one
end of a socketpair and the holder inherits the other (``--conn 3``), so the link exists
from the fork on. Pipes put before this process has even finished booting wait in the
socket's queue, which is this process's from the fork: a supervisor killed during a cold
start loses none of them. Later supervisors connect to the path. The supervisor's side,
which also watches this process and replaces it when it dies, is ``daemon.holderclient``.

Invariants of this process:

- It obeys only its supervisor: a peer is served only if its ``SO_PEERCRED`` uid is root
  or ours *and* its pid is the one in ``<state>/sysg.pid`` (written by the supervisor,
  under its lock, before it connects). Any other peer is closed at once, unread, so no
  number of stray or abandoned connections can wedge it or take the pipes.
- Nothing a peer sends can kill or block it: one thread, a ``selectors`` loop over
  non-blocking sockets; a packet that is not exactly a valid request (``parse_request``)
  is ignored and the fds it carried are closed; a ``get`` reply is queued and sent as the
  peer reads it (keys, not fds, are queued: nothing leaks if the peer goes away).
- It exits on ``exit``, on ``SIGTERM`` (removing its socket and pid file), when its last
  connection closes while it holds nothing, or after ``IDLE_EXIT`` without a connection
  while it holds nothing (a supervisor that died before connecting leaves no holder).
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import selectors
import signal
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from systemg.protocol.holder import (
    END,
    MAX_FDS,
    MAX_PACKET,
    Op,
    Request,
    encode_entry,
    parse_request,
)

__all__ = ["main", "serve", "write_pid_file"]

IDLE_EXIT = 60.0  # seconds with no connection and nothing held
MAX_PEERS = 8  # connections of the supervisor at once (it uses one); then the oldest goes
BURST = 64  # packets read from one peer before others get a turn


@dataclass(slots=True)
class _Peer:
    sock: socket.socket
    outbox: deque[str | None] = field(default_factory=deque)  # get reply; None = end


class Holder:
    """The holder's state and its event loop (separate process: a blocking ``select``)."""

    def __init__(
        self,
        server: socket.socket,
        supervisor_pid_file: Path,
        conn: socket.socket | None = None,
    ) -> None:
        self.server = server
        self.supervisor_pid_file = supervisor_pid_file
        self.held: dict[str, list[int]] = {}
        self.peers: dict[int, _Peer] = {}
        self.done = False
        self.selector = selectors.DefaultSelector()
        self.selector.register(server, selectors.EVENT_READ, None)
        if conn is not None:  # inherited from the supervisor that started us: trusted
            self._add_peer(conn)

    def run(self, idle_exit: float) -> None:
        while not self.done:
            idle = not self.peers and not self.held
            events = self.selector.select(idle_exit if idle else None)
            if not events and idle:
                return  # nobody came for IDLE_EXIT seconds and nothing is held
            for key, mask in events:
                if key.data is None:
                    self._accept()
                elif key.fd in self.peers and self.peers[key.fd] is key.data:
                    self._on_event(key.data, mask)

    # --- connections ---------------------------------------------------------------------
    def _accept(self) -> None:
        for _ in range(BURST):
            try:
                conn, _addr = self.server.accept()
            except BlockingIOError:
                return
            except OSError:
                time.sleep(0.05)  # out of fds: let the table drain instead of spinning
                return
            if not self._is_supervisor(conn):
                conn.close()
                continue
            if len(self.peers) >= MAX_PEERS:
                self._close(next(iter(self.peers.values())))  # the oldest: likely stale
            self._add_peer(conn)

    def _add_peer(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        peer = _Peer(conn)
        self.peers[conn.fileno()] = peer
        self.selector.register(conn, selectors.EVENT_READ, peer)

    def _is_supervisor(self, conn: socket.socket) -> bool:
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, _gid = struct.unpack("3i", creds)
            expected = int(self.supervisor_pid_file.read_text().strip())
        except (OSError, ValueError):
            return False
        return uid in (0, os.getuid()) and pid == expected

    def _close(self, peer: _Peer) -> None:
        fd = peer.sock.fileno()
        if self.peers.get(fd) is not peer:
            return
        del self.peers[fd]
        self.selector.unregister(peer.sock)
        peer.sock.close()
        if not self.peers and not self.held:
            self.done = True  # the supervisor left and nothing needs holding

    def _on_event(self, peer: _Peer, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(peer)
        if mask & selectors.EVENT_READ and self.peers.get(peer.sock.fileno()) is peer:
            self._read(peer)

    # --- requests ------------------------------------------------------------------------
    def _read(self, peer: _Peer) -> None:
        for _ in range(BURST):
            try:
                data, fds, flags, _addr = socket.recv_fds(peer.sock, MAX_PACKET, MAX_FDS)
            except BlockingIOError:
                return
            except OSError:
                self._close(peer)
                return
            if not data and not fds:
                if _hung_up(peer.sock):
                    self._close(peer)
                    return
                continue  # an empty packet, which reads the same as the end of stream
            request = parse_request(data, len(fds), flags)
            if request is None:
                _close_all(fds)  # malformed, truncated, unknown op, or fds it takes none of
                continue
            self._apply(peer, request, fds)
            if self.done or self.peers.get(peer.sock.fileno()) is not peer:
                return

    def _apply(self, peer: _Peer, request: Request, fds: list[int]) -> None:
        match request.op:
            case Op.PUT:
                self._release(request.key)
                self.held[request.key] = fds
            case Op.DEL:
                self._release(request.key)
            case Op.GET:
                if peer.outbox:
                    self._close(peer)  # asked again before reading the last reply
                    return
                peer.outbox.extend([*self.held, None])
                self._flush(peer)
            case Op.EXIT:
                for key in list(self.held):
                    self._release(key)
                self.done = True

    def _release(self, key: str) -> None:
        _close_all(self.held.pop(key, []))

    def _flush(self, peer: _Peer) -> None:
        while peer.outbox:
            key = peer.outbox[0]
            try:
                if key is None:
                    peer.sock.send(END)
                elif key in self.held:
                    socket.send_fds(peer.sock, [encode_entry(key)], self.held[key])
            except BlockingIOError:
                self.selector.modify(peer.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, peer)
                return
            except OSError:
                self._close(peer)
                return
            peer.outbox.popleft()  # an entry deleted since the get is simply skipped
        self.selector.modify(peer.sock, selectors.EVENT_READ, peer)


def write_pid_file(path: Path, pid: int) -> None:
    """By rename: a successor reading it mid-write (``connect``) sees the old or the new."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, path)


def _hung_up(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    return any(events & (select.POLLRDHUP | select.POLLHUP) for _fd, events in poller.poll(0))


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _raise_fd_limit() -> None:
    """Hold as many pipes as the hard limit allows (the soft 1024 is ~500 services)."""
    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _on_sigterm(_signum: int, _frame: object) -> None:
    sys.exit(0)  # unwinds through serve's cleanup


def serve(
    sock_path: Path, *, idle_exit: float = IDLE_EXIT, conn: socket.socket | None = None
) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _raise_fd_limit()
    state = sock_path.parent
    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old_umask = os.umask(0o177)
    try:
        server.bind(str(sock_path))
    finally:
        os.umask(old_umask)
    bound = os.stat(sock_path).st_ino
    server.listen(16)
    server.setblocking(False)
    pid_file = state / "fdholder.pid"
    write_pid_file(pid_file, os.getpid())
    try:
        Holder(server, state / "sysg.pid", conn).run(idle_exit)
    finally:
        # Remove only our own files: a holder started after us may own the names now.
        with contextlib.suppress(OSError):
            if os.stat(sock_path).st_ino == bound:
                sock_path.unlink()
        with contextlib.suppress(OSError, ValueError):
            if int(pid_file.read_text().strip()) == os.getpid():
                pid_file.unlink()
    return 0


def main(argv: list[str]) -> int:
    """``sysg fdholder [--conn FD] STATE_DIR``."""
    args = [a for a in argv if a != "fdholder"]
    conn_fd: int | None = None
    if len(args) == 3 and args[0] == "--conn" and args[1].isdigit():
        conn_fd, args = int(args[1]), args[2:]
    if len(args) != 1:
        sys.stderr.write("usage: sysg fdholder [--conn FD] STATE_DIR\n")
        return 2
    conn = None
    if conn_fd is not None:
        try:
            conn = socket.socket(fileno=conn_fd)
        except OSError as exc:
            sys.stderr.write(f"sysg fdholder: fd {conn_fd} is not a socket: {exc}\n")
            return 2
        os.set_inheritable(conn_fd, False)
    os.closerange(3 if conn_fd is None else conn_fd + 1, 1 << 16)
    if conn_fd is not None and conn_fd > 3:
        os.closerange(3, conn_fd)
    return serve(Path(args[0]) / "fdholder.sock", conn=conn)
