"""Cron jobs with real processes and the real clock (docs/manifest.md, "Scheduled jobs").

A 6-field and a 5-field job run at the right second (the recorded start time); a run still
going when the job is due again is recorded as ``overlap`` and left alone; the history
survives ``kill -9`` of the supervisor and the next supervisor goes on scheduling;
``sysg run`` exits with the job's code; ``sysg start -s JOB`` is SG0101; ``onerr`` fires
once per failed run; an idle supervisor whose job is not due does not wake up.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from systemg.views.status_doc import rfc3339
from tests.support.procscan import new_marker, with_marker
from tests.support.runtime import Runtime, wait_for


def cron_of(rt: Runtime, service: str) -> dict[str, Any]:
    cron = rt.unit(service)["cron"]
    assert isinstance(cron, dict)
    return cron


def runs_of(rt: Runtime, key: str) -> list[dict[str, Any]]:
    proc = rt.sysg("inspect", "-s", key, "--format", "json")
    runs = json.loads(proc.stdout)["cron_runs"]
    assert isinstance(runs, list)
    return runs


def manifest(rt: Runtime, services: str) -> str:
    return str(rt.write("sysg.yaml", f'version: "2"\nprojects:\n  cj:\n    services:\n{services}'))


def test_six_field_job_runs_at_its_second_and_five_field_at_second_zero(rt: Runtime) -> None:
    m = new_marker()
    cfg = manifest(
        rt,
        f"""      every3:
        exec: [/bin/sh, -c, "echo tick", "{m}"]
        cron: {{expression: "*/3 * * * * *", timezone: UTC}}
      minutely:
        exec: [/bin/sh, -c, "echo minute", "{m}"]
        cron: {{expression: "* * * * *"}}
      yearly:
        exec: [/bin/sh, -c, "echo new year", "{m}"]
        cron: {{expression: "0 0 0 1 1 *", timezone: UTC}}
      web:
        command: "exec sleep 1000.{m}"
""",
    )
    proc = rt.sysg("start", "-c", cfg, "--daemonize")
    assert proc.returncode == 0, proc.stderr
    yearly = rt.unit("yearly")
    assert (yearly["kind"], yearly["state"], yearly["health"]) == ("cron", "queued", "idle")
    assert cron_of(rt, "every3")["expression"] == "*/3 * * * * *"
    assert cron_of(rt, "minutely")["expression"] == "0 * * * * *"
    runs = wait_for(
        lambda: len(r := runs_of(rt, "cj/every3")) >= 2 and r, timeout=15, what="two runs"
    )
    for run in runs:
        assert run["result"] == "ok", run
        assert int(run["start"]) % 3 == 0  # at its second ...
        assert run["start"] - int(run["start"]) < 0.5  # ... right at it, not a tick later
        assert run["exit_code"] == 0
        assert run["pid"]
    log = (rt.logs / "cj" / "every3.log").read_text()
    assert "tick" in log
    # The 5-field job: at second 0 of the next minute (at most a minute away).
    [minute] = wait_for(lambda: runs_of(rt, "cj/minutely"), timeout=75, what="the minute run")
    assert int(minute["start"]) % 60 == 0
    assert minute["start"] - int(minute["start"]) < 0.5
    assert cron_of(rt, "minutely")["next_run"] == rfc3339(int(minute["start"]) + 60)
    rt.sysg("stop", "--supervisor", check=True)


def test_overlap_is_recorded_and_the_running_one_left_alone(rt: Runtime) -> None:
    m = new_marker()
    cfg = manifest(
        rt,
        f"""      slow:
        exec: [/bin/sh, -c, "sleep 2.5", "{m}"]
        cron: {{expression: "* * * * * *", timezone: UTC}}
""",
    )
    assert rt.sysg("start", "-c", cfg, "--daemonize").returncode == 0

    def finished() -> list[dict[str, Any]] | None:
        runs = runs_of(rt, "cj/slow")
        return runs if any(r["result"] == "ok" for r in runs) else None

    runs = wait_for(finished, timeout=15, what="a finished run")
    first_ok = next(r for r in runs if r["result"] == "ok")
    overlaps = [r for r in runs if r["result"] == "overlap"]
    assert len(overlaps) >= 1
    assert f"pid {first_ok['pid']}" in overlaps[0]["message"]
    assert first_ok["duration_s"] >= 2.4  # not cut short by the overlapping ticks
    rt.sysg("stop", "--supervisor", check=True)
    wait_for(lambda: not with_marker(m), what="the job to be gone")


def test_history_survives_kill_9_and_the_next_supervisor_keeps_scheduling(rt: Runtime) -> None:
    m = new_marker()
    cfg = manifest(
        rt,
        f"""      job:
        exec: [/bin/sh, -c, "exit 0", "{m}"]
        cron: {{expression: "*/2 * * * * *", timezone: UTC}}
