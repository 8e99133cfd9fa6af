"""A plain ``sysg status`` and ``sysg stop`` take the fast path (``cli/quick.py``): one
request, no CLI imports. ``status`` asks for a ``view``, the text rendered by the
supervisor: the same bytes and exit code as the full path (``-c FILE`` forces that one: it
does not narrow), and the full path for a supervisor that does not know the ``view`` (an
older one). ``stop`` prints the reply's message; anything else after it was sent is the full
path's to report, and the stop is never sent twice."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from systemg.errors import Code, Diagnostic
from systemg.protocol import codec
from systemg.protocol.messages import StatusReply
from tests.support.procscan import new_marker
from tests.support.runtime import SYSG, Runtime, live_pid, pid_alive, wait_for

_VOLATILE = ("captured_at", "uptime", "metrics")


def _manifest(rt: Runtime, marker: str) -> Path:
    return rt.write(
        "systemg.yaml",
        f"""version: "2"
projects:
  shop:
    services:
      web:
        command: "sleep 1000.{marker}"
      migrate:
        command: "exit 0"
        restart_policy: never
      broken:
        command: "exit 3"
        restart_policy: never
""",
    )


def _steady(doc: object) -> object:
    """The document without what changes between two calls a moment apart."""
    if isinstance(doc, dict):
        return {k: _steady(v) for k, v in doc.items() if k not in _VOLATILE}
    if isinstance(doc, list):
        return [_steady(v) for v in doc]
    return doc


def _table(text: str) -> list[list[str]]:
    """The table's rows without the UPTIME, CPU% and RSS columns (they move)."""
    rows = []
    for line in text.splitlines():
        cells = line.split()
        rows.append(cells[:4] + cells[5:7] if len(cells) >= 9 else cells)
    return rows


def test_fast_and_full_path_print_the_same_and_exit_the_same(rt: Runtime) -> None:
    config = str(_manifest(rt, new_marker()))
    rt.sysg("start", "--daemonize")
    wait_for(lambda: rt.unit("broken")["state"] == "failed", what="broken to fail")
    fast = rt.sysg("status", "--format", "json")
    full = rt.sysg("status", "-c", config, "--format", "json")
    assert (fast.returncode, fast.stderr) == (full.returncode, full.stderr) == (2, "")
    assert _steady(json.loads(fast.stdout)) == _steady(json.loads(full.stdout))
    fast, full = rt.sysg("status"), rt.sysg("status", "-c", config)
    assert (fast.returncode, fast.stderr) == (full.returncode, full.stderr) == (2, "")
    assert _table(fast.stdout) == _table(full.stdout)
    assert "broken" in fast.stdout
    assert "failing" in fast.stdout.splitlines()[0]
    # `--format` alone is json, on both paths.
    alone = rt.sysg("status", "--format")
    full = rt.sysg("status", "-c", config, "--format")
    assert _steady(json.loads(alone.stdout)) == _steady(json.loads(full.stdout))


