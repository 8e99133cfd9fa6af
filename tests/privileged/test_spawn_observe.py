"""observe() equals what /proc shows, and compare() lists unapplied or differing keys."""

from __future__ import annotations

from dataclasses import replace

from systemg.manifest.model import Isolation, Limits
from systemg.spawn.observe import compare, observe
from tests.privileged.spawn_helpers import Spawner, py

SLEEP = "import time; print('ready', flush=True); time.sleep(60)"


def test_observe_matches_plan_for_a_confined_service(spawner: Spawner) -> None:
    svc = py(
        SLEEP,
        user="nobody",
        capabilities=("CAP_NET_BIND_SERVICE",),
        limits=Limits(nofile=1000, nice=3, cpu_affinity=(0,)),
        isolation=Isolation(
            network=True, pid=True, no_new_privileges=True, seccomp=("@system-service",)
        ),
    )
    run = spawner.start(svc)
    run.read_until("ready")
    seen = observe(run.pid)
    assert seen["service_pid"] == run.pid  # the launched process is PID 1 itself
    assert seen["nspid"][-1] == "1"
    assert seen["uid"] == [65534] * 4
    assert {v["hex"] for v in seen["capabilities"].values()} == {"0000000000000400"}
    assert seen["capabilities"]["CapAmb"]["names"] == ["CAP_NET_BIND_SERVICE"]
    assert seen["rlimits"]["nofile"] == [1000, 1000]
    assert seen["nice"] == 3
    assert seen["cpus_allowed_list"] == "0"
    assert seen["namespaces"]["net"]["own"]
    assert seen["namespaces"]["pid"]["own"]
    assert seen["no_new_privs"] == 1
    assert list(seen["fds"]) == ["0", "1", "2"]
    assert seen["seccomp"] == {"mode": 2, "filters": 1}
    assert compare(run.plan, seen) == ()


def test_compare_reports_a_difference(spawner: Spawner) -> None:
    run = spawner.start(py(SLEEP, limits=Limits(nice=2)))
    run.read_until("ready")
    lying = replace(run.plan, nice=4)
    assert compare(lying, observe(run.pid)) == ("limits.nice: requested 4, kernel shows 2",)
