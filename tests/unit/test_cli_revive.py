"""``call_reviving`` boots a new supervisor only once the killed one is dead.

A supervisor killed a moment ago may still be closing its files: its listening socket takes
a connection after the request's connection closed, so a boot would see "one is running"
and the request then find none (SG0206). Seen under load when a supervisor was SIGKILLed in
the middle of a blue/green switch. The wait is on the recorded pid, by its /proc state (a
dying process's command line already reads as empty), and bounded.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from systemg import proc
from systemg.cli.boot import _wait_until_gone
from systemg.paths import Mode, Paths


def _paths(tmp_path: Path, pid: int) -> Paths:
    paths = Paths(Mode.USER, tmp_path / "state", tmp_path / "logs")
    paths.state_dir.mkdir()
    paths.pid_file.write_text(f"{pid}\n")
    return paths


# A process whose argv says "supervise", as a supervisor's does, that does not die by itself.
LOOKALIKE = [sys.executable, "-c", "import time; time.sleep(30)", "supervise"]


def test_it_returns_once_the_recorded_supervisor_is_dead(tmp_path: Path) -> None:
    child = subprocess.Popen(LOOKALIKE)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        child.kill()  # left a zombie until reaped below: dead, every file closed

    timer = threading.Timer(0.2, kill)
    timer.start()
    try:
        _wait_until_gone(_paths(tmp_path, child.pid), timeout_s=30)
        assert killed.is_set()
        assert not proc.alive(child.pid)
    finally:
        timer.cancel()
        child.kill()
        child.wait()


def test_it_is_bounded_and_needs_no_pid_file(tmp_path: Path) -> None:
    child = subprocess.Popen(LOOKALIKE)
    try:
        _wait_until_gone(_paths(tmp_path, child.pid), timeout_s=0.05)
        assert proc.alive(child.pid)  # it gave up waiting; the boot decides as before
        empty = Paths(Mode.USER, tmp_path / "none", tmp_path / "none-logs")
        _wait_until_gone(empty, timeout_s=30)  # no pid file: nothing to wait for
    finally:
        child.kill()
        child.wait()


def test_a_recycled_pid_is_not_waited_for(tmp_path: Path) -> None:
    """The pid file names a live process that is no supervisor: no wait at all (a wait
    would have to be cut by its bound, which this test sets to an hour)."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        _wait_until_gone(_paths(tmp_path, child.pid), timeout_s=3600)
        assert proc.alive(child.pid)
    finally:
        child.kill()
        child.wait()
