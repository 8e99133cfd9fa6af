"""``cli/logfiles.py``: parsing, tail, selection and following of stored log files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from systemg.cli.logfiles import (
    Follower,
    LogLine,
    ServiceLogFile,
    discover,
    merged_tail,
    parse_selector,
    select,
    tail,
)
from systemg.errors import Code, SysgError


def ts(i: int) -> bytes:
    return b"2026-05-14T02:05:%02d.%06dZ" % (i // 1_000_000 % 60, i % 1_000_000)


def write_log(path: Path, lines: list[tuple[int, str, bytes]], mode: str = "wb") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode) as fh:
        for i, stream, text in lines:
            fh.write(ts(i) + b" " + stream.encode() + b" " + text + b"\n")


def test_parse_stored_line() -> None:
    line = LogLine.parse(b"2026-05-14T02:05:13.470911Z stderr Compiling x y\n")
    assert (line.ts, line.stream, line.text) == (
        "2026-05-14T02:05:13.470911Z",
        "stderr",
        b"Compiling x y",
    )
    assert LogLine.parse(b"2026-05-14T02:05:13.470911Z stdout ").text == b""


@pytest.mark.parametrize(
    "raw",
    [b"", b"garbage", b"2026-05-14T02:05:13.470911Z other x", b"2026-05-14 02:05:13 stdout x"],
)
def test_unparsable_lines_are_kept_verbatim(raw: bytes) -> None:
    line = LogLine.parse(raw)
    assert (line.ts, line.stream, line.text, line.raw) == ("", "", raw, raw)


def test_tail_last_n_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(1000)) + b"partial")
    assert tail(path, 3) == [b"line 997", b"line 998", b"line 999"]
    assert tail(path, 0) == []
    assert len(tail(path, 5000)) == 1000
    assert tail(tmp_path / "missing.log", 10) == []


def test_tail_reads_backwards_not_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.log"
    with open(path, "wb") as fh:
        for _ in range(200):
            fh.write(b"x" * 99 + b"\n" + (b"y" * 99 + b"\n") * 500)  # ~10 MB
    read_sizes: list[int] = []
    real_open = open

    def spy_open(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        fh = real_open(*args, **kwargs)  # type: ignore[call-overload]
        real_read = fh.read

        def read(n: int = -1) -> bytes:
            data: bytes = real_read(n)
            read_sizes.append(len(data))
            return data

        fh.read = read
        return fh

    monkeypatch.setattr("builtins.open", spy_open)
    assert tail(path, 10) == [b"y" * 99] * 10
    assert sum(read_sizes) <= 64 * 1024


def test_tail_lines_longer_than_a_block(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    long = b"z" * 200_000
    path.write_bytes(b"first\n" + long + b"\nlast\n")
    assert tail(path, 2) == [long, b"last"]
    assert tail(path, 3) == [b"first", long, b"last"]


def test_selector_parsing() -> None:
    assert parse_selector(None, "p/s") == ("p", "s")
    assert parse_selector("p", "s") == ("p", "s")
    assert parse_selector("p", "p/s") == ("p", "s")
    with pytest.raises(SysgError) as e:
        parse_selector("q", "p/s")
    assert e.value.code is Code.SELECTOR_MISMATCH
    with pytest.raises(SysgError) as e:
        parse_selector(None, "p/../../etc")
    assert e.value.code is Code.INVALID_NAME


@pytest.fixture
def two_projects(tmp_path: Path) -> Path:
    write_log(
        tmp_path / "alpha" / "web.log", [(1, "stdout", b"a-web-1"), (4, "stdout", b"a-web-2")]
    )
    write_log(tmp_path / "alpha" / "db.log", [(2, "stderr", b"a-db-1")])
    write_log(tmp_path / "beta" / "web.log", [(3, "stdout", b"b-web-1")])
    (tmp_path / "supervisor.log").write_bytes(b"not a service\n")
    (tmp_path / "alpha" / "web.log.1").write_bytes(b"")
    return tmp_path


def test_discover_finds_active_service_logs_only(two_projects: Path) -> None:
    assert [f.label for f in discover(two_projects)] == ["alpha/db", "alpha/web", "beta/web"]
    assert discover(two_projects / "nope") == []


def test_select_scopes(two_projects: Path) -> None:
    d = two_projects
    assert [f.label for f in select(d, "alpha", None)] == ["alpha/db", "alpha/web"]
    assert [f.label for f in select(d, "beta", "web")] == ["beta/web"]
    assert [f.label for f in select(d, None, "db")] == ["alpha/db"]
    assert len(select(d, None, None)) == 3


def test_select_ambiguous_bare_service_lists_matches(two_projects: Path) -> None:
    with pytest.raises(SysgError) as e:
        select(two_projects, None, "web")
    assert e.value.code is Code.AMBIGUOUS_SERVICE
    assert "alpha/web" in str(e.value)
    assert "beta/web" in str(e.value)


@pytest.mark.parametrize(
    ("project", "service", "code"),
    [
        (None, "nope", Code.LOGS_SERVICE_NOT_FOUND),  # a bare name: SG0021, as upstream
        ("alpha", "nope", Code.NOT_FOUND),
        ("gamma", None, Code.NOT_FOUND),
    ],
)
def test_select_not_found(
    two_projects: Path, project: str | None, service: str | None, code: Code
) -> None:
    with pytest.raises(SysgError) as e:
        select(two_projects, project, service)
    assert e.value.code is code
    assert select(two_projects, project, service, allow_missing=True) in (
        [],
        [ServiceLogFile("alpha", "nope", two_projects / "alpha" / "nope.log")],
    )


def test_select_nothing_with_no_logs(tmp_path: Path) -> None:
    with pytest.raises(SysgError) as e:
        select(tmp_path, None, None)
    assert e.value.code is Code.LOGS_NO_TARGET


def test_merged_tail_orders_by_time_and_keeps_last_n(two_projects: Path) -> None:
    entries = merged_tail(discover(two_projects), 3)
    assert [(e.log.label, e.line.text) for e in entries] == [
        ("alpha/db", b"a-db-1"),
        ("beta/web", b"b-web-1"),
        ("alpha/web", b"a-web-2"),
    ]


def test_tail_reaches_into_backups_when_active_is_short(tmp_path: Path) -> None:
    write_log(tmp_path / "p" / "s.log.2", [(1, "stdout", b"oldest")])
    write_log(tmp_path / "p" / "s.log.1", [(2, "stdout", b"older")])
    write_log(tmp_path / "p" / "s.log", [(3, "stdout", b"newest")])
    got = [e.line.text for e in merged_tail(discover(tmp_path), 2)]
    assert got == [b"older", b"newest"]
    got = [e.line.text for e in merged_tail(discover(tmp_path), 10)]
    assert got == [b"oldest", b"older", b"newest"]


# --- following ---------------------------------------------------------------------------


def test_follower_returns_only_new_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "p" / "s.log"
    path.parent.mkdir()
    path.write_bytes(b"old 1\nold 2\n")
    f = Follower(ServiceLogFile("p", "s", path))
    assert f.poll() == []
    with open(path, "ab") as fh:
        fh.write(b"new 1\nnew ")
    assert f.poll() == [b"new 1"]
    with open(path, "ab") as fh:
        fh.write(b"2\n")
    assert f.poll() == [b"new 2"]
    f.close()


def test_follower_completes_a_half_written_last_line(tmp_path: Path) -> None:
    path = tmp_path / "s.log"
    path.write_bytes(b"old\nhalf")
    f = Follower(ServiceLogFile("p", "s", path))
    with open(path, "ab") as fh:
        fh.write(b" line\n")
    assert f.poll() == [b"half line"]
    f.close()


def test_follower_survives_rotation(tmp_path: Path) -> None:
    path = tmp_path / "s.log"
    path.write_bytes(b"before\n")
    f = Follower(ServiceLogFile("p", "s", path))
    with open(path, "ab") as fh:
        fh.write(b"last of old file\n")
    os.replace(path, tmp_path / "s.log.1")
    assert f.poll() == [b"last of old file"]
    path.write_bytes(b"first of new file\n")
    assert f.poll() == [b"first of new file"]
    with open(path, "ab") as fh:
        fh.write(b"more\n")
    assert f.poll() == [b"more"]
    f.close()


def test_follower_survives_truncation_and_late_creation(tmp_path: Path) -> None:
    path = tmp_path / "s.log"
    f = Follower(ServiceLogFile("p", "s", path))
    assert f.poll() == []
    path.write_bytes(b"born\n")
    assert f.poll() == [b"born"]
    with open(path, "r+b") as fh:
        fh.truncate(0)
    assert f.poll() == []
    with open(path, "ab") as fh:
        fh.write(b"after truncate\n")
    assert f.poll() == [b"after truncate"]
    f.close()
