"""Requests failed during a restart under load: sysg ``strategy: rolling`` vs supervisord.

The server is ``examples/rolling/server.py`` for both (an HTTP server that finishes what it
accepted on SIGTERM). sysg: ``listen: [127.0.0.1:PORT]`` (sysg binds and holds the socket,
both generations get it as fd 3), ``notify: true`` (up on READY=1), ``strategy: rolling``,
``grace_period: 300ms``; ``sysg restart -s web``. supervisord: the same server binding
``PORT`` itself, ``supervisorctl restart web`` (stop, then start). The load is the tests'
instrument (``tests/support/httpload.py``): 4 client threads on 127.0.0.1, a new connection
per request, every refused/reset/timed-out/non-200 request counted; ``restarts`` restarts
per run, each after 200 more requests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

from peers import Peer, Supervisord, Svc, Sysg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from tests.support.httpload import Load  # noqa: E402  (the same instrument as the tests)

SERVER = os.path.join(REPO, "examples", "rolling", "server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing answers on port {port}")


def _configure(peer: Peer, port: int) -> list[str]:
    """Write the peer's config; the argv of one restart of the service."""
    server = os.path.join(peer.root, "server.py")
    shutil.copy(SERVER, server)
    if isinstance(peer, Sysg):
        with open(peer.manifest, "w") as f:
            f.write(
                'version: "2"\nprojects:\n  b:\n    services:\n      web:\n'
                f'        exec: [python3, "{server}"]\n'
                f'        listen: ["127.0.0.1:{port}"]\n'
                "        notify: true\n"
                "        deployment: {strategy: rolling, grace_period: 300ms}\n"
            )
        return [os.path.join(peer.bindir, "sysg"), "restart", "-s", "web"]
    assert isinstance(peer, Supervisord)
    peer.configure([Svc("web", ("env", f"PORT={port}", "python3", server))])
    return peer.ctl("restart", "web")


def restart_under_load(peer: Peer, restarts: int) -> tuple[int, int, int]:
    """(failed requests, all requests, restarts that exited 0) over ``restarts`` restarts."""
    port = free_port()
    argv = _configure(peer, port)
    proc = peer.launch()
    if isinstance(peer, Sysg):
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"sysg start failed: {err.decode()[-2000:]}")
    _up(port)
    ok = 0
    with Load("127.0.0.1", port) as load:
        load.wait_requests(200)
        for _ in range(restarts):
            done = subprocess.run(
                argv, check=False, env=peer.env(), capture_output=True, cwd=peer.root, timeout=120
            )
            ok += done.returncode == 0
            _up(port)
            load.wait_requests(200)
    return load.failed, load.total(), ok
