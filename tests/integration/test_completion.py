"""Shell completion as a shell runs it: the script of ``sysg completion`` loaded in a real
bash (and zsh, when installed), completing commands, flags, choices, files, and service
and project names from a real supervisor; ``sysg __complete`` quick and silent without one.

zsh's completion builtins (``compadd``, ``_files``) exist only inside its line editor, so
the zsh test replaces them with functions that print what they were given: what is
checked is the word list the script hands to zsh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.runtime import SYSG, Runtime

BIN = str(Path(SYSG).parent)
MANIFEST = """\
version: "2"
projects:
  shop:
    services:
      web: {command: "exec sleep 300"}
      db: {command: "exec sleep 300"}
  blog:
    services:
      web: {command: "exec sleep 300"}
"""


def _env(rt: Runtime | None = None, tmp: Path | None = None) -> dict[str, str]:
    env = dict(rt.env if rt else os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    if rt is None and tmp is not None:  # a runtime root where no supervisor runs
        env["SYSTEMG_STATE_DIR"] = str(tmp / "state")
        env["SYSTEMG_LOG_DIR"] = str(tmp / "logs")
        env["SYSTEMG_SYSTEM_STATE_DIR"] = str(tmp / "sys-state")
        env["SYSTEMG_SYSTEM_LOG_DIR"] = str(tmp / "sys-logs")
    return env


def bash_complete(line: str, env: dict[str, str], cwd: Path | None = None) -> list[str]:
    """COMPREPLY for ``line`` (the cursor at its end) with the bash script loaded."""
    words = line.split(" ")
    script = 'source <(sysg completion bash); COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
    script += '_sysg; printf "%s\\n" "${COMPREPLY[@]}"'
    proc = subprocess.run(
        ["bash", "-c", script, "bash", *words],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=cwd,
        check=True,
    )
    assert proc.stderr == ""
    return [w for w in proc.stdout.splitlines() if w]


def test_bash_commands_flags_choices_and_files(tmp_path: Path) -> None:
    env = _env(tmp=tmp_path)
    assert bash_complete("sysg st", env) == ["start", "stop", "status"]
    assert bash_complete("sysg --sys mi", env) == ["migrate"]
    assert "--daemonize" in bash_complete("sysg start --", env)
    assert bash_complete("sysg start --dae", env) == ["--daemonize"]
    assert bash_complete("sysg status --format ", env) == ["table", "json"]
    assert bash_complete("sysg completion ", env) == ["bash", "zsh"]
    assert bash_complete("sysg export ", env) == ["systemd"]
    (tmp_path / "app.yaml").write_text("")
    assert bash_complete("sysg migrate ap", env, cwd=tmp_path) == ["app.yaml"]
    assert bash_complete("sysg start -c ap", env, cwd=tmp_path) == ["app.yaml"]
    # A flag's value is not a positional: after `-c FILE` a bare word is not `FILE` again.
    assert bash_complete("sysg export -c app.yaml sys", env, cwd=tmp_path) == ["systemd"]
    # No supervisor: no names, no noise.
    assert bash_complete("sysg stop -s ", env) == []


def test_complete_without_a_supervisor_is_quick_and_silent(tmp_path: Path) -> None:
    env = _env(tmp=tmp_path)
    for what in ("services", "projects"):
        began = time.monotonic()
        proc = subprocess.run(
            [SYSG, "__complete", what], capture_output=True, text=True, timeout=30, env=env
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
        assert time.monotonic() - began < 2.0
    assert (
        "__complete"
        not in subprocess.run(
            [SYSG, "--help"], capture_output=True, text=True, timeout=30, env=env
        ).stdout
    )


def test_names_from_a_running_supervisor(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    env = _env(rt)
    assert bash_complete("sysg stop -s ", env) == ["blog/web", "db", "shop/web", "web"]
    assert bash_complete("sysg restart --service d", env) == ["db"]
    assert bash_complete("sysg status -p ", env) == ["blog", "shop"]


@pytest.mark.skipif(
    shutil.which("zsh") is None, reason="zsh is not installed (.ci/run installs it)"
)
def test_zsh_hands_the_same_words(rt: Runtime, tmp_path: Path) -> None:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    script = tmp_path / "_sysg"
    script.write_text(
        subprocess.run(
            [SYSG, "completion", "zsh"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    )
    driver = (
        'compdef() { :; }; compadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }; '
        '_files() { print -- "FILES $*"; }; '
        f'source {script}; words=("$@"); CURRENT=$#; _sysg'
    )

    def zsh(line: str) -> list[str]:
        proc = subprocess.run(
            ["zsh", "-f", "-c", driver, "zsh", *line.split(" ")],
            capture_output=True,
            text=True,
            timeout=30,
            env=_env(rt),
            check=True,
        )
        assert proc.stderr == ""
        return [w for w in proc.stdout.splitlines() if w]

    assert "start" in zsh("sysg ")
    assert "completion" in zsh("sysg ")
    assert zsh("sysg stop -s ") == ["blog/web", "db", "shop/web", "web"]
    assert zsh("sysg status -p ") == ["blog", "shop"]
    assert zsh("sysg status --format ") == ["table", "json"]
    assert "--daemonize" in zsh("sysg start --")
    assert zsh("sysg migrate ") == ["FILES "]
    assert zsh("sysg export -o ") == ["FILES -/"]
