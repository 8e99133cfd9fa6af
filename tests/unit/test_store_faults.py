"""``daemon/store.py`` under faults: no fsync on the loop, a full state disk never raises
(old state kept, retried on the next change), a bad state file never crashes a load.

Real files in ``tmp_path``; the full disk is the kernel's ``EFBIG`` from a soft
``RLIMIT_FSIZE`` (see ``test_rotate_journal_audit.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from systemg.daemon.journal import Journal
from systemg.daemon.store import ProjectRecord, ServiceRecord, Store, write_atomic
from systemg.paths import Mode, Paths
from tests.unit.test_rotate_journal_audit import file_size_limit

EXIT = {"code": 1, "signal": None, "oom_killed": False, "at": 5.0}


def record(project: str = "app", pid: int = 4242, restarts: int = 0) -> ProjectRecord:
    return ProjectRecord(
        project,
        "/srv/app/sysg.yaml",
        {"A": "1"},
        services={
            "web": ServiceRecord(pid, 99, 1.5, "running", restarts, EXIT, None),
            "db": ServiceRecord(stop_reason="manual"),
        },
    )


class Events:
    """A journal on a pipe (a pipe is not subject to ``RLIMIT_FSIZE``), read back."""

    def __init__(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        self._r = r
        self._w = open(w, "w")  # noqa: SIM115 - closed by close()
        self.journal = Journal(stream=self._w)
        self._text = ""

    def lines(self) -> list[str]:
        while True:
            try:
                chunk = os.read(self._r, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._text += chunk.decode()
        return self._text.splitlines()

    def close(self) -> None:
        self._w.close()
        os.close(self._r)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Store, Path, Events]]:
    paths = Paths(Mode.USER, tmp_path / "state", tmp_path / "logs")
    paths.projects_dir.mkdir(parents=True)
    events = Events()
    try:
        yield Store(paths, events.journal), paths.projects_dir, events
    finally:
        events.close()


def test_round_trip_and_a_backup_of_the_previous_state(setup: tuple[Store, Path, Events]) -> None:
    store, projects, _ = setup
    assert store.save(record(restarts=1))
    assert store.save(record(restarts=2))
    assert store.load("app") == record(restarts=2)
    backup = json.loads((projects / "app" / "state.json.bak").read_text())
    assert backup["services"]["web"]["restarts"] == 1
    assert [p.name for p in (projects / "app").iterdir() if p.name.startswith(".")] == []


def test_save_does_not_fsync_on_the_loop(
    setup: tuple[Store, Path, Events], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow disk's fsync would stall the whole (single-threaded) supervisor."""

    def no_fsync(fd: int) -> None:
        raise AssertionError("fsync on the supervisor's loop")

    monkeypatch.setattr(os, "fsync", no_fsync)
    monkeypatch.setattr(os, "fdatasync", no_fsync)
    store, _, _ = setup
    assert store.save(record())
    assert store.load("app") == record()


def test_a_full_state_disk_keeps_the_old_file_and_retries_on_the_next_change(
    setup: tuple[Store, Path, Events],
) -> None:
    store, projects, events = setup
    assert store.save(record(restarts=1))
    state = projects / "app" / "state.json"
    old = state.read_bytes()
    with file_size_limit(64):  # a state file does not fit any more
        assert not store.save(record(restarts=2))  # no exception into the loop
        assert not store.save(record(restarts=3))
        assert state.read_bytes() == old
        # No temp file left behind.
        assert [p.name for p in (projects / "app").iterdir()] == ["state.json"]
    # The next change — here to another project — also writes the one that failed.
    assert store.save(record("other"))
    assert store.load("app") == record(restarts=3)
    assert store.load("other") == record("other")
    lines = events.lines()
    failures = [e for e in lines if "cannot save the state of project 'app'" in e]
    assert len(failures) == 1, lines  # logged once, not at every attempt
    assert str(state) in failures[0]
    assert any("'app' saved" in e and "after 2 failed attempts" in e for e in lines)


BAD_FILES = {
    "empty": b"",
    "truncated": json.dumps(
        {"project_id": "app", "manifest_path": "/m.yaml", "services": {}}
    ).encode()[:30],
    "not json": b"\x00\x00\x00\x00",
    "a list": b"[]",
    "services not an object": b'{"project_id":"app","manifest_path":"/m","services":5}',
    "no manifest_path": b'{"project_id":"app"}',
    "pid a string": b'{"project_id":"app","manifest_path":"/m","services":{"w":{"pid":"1"}}}',
    "pid a bool": b'{"project_id":"app","manifest_path":"/m","services":{"w":{"pid":true}}}',
    "service a list": b'{"project_id":"app","manifest_path":"/m","services":{"w":[]}}',
    "unknown key": b'{"project_id":"app","manifest_path":"/m","colour":1}',
    "bad stop_reason": (
        b'{"project_id":"app","manifest_path":"/m","services":{"w":{"stop_reason":"x"}}}'
    ),
    "bad last_exit": (
        b'{"project_id":"app","manifest_path":"/m","services":{"w":{"last_exit":{"z":1}}}}'
    ),
    "environ of numbers": b'{"project_id":"app","manifest_path":"/m","environ":{"A":1}}',
    "invalid utf-8": b'{"project_id":"\xff"}',
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("content", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_state_file_is_skipped_named_and_kept_aside(
    setup: tuple[Store, Path, Events], content: bytes
) -> None:
    store, projects, events = setup
    assert store.save(record("good"))
    state = projects / "app" / "state.json"
    state.parent.mkdir()
    state.write_bytes(content)
    assert store.load_all() == [record("good")]  # never raises
    assert (projects / "app" / "state.json.corrupt").read_bytes() == content
    assert not state.exists()
    lines = events.lines()
    assert any(
        f"state file {state} is unreadable" in e and "'app' is not re-adopted" in e for e in lines
    ), lines
    assert store.load_all() == [record("good")]  # and it is not reported again


def test_a_stray_file_in_the_projects_dir_is_not_a_project(
    setup: tuple[Store, Path, Events],
) -> None:
    store, projects, events = setup
    (projects / "notes.txt").write_text("hello")
    assert store.load_all() == []
    assert events.lines() == []
    assert (projects / "notes.txt").read_text() == "hello"


def test_a_bad_state_file_falls_back_to_the_backup(setup: tuple[Store, Path, Events]) -> None:
    store, projects, events = setup
    assert store.save(record(restarts=1))
    assert store.save(record(restarts=2))
    state = projects / "app" / "state.json"
    state.write_bytes(b"")  # e.g. a power loss before the data reached the disk
    assert store.load_all() == [record(restarts=1)]
    assert any(f"using the previous state from {state}.bak" in e for e in events.lines())
    assert store.save(record(restarts=3))  # the next save starts a fresh state.json
    assert store.load("app") == record(restarts=3)


def test_write_atomic_never_writes_through_a_planted_temp_file(tmp_path: Path) -> None:
    """Its temp name is predictable (pid): a symlink put there by someone who can write the
    directory is replaced, not followed, so its target stays untouched."""
    target = tmp_path / "precious"
    target.write_text("keep me")
    path = tmp_path / "web.slot"
    (tmp_path / f".web.slot.{os.getpid()}.tmp").symlink_to(target)
    write_atomic(path, b"8001\n")
    assert path.read_bytes() == b"8001\n"
    assert not path.is_symlink()
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious", "web.slot"]
