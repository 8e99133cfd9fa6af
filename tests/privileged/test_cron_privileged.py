"""A cron job runs with all its privileged keys (docs/manifest.md, "Scheduled jobs"): read back
from the
kernel while a scheduled run is in progress."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.privileged.system_helpers import proc_status
from tests.support.procscan import new_marker, with_marker
from tests.support.runtime import Runtime, wait_for


def test_a_scheduled_run_has_the_jobs_user_limits_and_namespaces(rt: Runtime) -> None:
    m = new_marker()
    cfg = rt.write(
        "sysg.yaml",
        f"""version: "2"
projects:
  pj:
    services:
      job:
        exec: [/bin/sleep, "3.{m}"]
        cron: {{expression: "*/5 * * * * *", timezone: UTC}}
        user: nobody
        limits: {{nofile: 321, nice: 7}}
        capabilities: [NET_BIND_SERVICE]
        isolation: {{network: true}}
""",
    )
    proc = rt.sysg("start", "-c", str(cfg), "--daemonize")
    assert proc.returncode == 0, proc.stderr
    pid = wait_for(lambda: [p.pid for p in with_marker(m)], timeout=15, what="a run")[-1]
    status = proc_status(pid)
    assert status["Uid"].split()[0] == "65534"
    assert int(status["CapEff"], 16) == 1 << 10  # CAP_NET_BIND_SERVICE only
    with open(f"/proc/{pid}/limits") as fh:
        line = next(x for x in fh if x.startswith("Max open files"))
    assert line.split()[3:5] == ["321", "321"]
    with open(f"/proc/{pid}/stat") as fh:
        assert fh.read().rsplit(")", 1)[1].split()[16] == "7"  # nice
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    wait_for(lambda: not with_marker(m), timeout=10, what="the run to end")

    def recorded() -> list[dict[str, Any]] | None:
        out = rt.sysg("inspect", "-s", "pj/job", "--format", "json").stdout
        runs = [r for r in json.loads(out)["cron_runs"] if r["pid"] == pid]
        return runs if runs and runs[0]["result"] != "running" else None

    [run] = wait_for(recorded, what="the run recorded")
    assert run["result"] == "ok"
    rt.sysg("stop", "--supervisor", check=True)