""",
    )
    assert rt.sysg("start", "-c", cfg, "--daemonize").returncode == 0
    before = wait_for(lambda: len(r := runs_of(rt, "cj/job")) >= 2 and r, timeout=15)
    pid = rt.supervisor_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: rt.supervisor_pid() != pid or not _alive(pid), what="the supervisor gone")
    # A new supervisor, as the next command boots one: the history is there, and it
    # schedules the job again by itself (no `start` needed).
    assert rt.sysg("start", "--daemonize", "-p", "cj").returncode in (0, 1)
    after = wait_for(lambda: len(r := runs_of(rt, "cj/job")) >= len(before) + 2 and r, timeout=15)
    assert [r["start"] for r in after[: len(before)]] == [r["start"] for r in before]
    assert rt.supervisor_pid() != pid
    assert cron_of(rt, "job")["scheduled"] is True
    rt.sysg("stop", "--supervisor", check=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_run_exits_with_the_jobs_code_and_start_of_a_job_is_refused(rt: Runtime) -> None:
    m = new_marker()
    cfg = manifest(
        rt,
        f"""      fails:
        exec: [/bin/sh, -c, "echo failing; exit 3", "{m}"]
        cron: {{expression: "0 0 3 1 1 *", timezone: UTC}}
        hooks:
          onerr: {{command: "echo onerr code=$SYSG_EXIT_CODE"}}
      works:
        exec: [/bin/sh, -c, "echo fine", "{m}"]
        cron: {{expression: "0 0 3 1 1 *", timezone: UTC}}
      web:
        command: "exec sleep 1000.{m}"
""",
    )
    assert rt.sysg("start", "-c", cfg, "--daemonize").returncode == 0
    refused = rt.sysg("start", "-s", "fails")
    assert refused.returncode != 0
    assert "SG0101" in refused.stderr
    assert "cron jobs run only when their schedule fires" in refused.stderr  # as upstream
    assert "sysg run -s cj/fails" in refused.stderr
    assert "SG0101" in rt.sysg("restart", "-s", "fails").stderr
    ran = rt.sysg("run", "-s", "fails")
    assert ran.returncode == 3, ran.stderr
    assert "failed: exited with code 3" in ran.stderr
    assert rt.sysg("run", "-s", "works").returncode == 0
    again = rt.sysg("run", "-s", "fails")
    assert again.returncode == 3
    runs = runs_of(rt, "cj/fails")
    assert [(r["result"], r["exit_code"], r["manual"]) for r in runs] == [
        ("failed", 3, True),
        ("failed", 3, True),
    ]
    fails = rt.unit("fails")  # what the upstream's cron-failure-is-failure case reads
    assert (fails["state"], fails["health"], fails["last_exit"]["exit_code"]) == (
        "failed",
        "failing",
        3,
    ), fails
    assert fails["cron"]["last_run"]["status"] == "Failed: exited with code 3", fails
    journal = (rt.logs / "supervisor.log").read_text()
    assert "Cron job 'fails' failed: Process exited with code 3" in journal  # upstream's words
    # onerr: once per failed run.
    log = wait_for(
        lambda: (t := (rt.logs / "cj" / "fails.log").read_text()).count("onerr code=3") >= 2 and t
    )
    time.sleep(0.3)
    assert (rt.logs / "cj" / "fails.log").read_text().count("onerr code=3") == 2, log
    assert "failing" in log
    not_a_job = rt.sysg("run", "-s", "web")
    assert not_a_job.returncode != 0
    assert "SG0101" in not_a_job.stderr
    rt.sysg("stop", "--supervisor", check=True)


def test_no_wake_up_while_no_job_is_due(rt: Runtime) -> None:
    """A job due next January: the supervisor sleeps (its context switches do not move)."""
    cfg = manifest(
        rt,
        """      yearly:
        command: "true"
        cron: {expression: "0 0 3 1 1 *", timezone: UTC}
""",
    )
    assert rt.sysg("start", "-c", cfg, "--daemonize").returncode == 0
    pid = rt.supervisor_pid()
    assert pid is not None
    time.sleep(0.5)  # let the start's own work (the CLI's connection, the flush) finish

    def switches() -> int:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/status") as fh:
                for line in fh:
                    if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")):
                        total += int(line.split()[1])
        return total

    first = switches()
    time.sleep(2.0)
    assert switches() == first
    rt.sysg("stop", "--supervisor", check=True)


def test_persistent_runs_once_for_a_time_missed_while_no_supervisor_ran(rt: Runtime) -> None:
    """Due at second S of every minute; the supervisor is down across S: with
    ``persistent: true`` the job runs once as soon as it is scheduled again, the other
    job (not persistent) waits for its next due time."""
    m = new_marker()
    second = (int(time.time()) + 4) % 60
    cfg = manifest(
        rt,
        f"""      catchup:
        exec: [/bin/sh, -c, "true", "{m}"]
        cron: {{expression: "{second} * * * * *", timezone: UTC}}
        persistent: true
      plain:
        exec: [/bin/sh, -c, "true", "{m}"]
        cron: {{expression: "{second} * * * * *", timezone: UTC}}
""",
    )
    assert rt.sysg("start", "-c", cfg, "--daemonize").returncode == 0
    rt.sysg("stop", "--supervisor", check=True)
    time.sleep(5)  # second S passes while no supervisor runs
    restarted = time.time()
    assert rt.sysg("start", "-c", cfg, "--daemonize").returncode == 0
    [run] = wait_for(lambda: runs_of(rt, "cj/catchup"), timeout=10, what="the catch-up run")
    assert run["start"] >= restarted
    assert int(run["start"]) % 60 != second  # now, not at its due second
    assert runs_of(rt, "cj/plain") == []
    assert "a run was due while no supervisor ran" in (rt.logs / "supervisor.log").read_text()
    rt.sysg("stop", "--supervisor", check=True)
