"""The CLI against a real supervisor: start/stop/status, version, purge, shutdown, races,
and the foreground attach with Ctrl-C. Real processes under a private runtime root."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.runtime import SYSG, Runtime, pid_alive, pid_of, wait_for

MANIFEST = """\
version: "2"
projects:
  demo:
    services:
      web:
        command: "while true; do echo web-tick; sleep 0.2; done"
        restart_policy: always
        stop_timeout: 3s
      worker:
        command: "exec sleep 300"
        depends_on: [web]
        restart_policy: on-failure
        stop_timeout: 3s
"""


def _units(status: dict) -> dict[str, dict]:
    return {u["name"]: u for u in status["units"]}


def test_start_status_stop_round_trip_json(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    started = rt.sysg("start", "--daemonize", check=True)
    assert "Project 'demo' started (2 services)" in started.stdout
    status = rt.sysg("status", "--format", "json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["schema_version"] == "status.v1"
    assert status.stdout.startswith('{\n  "schema_version"')  # pretty, indent 2
    units = _units(doc)
    assert {units["web"]["phase"], units["worker"]["phase"]} == {"running"}
    assert all(pid_alive(pid_of(u)) for u in units.values())
    rt.seen_pids.update(pid_of(u) for u in units.values())

    table = rt.sysg("status", check=True).stdout
    assert "PROJECT  SERVICE" in table
    assert "demo     web      running" in table

    stopped = rt.sysg("stop", "-s", "demo/worker", check=True)
    assert stopped.stdout.strip() == "Service 'worker' stopped"
    assert not pid_alive(pid_of(units["worker"]))
    again = rt.sysg("stop", "-s", "demo/worker", check=True)  # idempotent
    assert again.returncode == 0

    rt.sysg("stop", "-p", "demo", check=True)
    after = _units(rt.status())
    assert after["web"]["phase"] == "stopped"
    assert not pid_alive(pid_of(units["web"]))


def test_status_filter_and_unknown_service(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    one = json.loads(rt.sysg("status", "-s", "demo/web", "--format", "json").stdout)
    assert [u["name"] for u in one["units"]] == ["web"]
    missing = rt.sysg("status", "-s", "nope")
    assert missing.returncode == 0, missing.stderr  # an empty answer, not an error
    assert missing.stdout == "No matching units found.\n"


def test_start_failure_names_the_service_and_exits_1(rt: Runtime) -> None:
    rt.write(
        "systemg.yaml",
        'version: "2"\nservices:\n  ok:\n    command: "exec sleep 300"\n'
        '  broken:\n    exec: ["./no-such-program"]\n',
    )
    proc = rt.sysg("start", "--daemonize")
    assert proc.returncode == 1
    assert "broken" in proc.stderr
    assert "error[" in proc.stderr
    assert _units(rt.status())["ok"]["phase"] == "running"


def test_version_reports_both_sides(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    pid = rt.supervisor_pid()
    # The sysg the supervisor was started from (boot.py: the one beside this interpreter).
    binary = str(Path(sys.executable).parent / "sysg")
    text = rt.sysg("version", check=True).stdout.splitlines()
    assert text == [
        "sysg 0.1.0 (this binary)",
        f"supervisor 0.1.0 (pid {pid})",
        f"  executing {binary}",
    ]
    doc = json.loads(rt.sysg("version", "--format", "json", check=True).stdout)
    assert doc == {
        "cli": "0.1.0",
        "supervisor": "0.1.0",
        "supervisor_pid": pid,
        "supervisor_binary": binary,
        "cli_protocol": 1,
        "mode": "user",
        "protocol": 1,
    }
    # A CLI of another version says the supervisor drifted.
    code = "import systemg, sys; systemg.__version__ = '9.9.9'; from systemg.entry import main;"
    code += " sys.exit(main(['version']))"
    drifted = rt.sysg("-c", code, exe=sys.executable, check=True).stdout.splitlines()
    assert drifted[0] == "sysg 9.9.9 (this binary)"
    assert drifted[-1].startswith("  drift: the supervisor is still serving 0.1.0; it runs 9.9.9")


def test_purge_refuses_while_services_run_then_force(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    pids = [pid_of(u) for u in rt.status()["units"]]
    sup = rt.supervisor_pid()
    refused = rt.sysg("purge")
    assert refused.returncode == 1
    assert "error[SG0401]" in refused.stderr
    assert rt.state.exists()
    assert all(pid_alive(p) for p in pids)

    forced = rt.sysg("purge", "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"removed {rt.state}" in forced.stdout
    assert "All systemg state has been purged" in forced.stdout
    assert not rt.state.exists()
    assert not rt.logs.exists()
    assert sup is not None
    assert not pid_alive(sup)
    assert not any(pid_alive(p) for p in pids)


def test_stop_supervisor_leaves_no_process(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    pids = [pid_of(u) for u in rt.status()["units"]]
    sup = rt.supervisor_pid()
    proc = rt.sysg("stop", "--supervisor", check=True)
    assert proc.stdout.strip() == "Supervisor stopped"
    assert sup is not None
    assert not pid_alive(sup)  # waited for before printing
    assert not any(pid_alive(p) for p in pids)
    assert rt.supervisor_processes() == []
    assert rt.sysg("status").returncode == 2
    assert rt.sysg("stop", "--supervisor", check=True).stdout.strip() == (
        "Supervisor is not running"
    )


def test_concurrent_starts_make_one_supervisor(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    procs = [
        subprocess.Popen(
            [SYSG, "start", "--daemonize"],
            cwd=rt.work,
            env=rt.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, f"{out}\n{err}"
    assert len(rt.supervisor_processes()) == 1
    units = _units(rt.status())
    assert {u["phase"] for u in units.values()} == {"running"}
    # A later start is a no-op for a running project: same pids, still one supervisor.
    rt.sysg("start", "--daemonize", check=True)
    assert pid_of(_units(rt.status())["web"]) == pid_of(units["web"])
    assert len(rt.supervisor_processes()) == 1


@pytest.mark.timeout(90)
def test_foreground_start_streams_and_ctrl_c_stops_the_project(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    proc = subprocess.Popen(
        [SYSG, "start"],
        cwd=rt.work,
        env=rt.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while sum("web | web-tick" in line for line in seen) < 3:
            assert time.monotonic() < deadline, f"no stream: {seen}"
            line = proc.stdout.readline()
            assert line, f"stream ended early: {seen} {proc.stderr.read() if proc.stderr else ''}"
            seen.append(line)
        units = _units(rt.status())
        assert units["web"]["phase"] == "running"
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "Project 'demo' stopped" in out
        # Stopped and unloaded: the terminal owned it (its logs stay on disk).
        assert rt.status()["units"] == []
        assert not pid_alive(pid_of(units["web"]))
        assert not pid_alive(pid_of(units["worker"]))
        assert "web-tick" in rt.sysg("logs", "-p", "demo", "-s", "web", check=True).stdout
        # The supervisor itself keeps running for other projects.
        sup = rt.supervisor_pid()
        assert sup is not None
        assert pid_alive(sup)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_foreground_exits_1_when_the_supervisor_goes_away(rt: Runtime) -> None:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    rt.status()
    proc = subprocess.Popen(
        [SYSG, "start"],
        cwd=rt.work,
        env=rt.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        wait_for(lambda: "web |" in proc.stdout.readline(), timeout=30, what="stream")
        stop = rt.sysg("stop", "--supervisor", check=True)
        assert "Supervisor stopped" in stop.stdout
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode in (0, 1), err  # 0 if it saw the project stop first
        if proc.returncode == 1:
            assert "supervisor" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(120)
def test_an_attached_start_streams_on_through_a_restart_of_its_project(rt: Runtime) -> None:
    # restart -p bounces every unit: for a moment none is up. That is not the project
    # stopping, so the terminal attached to it must stay attached (it ended there).
    rt.write(
        "systemg.yaml",
        'version: "2"\nprojects:\n  beta:\n    services:\n'
        '      tick:\n        command: "while true; do echo beta-tick; sleep 0.2; done"\n'
        "        restart_policy: always\n",
    )
    proc = rt.popen("start")
    try:
        assert proc.stdout is not None
        wait_for(lambda: "beta-tick" in proc.stdout.readline(), timeout=30, what="stream")
        before = pid_of(rt.unit("tick"))
        rt.sysg("restart", "-p", "beta", check=True)
        after = pid_of(rt.unit("tick"))
        assert after != before
        # Lines of the new process still arrive, and the CLI is still attached.
        wait_for(lambda: "beta-tick" in proc.stdout.readline(), timeout=30, what="new lines")
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "Project 'beta' stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(90)
def test_ctrl_c_of_a_start_attached_to_a_running_daemon_project_keeps_it_loaded(
    rt: Runtime,
) -> None:
    rt.write("systemg.yaml", MANIFEST)
    rt.sysg("start", "--daemonize", check=True)
    proc = rt.popen("start")
    try:
        assert proc.stdout is not None
        wait_for(lambda: "web | web-tick" in proc.stdout.readline(), timeout=30, what="stream")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "Project 'demo' stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # It ran before this terminal attached: stopped, but not unloaded (its state stays).
    assert {u["name"]: u["phase"] for u in rt.status()["units"]} == {
        "web": "stopped",
        "worker": "stopped",
    }
