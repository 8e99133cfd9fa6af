"""Listen sockets bound by the supervisor and served by an unprivileged service from fd 3."""

from __future__ import annotations

import os
import socket
import stat
import urllib.request
from pathlib import Path

from systemg.manifest.model import ListenKind, ListenSpec
from systemg.spawn.sockets import Activation, bind_listen
from tests.privileged.spawn_helpers import Spawner, py
from tests.privileged.system_helpers import privileged_port
from tests.support.serial import HOST_GLOBAL

HTTP_FROM_FD3 = """
import http.server, os, socket, socketserver
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('uid=%d pid=%s' % (os.getuid(), os.environ['LISTEN_PID'])).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
srv = socketserver.TCPServer(('127.0.0.1', 0), H, bind_and_activate=False)
srv.socket.close()
srv.socket = socket.socket(fileno=3)
print('serving', os.environ['LISTEN_FDS'], os.environ['LISTEN_FDNAMES'], flush=True)
srv.serve_forever()
"""


@HOST_GLOBAL  # port 80
def test_nobody_without_caps_serves_port_80_from_fd3(spawner: Spawner) -> None:
    port = privileged_port()  # 80, unless another process holds it
    svc = py(
        HTTP_FROM_FD3,
        user="nobody",
        listen=(ListenSpec(ListenKind.TCP, f"127.0.0.1:{port}", host="127.0.0.1", port=port),),
    )
    fds, names = bind_listen(svc, 65534, 65534, Activation((), ()))
    try:
        run = spawner.start(svc, fds=fds, names=names)
        assert run.line("serving") == "1 web"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert resp.status == 200
            assert resp.read().decode() == f"uid=65534 pid={run.pid}"
        assert int(run.status("CapEff"), 16) == 0
    finally:
        for fd in fds:
            os.close(fd)


def test_unix_listen_socket_is_0660_and_owned_by_the_service(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # leaves a stale socket file behind
    svc = py(
        "", user="nobody", listen=(ListenSpec(ListenKind.UNIX, f"unix:{path}", path=str(path)),)
    )
    fds, _ = bind_listen(svc, 65534, 65534, Activation((), ()))
    try:
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert (st.st_uid, st.st_gid) == (65534, 65534)
        assert not os.get_inheritable(fds[0])
    finally:
        os.close(fds[0])
