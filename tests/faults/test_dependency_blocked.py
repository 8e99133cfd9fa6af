"""A dependency that does not come up: its dependents settle as ``blocked``, ``start`` returns.

Issue 9, bug 1: with ``db`` crash-looping (``exit 3``, ``restart_policy: always``,
``backoff: 2s``) and ``web: {depends_on: [db]}``, ``sysg start --daemonize`` waited
forever (``db backoff``, ``web waiting``). Now ``web`` is ``blocked`` naming ``web -> db``
and db's state, the command exits non-zero with SG0109, the bystanders never notice, and
``web`` still starts by itself once ``db`` comes up.
"""

from __future__ import annotations

import pytest

from tests.faults.harness import Bystanders, assert_clean_shutdown, cgroup_dirs, manifest, ticker
from tests.support.procscan import new_marker
from tests.support.runtime import Runtime, wait_for


def test_crash_looping_dependency_blocks_its_dependents_and_start_returns(rt: Runtime) -> None:
    marker = new_marker()
    before = cgroup_dirs()
    config = rt.write(
        "sysg.yaml",
        manifest(
            "p",
            ticker("calm", marker),
            f'  db:\n    command: "exit 3; : {marker}"\n    restart_policy: always\n'
            "    backoff: 2s\n",
            f'  web:\n    command: "sleep 1000.{marker}"\n    depends_on: [db]\n',
            f'  api:\n    command: "sleep 1000.{marker}"\n    depends_on: [web]\n',
        ),
    )
    # The subprocess timeout is only a safety net: the command must return on its own.
    proc = rt.sysg("start", "-c", str(config), "--daemonize", timeout=60)
    assert proc.returncode != 0, proc.stdout
    assert "SG0109" in proc.stderr
    assert "web -> db" in proc.stderr
    assert "api -> web -> db" in proc.stderr
    # The summary does not claim the project started: only the bystander is up.
    assert "Project 'p': 1 of 4 services up" in proc.stdout
    web = rt.unit("web")
    assert web["phase"] == "blocked"
    assert "db" in web["message"]
    assert rt.unit("db")["phase"] in ("backoff", "starting")
    assert rt.status()["overall_health"] != "healthy"
    calm = Bystanders(rt, "p", ("calm",))
    calm.record()
    calm.check()
    assert_clean_shutdown(rt, marker, before)


def test_dependency_failed_for_good_blocks_the_chain(rt: Runtime) -> None:
    marker = new_marker()
    config = rt.write(
        "sysg.yaml",
        manifest(
            "p",
            f'  db:\n    command: "exit 3; : {marker}"\n    restart_policy: on-failure\n'
            "    backoff: 0\n    max_restarts: 1\n",
            f'  web:\n    command: "sleep 1000.{marker}"\n    depends_on: [db]\n',
        ),
    )
    proc = rt.sysg("start", "-c", str(config), "--daemonize", timeout=60)
    assert proc.returncode != 0
    # db may still be between its restarts when start returns; it ends failed.
    rt.wait_state("db", "failed")
    web = rt.wait_state("web", "blocked")
    assert "failed" in web["message"]
    assert "SG0109" in rt.sysg("start", "-c", str(config), timeout=60).stderr


@pytest.mark.parametrize("attempts", [2])
def test_blocked_dependent_starts_by_itself_once_the_dependency_is_up(
    rt: Runtime, attempts: int
) -> None:
    marker = new_marker()
    count = rt.work / "attempts"
    # db fails its first attempts, then stays up.
    db = (
        f"n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; "
        f"[ $n -gt {attempts} ] || exit 3; exec sleep 1000.{marker}"
    )
    config = rt.write(
        "sysg.yaml",
        manifest(
            "p",
            f'  db:\n    command: "{db}"\n    restart_policy: always\n    backoff: 300ms\n',
            f'  web:\n    command: "sleep 1000.{marker}"\n    depends_on: [db]\n',
        ),
    )
    rt.sysg("start", "-c", str(config), "--daemonize", timeout=60)
    rt.wait_state("web", "running", timeout=30)
    assert rt.unit("db")["phase"] == "running"
    assert int(count.read_text()) == attempts + 1
    wait_for(lambda: rt.unit("web")["phase"] == "running")
