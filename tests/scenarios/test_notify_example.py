"""Use case: a person runs the notify example (examples/notify/) as its README says.

``sysg start --daemonize`` returns once the service sent READY=1; status then shows it
running and healthy with the STATUS= text it reports while it keeps pinging the watchdog;
``sysg stop --supervisor`` leaves nothing running.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notify"


def test_notify_example(rt: Runtime) -> None:
    app = rt.work / "notify"
    shutil.copytree(EXAMPLE, app)

    start = rt.sysg("start", "-c", "notify/systemg.yaml", "--daemonize")
    assert start.returncode == 0, start.stderr
    assert "Project 'notify' started (1 service)" in start.stdout

    # Up means READY=1 arrived, so health is already healthy when start returns.
    unit = rt.unit("ticker")
    assert unit["phase"] == "running"
    assert unit["readiness"] == "healthy"
    assert unit["notify_status"].startswith("ready, ")
    pid = pid_of(unit)

    # The watchdog (2 s) keeps being pinged: past two periods, the same process still
    # runs, healthy, and its STATUS= line has moved on.
    def ticked_past_watchdog() -> dict[str, Any]:
        u = rt.unit("ticker")
        return u if u["uptime"]["seconds"] > 4.5 else {}

    later = wait_for(ticked_past_watchdog, timeout=20, interval=0.3, what="5 s of uptime")
    assert pid_of(later) == pid
    assert later["restarts"] == 0
    assert later["phase"] == "running"
    assert later["readiness"] == "healthy"
    assert later["notify_status"] != "ready, 0 ticks"
    assert str(later["notify_status"]).startswith("ready, ")

    text = rt.sysg("status")
    assert text.returncode == 0, text.stderr
    assert "healthy" in text.stdout
    assert "STATUS=ready, " in text.stdout

    stop = rt.sysg("stop", "--supervisor")
    assert stop.returncode == 0, stop.stderr
    assert rt.supervisor_processes() == []
    assert not pid_alive(pid)
