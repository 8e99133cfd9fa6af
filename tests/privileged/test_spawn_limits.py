"""rlimits, nice and CPU affinity of a real service, and the errors when the kernel refuses."""

from __future__ import annotations

import os
import resource

import pytest

from systemg.errors import Code, SpawnError
from systemg.manifest.model import UNLIMITED, Limits
from systemg.spawn.plan import build_plan
from tests.privileged.spawn_helpers import Spawner, py, root_ctx

SLEEP = "import time; print('ready', flush=True); time.sleep(60)"


def limits_row(text: str, title: str) -> tuple[str, str]:
    for line in text.splitlines():
        if line.startswith(title):
            soft, hard = line[len(title) :].split()[:2]
            return soft, hard
    raise KeyError(title)


def test_rlimits_nice_and_affinity_apply(spawner: Spawner) -> None:
    lim = Limits(nofile=1024, nproc=512, memlock=65536, nice=5, cpu_affinity=(1,))
    run = spawner.start(py(SLEEP, user="nobody", limits=lim))
    run.read_until("ready")
    text = run.proc("limits")
    assert limits_row(text, "Max open files") == ("1024", "1024")
    assert limits_row(text, "Max processes") == ("512", "512")
    assert limits_row(text, "Max locked memory") == ("65536", "65536")
    assert int(run.proc("stat").rsplit(")", 1)[1].split()[16]) == 5  # field 19: nice
    assert run.status("Cpus_allowed_list") == "1"


def test_negative_nice_as_root(spawner: Spawner) -> None:
    run = spawner.start(py(SLEEP, limits=Limits(nice=-5)))
    run.read_until("ready")
    assert int(run.proc("stat").rsplit(")", 1)[1].split()[16]) == -5


def test_nofile_above_hard_limit_is_refused_helpfully(spawner: Spawner) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard >= 65536:
        pytest.skip(f"hard nofile is {hard}: nothing to refuse here")
    with pytest.raises(SpawnError) as info:
        spawner.start(py(SLEEP, limits=Limits(nofile=65536)))
    assert str(info.value) == (
        f"service 'web': cannot set limits.nofile to 65536: the hard limit is {hard} and "
        "raising it needs CAP_SYS_RESOURCE, which this supervisor lacks"
    )
    assert info.value.code is Code.RLIMIT
    assert info.value.diagnostics[0].path == "services.web.limits.nofile"


def test_memlock_unlimited_is_refused_helpfully(spawner: Spawner) -> None:
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("memlock hard limit is unlimited here")
    with pytest.raises(SpawnError) as info:
        spawner.start(py(SLEEP, limits=Limits(memlock=UNLIMITED)))
    assert str(info.value) == (
        f"service 'web': cannot set limits.memlock to unlimited: the hard limit is {hard} and "
        "raising it needs CAP_SYS_RESOURCE, which this supervisor lacks"
    )


def test_offline_cpu_is_refused_at_plan_time() -> None:
    online = sorted(os.sched_getaffinity(0))
    with pytest.raises(SpawnError) as info:
        build_plan(py(SLEEP, limits=Limits(cpu_affinity=(0, 63))), "p", root_ctx())
    assert info.value.code is Code.AFFINITY
    assert "CPU 63, which is not online (online: " in str(info.value)
    assert str(online[0]) in str(info.value)
    assert info.value.diagnostics[0].path == "services.web.limits.cpu_affinity"
