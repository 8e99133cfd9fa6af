"""The public ``status.v1`` document (``views/status_doc.py``): the supervisor's reply in, the
upstream's shape out. Every phase folds into an upstream state, health and intent; fields
upstream leaves out when empty are left out; times are RFC 3339."""

from __future__ import annotations

from datetime import datetime

import pytest

from systemg.daemon.phases import Phase
from systemg.protocol.messages import (
    CronRun,
    CronStatus,
    LastExit,
    LastProbe,
    Metrics,
    StatusReply,
    UnitStatus,
)
from systemg.views.status_doc import (
    HEALTHS,
    INTENTS,
    STATES,
    empty_doc,
    human_elapsed,
    inspect_doc,
    overall_health,
    rfc3339,
    status_doc,
    unit_doc,
)

NOW = 1_777_000_000.0
CLEAN = LastExit(code=0, at=NOW - 5)
CODE_3 = LastExit(code=3, at=NOW - 5)
KILLED = LastExit(signal=9, at=NOW - 5)
OOM = LastExit(signal=9, oom_killed=True, at=NOW - 5)
ALIVE = {"pid": 4250, "started_at": NOW - 90}


def unit(state: str, **kw: object) -> UnitStatus:
    return UnitStatus(project="shop", service="web", state=state, **kw)  # type: ignore[arg-type]


# (our row) -> (upstream state, health). The phases a unit can be in, with and without a
# process where both happen, and the recorded exit that decides done from failed.
CASES = [
    (unit("running", **ALIVE), "running", "healthy"),
    (unit("starting", **ALIVE), "running", "warn"),  # up not yet confirmed
    (unit("stopping", **ALIVE), "running", "warn"),  # the process is still there
    (unit("draining", **ALIVE, shadow=True), "running", "healthy"),
    (unit("starting"), "queued", "warn"),  # pre_start, or the account lookup
    (unit("waiting"), "queued", "warn"),
    (unit("blocked", message="dependency 'db' is failed"), "queued", "warn"),
    (unit("running"), "lost", "warn"),  # recorded running, no process
    (unit("stopped"), "stopped", "idle"),
    (unit("stopped", last_exit=KILLED), "stopped", "idle"),  # stopped by us: intended
    (unit("skipped"), "skipped", "idle"),
    (unit("exited", last_exit=CLEAN), "done", "healthy"),
    (unit("exited", last_exit=CODE_3), "failed", "failing"),
    (unit("exited"), "done", "healthy"),
    (unit("backoff", last_exit=CODE_3), "failed", "failing"),  # upstream: ExitedWithError
    (unit("backoff", last_exit=CLEAN), "done", "healthy"),  # always: a clean exit, again
    (unit("backoff"), "done", "healthy"),
    (unit("killed", last_exit=KILLED), "failed", "failing"),
    (unit("oom-killed", last_exit=OOM), "failed", "failing"),
    (unit("failed", message="SG0102"), "failed", "failing"),
    (unit("no-such-phase"), "unknown", "warn"),
]


@pytest.mark.parametrize(("row", "state", "health"), CASES)
def test_every_phase_folds_into_an_upstream_state_and_health(
    row: UnitStatus, state: str, health: str
) -> None:
    doc = unit_doc(row, NOW)
    assert (doc["state"], doc["health"]) == (state, health)
    assert doc["phase"] == row.state  # ours, kept beside
    assert doc["state"] in STATES
    assert doc["health"] in HEALTHS
    assert doc["intent"] in INTENTS


def test_no_phase_is_left_unknown() -> None:
    """A new phase must be given an upstream state here, not fall through to unknown."""
    covered = {row.state for row, _, _ in CASES}
    assert {str(p) for p in Phase} <= covered
    for phase in Phase:
        assert unit_doc(unit(str(phase)), NOW)["state"] != "unknown", phase


def test_a_failing_probe_outranks_a_live_process_and_partial_enforcement_warns() -> None:
    probe = LastProbe(at=NOW - 1, result="unreachable", latency_s=0.01, message="refused")
    assert unit_doc(unit("running", **ALIVE, last_probe=probe), NOW)["health"] == "failing"
    ok = LastProbe(at=NOW - 1, result="pass", latency_s=0.01)
    assert unit_doc(unit("running", **ALIVE, last_probe=ok), NOW)["health"] == "healthy"
    partial = unit("running", **ALIVE, enforcement="partial", not_applied=("x: EPERM",))
    assert unit_doc(partial, NOW)["health"] == "warn"


