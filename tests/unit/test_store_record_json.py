"""The state file's JSON equals ``dataclasses.asdict`` of the record (the fast encoder in
``store._as_json`` must follow every field added to the records)."""

from __future__ import annotations

import json
from dataclasses import asdict

from systemg.daemon import store
from systemg.daemon.store import ProjectRecord, ServiceRecord


def test_as_json_matches_asdict() -> None:
    record = ProjectRecord(
        "p",
        "/m/sysg.yaml",
        {"A": "b"},
        drop_privileges=True,
        attached=False,
        services={
            "web": ServiceRecord(
                1,
                2,
                3.0,
                "running",
                4,
                {"code": 1, "signal": None, "oom_killed": False, "at": 1.0},
                "manual",
                others=((5, 6),),
            ),
            "db": ServiceRecord(),
        },
    )
    # Compared as the file holds them (JSON has lists where the records have tuples).
    assert store._as_json(record) == json.loads(json.dumps(asdict(record)))
    assert store._parse(json.dumps(store._as_json(record)).encode()) == record
