"""A control client that never finishes its request line is let go: after
``REQUEST_TIMEOUT`` it gets an ``SG0230`` error and the connection is closed, so abandoned
connections cannot pile up fds in the supervisor. A whole request is never timed out,
however long its handler takes. Real sockets and a real loop; time is a fake clock."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest

from systemg.daemon.audit import Audit
from systemg.daemon.control import REQUEST_TIMEOUT, ControlServer
from systemg.daemon.loop import Loop
from systemg.paths import Mode, Paths


class SlowHandlers:
    """Takes every request and answers none (like a ``start`` waiting for readiness)."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def handle(self, request: Any, responder: Any) -> None:
        self.requests.append(request)


def turn(loop: Loop) -> None:
    """One pass of the loop: what is ready now, and timers due now."""
    loop.call_later(0, loop.stop)
    loop.run()


def test_unfinished_request_line_times_out(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    now = [1000.0]
    loop = Loop(clock=lambda: now[0])
    # A short state path: the socket path must fit sun_path (107 bytes), and pytest's
    # tmp_path under xdist and a relocated TMPDIR (the nobody run) is long.
    state = Path(tempfile.mkdtemp(prefix="sgct", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(state, ignore_errors=True))
    paths = Paths.for_mode(Mode.USER, {"SYSTEMG_STATE_DIR": str(state)})
    handlers = SlowHandlers()
    server = ControlServer(loop, paths, handlers, Audit(tmp_path / "audit.log"))  # type: ignore[arg-type]
    try:
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as half,
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as whole,
        ):
            for sock in (half, whole):
                sock.settimeout(5)
                sock.connect(str(paths.socket))
            half.sendall(b'{"v":1,"verb":"sta')
            whole.sendall(b'{"v":1,"verb":"status"}\n')
            turn(loop)  # accept both
            turn(loop)  # read what they sent
            assert len(handlers.requests) == 1
            now[0] += REQUEST_TIMEOUT - 1
            turn(loop)
            half.setblocking(False)
            try:
                early = half.recv(100)
            except BlockingIOError:
                early = None
            assert early is None, "timed out too early"
            now[0] += 2
            turn(loop)
            half.settimeout(5)
            raw = half.recv(65536)
            reply = json.loads(raw.splitlines()[0])
            assert reply["ok"] is False
            assert reply["diagnostics"][0]["code"] == "SG0230"
            assert "no complete request line" in reply["diagnostics"][0]["message"]
            assert half.recv(100) == b""  # and closed
            # The whole request is still pending in its handler: not cut off.
            whole.setblocking(False)
            try:
                pending = whole.recv(100)
            except BlockingIOError:
                pending = None
            assert pending is None
            whole.close()
            turn(loop)  # its end of stream closes the server side too
    finally:
        server.close()
        loop.close()
