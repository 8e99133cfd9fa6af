"""Who may talk to a system supervisor, and what ``sysg`` does without root — through the real
CLI run as ``nobody`` (``setpriv``), against a real root supervisor (docs/security.md §2, §6).

The operator group is ``www-data`` (an existing group: these tests create no users or groups),
set in the supervisor's ``settings.json``. ``SYSTEMG_SYSTEM_STATE_DIR`` / ``SYSTEMG_SYSTEM_LOG_DIR``
tell the operator's CLI where the (test) system root is; its own user-mode root is an empty
HOME under the test's temp dir, so no user supervisor answers there.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
from pathlib import Path

import pytest

from tests.privileged.system_helpers import (
    audit_lines,
    kill_supervisor_of,
    nobody_home,
    proc_status,
    sys_status,
    units,
    wait_unit,
    world_sysg,
)
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for

OPERATOR = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--groups=33")
STRANGER = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
# A stranger who gets past the filesystem permissions: the supervisor's own check must hold.
STRANGER_DAC = (*STRANGER, "--inh-caps=+dac_override", "--ambient-caps=+dac_override")
DENIED = "permission denied: uid 65534 is not root and not in group 'www-data'"

SLEEP = '["/usr/bin/python3", "-c", "import time\\nwhile True: time.sleep(1)"]'
HELLO = (
    '["/usr/bin/python3", "-c", "import time\\nprint(\'web says hello\', flush=True)\\n'
    "print('web says more', flush=True)\\nwhile True: time.sleep(1)\"]"
)
OPS_MANIFEST = f"""\
version: "2"
projects:
  ops:
    services:
      web:
        exec: {HELLO}
        user: nobody
      db:
        exec: {SLEEP}
        user: nobody
"""


def run_as(
    prefix: tuple[str, ...], exe: str, args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, exe, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def person_env(rt: Runtime, home: Path) -> dict[str, str]:
    """A non-root person's environment: no SYSTEMG_STATE_DIR, a HOME of their own."""
    env = {k: v for k, v in rt.env.items() if not k.startswith("SYSTEMG_")}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "share"),
        SYSTEMG_SYSTEM_STATE_DIR=str(rt.state),
        SYSTEMG_SYSTEM_LOG_DIR=str(rt.logs),
    )
    return env


@pytest.fixture
def system_sup(rt: Runtime) -> Runtime:
    """A system-mode supervisor whose operator group is www-data, running ``ops``."""
    rt.state.mkdir(mode=0o700)
    (rt.state / "settings.json").write_text(json.dumps({"operator_group": "www-data"}))
    manifest = rt.write("ops.yaml", OPS_MANIFEST)
    rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize", check=True)
    wait_unit(rt, "web", "running")
    wait_unit(rt, "db", "running")
    return rt


def test_system_operator_access_and_audit(system_sup: Runtime) -> None:
    rt = system_sup
    exe = world_sysg()
    www = grp.getgrnam("www-data").gr_gid
    # The layout that makes operator access possible, and nothing more.
    st = os.stat(rt.state)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 0, www)
    so = os.stat(rt.state / "control.sock")
    assert stat.S_ISSOCK(so.st_mode)
    assert (stat.S_IMODE(so.st_mode), so.st_uid, so.st_gid) == (0o660, 0, www)

    home = nobody_home(rt)
    env = person_env(rt, home)

    # status: no sudo, no --sys; one note that the system supervisor answered.
    status = run_as(OPERATOR, exe, ["status", "--service", "web"], env, rt.work)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stderr.count("using the system supervisor") == 1, status.stderr
    assert status.stderr.strip().count("\n") == 0, status.stderr
    assert "web" in status.stdout
    assert "running" in status.stdout
    as_json = run_as(OPERATOR, exe, ["status", "--format", "json"], env, rt.work)
    assert json.loads(as_json.stdout)["supervisor_mode"] == "system"
    inspect = run_as(OPERATOR, exe, ["inspect", "-s", "web", "--format", "json"], env, rt.work)
    assert json.loads(inspect.stdout)["observed"]["uid"] == [65534] * 4, inspect.stderr
    # logs with the journalctl-style filters, as an operator (the system log dir, no sudo).
    wait_for(lambda: "more" in (rt.logs / "ops" / "web.log").read_text(), what="web's lines")
    logs = run_as(
        OPERATOR,
        exe,
        ["logs", "-s", "web", "--since", "1h", "-g", "hello", "--raw", "--no-follow"],
        env,
        rt.work,
    )
    assert logs.returncode == 0, logs.stdout + logs.stderr
    assert logs.stdout.splitlines() == ["web says hello"], logs.stdout
    assert not (home / "share" / "systemg").exists(), "no user supervisor was booted"

    # stop of a registered service: allowed.
    web_pid = pid_of(units(sys_status(rt))["web"])
    stop = run_as(OPERATOR, exe, ["stop", "--service", "web"], env, rt.work)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "Service 'web' stopped" in stop.stdout
    assert units(sys_status(rt))["web"]["phase"] == "stopped"
    wait_for(lambda: not pid_alive(web_pid), what="web to be gone")

    # Registering a manifest runs code as root: refused, even through the system socket.
    direct = {**env, "SYSTEMG_STATE_DIR": str(rt.state), "SYSTEMG_LOG_DIR": str(rt.logs)}
    manifest = str(rt.work / "ops.yaml")
    register = run_as(OPERATOR, exe, ["start", "-c", manifest, "--daemonize"], direct, rt.work)
    assert register.returncode == 1, register.stdout + register.stderr
    assert "SG0232" in register.stderr
    assert "operators (group 'www-data') may not start a manifest" in register.stderr
    assert units(sys_status(rt))["web"]["phase"] == "stopped", "nothing was started"
    # ... while starting a registered service again is an operator's right.
    again = run_as(OPERATOR, exe, ["start", "--service", "web", "--daemonize"], direct, rt.work)
    assert again.returncode == 0, again.stdout + again.stderr
    wait_unit(rt, "web", "running")

    # A stranger: the kernel refuses the socket; the CLI says what the supervisor would.
    stranger_home = nobody_home(rt, "stranger-home")
    senv = person_env(rt, stranger_home)
    refused = run_as(STRANGER, exe, ["status", "--service", "web"], senv, rt.work)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    assert f"error[SG0232]: {DENIED}" in refused.stderr, refused.stderr
    stop_refused = run_as(STRANGER, exe, ["stop", "--service", "db"], senv, rt.work)
    assert stop_refused.returncode == 1
    assert DENIED in stop_refused.stderr
    # A stranger past the filesystem permissions is refused by the supervisor itself.
    past = run_as(STRANGER_DAC, exe, ["stop", "--service", "db"], senv, rt.work)
    assert past.returncode == 1, past.stdout + past.stderr
    assert f"error[SG0232]: {DENIED}" in past.stderr, past.stderr
    assert units(sys_status(rt))["db"]["phase"] == "running"

    # The audit log: JSON lines for accepted requests and refused connections.
    entries = audit_lines(rt)
    nobody = pwd.getpwnam("nobody").pw_uid
    mine = [e for e in entries if e["peer"]["uid"] == nobody]
    ok = {(e["verb"], e["result"]) for e in mine}
    assert ("status", "ok") in ok
    assert ("stop", "ok") in ok
    assert ("inspect", "ok") in ok
    assert ("start", "SG0232") in ok
    stop_entry = next(e for e in mine if e["verb"] == "stop" and e["result"] == "ok")
    assert stop_entry["target"] == {"service": "web"}
    assert stop_entry["peer"]["gid"] == 65534
    assert stop_entry["peer"]["pid"] > 0
    assert any(e["verb"] is None and e["result"] == "refused" for e in mine), mine
    assert all({"time", "peer", "verb", "target", "result"} <= e.keys() for e in entries)
    assert stat.S_IMODE(os.stat(rt.logs / "audit.log").st_mode) == 0o600


