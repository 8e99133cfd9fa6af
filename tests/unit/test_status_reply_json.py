"""``StatusReply.to_json`` (hand-written for speed) equals ``dataclasses.asdict``."""

from __future__ import annotations

from dataclasses import asdict

from systemg.protocol.messages import LastExit, StatusReply, UnitStatus


def test_to_json_matches_asdict() -> None:
    reply = StatusReply(
        captured_at=1.5,
        supervisor_pid=7,
        mode="system",
        overall_health="degraded",
        units=(
            UnitStatus("p", "web", "running", pid=3, restarts=2, not_applied=("x: EPERM",)),
            UnitStatus("p", "db", "exited", last_exit=LastExit(1, None, False, 2.0)),
        ),
    )
    assert reply.to_json() == asdict(reply)
    assert StatusReply.from_json(reply.to_json()) == reply
