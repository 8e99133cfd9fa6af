"""The blue/green slot file and switch marker (``daemon/slotfiles.py``): read without being
redirected or blocked, written whole, and a marker's process recognised only while it is
that very process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from systemg.daemon import slotfiles


def test_a_slot_file_is_written_whole_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "run" / "web.slot"
    assert slotfiles.read_slot(path) is None
    slotfiles.write_slot(path, "8001")
    assert path.read_text() == "8001\n"
    assert path.stat().st_mode & 0o777 == 0o644
    assert slotfiles.read_slot(path) == "8001"


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_what_is_not_a_regular_file_is_refused_without_waiting(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "web.slot"
    target = tmp_path / "elsewhere"
    target.write_text("8002\n")
    if kind == "symlink":
        path.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(path)  # a blocking open would wait for a writer for ever
    else:
        path.mkdir()
    with pytest.raises(slotfiles.Unreadable):
        slotfiles.read_slot(path)


def test_a_marker_names_its_switch_only_while_that_process_runs(tmp_path: Path) -> None:
    marker = tmp_path / "web.switching"
    child = subprocess.Popen(["sleep", "30"])
    try:
        slotfiles.mark(marker, "8002", child.pid)
        assert marker.read_text().split()[:2] == ["8002", str(child.pid)]
        assert slotfiles.orphan(marker) == child.pid
    finally:
        child.kill()
        child.wait()
    assert slotfiles.orphan(marker) is None  # gone (a reused pid has another start time)
    slotfiles.mark(marker, "8002", None)  # the switch could not even start
    assert slotfiles.orphan(marker) is None
    marker.write_text("garbage")
    assert slotfiles.orphan(marker) is None
    slotfiles.unmark(marker)
    slotfiles.unmark(marker)  # twice is fine
    assert not marker.exists()
