"""Sockets handed to services through the real supervisor (docs/security.md §8).

- ``listen: ["127.0.0.1:80"]`` on a ``nobody`` service with no capabilities: the supervisor
  binds as root, the service serves HTTP from fd 3, and 200 requests made while the service is
  restarted 5 times (kill -9 with ``restart_policy: always``, and ``sysg restart -s`` after a
  manifest edit) never see a refused connection: the socket stays open in the supervisor.
- socket activation: ``systemd-socket-activate -l 127.0.0.1:PORT sysg --sys start -c F``; the
  CLI hands the socket to the supervisor it boots, and a service ``listen: ["fd:0"]`` answers.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.privileged.system_helpers import (
    CAP_SETS,
    cap_masks,
    free_port,
    http_get,
    port_free,
    privileged_port,
    proc_status,
    sys_status,
    units,
    wait_unit,
)
from tests.support.runtime import SYSG, Runtime, pid_alive, pid_of, wait_for
from tests.support.serial import HOST_GLOBAL

SERVE = """\
import http.server, os, socket, sys

sock = socket.socket(fileno=3)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = " ".join(
            [str(os.getpid()), str(os.getuid()), os.environ.get("LISTEN_PID", "-"),
             os.environ.get("LISTEN_FDS", "-"), os.environ.get("LISTEN_FDNAMES", "-"),
             os.environ.get("GENERATION", "-")]
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
server.socket.close()
server.socket = sock
print("serving on fd 3:", sock.getsockname(), flush=True)
server.serve_forever()
"""


def _manifest(port: int, generation: int) -> str:
    return f"""\
version: "2"
projects:
  sock:
    services:
      web:
        exec: ["/usr/bin/python3", "serve.py"]
        working_dir: "."
        user: nobody
        listen: ["127.0.0.1:{port}"]
        restart_policy: always
        backoff: 0s
        stop_timeout: 5s
        env:
          vars:
            GENERATION: "{generation}"
"""


def _fields(body: bytes) -> list[str]:
    return body.decode().split()


@HOST_GLOBAL  # a port below 1024
def test_system_listen_socket_survives_five_restarts(rt: Runtime) -> None:
    port = privileged_port()
    rt.write("serve.py", SERVE)
    manifest = rt.write("sock.yaml", _manifest(port, 0))
    rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize", check=True)
    web = wait_unit(rt, "web", "running")
    pid = int(pid_of(web))
    st = proc_status(pid)
    assert st["Uid"].split() == ["65534"] * 4
    assert cap_masks(pid) == dict.fromkeys(CAP_SETS, 0), "no capability, yet it serves port <1024"
    assert os.readlink(f"/proc/{pid}/fd/3").startswith("socket:")
    status, body = http_get(port)
    got = _fields(body)
    assert status == 200
    assert got[:5] == [str(pid), "65534", str(pid), "1", "web"], got

    refused = 0
    other_errors = 0
    pids: set[int] = set()
    trace: list[tuple[int, str, str]] = []
    generations: set[str] = set()
    restarts = 0
    next_at = 20  # each restart waits until the previous generation served some requests
    pending: subprocess.Popen[str] | None = None
    # At least 200 requests, and on until the 5 restarts are done (bounded: 2000).
    for i in range(2000):
        if i >= 200 and restarts == 5 and pending is None:
            break
        if pending is not None and pending.poll() is not None:
            out = pending.communicate()[0]
            assert pending.returncode == 0, out
            pending = None
            next_at = max(next_at, i + 10)
        if restarts < 5 and i >= next_at and pending is None:
            restarts += 1
            next_at = i + 20
            if restarts % 2:  # kill -9: restart_policy always, backoff 0
                current = pid_of(units(sys_status(rt))["web"]) or 0
                os.kill(current, signal.SIGKILL)
            else:  # an edit of the manifest, applied by `sysg restart -s web` (in flight)
                manifest.write_text(_manifest(port, restarts))
                pending = subprocess.Popen(
                    [SYSG, "--sys", "restart", "-s", "web"],
                    cwd=rt.work,
                    env=rt.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
        for _attempt in range(20):
            try:
                status, body = http_get(port, timeout=15)
            except ConnectionRefusedError:
                refused += 1
                continue
            except (
                ConnectionResetError,
                http.client.RemoteDisconnected,
                http.client.IncompleteRead,
                TimeoutError,
            ):
                # A request the dying process had accepted (or half answered) when it was
                # killed: lost with that process, but not a refused connection.
                other_errors += 1
                continue
            assert status == 200
            fields = _fields(body)
            pids.add(int(fields[0]))
            trace.append((i, fields[0], fields[5]))
            generations.add(fields[5])
            break
        else:
            raise AssertionError(f"request {i} never answered")
        time.sleep(0.005)  # pacing a client, not waiting for anything
        if pending is not None and pending.poll() is not None:
            out = pending.communicate()[0]
            assert pending.returncode == 0, out
            pending = None
    if pending is not None:
        out = pending.communicate(timeout=60)[0]
        assert pending.returncode == 0, out
    assert restarts == 5, f"only {restarts} restarts happened during {len(trace)} requests"
    assert refused == 0, f"{refused} refused connections"
    assert len(pids) >= 6, f"expected 6 generations of the service, saw {_summary(trace)}"
    assert {"0", "2", "4"} <= generations, generations
    final = wait_unit(rt, "web", "running")
    rt.seen_pids.update(pids)
    log = (rt.logs / "supervisor.log").read_text()
    assert log.count("sock/web: running -> backoff killed by signal 9") == 3, log
    # Still the same socket, still served by nobody.
    fpid = int(pid_of(final))
    assert proc_status(fpid)["Uid"].split() == ["65534"] * 4
    assert http_get(port)[0] == 200
    assert other_errors < 20, other_errors


def test_system_socket_activation_through_the_cli(rt: Runtime) -> None:
    if shutil.which("systemd-socket-activate") is None:
        pytest.skip("systemd-socket-activate is not installed")
    port = free_port()
    rt.write("serve.py", SERVE)
    manifest = rt.write(
        "act.yaml",
        """\
version: "2"
projects:
  act:
    services:
      web:
        exec: ["/usr/bin/python3", "serve.py"]
        working_dir: "."
        user: nobody
        listen: ["fd:0"]
""",
    )
    # systemd-socket-activate passes no environment on its own: hand over the test's roots
    # explicitly (without them this would be the real /var/lib/systemg).
    keep = ("SYSTEMG_STATE_DIR", "SYSTEMG_LOG_DIR", "PATH", "HOME", "NO_COLOR")
    setenv = [f"--setenv={name}={rt.env[name]}" for name in keep if name in rt.env]
    cli = subprocess.Popen(
        ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", *setenv, SYSG, "--sys", "start",
         "-c", str(manifest)],
        cwd=rt.work,
        env=rt.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: not port_free(port), what="systemd-socket-activate to listen")
        # The first connection activates the CLI; it is answered by the service.
        status, body = http_get(port, timeout=60)
        fields = _fields(body)
        assert status == 200
        web = units(sys_status(rt))["web"]
        assert fields[:5] == [str(pid_of(web)), "65534", str(pid_of(web)), "1", "unknown"], fields
        sup = rt.supervisor_pid()
        assert sup is not None
        # The supervisor, not the CLI, holds the adopted socket (close-on-exec, no LISTEN_*).
        sup_sockets = _sockets_of(sup)
        assert os.readlink(f"/proc/{pid_of(web)}/fd/3") in sup_sockets
        # LISTEN_* left the supervisor's environment: what it spawns (the fd holder) lacks them.
        holder = int((rt.state / "fdholder.pid").read_text())
        with open(f"/proc/{holder}/environ", "rb") as fh:
            assert b"LISTEN_" not in fh.read()
        flags = (Path(f"/proc/{sup}/fdinfo/3").read_text().split("flags:")[1]).split()[0]
        assert int(flags, 8) & 0o2000000, "the adopted fd 3 is close-on-exec in the supervisor"
        log = (rt.logs / "supervisor.log").read_text()
        assert "socket activation: took fds [3]" in log, log
        assert http_get(port)[0] == 200
        # Ctrl-C on the foreground CLI stops the project it attached to, then exits 0.
        os.kill(cli.pid, signal.SIGINT)
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, out + err
        assert "web" not in units(sys_status(rt))  # stopped and unloaded: the CLI owned it
        wait_for(lambda: not pid_alive(int(pid_of(web))), what="web to exit")
    finally:
        if cli.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(cli.pid, signal.SIGKILL)
            cli.communicate(timeout=10)


def _sockets_of(pid: int) -> set[str]:
    out: set[str] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:"):
                out.add(target)
    return out


def _summary(trace: list[tuple[int, str, str]]) -> str:
    """First request served by each (pid, generation), for a failure message."""
    seen: dict[tuple[str, str], int] = {}
    for i, pid, gen in trace:
        seen.setdefault((pid, gen), i)
    return ", ".join(f"#{i}: pid {pid} gen {gen}" for (pid, gen), i in seen.items())