def _importtime(rt: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    """``sysg ARGS`` under ``python -X importtime``: every import is on stderr."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "systemg", *args],
        cwd=rt.work,
        env=rt.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _imported(rt: Runtime, *args: str) -> str:
    proc = _importtime(rt, "status", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_the_fast_path_imports_neither_the_protocol_nor_argparse(rt: Runtime) -> None:
    config = rt.write(
        "systemg.yaml", f'version: "2"\nservices:\n  a:\n    command: "sleep 1000.{new_marker()}"\n'
    )
    rt.sysg("start", "--daemonize", check=True)
    fast = _imported(rt)
    assert "systemg.protocol.messages" not in fast
    assert "argparse" not in fast
    # The full path does import them: the check above can fail.
    assert "systemg.protocol.messages" in _imported(rt, "-c", str(config))


class FakeSupervisor:
    """A stand-in on the control socket: answers each request with ``answer(request)``
    (bytes; None: close without a word) and records the requests."""

    def __init__(self, rt: Runtime) -> None:
        self.seen: list[dict[str, Any]] = []
        self.answer: Callable[[dict[str, Any]], bytes | None] = lambda _req: None
        rt.state.mkdir(parents=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(rt.state / "control.sock"))
        self.listener.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                request = json.loads(conn.makefile("rb").readline())
                self.seen.append(request)
                reply = self.answer(request)
                if reply is not None:
                    conn.sendall(reply)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def fake(rt: Runtime) -> Iterator[FakeSupervisor]:
    server = FakeSupervisor(rt)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("view", ["table", "json"])
def test_a_supervisor_without_views_is_rendered_here_and_asked_once(
    rt: Runtime, fake: FakeSupervisor, view: str
) -> None:
    """One from before the ``view`` field ignores it and replies a plain ``StatusReply``:
    the CLI renders that reply as the full path would, and does not ask again (a status
    takes a CPU sample of every unit)."""
    reply = StatusReply(captured_at=1.0, supervisor_pid=os.getpid()).to_json()
    fake.answer = lambda _req: codec.encode_ok(reply)
    proc = rt.sysg("status", "--format", view)
    assert (proc.returncode, proc.stderr) == (0, "")
    if view == "table":
        assert "No units being supervised" in proc.stdout
    else:
        assert json.loads(proc.stdout)["units"] == []
    assert [r["args"].get("view") for r in fake.seen] == [view]


def test_a_plain_stop_stops_everything_without_the_cli_imports(rt: Runtime) -> None:
    m = new_marker()
    rt.write(
        "systemg.yaml",
        f'version: "2"\nservices:\n  a:\n    command: "sleep 1000.{m}"\n'
        f'  b:\n    command: "sleep 1001.{m}"\n',
    )
    rt.sysg("start", "--daemonize", check=True)
    pids = [live_pid(u) for u in rt.status()["units"]]
    proc = _importtime(rt, "stop")
    assert (proc.returncode, proc.stdout) == (0, "All services stopped\n")
    assert "systemg.protocol.messages" not in proc.stderr
    assert "argparse" not in proc.stderr
    assert not any(pid_alive(p) for p in pids)
    assert {u["state"] for u in rt.status()["units"]} == {"stopped"}


@pytest.mark.parametrize(
    "case",
    [
        # A refusal: the full path's rendering of it, exit 1.
        (
            codec.encode_error((Diagnostic(Code.NOT_FOUND, "nothing by that name"),)),
            1,
            "error[SG0202]: nothing by that name",
            "",
        ),
        # Closed without a reply, and no supervisor in sysg.pid: as the full path says.
        (None, 0, "", "No supervisor is running; nothing to stop\n"),
        # A reply line that is not JSON: the full path's protocol error.
        (b"garbage\n", 1, "error[SG0230]", ""),
    ],
)
def test_a_stop_answered_otherwise_is_the_full_paths_to_report_and_sent_once(
    rt: Runtime, fake: FakeSupervisor, case: tuple[bytes | None, int, str, str]
) -> None:
    answer, code, stderr, stdout = case
    fake.answer = lambda _req: answer
    proc = rt.sysg("stop")
    assert proc.returncode == code, proc.stderr
    assert stderr in proc.stderr
    assert proc.stdout == stdout
    assert "Traceback" not in proc.stderr
    assert [r["verb"] for r in fake.seen] == ["stop"]


def test_a_stop_whose_supervisor_dies_meanwhile_is_finished_by_a_new_one(rt: Runtime) -> None:
    """The fast stop was sent; the supervisor is killed while it waits for a stubborn
    service. As the full path's ``call_reviving`` does, the CLI boots a new supervisor,
    which re-adopts the service (same pid), and asks it to stop: the stop completes."""
    m = new_marker()
    rt.write(
        "systemg.yaml",
        'version: "2"\n'
        "services:\n"
        "  stubborn:\n"
        f"    command: \"trap '' TERM; while true; do sleep 0.2; done # {m}\"\n"
        "    stop_timeout: 2s\n",
    )
    rt.sysg("start", "--daemonize", check=True)
    service = live_pid(rt.unit("stubborn"))
    sup = rt.supervisor_pid()
    assert sup is not None
    proc = rt.popen("stop")
    try:
        rt.wait_state("stubborn", "stopping")
        os.kill(sup, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "re-adopting" in err
    assert out == "All services stopped\n"
    assert not pid_alive(service)
    assert rt.supervisor_pid() not in (None, sup)


def test_a_plain_stop_refused_on_a_terminal_is_not_coloured_with_plain(
    rt: Runtime, fake: FakeSupervisor
) -> None:
    """`--plain` survives the hand-over: the refusal is rendered without colour even when
    stderr is a terminal (here a pty), NO_COLOR unset."""
    import pty

    fake.answer = lambda _req: codec.encode_error((Diagnostic(Code.NOT_FOUND, "no such thing"),))
    env = {k: v for k, v in rt.env.items() if k != "NO_COLOR"}
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [SYSG, "stop", "--plain"],
            cwd=rt.work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=follower,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        os.close(follower)
        follower = -1
        err = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(leader, 4096):
                err += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert proc.returncode == 1
    assert b"error[SG0202]: no such thing" in err
    assert b"\x1b[" not in err
