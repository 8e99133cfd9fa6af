"""``daemon/store.py``'s journal: one line per service change between whole-project
snapshots, replayed on load by the next supervisor (and by the CLI's liveness check), so a
spawn costs O(1) bytes on disk instead of a rewrite of every service of its project."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from systemg import proc
from systemg.cli.liveness import live_services
from systemg.daemon.store import ServiceRecord, Store
from systemg.paths import Mode, Paths
from tests.unit.test_store_faults import Events, record


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Store, Paths, Events]]:
    paths = Paths(Mode.USER, tmp_path / "state", tmp_path / "logs")
    paths.projects_dir.mkdir(parents=True)
    events = Events()
    try:
        yield Store(paths, events.journal), paths, events
    finally:
        events.close()


def _journal(paths: Paths) -> Path:
    return paths.projects_dir / "app" / "state.journal"


def test_lines_after_a_snapshot_are_replayed_by_a_new_store(
    setup: tuple[Store, Paths, Events],
) -> None:
    store, paths, events = setup
    assert store.save(record())
    assert store.append("app", "web", ServiceRecord(pid=5, start_time=6, phase="running"))
    assert store.append("app", "web", ServiceRecord(pid=7, start_time=8, phase="running"))
    assert store.append("app", "new", ServiceRecord(phase="stopped"))
    assert store.journal_lines("app") == 3
    # The snapshot itself is untouched: only three short lines were written.
    snapshot = json.loads((paths.projects_dir / "app" / "state.json").read_text())
    assert snapshot["services"]["web"]["pid"] == 4242
    assert len(_journal(paths).read_bytes().splitlines()) == 3

    loaded = Store(paths, events.journal).load("app")  # the next supervisor
    assert loaded is not None
    assert loaded.services["web"].pid == 7  # the newest line wins
    assert loaded.services["new"].phase == "stopped"
    assert loaded.services["db"] == record().services["db"]


def test_a_snapshot_empties_the_journal(setup: tuple[Store, Paths, Events]) -> None:
    store, paths, _ = setup
    assert store.save(record())
    assert store.append("app", "web", ServiceRecord(pid=5, start_time=6, phase="running"))
    assert store.save(record(restarts=3))
    assert _journal(paths).read_bytes() == b""
    assert store.journal_lines("app") == 0
    assert store.load("app") == record(restarts=3)
    # Appends go on after the snapshot, with newer sequence numbers.
    assert store.append("app", "web", ServiceRecord(pid=9, start_time=1, phase="running"))
    loaded = store.load("app")
    assert loaded is not None
    assert loaded.services["web"].pid == 9


def test_lines_the_snapshot_already_holds_are_skipped(
    setup: tuple[Store, Paths, Events],
) -> None:
    # A supervisor killed between the snapshot's rename and the journal's truncation leaves
    # old lines behind: their sequence numbers are not newer than the snapshot's.
    store, paths, events = setup
    assert store.save(record())
    assert store.append("app", "web", ServiceRecord(pid=5, start_time=6, phase="running"))
    stale = _journal(paths).read_bytes()
    assert store.save(record(restarts=4))
    _journal(paths).write_bytes(stale)
    loaded = Store(paths, events.journal).load("app")
    assert loaded == record(restarts=4)


def test_a_torn_line_is_skipped_and_named(setup: tuple[Store, Paths, Events]) -> None:
    store, paths, events = setup
    assert store.save(record())
    assert store.append("app", "web", ServiceRecord(pid=5, start_time=6, phase="running"))
    with _journal(paths).open("ab") as fh:
        fh.write(b'{"seq": 99, "service": "web", "rec')  # the disk filled mid-line
    loaded = Store(paths, events.journal).load("app")
    assert loaded is not None
    assert loaded.services["web"].pid == 5
    assert any("1 unreadable line(s) skipped" in line for line in events.lines())


def test_no_line_without_a_snapshot_to_apply_it_to(setup: tuple[Store, Paths, Events]) -> None:
    store, paths, _ = setup
    assert not store.append("app", "web", ServiceRecord(pid=5))
    assert not _journal(paths).exists()


def test_the_cli_sees_a_service_only_the_journal_names(
    setup: tuple[Store, Paths, Events],
) -> None:
    # ``sysg`` decides "the supervisor died while services still ran" from the state files:
    # a service recorded only in a journal line (spawned after the snapshot) counts.
    store, paths, _ = setup
    assert store.save(record(pid=0))
    me = os.getpid()
    assert store.append(
        "app", "web", ServiceRecord(pid=me, start_time=proc.start_time(me), phase="running")
    )
    assert [(s.service, s.pid) for s in live_services(paths)] == [("web", me)]
