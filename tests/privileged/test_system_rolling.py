"""A rolling restart in system mode drops no request (docs/manifest.md, "Rolling restarts";
docs/security.md §8).

``sysg --sys``: the service runs as ``www-data`` with ``capabilities: [NET_BIND_SERVICE]`` and
serves port 80 (or another free port below 1024) on the socket the supervisor binds as root
and holds (``listen:``). An HTTP load from 127.0.0.1 runs through three ``sysg --sys restart
-s web``; every request is answered, each restart gives a new pid running as www-data, and
the old pid is gone after it. A blue/green service runs each slot, and its switch, as
its user.
"""

from __future__ import annotations

import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.privileged.system_helpers import chown_tree, privileged_port, proc_status, sys_status
from tests.support.bluegreen import SWITCH, VERIFY, calls, environ_of, free_ports, manifest
from tests.support.httpload import Load
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for
from tests.support.serial import HOST_GLOBAL

pytestmark = HOST_GLOBAL  # a port below 1024

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rolling" / "server.py"


@pytest.fixture
def srt() -> Iterator[Runtime]:
    runtime = Runtime(base=Path("/srv"))  # www-data must reach server.py
    try:
        yield runtime
    finally:
        runtime.close()


def _web(rt: Runtime) -> dict[str, object]:
    """The unit's own row (the first; a draining generation comes after it)."""
    return next(u for u in sys_status(rt)["units"] if u["name"] == "web")


def test_system_rolling_restart_under_load_drops_nothing(srt: Runtime) -> None:
    try:
        uid = pwd.getpwnam("www-data").pw_uid
    except KeyError:
        pytest.skip("no www-data account")
    port = privileged_port()
    shutil.copy(EXAMPLE, srt.work / "server.py")
    manifest = srt.write(
        "web.yaml",
        f"""version: "2"
projects:
  roll:
    services:
      web:
        exec: ["/usr/bin/python3", "server.py"]
        user: www-data
        capabilities: [NET_BIND_SERVICE]
        listen: ["127.0.0.1:{port}"]
        notify: true
        start_timeout: 20s
        deployment:
          strategy: rolling
          grace_period: 300ms
""",
    )
    srt.sysg("--sys", "start", "-c", str(manifest), "--daemonize", check=True, timeout=60)
    first = wait_for(lambda: (u := _web(srt))["phase"] == "running" and u, what="web running")
    pids = [int(pid_of(first))]  # type: ignore[call-overload]
    with Load("127.0.0.1", port) as load:
        load.wait_requests(200)
        for _ in range(3):
            done = srt.sysg("--sys", "restart", "-s", "web", timeout=90)
            assert done.returncode == 0, (done.stdout, done.stderr)
            unit = _web(srt)
            pid = int(pid_of(unit))  # type: ignore[call-overload]
            assert unit["phase"] == "running"
            assert pid != pids[-1]
            assert not pid_alive(pids[-1])
            assert proc_status(pid)["Uid"].split() == [str(uid)] * 4
            pids.append(pid)
            load.wait_requests(200)
    assert load.failed == 0, f"{load.failures} of {load.total()} requests failed"
    assert load.ok >= 800
    assert set(pids) <= load.pids | {pids[0]}


def test_system_blue_green_runs_each_slot_and_the_switch_as_the_service(srt: Runtime) -> None:
    """``sysg --sys`` with ``user: www-data``: each generation runs as www-data with its slot
    in ``PORT``, and the switch command runs as www-data too (never as root)."""
    try:
        uid = pwd.getpwnam("www-data").pw_uid
    except KeyError:
        pytest.skip("no www-data account")
    a, b = free_ports(2)
    out = srt.work / "out"  # the service's directory, www-data's (the manifest stays root's)
    out.mkdir()
    shutil.copy(EXAMPLE, out / "server.py")
    for name, text in (("switch.sh", SWITCH), ("verify.sh", VERIFY)):
        (out / name).write_text(text)
    chown_tree(out, "www-data")
    text = manifest(a, b).replace(
        "    restart_policy: on-failure\n",
        "    restart_policy: on-failure\n    user: www-data\n    working_dir: out\n",
    )
    path = srt.write("web.yaml", text)
    srt.sysg("--sys", "start", "-c", str(path), "--daemonize", check=True, timeout=60)
    first = wait_for(lambda: (u := _web(srt))["phase"] == "running" and u, what="web running")
    old = int(pid_of(first))  # type: ignore[call-overload]
    assert first["slot"] == str(a)
    assert environ_of(old)["PORT"] == str(a)
    done = srt.sysg("--sys", "restart", "-s", "web", timeout=90)
    assert done.returncode == 0, (done.stdout, done.stderr)
    unit = _web(srt)
    pid = int(pid_of(unit))  # type: ignore[call-overload]
    assert (unit["slot"], environ_of(pid)["PORT"]) == (str(b), str(b))
    assert proc_status(pid)["Uid"].split() == [str(uid)] * 4
    assert not pid_alive(old)
    assert calls(out) == [(str(a), str(b), str(uid))]
    assert (out / "upstream").read_text().strip() == str(b)
    slot_file = srt.state / "projects" / str(unit["project"]["id"]) / "web.slot"  # type: ignore[index]
    assert slot_file.read_text() == f"{b}\n"
