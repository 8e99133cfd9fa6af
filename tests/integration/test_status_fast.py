"""``sysg status`` without a selection takes the fast path (``cli/quick.py``): one request
with a ``view``, the text rendered by the supervisor. It must print the same bytes and exit
with the same code as the full path (``-c FILE`` forces that one: it does not narrow), must
not import the CLI's protocol, and must fall back to the full path for a supervisor that
does not know the ``view`` (an older one)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from systemg.protocol.messages import StatusReply
from tests.support.procscan import new_marker
from tests.support.runtime import Runtime, wait_for

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


def _imported(rt: Runtime, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "systemg", "status", *args],
        cwd=rt.work,
        env=rt.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
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


@pytest.fixture
def old_supervisor(rt: Runtime) -> Iterator[list[dict[str, object]]]:
    """A supervisor that answers every ``status`` with a plain ``StatusReply``, as one from
    before the ``view`` field does (it ignores the unknown field): the requests it got."""
    rt.state.mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(rt.state / "control.sock"))
    listener.listen(8)
    reply = StatusReply(captured_at=1.0, supervisor_pid=os.getpid()).to_json()
    line = json.dumps({"v": 1, "ok": True, "data": reply}).encode() + b"\n"
    seen: list[dict[str, object]] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                seen.append(json.loads(conn.makefile("rb").readline()))
                conn.sendall(line)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)


def test_a_supervisor_without_views_gets_the_full_path(
    rt: Runtime, old_supervisor: list[dict[str, object]]
) -> None:
    proc = rt.sysg("status")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert "No units being supervised" in proc.stdout
    # First the fast request, then the full path's own, without a view.
    views = [r["args"].get("view") for r in old_supervisor]  # type: ignore[union-attr]
    assert len(views) == 2
    assert views[0] == "table"
    assert not views[1]