def _cron(last: str | None, *, scheduled: bool = True) -> CronStatus:
    run = None if last is None else CronRun(start=NOW - 60, end=NOW - 59, result=last)
    return CronStatus("0 0 3 * * *", "UTC", scheduled=scheduled, last_run=run)


@pytest.mark.parametrize(
    ("last", "state", "health"),
    [
        (None, "queued", "idle"),
        ("ok", "done", "healthy"),
        ("failed", "failed", "failing"),
        ("overlap", "overlap", "warn"),
        ("stopped", "queued", "idle"),  # upstream: Interrupted
        ("lost", "queued", "idle"),
        ("skipped", "skipped", "idle"),
    ],
)
def test_a_scheduled_job_shows_its_last_run(last: str | None, state: str, health: str) -> None:
    doc = unit_doc(unit("stopped", cron=_cron(last)), NOW)
    assert (doc["kind"], doc["intent"]) == ("cron", "cron")
    assert (doc["state"], doc["health"]) == (state, health)


def test_a_skip_true_job_is_skipped_before_its_first_due_time() -> None:
    # It never fires; `skip: COMMAND` may let it, so that one waits like any job.
    never = unit_doc(unit("stopped", cron=_cron(None), skip=True, skip_always=True), NOW)
    assert (never["state"], never["health"], never["intent"]) == ("skipped", "idle", "cron")
    maybe = unit_doc(unit("stopped", cron=_cron(None), skip=True), NOW)
    assert maybe["state"] == "queued"


def test_a_job_running_now_is_running_and_an_unscheduled_one_stopped() -> None:
    running = unit_doc(unit("running", **ALIVE, cron=_cron("failed")), NOW)
    assert (running["state"], running["health"]) == ("running", "healthy")
    off = unit_doc(unit("stopped", cron=_cron("failed", scheduled=False)), NOW)
    assert (off["state"], off["health"]) == ("stopped", "idle")
    queued = unit_doc(unit("queued", cron=_cron(None, scheduled=False)), NOW)
    assert queued["state"] == "queued"


@pytest.mark.parametrize(
    ("kw", "intent"),
    [
        ({}, "unspecified"),  # nothing written: it promised nothing
        ({"restart_policy": "never"}, "once"),
        ({"restart_policy": "on-failure"}, "unspecified"),
        ({"restart_policy": "always"}, "unspecified"),
        ({"skip": True, "restart_policy": "never"}, "skip"),
        ({"cron": _cron(None)}, "cron"),
    ],
)
def test_intent(kw: dict[str, object], intent: str) -> None:
    assert unit_doc(unit("stopped", **kw), NOW)["intent"] == intent


def test_a_running_unit_has_upstreams_fields_in_upstreams_order() -> None:
    row = unit(
        "running",
        **ALIVE,
        user="www-data",
        project_name="Shop",
        manifest_path="/srv/shop/systemg.yaml",
        command="exec ./web",
        restarts=2,
        last_exit=CODE_3,
        metrics=Metrics(1.5, 0.75, 3.0, 18 << 20, 4),
        notify_status="ready",
    )
    doc = unit_doc(row, NOW)
    upstream = [
        "name",
        "hash",
        "project",
        "kind",
        "lifecycle",
        "state",
        "intent",
        "health",
        "process",
        "uptime",
        "last_exit",
        "metrics",
        "command",
    ]
    assert list(doc)[: len(upstream)] == upstream
    assert doc["name"] == "web"
    assert doc["hash"] == "v2:shop:web"
    assert doc["project"] == {
        "id": "shop",
        "name": "Shop",
        "mode": "daemon",
        "config_path": "/srv/shop/systemg.yaml",
    }
    assert doc["lifecycle"] == "running"
    assert doc["process"] == {"pid": 4250, "state": "running", "user": "www-data"}
    assert doc["uptime"] == {
        "seconds": 90,
        "human": "1 mins ago",
        "started_at": rfc3339(NOW - 90),
    }
    assert doc["last_exit"] == {"exit_code": 3, "oom_killed": False, "at": rfc3339(NOW - 5)}
    assert doc["metrics"] == {
        "latest_cpu_percent": 1.5,
        "average_cpu_percent": 0.75,
        "max_cpu_percent": 3.0,
        "latest_rss_bytes": 18 << 20,
        "samples": 4,
    }
    assert (doc["restarts"], doc["notify_status"], doc["shadow"]) == (2, "ready", False)
    for gone in ("service", "pid", "uptime_s", "started_at", "user", "cpu_percent"):
        assert gone not in doc  # the old names are not kept beside the new ones


