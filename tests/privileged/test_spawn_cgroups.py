"""Cgroups: the file contract on a temp root, cgroup2 membership, v1 memory/cpu fallback."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from systemg.manifest.model import CgroupSpec, CpuMax, EnvSpec, Limits
from systemg.spawn.cgroups import oom_killed
from tests.privileged.spawn_helpers import Spawner, py
from tests.support.serial import HOST_GLOBAL

pytestmark = HOST_GLOBAL  # cgroups of project sgtest under <mount>/systemg

FIRST_ACT = (
    "import os, sys, time\n"
    "print('cgroup:', open('/proc/self/cgroup').read().replace(chr(10), '|'), flush=True)\n"
    "root = os.environ.get('CG_FILE')\n"
    "if root: print('procs:', open(root).read().strip(), 'pid:', os.getpid(), flush=True)\n"
    "print('ready', flush=True); time.sleep(60)\n"
)
ALLOC = (
    "import time\n"
    "b = bytearray({mb} * 1024 * 1024)\n"
    "for i in range(0, len(b), 4096): b[i] = 1\n"
    "print('allocated', flush=True); time.sleep(60)\n"
)


def _mounted(fstype: str, option: str = "") -> str | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        rest = right.split()
        if rest and rest[0] == fstype and (not option or option in rest[2].split(",")):
            return left.split()[4]
    return None


def test_root_override_writes_exact_files_and_joins_before_exec(
    spawner: Spawner, tmp_path: Path
) -> None:
    cg = CgroupSpec(memory_max=64 * 1024 * 1024, cpu_max=CpuMax(200000, 100000), root=str(tmp_path))
    leaf = tmp_path / "sgtest" / "web"
    env = EnvSpec(vars=(("CG_FILE", str(leaf / "cgroup.procs")),))
    run = spawner.start(py(FIRST_ACT, limits=Limits(cgroup=cg), env=env))
    assert (leaf / "memory.max").read_text() == "67108864"
    assert (leaf / "cpu.max").read_text() == "200000 100000"
    line = run.line("procs:")
    procs, pid = line.split(" pid: ")
    assert procs == pid == str(run.pid)  # written by the child before exec
    assert any("limits.cgroup.root" in line for line in run.result.not_applied)


def test_cgroup2_membership_before_exec(spawner: Spawner) -> None:
    unified = _mounted("cgroup2")
    if unified is None:
        pytest.skip("no cgroup2 mount on this host")
    run = spawner.start(py(FIRST_ACT, limits=Limits(cgroup=CgroupSpec(cpu_max=CpuMax(50000)))))
    first = run.line("cgroup:")
    assert "0::/systemg/sgtest/web" in first.split("|")
    procs = Path(unified, "systemg", "sgtest", "web", "cgroup.procs").read_text().split()
    assert str(run.pid) in procs


def test_v1_cpu_fallback_writes_quota(spawner: Spawner) -> None:
    cpu = _mounted("cgroup", "cpu")
    unified = _mounted("cgroup2")
    if cpu is None or (
        unified and "cpu" in Path(unified, "cgroup.controllers").read_text().split()
    ):
        pytest.skip("needs a hybrid host: cpu controller on cgroup v1 only")
    run = spawner.start(
        py(FIRST_ACT, limits=Limits(cgroup=CgroupSpec(cpu_max=CpuMax(50000, 100000))))
    )
    run.read_until("ready")
    leaf = Path(cpu, "systemg", "sgtest", "web")
    assert (leaf / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (leaf / "cpu.cfs_period_us").read_text().strip() == "100000"
    assert str(run.pid) in (leaf / "cgroup.procs").read_text().split()
    assert "cpu:/systemg/sgtest/web" in run.proc("cgroup")


def _v1_memory_or_skip() -> str:
    memory = _mounted("cgroup", "memory")
    unified = _mounted("cgroup2")
    if memory is None:
        pytest.skip("no cgroup v1 memory controller on this host")
    if unified and "memory" in Path(unified, "cgroup.controllers").read_text().split():
        pytest.skip("cgroup v2 has the memory controller: the v1 fallback is not used")
    return memory


def test_v1_memory_limit_oom_kills(spawner: Spawner) -> None:
    memory = _v1_memory_or_skip()
    cg = CgroupSpec(memory_max=64 * 1024 * 1024)
    run = spawner.start(py(ALLOC.format(mb=256), limits=Limits(cgroup=cg)))
    leaf = Path(memory, "systemg", "sgtest", "web")
    assert (leaf / "memory.limit_in_bytes").read_text().strip() == str(64 * 1024 * 1024)
    status = spawner.wait_exit(run, timeout=30)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert oom_killed(run.plan)


def test_v1_memory_limit_allows_what_fits(spawner: Spawner) -> None:
    _v1_memory_or_skip()
    cg = CgroupSpec(memory_max=256 * 1024 * 1024)
    run = spawner.start(py(ALLOC.format(mb=100), limits=Limits(cgroup=cg)), project="sgtest2")
    run.read_until("allocated", timeout=30)
    assert not oom_killed(run.plan)


def test_a_step_that_hangs_before_exec_is_killed_and_reported(tmp_path: Path) -> None:
    """The supervisor waits on the fault pipe until exec: a pre-exec step that hangs (here
    the child's write into cgroup.procs, which is a FIFO nobody reads) must not hang it."""
    from systemg.errors import SpawnError
    from systemg.spawn.launcher import PRE_EXEC_TIMEOUT_S, launch
    from systemg.spawn.plan import build_plan
    from tests.privileged.spawn_helpers import root_ctx
    from tests.support.procscan import processes

    def children() -> set[int]:
        return {p.pid for p in processes() if p.ppid == os.getpid()}

    leaf = tmp_path / "sgtest" / "web"
    leaf.mkdir(parents=True)
    os.mkfifo(leaf / "cgroup.procs")
    before = children()
    service = py("pass", limits=Limits(cgroup=CgroupSpec(root=str(tmp_path))))
    plan = build_plan(service, "sgtest", root_ctx()).plan
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        with pytest.raises(SpawnError) as caught:
            launch(plan, stdout=w, stderr=w)
    finally:
        os.close(r)
        os.close(w)
    message = caught.value.diagnostics[0].message
    assert f"did not reach exec within {PRE_EXEC_TIMEOUT_S:g}s" in message
    assert children() <= before, "the stuck child was killed and reaped"
