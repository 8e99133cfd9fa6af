"""Socket activation capture, run in a real subprocess that received a socket on fd 3."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from systemg.manifest.model import ListenKind, ListenSpec, Service
from systemg.spawn.sockets import Activation, bind_listen

PROBE = """
import fcntl, json, os, sys
from systemg.spawn.sockets import capture_activation
act = capture_activation(os.environ, os.getpid())
print(json.dumps({
    "fds": act.fds, "names": act.names,
    "cloexec": [bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC) for fd in act.fds],
    "left": sorted(k for k in os.environ if k.startswith("LISTEN_")),
}))
"""


def _run_with_fd3(env: dict[str, str]) -> dict[str, object]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    code = (
        "import os, sys\n"
        "os.dup2(int(sys.argv[1]), 3)\n"
        "os.environ['LISTEN_PID'] = os.environ['LISTEN_PID'].replace('SELF', str(os.getpid()))\n"
        f"exec(compile({PROBE!r}, 'probe', 'exec'))\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(listener.fileno())],
            env={**os.environ, **env},
            pass_fds=(listener.fileno(),),
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    finally:
        listener.close()
    return dict(json.loads(proc.stdout))


def test_capture_takes_fd3_marks_cloexec_and_cleans_env() -> None:
    out = _run_with_fd3({"LISTEN_PID": "SELF", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http"})
    assert out == {"fds": [3], "names": ["http"], "cloexec": [True], "left": []}


def test_capture_ignores_fds_meant_for_another_pid() -> None:
    out = _run_with_fd3({"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    assert out == {"fds": [], "names": [], "cloexec": [], "left": []}


def test_fd_listen_adopts_a_duplicate() -> None:
    a, b = socket.socketpair()
    try:
        act = Activation((a.fileno(),), ("http",))
        svc = Service(
            "web",
            ("x",),
            listen=(
                ListenSpec(ListenKind.FD, "fd:http", fd_name="http"),
                ListenSpec(ListenKind.FD, "fd:0", fd_name="0"),
            ),
        )
        fds, names = bind_listen(svc, None, None, act)
        assert names == ("http", "http")
        assert all(fd != a.fileno() and not os.get_inheritable(fd) for fd in fds)
        for fd in fds:
            os.close(fd)
    finally:
        a.close()
        b.close()
