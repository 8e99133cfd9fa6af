"""A ``command:`` that is one simple command runs without a shell between the supervisor and
the program (its pid is the program's); shell syntax keeps ``/bin/sh -c`` exactly."""

from __future__ import annotations

from pathlib import Path

from tests.support.procscan import new_marker
from tests.support.runtime import Runtime, pid_of, wait_for


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_simple_command_is_the_program_and_shell_syntax_keeps_the_shell(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""\
version: "2"
projects:
  nosh:
    services:
      plain:
        command: "sleep 1000.{m}"
      quoted:
        command: "sleep '1001.{m}'"
      shell:
        command: "echo started; exec sleep 1002.{m}"
      chain:
        command: "sleep 1003.{m} && echo never"
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr
    supervisor = rt.supervisor_pid()
    for name in ("plain", "quoted", "shell"):
        pid = int(pid_of(rt.wait_state(name, "running")))
        assert _comm(pid) == "sleep", name
        assert _ppid(pid) == supervisor, name
    # A list of commands needs the shell, which stays as the service's process.
    chain = int(pid_of(rt.wait_state("chain", "running")))
    assert _comm(chain) == "sh"
    wait_for(
        lambda: "started" in (rt.logs / "nosh" / "shell.log").read_text(),
        timeout=10,
        what="the shell's echo",
    )
