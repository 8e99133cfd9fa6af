"""rlimits and cgroups through the real supervisor (docs/security.md §3, §8).

- a kernel refusal of an rlimit is a start error naming the service, the field, the value and
  the current hard limit — and the siblings still start;
- on this hybrid host ``memory_max`` lands in the v1 memory controller and is real: a service
  allocating past it is OOM-killed and ``status`` says ``oom-killed``; its cgroup directories
  are gone once it stopped.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest

from tests.privileged.system_helpers import (
    cgroup_dirs,
    proc_limits,
    remove_cgroup_dirs,
    sys_status,
    units,
    wait_unit,
)
from tests.support.runtime import Runtime, pid_of, wait_for
from tests.support.serial import HOST_GLOBAL

pytestmark = HOST_GLOBAL  # cgroups; asserts the top systemg dir is gone

SLEEP = '["/usr/bin/python3", "-c", "import time\\nwhile True: time.sleep(1)"]'


def _hard_nofile_is_capped() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard + 1))
    except (ValueError, OSError):
        return hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    pytest.skip("this supervisor may raise its hard nofile limit (it holds CAP_SYS_RESOURCE)")


def test_system_nofile_above_hard_limit_names_everything(rt: Runtime) -> None:
    hard = _hard_nofile_is_capped()
    if hard >= 65536:
        pytest.skip(f"the hard nofile limit is {hard}: 65536 would not be refused")
    manifest = rt.write(
        "limits.yaml",
        f"""\
version: "2"
projects:
  lim:
    services:
      greedy:
        exec: {SLEEP}
        limits:
          nofile: 65536
      modest:
        exec: {SLEEP}
        user: nobody
        limits:
          nofile: 512
""",
    )
    proc = rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    err = proc.stderr
    assert "SG0741" in err, err
    for needle in ("'greedy'", "limits.nofile", "65536", str(hard)):
        assert needle in err, (needle, err)
    assert "help:" in err, err
    data = units(sys_status(rt))
    assert data["greedy"]["phase"] == "failed"
    assert "limits.nofile" in data["greedy"]["message"]
    modest = data["modest"]
    assert modest["phase"] == "running"
    assert proc_limits(pid_of(modest))["nofile"] == ("512", "512")


def _memory_v1() -> Path:
    root = Path("/sys/fs/cgroup/memory")
    if not (root / "memory.limit_in_bytes").exists():
        pytest.skip("no cgroup v1 memory controller at /sys/fs/cgroup/memory")
    return root


ALLOC = (
    "import sys, time\\n"
    "print('allocating', flush=True)\\n"
    "b = bytearray(b'x') * (256 << 20)\\n"
    "print('survived', len(b), flush=True)\\n"
    "time.sleep(3600)"
)


def _projects_in(top: Path) -> list[str]:
    """The project directories in a cgroup directory (the rest are its control files)."""
    try:
        return [d.name for d in top.iterdir() if d.is_dir()]
    except FileNotFoundError:  # removed meanwhile, by whoever used it last
        return []


def test_system_memory_max_oom_kills_and_status_says_so(rt: Runtime) -> None:
    v1 = _memory_v1()
    manifest = rt.write(
        "oom.yaml",
        f"""\
version: "2"
projects:
  oomtest:
    services:
      hog:
        exec: ["/usr/bin/python3", "-c", "{ALLOC}"]
        user: nobody
        restart_policy: never
        limits:
          cgroup:
            memory_max: 64M
      roomy:
        exec: ["/usr/bin/python3", "-c", "{ALLOC}"]
        user: nobody
        restart_policy: never
        limits:
          cgroup:
            memory_max: 512M
""",
    )
    try:
        rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize")
        hog = wait_unit(rt, "hog", "oom-killed", timeout=60)
        assert hog["last_exit"]["oom_killed"] is True
        assert hog["last_exit"]["signal"] == 9
        roomy = wait_unit(rt, "roomy", "running")
        log = rt.logs / "oomtest" / "roomy.log"
        wait_for(lambda: log.exists() and "survived" in log.read_text(), what="roomy to survive")
        leaf = v1 / "systemg" / "oomtest" / "roomy"
        assert (leaf / "memory.limit_in_bytes").read_text().strip() == str(512 << 20)
        assert str(pid_of(roomy)) in (leaf / "cgroup.procs").read_text().split()
        # The hog's cgroup went with it; the status JSON says why it died.
        assert not (v1 / "systemg" / "oomtest" / "hog").exists()
        raw = json.loads(rt.sysg("--sys", "status", "--format", "json").stdout)
        assert raw["overall_health"] == "failing"
        rt.sysg("--sys", "stop", "-p", "oomtest", check=True)
        assert cgroup_dirs("oomtest") == [], "every cgroup dir of the project is removed"
        # ... and our top-level directory with it, once nothing else uses it: the other tests
        # with cgroups run one at a time (HOST_GLOBAL), but another run on the machine may have
        # a project there, and then the supervisor must leave the directory alone.
        top = v1 / "systemg"
        assert not top.exists() or _projects_in(top), f"{top} left behind, empty"
    finally:
        rt.sysg("--sys", "stop", "--supervisor")
        remove_cgroup_dirs("oomtest")


def test_system_cpu_max_v1_fallback_written_and_removed(rt: Runtime) -> None:
    cpu = Path("/sys/fs/cgroup/cpu")
    if not (cpu / "cpu.cfs_quota_us").exists():
        pytest.skip("no cgroup v1 cpu controller at /sys/fs/cgroup/cpu")
    manifest = rt.write(
        "cpu.yaml",
        f"""\
version: "2"
projects:
  cputest:
    services:
      spin:
        exec: {SLEEP}
        limits:
          cgroup:
            cpu_max: "50000 100000"
""",
    )
    try:
        rt.sysg("--sys", "start", "-c", str(manifest), "--daemonize", check=True)
        spin = wait_unit(rt, "spin", "running")
        leaf = cpu / "systemg" / "cputest" / "spin"
        assert (leaf / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (leaf / "cpu.cfs_period_us").read_text().strip() == "100000"
        assert str(pid_of(spin)) in (leaf / "cgroup.procs").read_text().split()
        rt.sysg("--sys", "stop", "-s", "spin", check=True)
        assert cgroup_dirs("cputest") == []
    finally:
        rt.sysg("--sys", "stop", "--supervisor")
        remove_cgroup_dirs("cputest")
