"""``limits.cgroup.pids_max`` contains a fork bomb (issue 9), through the real supervisor.

On this hybrid host the cgroup2 mount has no pids controller, so the limit lands in the v1
pids hierarchy (``/sys/fs/cgroup/pids/systemg/<project>/<service>/pids.max``); where v2 has the
controller it is ``pids.max`` in the service's v2 cgroup (the file contract is checked on a
temp root). The kernel refuses every fork past the limit, the supervisor keeps answering,
``inspect`` shows the limit requested and observed, and stopping the service leaves no process
and no cgroup directory behind — even processes that left the service's process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from systemg.manifest.model import CgroupSpec
from systemg.spawn.cgroups import prepare_cgroup
from tests.privileged.system_helpers import PY, sys_status, units, wait_unit
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for
from tests.support.serial import HOST_GLOBAL

pytestmark = HOST_GLOBAL  # the pids cgroup tree, and its top systemg dir

PIDS = Path("/sys/fs/cgroup/pids")
COUNTS = re.compile(r"started (\d+) refused (\d+)")
LIMIT = 20
BOMB = (
    "import subprocess, sys, time\\n"
    "started = refused = 0\\n"
    "for i in range(200):\\n"
    "    try:\\n"
    "        subprocess.Popen(['/bin/sleep', '3600'], start_new_session=i % 2 == 1)\\n"
    "        started += 1\\n"
    "    except OSError:\\n"
    "        refused += 1\\n"
    "print('started', started, 'refused', refused, flush=True)\\n"
    "time.sleep(3600)"
)


def _pids_v1() -> Path:
    if not (PIDS / "cgroup.procs").exists():
        pytest.skip("no cgroup v1 pids controller at /sys/fs/cgroup/pids")
    unified = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    if unified.exists() and "pids" in unified.read_text().split():
        pytest.skip("the cgroup2 mount has the pids controller: the v1 path does not apply")
    return PIDS


def _pids_cgroup_of(pid: int) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, rel = line.split(":", 2)
        if "pids" in controllers.split(","):
            return PIDS / rel.lstrip("/")
    raise AssertionError(f"pid {pid} is in no pids cgroup")


def _members(cgroup: Path) -> list[int]:
    return [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]


def _cleanup(project: str, pids: set[int]) -> None:
    """Kill by pid what the test saw (and whatever is still in the cgroup), then rmdir."""
    top = PIDS / "systemg" / project
    for procs in top.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in procs.read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not any(pid_alive(p) for p in pids), what="leftovers to die")
    for d, _, _ in sorted(os.walk(top), key=lambda t: -len(Path(t[0]).parts)):
        with contextlib.suppress(OSError):
            os.rmdir(d)
    with contextlib.suppress(OSError):
        os.rmdir(PIDS / "systemg")  # only when empty: no other project uses it


def test_pids_max_contains_a_fork_bomb_and_is_removed_on_stop(rt: Runtime) -> None:
    pids = _pids_v1()
    manifest = rt.write(
        "bomb.yaml",
        f"""\
version: "2"
projects:
  pidstest:
    services:
      bomb:
        exec: ["{PY}", "-c", "{BOMB}"]
        restart_policy: never
        limits:
          cgroup:
            pids_max: {LIMIT}
""",
    )
    leaf = pids / "systemg" / "pidstest" / "bomb"
    seen: set[int] = set()
    try:
        rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize", check=True)
        bomb = wait_unit(rt, "bomb", "running")
        pid = int(pid_of(bomb))
        log = rt.logs / "pidstest" / "bomb.log"
        counted = wait_for(
            lambda: COUNTS.search(log.read_text()) if log.exists() else None,
            timeout=60,
            what="the fork loop to finish",
        )
        started, refused = int(counted.group(1)), int(counted.group(2))

        # The kernel refused the forks past the limit: the service and its children fit in it.
        assert _pids_cgroup_of(pid) == leaf
        assert (leaf / "pids.max").read_text().strip() == str(LIMIT)
        members = _members(leaf)
        seen.update(members)
        assert pid in members
        assert len(members) <= LIMIT
        assert int((leaf / "pids.current").read_text()) <= LIMIT
        assert started + 1 <= LIMIT
        assert refused >= 200 - LIMIT
        assert started + refused == 200

        # The supervisor still answers, and inspect shows the limit requested and observed.
        assert units(sys_status(rt))["bomb"]["phase"] == "running"
        proc = rt.sysg("--sys", "inspect", "-s", "bomb", "--format", "json")
        data = json.loads(proc.stdout)
        assert data["requested"]["cgroup"]["pids_max"] == LIMIT
        assert data["observed"]["cgroup_limits"]["pids.max"] == str(LIMIT)
        assert int(data["observed"]["cgroup_limits"]["pids.current"]) <= LIMIT
        assert not any("pids" in m for m in data["mismatch"]), data["mismatch"]

        # Stop: every process of the cgroup dies (the setsid'd half too) and the dir goes.
        rt.sysg("--sys", "stop", "-p", "pidstest", check=True)
        wait_for(lambda: not any(pid_alive(p) for p in seen), what="the bomb's processes to die")
        wait_for(lambda: not leaf.exists(), what=f"{leaf} to be removed")
        assert not (pids / "systemg" / "pidstest").exists()
        assert units(sys_status(rt))["bomb"]["phase"] != "running"
    finally:
        rt.sysg("--sys", "stop", "--supervisor")
        _cleanup("pidstest", seen)


def test_pids_max_file_contract_on_a_temp_root(tmp_path: Path) -> None:
    """Where cgroup2 has the pids controller, ``pids.max`` is written in the service's cgroup."""
    for value, text in ((LIMIT, str(LIMIT)), ("max", "max")):
        root = tmp_path / str(value)
        outcome = prepare_cgroup(CgroupSpec(pids_max=value, root=str(root)), "p", "web", "svc")
        assert outcome.plan is not None
        assert (root / "p" / "web" / "pids.max").read_text() == text
        assert (str(root / "p" / "web" / "pids.max"), text) in outcome.plan.written
        shutil.rmtree(root)
