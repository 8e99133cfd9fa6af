"""The control socket: who may connect, framing, and non-blocking replies.

- The peer's credentials (``SO_PEERCRED``) are checked on accept, before a byte is read.
  User mode: the supervisor's own uid or root. System mode: root has every verb; members
  of the operator group (``settings.json`` → ``operator_group``, default ``systemg``) may
  use ``status``/``logs``/``inspect``/``version``, and ``stop``/``start``/``restart`` of
  services already registered — never register or reload a manifest (a manifest is code
  run as root). Anyone else gets ``permission denied`` and the connection is closed.
- A request is one JSON line of at most 1 MiB (``codec.MAX_FRAME``). Anything malformed or
  oversized gets an error reply and the connection is closed; the supervisor goes on. A
  client that has not sent a whole line within ``REQUEST_TIMEOUT`` gets the same, so
  abandoned connections do not pile up. Only each new chunk is searched for the newline,
  so a frame trickling in a byte at a time costs linear, not quadratic, time.
- A request whose handler raises still gets an answer (``SG0001``, internal error), and
  the loop logs the traceback: no client is left waiting for a reply that never comes.
- Replies are buffered and written when the socket is writable, so a slow reader never
  blocks the loop; a follower that stops reading is dropped past ``MAX_BACKLOG``.
- Every accepted request and every refused connection goes to the audit log.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from systemg.daemon.audit import Audit
from systemg.daemon.handlers import Handlers
from systemg.daemon.loop import Loop, Timer
from systemg.errors import Code, Diagnostic, ProtocolError
from systemg.paths import Mode, Paths
from systemg.protocol import codec
from systemg.protocol.messages import OPERATOR_VERBS, Message

MAX_BACKLOG = 16 * 1024 * 1024
REQUEST_TIMEOUT = 30.0  # seconds from accept to a complete request line


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int
    gid: int
    operator_only: bool = False


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _peer_groups(pid: int, gid: int) -> set[int]:
    groups = {gid}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                groups |= {int(g) for g in line.split()[1:]}
    return groups


class Connection:
    """One client. Implements ``handlers.Responder``."""

    def __init__(self, server: ControlServer, sock: socket.socket, peer: Peer) -> None:
        self.server, self.sock, self.peer = server, sock, peer
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.closed = False
        self.finishing = False
        self.handled = False
        self.close_callbacks: list[Callable[[], None]] = []
        self.verb = ""
        self.target: dict[str, Any] = {}
        self.fd = sock.fileno()
        server.loop.set_writer(self.fd, self._on_readable, None)
        self.deadline: Timer | None = server.loop.call_later(REQUEST_TIMEOUT, self._timed_out)

    # --- Responder ----------------------------------------------------------------------
    def reply(self, data: dict[str, Any]) -> None:
        self._audit("ok")
        self._send(codec.encode_ok(data), finish=True)

    def fail(self, *diagnostics: Diagnostic) -> None:
        self._audit(str(diagnostics[0].code) if diagnostics else "error")
        self._send(codec.encode_error(diagnostics), finish=True)

    def event(self, data: dict[str, Any]) -> None:
        if len(self.outbuf) > MAX_BACKLOG:
            self.close()  # a follower that stopped reading; never let it grow memory
            return
        self._send(codec.encode_event(data), finish=False)

    def on_close(self, callback: Callable[[], None]) -> None:
        if self.closed:
            callback()
        else:
            self.close_callbacks.append(callback)

    # --- io -----------------------------------------------------------------------------
    def _audit(self, result: str) -> None:
        if self.verb:
            self.server.audit.request(self.peer, self.verb, self.target, result)

    def _send(self, data: bytes, *, finish: bool) -> None:
        if self.closed or self.finishing:
            return
        self.outbuf += data
        self.finishing = finish
        self._flush()

    def _flush(self) -> None:
        while self.outbuf and not self.closed:
            try:
                sent = self.sock.send(self.outbuf)
            except BlockingIOError:
                break
            except OSError:
                self.close()
                return
            del self.outbuf[:sent]
        if self.closed:
            return
        if not self.outbuf and self.finishing:
            self.close()
            return
        writer = self._flush if self.outbuf else None
        self.server.loop.set_writer(self.fd, self._on_readable, writer)

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        if self.handled:
            return  # one request per connection; ignore anything after it
        newline = data.find(b"\n")
        if newline < 0:
            self.inbuf += data
            if len(self.inbuf) > codec.MAX_FRAME:
                self._refuse(f"request exceeds the {codec.MAX_FRAME}-byte limit")
            return
        self._handled()
        frame = bytes(self.inbuf) + data[:newline]
        del self.inbuf[:]
        try:
            request = codec.decode_request(frame)
        except ProtocolError as exc:
            self.fail(*exc.diagnostics)
            return
        try:
            self.server.dispatch(self, request)
        except Exception:
            self.fail(
                Diagnostic(
                    Code.INTERNAL,
                    f"internal error while handling '{request.verb}'",
                    hint="the supervisor goes on; its log has the details",
                )
            )
            raise  # the loop logs the traceback

    def _handled(self) -> None:
        self.handled = True
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _refuse(self, message: str) -> None:
        self._handled()
        self.fail(Diagnostic(Code.PROTOCOL, message))

    def _timed_out(self) -> None:
        self.deadline = None
        if not self.handled and not self.closed:
            self._refuse(f"no complete request line within {REQUEST_TIMEOUT:g}s")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._handled()
        self.server.loop.remove(self.fd)
        with contextlib.suppress(OSError):
            self.sock.close()
        callbacks, self.close_callbacks = self.close_callbacks, []
        for callback in callbacks:
            callback()


class ControlServer:
    def __init__(
        self,
        loop: Loop,
        paths: Paths,
        handlers: Handlers,
        audit: Audit,
        *,
        operator_group: str = "systemg",
        operator_gid: int | None = None,
    ) -> None:
        self.loop, self.paths, self.handlers, self.audit = loop, paths, handlers, audit
        self.operator_group = operator_group
        # Resolved once by the caller: only system mode with an existing group has operators.
        self.operator_gid = operator_gid
        self.sock = self._bind(paths.socket)
        loop.add_reader(self.sock.fileno(), self._accept)

    def _bind(self, path: Path) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            sock.bind(str(path))
        except BaseException:
            sock.close()  # a path too long, a read-only dir: no fd left behind
            raise
        finally:
            os.umask(old)
        if self.operator_gid is not None:
            os.chown(path, 0, self.operator_gid)
            os.chmod(path, 0o660)
        sock.listen(64)
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        self.loop.remove(self.sock.fileno())
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.paths.socket.unlink()

    def _accept(self) -> None:
        for _ in range(64):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # Out of fds (EMFILE/ENFILE): the pending connection keeps the socket
                # readable, so stop watching it for a moment instead of spinning the CPU.
                self.loop.remove(self.sock.fileno())
                self.loop.call_later(0.1, self._resume_accept)
                return
            conn.setblocking(False)
            pid, uid, gid = peer_credentials(conn)
            peer = self._authorize(pid, uid, gid)
            if peer is None:
                self.audit.refused(pid, uid, gid)
                message = f"permission denied: uid {uid} is not root" + (
                    f" and not in group '{self.operator_group}'"
                    if self.paths.mode is Mode.SYSTEM
                    else " and not the supervisor's user"
                )
                with contextlib.suppress(OSError):
                    conn.send(codec.encode_error((Diagnostic(Code.PERMISSION_DENIED, message),)))
                conn.close()
                continue
            Connection(self, conn, peer)

    def _resume_accept(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    def _authorize(self, pid: int, uid: int, gid: int) -> Peer | None:
        if uid in (0, os.getuid()):
            return Peer(pid, uid, gid)
        if self.operator_gid is not None and self.operator_gid in _peer_groups(pid, gid):
            return Peer(pid, uid, gid, operator_only=True)
        return None

    def dispatch(self, conn: Connection, request: Message) -> None:
        conn.verb = request.verb
        conn.target = {
            k: v
            for k, v in request.to_json().items()
            if k in ("project", "service", "config") and v is not None
        }
        if conn.peer.operator_only and (
            request.verb not in OPERATOR_VERBS or getattr(request, "config", None)
        ):
            conn.fail(
                Diagnostic(
                    Code.PERMISSION_DENIED,
                    f"permission denied: operators (group '{self.operator_group}') may not "
                    f"{request.verb}" + (" a manifest" if getattr(request, "config", None) else ""),
                    hint="registering or reloading a manifest runs code as root: use sudo",
                )
            )
            return
        self.handlers.handle(request, conn)
