"""``StatusReply.to_json`` (hand-written for speed) equals ``dataclasses.asdict``."""

from __future__ import annotations

from dataclasses import asdict

from systemg.protocol.messages import (
    CronRun,
    CronStatus,
    LastExit,
    Metrics,
    StatusReply,
    UnitStatus,
)


def test_to_json_matches_asdict() -> None:
    reply = StatusReply(
        captured_at=1.5,
        supervisor_pid=7,
        mode="system",
        overall_health="degraded",
        units=(
            UnitStatus("p", "web", "running", pid=3, restarts=2, not_applied=("x: EPERM",)),
            UnitStatus("p", "db", "exited", last_exit=LastExit(1, None, False, 2.0)),
            UnitStatus(
                "p",
                "job",
                "stopped",
                project_name="P",
                manifest_path="/srv/p.yaml",
                restart_policy="never",
                metrics=Metrics(1.0, 0.5, 2.0, 4096, 3),
                cron=CronStatus(
                    "0 * * * * *",
                    "UTC",
                    scheduled=True,
                    last_run=CronRun(2.0, 3.0, result="ok"),
                    recent_runs=(
                        CronRun(1.0, 1.5, result="failed"),
                        CronRun(2.0, 3.0, result="ok"),
                    ),
                ),
            ),
        ),
    )
    assert reply.to_json() == asdict(reply)
    assert StatusReply.from_json(reply.to_json()) == reply