def test_what_has_no_value_is_left_out_as_upstream_does() -> None:
    doc = unit_doc(unit("stopped", project_name="", attached=True, loose=True), NOW)
    for absent in ("process", "uptime", "last_exit", "cron", "metrics", "spawned_children"):
        assert absent not in doc
    assert doc["project"] == {"id": "shop", "name": "shop", "mode": "foreground", "loose": True}
    killed = unit_doc(unit("killed", last_exit=KILLED), NOW)["last_exit"]
    assert "exit_code" not in killed
    assert killed["signal"] == 9


def test_cron_is_upstreams_with_runs_newest_first() -> None:
    first = CronRun(start=NOW - 120, end=NOW - 119, exit_code=3, result="failed", message="boom")
    last = CronRun(start=NOW - 60, end=NOW - 59, exit_code=0, pid=77, result="ok")
    cron = CronStatus(
        "0 * * * * *",
        "UTC",
        scheduled=True,
        next_run=NOW + 60,
        last_run=last,
        recent_runs=(first, last),
    )
    doc = unit_doc(unit("exited", last_exit=CLEAN, cron=cron), NOW)["cron"]
    assert doc["timezone_label"] == "UTC"
    assert doc["last_run"]["status"] == "Success"
    assert doc["last_run"]["started_at"] == rfc3339(NOW - 60)
    assert doc["last_run"]["pid"] == 77
    assert [r["status"] for r in doc["recent_runs"]] == ["Success", "Failed: boom"]
    assert doc["next_run"] == rfc3339(NOW + 60)


def test_times_are_rfc3339_utc() -> None:
    text = rfc3339(NOW + 0.25)
    assert text.endswith("Z")
    assert datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() == NOW + 0.25
    assert [human_elapsed(s) for s in (5, 120, 7200, 172800, 1209600)] == [
        "5 secs ago",
        "2 mins ago",
        "2 hours ago",
        "2 days ago",
        "2 weeks ago",
    ]


def test_overall_health_is_the_worst_row_that_is_not_a_shadow() -> None:
    def doc(*rows: UnitStatus) -> dict[str, object]:
        return status_doc(StatusReply(captured_at=NOW, supervisor_pid=9, units=rows))

    assert doc()["overall_health"] == "healthy"
    assert doc(unit("running", **ALIVE), unit("stopped"))["overall_health"] == "healthy"
    assert doc(unit("running", **ALIVE), unit("waiting"))["overall_health"] == "warn"
    failing = doc(unit("waiting"), unit("exited", last_exit=CODE_3))
    assert failing["overall_health"] == "failing"
    # A rolling restart's new generation, still starting beside the serving one, is not
    # a reason to warn.
    rolling = doc(unit("running", **ALIVE), unit("starting", **ALIVE, shadow=True))
    assert rolling["overall_health"] == "healthy"
    assert overall_health([]) == "healthy"


def test_the_document_and_the_empty_selection() -> None:
    full = status_doc(
        StatusReply(captured_at=NOW, supervisor_pid=9, mode="system", units=(unit("stopped"),))
    )
    assert list(full)[:4] == ["schema_version", "captured_at", "overall_health", "units"]
    assert full["schema_version"] == "status.v1"
    assert full["captured_at"] == rfc3339(NOW)
    assert (full["supervisor_pid"], full["supervisor_mode"]) == (9, "system")
    assert empty_doc(NOW) == {
        "schema_version": "status.v1",
        "captured_at": rfc3339(NOW),
        "overall_health": "healthy",
        "units": [],
    }


def test_inspect_is_unit_and_samples_then_our_sections() -> None:
    row = unit("running", **ALIVE)
    data = {
        "captured_at": NOW,
        "unit": {
            "project": "shop",
            "service": "web",
            "state": "running",
            "pid": 4250,
            "started_at": NOW - 90,
        },
        "samples": [{"timestamp": NOW - 1, "cpu_percent": 0.5, "rss_bytes": 4096}],
        "requested": {"user": None},
        "observed": {"uid": [0, 0, 0, 0]},
        "mismatch": [],
        "not_applied": [],
        "health": {"health": "unknown", "probes": []},
        "cron_runs": [],
    }
    doc = inspect_doc(data)
    assert list(doc)[:2] == ["unit", "samples"]
    assert doc["unit"] == unit_doc(row, NOW)
    assert doc["samples"] == [
        {"timestamp": rfc3339(NOW - 1), "cpu_percent": 0.5, "rss_bytes": 4096}
    ]
    assert doc["readiness"] == {"health": "unknown", "probes": []}
    assert "health" not in doc  # the unit's health is doc["unit"]["health"]
    assert {"requested", "observed", "mismatch", "not_applied", "cron_runs"} <= set(doc)
