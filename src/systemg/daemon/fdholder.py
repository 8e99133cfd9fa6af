"""Keep services' output pipes open while no supervisor is there to read them.

Why this exists: a service's stdout/stderr is a pipe whose read end the supervisor holds.
If the supervisor is killed (``kill -9``, OOM), the kernel closes that read end, and the
service's next write gets ``SIGPIPE`` — the service dies, or its output is lost. So
every read end is also handed (``SCM_RIGHTS``) to this tiny process, ``sysg fdholder``,
which does nothing but hold them. With the supervisor gone, a service's writes fill the
pipe buffer (raised to 1 MiB) and then block: the service pauses, nothing is lost. A new
supervisor fetches the read ends back and drains them, so the output written during the
outage lands in the log in order.

Protocol, over a ``SOCK_SEQPACKET`` socket ``<state>/fdholder.sock`` (0600, peer must be
the same uid or root), one JSON object per packet with optional fds:
``{"op": "put", "key": K}`` + fds · ``{"op": "del", "key": K}`` ·
``{"op": "get"}`` → one ``{"key": K}`` + fds packet per entry, then ``{"end": true}`` ·
``{"op": "exit"}``. The holder exits when its supervisor disconnects and it holds nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_FDS = 2  # stdout and stderr read ends per key


def _peer_ok(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid in (0, os.getuid())


def serve(sock_path: Path) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old_umask = os.umask(0o177)
    try:
        server.bind(str(sock_path))
    finally:
        os.umask(old_umask)
    server.listen(4)
    (sock_path.parent / "fdholder.pid").write_text(f"{os.getpid()}\n")
    held: dict[str, list[int]] = {}
    try:
        while True:
            conn, _ = server.accept()
            with conn:
                if not _peer_ok(conn):
                    continue
                if _session(conn, held):
                    break
            if not held:
                break
    finally:
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()
        with contextlib.suppress(FileNotFoundError):
            (sock_path.parent / "fdholder.pid").unlink()
    return 0


def _session(conn: socket.socket, held: dict[str, list[int]]) -> bool:
    """Serve one supervisor connection; True when asked to exit."""
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn, 4096, MAX_FDS)
        except OSError:
            return False
        if not data:
            return False
        try:
            msg: dict[str, Any] = json.loads(data)
        except ValueError:
            for fd in fds:
                os.close(fd)
            continue
        op = msg.get("op")
        key = str(msg.get("key", ""))
        if op == "put":
            for fd in held.pop(key, []):
                os.close(fd)
            held[key] = list(fds)
        elif op == "del":
            for fd in held.pop(key, []):
                os.close(fd)
        elif op == "get":
            for name, owned in held.items():
                socket.send_fds(conn, [json.dumps({"key": name}).encode()], owned)
            conn.send(json.dumps({"end": True}).encode())
        elif op == "exit":
            for owned in held.values():
                for fd in owned:
                    os.close(fd)
            held.clear()
            return True


class HolderClient:
    """The supervisor's side. Every call is best effort: output capture must go on even
    if the holder is gone; only survival across a supervisor crash depends on it."""

    def __init__(self, sock_path: Path) -> None:
        self.sock_path = sock_path
        self.conn: socket.socket | None = None
        # Performance: a holder just started is a second Python process booting (~50-100 ms).
        # The supervisor does not wait for it at boot; the first put/drop does (see expect).
        self._expected_until: float | None = None
        self._on_timeout: Callable[[], None] = lambda: None

    def expect(self, deadline: float, on_timeout: Callable[[], None]) -> None:
        """A holder was just started: connect on first use, waiting until ``deadline``
        (``time.monotonic``). A fresh holder holds nothing, so ``fetch_all`` never waits."""
        self._expected_until = deadline
        self._on_timeout = on_timeout

    def _await_expected(self) -> None:
        deadline, self._expected_until = self._expected_until, None
        if deadline is None:
            return
        while not self.connect():
            if time.monotonic() > deadline:
                self._on_timeout()
                return
            time.sleep(0.002)

    def connect(self) -> bool:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            conn.connect(str(self.sock_path))
        except OSError:
            conn.close()
            return False
        self.conn = conn
        return True

    def put(self, key: str, fds: list[int]) -> None:
        self._send({"op": "put", "key": key}, fds)

    def drop(self, key: str) -> None:
        self._send({"op": "del", "key": key}, [])

    def fetch_all(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        if self.conn is None:
            return out
        self._send({"op": "get"}, [])
        self.conn.settimeout(5)
        try:
            while True:
                data, fds, _flags, _addr = socket.recv_fds(self.conn, 4096, MAX_FDS)
                msg = json.loads(data)
                if msg.get("end"):
                    break
                for fd in fds:
                    os.set_inheritable(fd, False)  # recv_fds does not set close-on-exec
                out[str(msg["key"])] = list(fds)
        except (OSError, ValueError, KeyError):
            pass
        finally:
            self.conn.settimeout(None)
        return out

    def shutdown(self) -> None:
        self._send({"op": "exit"}, [])
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _send(self, msg: dict[str, Any], fds: list[int]) -> None:
        # "exit" too: a holder nobody ever connected to would otherwise wait forever.
        if self.conn is None and msg.get("op") in ("put", "del", "exit"):
            self._await_expected()
        if self.conn is None:
            return
        try:
            socket.send_fds(self.conn, [json.dumps(msg).encode()], fds)
        except OSError:
            self.conn.close()
            self.conn = None


def main(argv: list[str]) -> int:
    """``sysg fdholder STATE_DIR``."""
    args = [a for a in argv if a != "fdholder"]
    if len(args) != 1:
        sys.stderr.write("usage: sysg fdholder STATE_DIR\n")
        return 2
    os.closerange(3, 1 << 16)
    return serve(Path(args[0]) / "fdholder.sock")
