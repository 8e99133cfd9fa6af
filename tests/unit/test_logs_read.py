"""``cli/logread.py`` (ranges across rotated files, -n backwards, the merge) and the
pure decision of ``cli/logprune.py``."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from systemg.cli import logread
from systemg.cli.logfiles import Follower, ServiceLogFile
from systemg.cli.logprune import Backup, plan
from systemg.cli.logquery import Query, compile_grep


def ts(i: int) -> str:
    return f"2026-05-14T02:{i // 60:02d}:{i % 60:02d}.000000Z"


def write(path: Path, rows: list[tuple[int, str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fh.writelines(f"{ts(i)} {stream} {text}\n" for i, stream, text in rows)


def history(tmp: Path, name: str = "web") -> ServiceLogFile:
    """Lines 0..29 in .2 (0-9), .1 (10-19) and the active file (20-29)."""
    log = ServiceLogFile("app", name, tmp / "app" / f"{name}.log")
    for suffix, first in ((".2", 0), (".1", 10), ("", 20)):
        stream = lambda i: "stderr" if i % 3 == 0 else "stdout"  # noqa: E731
        write(
            Path(f"{log.path}{suffix}"),
            [(i, stream(i), f"{name} {i}") for i in range(first, first + 10)],
        )
    return log


def texts(entries: list[logread.Entry] | object) -> list[str]:
    return [e.line.text.decode() for e in entries]  # type: ignore[attr-defined]


def test_forward_reads_the_history_oldest_first(tmp_path: Path) -> None:
    log = history(tmp_path)
    assert texts(list(logread.forward(log, Query()))) == [f"web {i}" for i in range(30)]


def test_a_range_spanning_rotated_files(tmp_path: Path) -> None:
    log = history(tmp_path)
    q = Query(since=ts(7), until=ts(22))
    assert texts(list(logread.forward(log, q))) == [f"web {i}" for i in range(7, 23)]
    assert texts(logread.last_n(log, q, 3)) == ["web 20", "web 21", "web 22"]
    assert texts(logread.last_n(log, q, 100)) == [f"web {i}" for i in range(7, 23)]


def test_filters_apply_forward_and_backward(tmp_path: Path) -> None:
    log = history(tmp_path)
    q = Query(streams=frozenset({"stderr"}), grep=compile_grep(r"[12]\d$"))
    want = [f"web {i}" for i in range(10, 30) if i % 3 == 0]
    assert texts(list(logread.forward(log, q))) == want
    assert texts(logread.last_n(log, q, 2)) == want[-2:]


def test_last_n_reaches_into_backups_only_as_far_as_needed(tmp_path: Path) -> None:
    log = history(tmp_path)
    assert texts(logread.last_n(log, Query(), 12)) == [f"web {i}" for i in range(18, 30)]
    assert logread.last_n(log, Query(), 0) == []


def test_merge_interleaves_services_by_time(tmp_path: Path) -> None:
    a = ServiceLogFile("app", "a", tmp_path / "app" / "a.log")
    b = ServiceLogFile("app", "b", tmp_path / "app" / "b.log")
    write(a.path, [(1, "stdout", "a1"), (3, "stdout", "a3"), (3, "stdout", "a3bis")])
    write(b.path, [(2, "stdout", "b2"), (3, "stdout", "b3"), (9, "stdout", "b9")])
    with open(a.path, "a") as fh:
        fh.write("  a continuation line\n")  # not in the stored format: stays after a3bis
    merged = list(logread.merge(logread.forward(x, Query()) for x in (a, b)))
    assert texts(merged) == ["a1", "b2", "a3", "a3bis", "  a continuation line", "b3", "b9"]
    assert texts(logread.merged_last_n([a, b], Query(), 2)) == ["b3", "b9"]


def test_a_follower_bounds_the_tail(tmp_path: Path) -> None:
    log = history(tmp_path)
    follower = Follower(log)
    try:
        with open(log.path, "a") as fh:
            fh.write(f"{ts(40)} stdout appended after the follower opened\n")
        position = follower.position()
        assert position is not None
        got = logread.last_n(log, Query(), 2, logread.Held(*position))
        assert texts(got) == ["web 28", "web 29"]
        assert len(follower.poll()) == 1
    finally:
        follower.close()


def test_a_half_written_last_line_is_not_shown(tmp_path: Path) -> None:
    log = ServiceLogFile("app", "w", tmp_path / "w.log")
    write(log.path, [(1, "stdout", "whole")])
    with open(log.path, "a") as fh:
        fh.write(f"{ts(2)} stdout half")
    assert texts(list(logread.forward(log, Query()))) == ["whole"]
    assert texts(logread.last_n(log, Query(), 5)) == ["whole"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=60),
    st.integers(min_value=0, max_value=120),
    st.integers(min_value=0, max_value=120),
    st.integers(min_value=1, max_value=70),
)
def test_forward_and_last_n_agree_with_filtering_everything(
    steps: list[int], since: int, until: int, n: int
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        log = ServiceLogFile("p", "s", Path(tmp) / "s.log")
        times = [sum(steps[: i + 1]) for i in range(len(steps))]
        cut = len(times) // 2
        write(Path(f"{log.path}.1"), [(t, "stdout", str(k)) for k, t in enumerate(times[:cut])])
        write(log.path, [(t, "stdout", str(k)) for k, t in enumerate(times) if k >= cut])
        q = Query(since=ts(since), until=ts(until))
        want = [str(k) for k, t in enumerate(times) if since <= t <= until]
        assert texts(list(logread.forward(log, q))) == want
        assert texts(logread.last_n(log, q, n)) == want[-n:]
        # The copy path (no per-line filter) gives the same lines, as stored.
        copied = b"".join(logread.forward_bytes(log, q)).splitlines()
        assert copied == [e.line.raw for e in logread.forward(log, q)]


# --- prune: the decision ---------------------------------------------------------------


def b(name: str, number: int, size: int, mtime: float) -> Backup:
    return Backup(Path(name), number, size, mtime)


def test_prune_by_age_then_oldest_first_by_size() -> None:
    backups = [
        b("web.log.1", 1, 100, 900.0),
        b("web.log.2", 2, 100, 800.0),
        b("web.log.3", 3, 100, 100.0),
        b("db.log.1", 1, 300, 850.0),
    ]
    old = plan(backups, max_size=None, max_age=500.0, now=1000.0)
    assert [x.path.name for x in old] == ["web.log.3"]
    by_size = plan(backups, max_size=400, max_age=None, now=1000.0)
    assert [x.path.name for x in by_size] == ["web.log.3", "web.log.2"]
    both = plan(backups, max_size=150, max_age=500.0, now=1000.0)
    assert [x.path.name for x in both] == ["web.log.3", "web.log.2", "db.log.1"]
    assert plan(backups, max_size=10**9, max_age=10**9, now=1000.0) == []


def test_equal_times_remove_the_highest_number_first() -> None:
    backups = [b("w.log.1", 1, 10, 5.0), b("w.log.2", 2, 10, 5.0)]
    assert [x.number for x in plan(backups, max_size=10, max_age=None, now=9.0)] == [2]


def test_prune_never_lists_the_active_file(tmp_path: Path) -> None:
    from systemg.cli.logprune import backups_of

    log = history(tmp_path)
    (tmp_path / "app" / "web.log.bak").write_text("not a backup\n")
    (tmp_path / "app" / "web.log.7").write_text("after a gap\n")
    os.utime(tmp_path / "app" / "web.log.7", (1, 1))
    names = sorted(x.path.name for x in backups_of(log))
    assert names == ["web.log.1", "web.log.2", "web.log.7"]
