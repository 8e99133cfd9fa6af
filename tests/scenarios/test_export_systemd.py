"""Use case: a person who runs a project under sysg moves it to systemd hosts.

They validate the manifest, run it under sysg, export it (``sysg export systemd -o``) and
check the units with ``systemd-analyze verify``: what systemd would execute is, argument
for argument, what sysg runs now (``/proc/PID/cmdline``), and the exported timer fires
when sysg's schedule says the job is next due.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import systemd
from tests.support.runtime import Runtime, epoch, pid_of

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notify"

EXTRA = """
      worker:
        command: 'while sleep 1; do echo "tick $(date +%s) 100%"; done'
        depends_on: [ticker]
        restart_policy: always
      report:
        exec: [/bin/true]
        cron: {expression: "0 0 3 * * *", timezone: UTC}
"""


@pytest.mark.skipif(bool(systemd.available()), reason=systemd.available())
def test_validate_run_export_verify(rt: Runtime) -> None:
    app = rt.work / "app"
    shutil.copytree(EXAMPLE, app)
    manifest = app / "systemg.yaml"
    manifest.write_text(manifest.read_text() + EXTRA)

    valid = rt.sysg("validate", "-c", "app/systemg.yaml")
    assert valid.returncode == 0, valid.stderr

    start = rt.sysg("start", "-c", "app/systemg.yaml", "--daemonize")
    assert start.returncode == 0, start.stderr
    units = {u["name"]: u for u in rt.status()["units"]}
    assert units["ticker"]["phase"] == "running"
    assert units["worker"]["phase"] == "running"

    out = rt.work / "units"
    export = rt.sysg("export", "systemd", "-c", "app/systemg.yaml", "-o", str(out))
    assert export.returncode == 0, export.stderr
    assert export.stderr == ""
    assert sorted(p.name for p in out.iterdir()) == [
        "notify-report.service",
        "notify-report.timer",
        "notify-ticker.service",
        "notify-worker.service",
        "notify.target",
    ]
    code, warnings = systemd.verify(out)
    assert (code, warnings) == (0, [])

    parsed = systemd.dump(out, "notify.target")
    ticker = parsed["notify-ticker.service"]
    assert ticker.one("Type") == "notify"
    assert ticker.one("WatchdogSec") == "2s"
    assert ticker.one("WorkingDirectory") == str(app)
    worker = parsed["notify-worker.service"]
    assert "notify-ticker.service (origin-file)" in worker.props["Requires"]
    # what systemd would execute is what sysg runs now, argument for argument (a bare
    # program name is looked up in PATH by both; here python3 may be a pyenv shim that
    # re-executes itself by its full path, so only the name of the program is compared)
    for name in ("ticker", "worker"):
        cmdline = Path(f"/proc/{pid_of(units[name])}/cmdline").read_bytes()
        running = cmdline.rstrip(b"\0").decode().split("\0")
        (argv,) = parsed[f"notify-{name}.service"].commands["ExecStart"]
        assert argv[1:] == running[1:]
        program = Path(running[0]).name if name == "ticker" else running[0]
        assert argv[0] == program

    # the timer's next elapse is the job's next run in `sysg status`
    next_run = units["report"]["cron"]["next_run"]
    (calendar,) = parsed["notify-report.timer"].props["OnCalendar"]
    now = datetime.now(UTC)
    assert systemd.calendar(calendar, now, 1) == [datetime.fromtimestamp(epoch(next_run), UTC)]

    stop = rt.sysg("stop", "--supervisor")
    assert stop.returncode == 0, stop.stderr
