"""``sysg top`` against a real supervisor: the plain repeating table when stdout is not a
terminal, and the full-screen view driven in a real terminal (tmux: keys in, pane out).

tmux runs on its own socket under the test's runtime root (``-S``, and ``TMUX_TMPDIR``
there too), so it works as any user and never meets another test's server; ``finally``
kills that server, which ends ``sysg top`` with it. Every wait polls the pane or
``sysg status`` with a deadline: nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.runtime import SYSG, Runtime, pid_of, wait_for

MANIFEST = """\
version: "2"
projects:
  demo:
    services:
      web: {command: "while true; do echo web-tick; sleep 0.3; done", stop_timeout: 3s}
      worker: {command: "echo worker-up; exec sleep 300", stop_timeout: 3s}
"""

WAIT = 40.0  # generous: a loaded 2-core machine may take a while to draw a frame


def started(rt: Runtime) -> dict[str, int]:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    return {s: int(pid_of(rt.wait_state(s, "running"))) for s in ("web", "worker")}


def test_plain_table_repeats_count_times_when_not_a_tty(rt: Runtime) -> None:
    pids = started(rt)
    proc = rt.sysg("top", "--count", "3", "--interval", "0.1", check=True)
    blocks = [b for b in proc.stdout.split("\n\n") if b.strip()]
    assert len(blocks) == 3, proc.stdout
    for block in blocks:
        lines = block.splitlines()
        assert lines[0].startswith("sysg top · ")
        assert "· 2 services" in lines[0]
        assert lines[1].split()[:4] == ["SERVICE", "STATE", "HEALTH", "PID"]
        rows = {ln.split()[0]: ln.split() for ln in lines[2:]}
        assert rows["demo/web"][1:4] == ["running", "-", str(pids["web"])]
        assert rows["demo/worker"][1:4] == ["running", "-", str(pids["worker"])]
    one = rt.sysg("top", "--count", "1", "-s", "worker", check=True)
    assert "demo/worker" in one.stdout
    assert "demo/web" not in one.stdout


def test_top_needs_a_supervisor_and_a_positive_interval(rt: Runtime) -> None:
    none = rt.sysg("top", "--count", "1")
    assert none.returncode == 2
    assert "error[SG0206]: no supervisor is running" in none.stderr
    bad = rt.sysg("top", "--interval", "0")
    assert bad.returncode == 1
    assert "--interval must be more than 0" in bad.stderr


@dataclass
class Tmux:
    rt: Runtime

    @property
    def base(self) -> list[str]:
        return ["tmux", "-S", str(self.rt.root / "tmux.sock"), "-f", "/dev/null"]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**self.rt.env, "TMUX_TMPDIR": str(self.rt.root), "TERM": "xterm-256color"}
        env.pop("TMUX", None)  # a test run from inside tmux must not talk to that one
        # pytest-xdist workers export COLUMNS=80/LINES=24, which rich (rightly) takes over
        # the terminal's own size: the pane's size must decide.
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        # tmux runs the pane's command with $SHELL, else the account's login shell, which is
        # /usr/sbin/nologin for nobody (the CI's second run): the pane would exit at once.
        env["SHELL"] = "/bin/sh"
        return subprocess.run(
            [*self.base, *args], env=env, capture_output=True, text=True, timeout=30, check=check
        )

    def pane(self) -> str:
        return self.run("capture-pane", "-p", "-t", "top", check=False).stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "top", *keys)

    def shows(self, *texts: str) -> str:
        def found() -> str:
            text = self.pane()
            return text if all(t in text for t in texts) else ""

        try:
            return wait_for(found, timeout=WAIT, interval=0.1, what=f"{texts} in the pane")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- the pane:\n{self.pane()}") from None


@pytest.fixture
def tmux(rt: Runtime) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (.ci/run installs it)")
    t = Tmux(rt)
    try:
        yield t
    finally:
        t.run("kill-server", check=False)


def test_top_in_a_terminal_restarts_the_selected_service(rt: Runtime, tmux: Tmux) -> None:
    pids = started(rt)
    tmux.run(
        *("new-session", "-d", "-s", "top", "-x", "120", "-y", "30"),
        f"{SYSG} top --interval 0.5",
    )
    tmux.shows("demo/web", "demo/worker", str(pids["web"]), str(pids["worker"]), "q quit")
    tmux.shows("╭─ log · demo/web", "stdout web-tick")  # the first service, its log

    tmux.keys("j")
    tmux.shows("╭─ log · demo/worker", "stdout worker-up")
    tmux.keys("r")
    tmux.shows("restart demo/worker? (y/n)")
    tmux.keys("n")
    tmux.shows("cancelled")
    assert pid_of(rt.unit("worker")) == pids["worker"]

    tmux.keys("r")
    tmux.shows("restart demo/worker? (y/n)")
    tmux.keys("y")

    def restarted() -> int | None:
        unit = rt.unit("worker")
        new = pid_of(unit)
        return new if unit["phase"] == "running" and new not in (None, pids["worker"]) else None

    new_pid = wait_for(restarted, timeout=WAIT, what="worker to run with a new pid")
    pane = tmux.shows(str(new_pid), "Service 'worker' restarted")
    assert str(pids["worker"]) not in pane
    assert pid_of(rt.unit("web")) == pids["web"]  # only the selected service restarted

    tmux.keys("q")
    wait_for(
        lambda: tmux.run("has-session", "-t", "top", check=False).returncode != 0,
        timeout=WAIT,
        what="sysg top to quit on q",
    )
