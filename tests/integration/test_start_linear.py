"""A start of N services costs the supervisor's dependency bookkeeping O(N), not O(N²)
(issue 14): counted, never timed.

The supervisor runs in this process on its real loop and launches real ``sleep``s; a
profile hook counts every Python call and generator resumption in the code that reacts to
events (``daemon/operations.py``, ``daemon/ordering.py``, ``manifest/graph.py``) during
``start`` of a project where N services depend on one ``db``. Before the fix every event
re-scanned all N units twice (the start's "all settled" waiter, and the search for the
changed unit's dependents), so 4 times the services cost ~7.7 times the calls here; now ~3.9.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from systemg.spawn.launcher import through
from tests.support.inprocess import Harness

WATCHED = ("daemon/operations.py", "daemon/ordering.py", "manifest/graph.py")


def fan_out(n: int) -> str:
    lines = ['version: "2"', "projects:", "  p:", "    services:", "      db:"]
    lines.append('        command: "sleep 1000.{m}"')
    for i in range(n):
        lines += [f"      s{i:03d}:", '        command: "sleep 1000.{m}"']
        lines.append("        depends_on: [db]")
    return "\n".join(lines) + "\n"


def calls_during_start(root: Path, n: int) -> int:
    h = Harness(root, through(None), fan_out(n))
    count = [0]

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.endswith(WATCHED):
            count[0] += 1

    try:
        started: list[Callable[[], None]] = []

        def start(then: Callable[[], None]) -> None:
            started.append(then)
            sys.setprofile(profile)
            h.ops.start("p", None, then)

        settled = h.run_until(start, timeout=60)
        sys.setprofile(None)
        assert settled, f"N={n}: start never settled"
        units = h.sup.projects["p"].units.values()
        assert {u.state.phase.value for u in units} == {"running"}
        # Stopped and reaped by the supervisor: no zombie left for later tests of this worker.
        assert h.run_until(h.ops.stop_everything, timeout=60), "stop never finished"
        assert all(u.state.pid is None for u in units)
        return count[0]
    finally:
        sys.setprofile(None)
        h.close()


def records_written_during_start(root: Path, n: int) -> int:
    """Service records the store serialized (a snapshot counts all of its project's
    services, a journal line one) while N services start."""
    h = Harness(root, through(None), fan_out(n))
    written = [0]
    save, append = h.sup.store.save, h.sup.store.append

    def counted_save(record: Any) -> bool:
        written[0] += len(record.services)
        return save(record)

    def counted_append(*args: Any) -> bool:
        written[0] += 1
        return append(*args)

    try:
        h.sup.store.save = counted_save  # type: ignore[method-assign]
        h.sup.store.append = counted_append  # type: ignore[method-assign]
        assert h.run_until(lambda then: h.ops.start("p", None, then), timeout=60)
        assert h.run_until(h.ops.stop_everything, timeout=60), "stop never finished"
        return written[0]
    finally:
        h.close()


def test_a_start_of_four_times_the_services_writes_about_four_times_the_state(
    tmp_path: Path,
) -> None:
    # Each spawn used to rewrite its whole project twice: 4x the services wrote ~16x.
    small = records_written_during_start(tmp_path / "small", 40)
    big = records_written_during_start(tmp_path / "big", 160)
    ratio = big / small
    assert ratio < 5.5, f"40 services: {small} records written, 160: {big} ({ratio:.1f}x)"


def test_a_start_of_four_times_the_services_costs_about_four_times_the_bookkeeping(
    tmp_path: Path,
) -> None:
    small = calls_during_start(tmp_path / "small", 40)
    big = calls_during_start(tmp_path / "big", 160)
    ratio = big / small
    assert ratio < 5.5, f"40 services: {small} calls, 160: {big} ({ratio:.1f}x: quadratic)"