SWITCH_MANIFEST = f"""\
version: "2"
projects:
  mixed:
    services:
      switcher:
        exec: {SLEEP}
        user: www-data
      sibling:
        exec: {SLEEP}
"""
SECOND_MANIFEST = f"""\
version: "2"
projects:
  second:
    services:
      plain:
        exec: {SLEEP}
"""


def test_system_cli_as_nobody(rt: Runtime) -> None:
    exe = world_sysg()
    home = nobody_home(rt)
    env = person_env(rt, home)

    sys_refused = run_as(STRANGER, exe, ["--sys", "status"], env, rt.work)
    assert sys_refused.returncode == 1
    assert "error[SG0704]: --sys requires root" in sys_refused.stderr

    # nobody's own user-mode supervisor, its state under the test's temp dir.
    state = home / "share" / "systemg"
    manifest = rt.write("mixed.yaml", SWITCH_MANIFEST)
    second = rt.write("second.yaml", SECOND_MANIFEST)
    try:
        start = run_as(STRANGER, exe, ["start", "-c", str(manifest), "--daemonize"], env, rt.work)
        assert start.returncode == 1, start.stdout + start.stderr
        msg = (
            "PermissionDenied: service 'switcher' requests user/group switching "
            "but sysg is not running as root"
        )
        assert msg in start.stderr
        assert "sibling" not in start.stderr

        raw = run_as(STRANGER, exe, ["status", "--format", "json"], env, rt.work)
        data = units(json.loads(raw.stdout))
        assert data["switcher"]["phase"] == "failed"
        assert msg in data["switcher"]["message"]
        sibling = data["sibling"]
        assert sibling["phase"] == "running"
        assert proc_status(pid_of(sibling))["Uid"].split() == ["65534"] * 4
        rt.seen_pids.add(pid_of(sibling))
        assert os.stat(state).st_uid == 65534

        dropped = run_as(
            STRANGER,
            exe,
            ["--drop-privileges", "start", "-c", str(second), "--daemonize"],
            env,
            rt.work,
        )
        assert dropped.returncode == 0, dropped.stdout + dropped.stderr
        assert dropped.stderr.count("--drop-privileges") == 1, dropped.stderr
        assert "warning" in dropped.stderr
        # ... and one in the supervisor log, which ignored it (docs/security.md §6).
        supervisor_log = (home / "share" / "systemg" / "logs" / "supervisor.log").read_text()
        assert "--drop-privileges has no effect" in supervisor_log
        data = units(json.loads(run_as(STRANGER, exe, ["status", "--format", "json"], env,
                                       rt.work).stdout))  # fmt: skip
        plain = data["plain"]
        rt.seen_pids.add(pid_of(plain))
        assert plain["phase"] == "running"
        assert plain["enforcement"] == "full"
        # No effect: it runs as the caller with the supervisor's environment (no rebuild).
        assert proc_status(pid_of(plain))["Uid"].split() == ["65534"] * 4
        with open(f"/proc/{pid_of(plain)}/environ", "rb") as fh:
            environ = fh.read().split(b"\0")
        assert f"HOME={home}".encode() in environ
    finally:
        run_as(STRANGER, exe, ["stop", "--supervisor"], env, rt.work)
        kill_supervisor_of(state)
