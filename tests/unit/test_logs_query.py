"""``cli/logquery.py``: the times, ages, sizes and patterns ``sysg logs`` accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from systemg.cli.logquery import (
    Query,
    compile_grep,
    key_of,
    parse_age,
    parse_size,
    parse_time,
)
from systemg.errors import Code, SysgError

NOW = datetime(2026, 5, 14, 12, 30, 45, 123456, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("2026-05-14", "2026-05-14T00:00:00.000000Z"),
        ("2026-05-14 02:05", "2026-05-14T02:05:00.000000Z"),
        ("2026-05-14 02:05:13", "2026-05-14T02:05:13.000000Z"),
        ("2026-05-14T02:05:13.47Z", "2026-05-14T02:05:13.470000Z"),
        ("2026-05-14t02:05:13z", "2026-05-14T02:05:13.000000Z"),
        ("2026-05-14T04:05:13+02:00", "2026-05-14T02:05:13.000000Z"),
        ("2026-05-13T22:05:13-04:00", "2026-05-14T02:05:13.000000Z"),
        ("30m", "2026-05-14T12:00:45.123456Z"),
        ("2h", "2026-05-14T10:30:45.123456Z"),
        ("7d", "2026-05-07T12:30:45.123456Z"),
        ("1w", "2026-05-07T12:30:45.123456Z"),
        ("90s", "2026-05-14T12:29:15.123456Z"),
        ("1.5h", "2026-05-14T11:00:45.123456Z"),
        ("now", "2026-05-14T12:30:45.123456Z"),
        ("today", "2026-05-14T00:00:00.000000Z"),
        ("yesterday", "2026-05-13T00:00:00.000000Z"),
        (" Today ", "2026-05-14T00:00:00.000000Z"),
    ],
)
def test_accepted_times(text: str, key: str) -> None:
    assert parse_time(text, NOW) == key


@pytest.mark.parametrize(
    "text", ["", "soon", "2026-13-40", "2026-05-14 25:00", "14/05/2026", "5x", "-2h", "20260514"]
)
def test_a_bad_time_is_sg0210_naming_the_flag_and_the_forms(text: str) -> None:
    with pytest.raises(SysgError) as info:
        parse_time(text, NOW, flag="--until")
    diag = info.value.diagnostics[0]
    assert diag.code is Code.INVALID_VALUE
    assert diag.path == "--until"
    assert "--until" in diag.message
    assert "RFC 3339" in diag.hint
    assert "30m" in diag.hint


moments = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9998, 12, 31),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=7))]
    ),
)


@given(moments)
def test_an_rfc3339_time_is_the_same_instant_as_a_key(moment: datetime) -> None:
    text = moment.isoformat(timespec="microseconds")
    key = parse_time(text, NOW)
    assert key == key_of(moment)
    assert len(key) == 27
    # The key is the stored format: it parses back to the same instant.
    back = datetime.strptime(key, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert back == moment


@given(moments, moments)
def test_keys_order_as_their_instants(a: datetime, b: datetime) -> None:
    assert (key_of(a) < key_of(b)) == (a < b)


def test_an_age_before_year_one_means_since_the_beginning() -> None:
    assert parse_time("999999999w", NOW) == "0001-01-01T00:00:00.000000Z"


@given(st.integers(min_value=0, max_value=10**5), st.sampled_from(["s", "m", "h", "d", "w"]))
def test_relative_ages_count_back_from_now(amount: int, unit: str) -> None:
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_age(f"{amount}{unit}") == seconds
    expected = datetime.fromtimestamp(NOW, UTC) - timedelta(seconds=seconds)
    assert parse_time(f"{amount}{unit}", NOW) == key_of(expected)


def test_sizes_are_1024_based() -> None:
    assert parse_size("500") == 500
    assert parse_size("10k") == 10 * 1024
    assert parse_size("1.5MB") == int(1.5 * 1024**2)
    assert parse_size("2g") == 2 * 1024**3
    assert parse_size("1T") == 1024**4
    with pytest.raises(SysgError) as info:
        parse_size("lots")
    assert info.value.code is Code.INVALID_VALUE
    assert info.value.diagnostics[0].path == "--max-size"
    with pytest.raises(SysgError) as info:
        parse_age("7 days")
    assert info.value.diagnostics[0].path == "--max-age"


def test_a_bad_regex_is_sg0210_with_the_reason_and_the_fix() -> None:
    with pytest.raises(SysgError) as info:
        compile_grep("GET (/api")
    diag = info.value.diagnostics[0]
    assert diag.code is Code.INVALID_VALUE
    assert diag.path == "--grep"
    assert "missing )" in diag.message
    assert "backslash" in diag.hint
    assert compile_grep(r"err(or)?\b").search("an error here")


def test_query_keeps_by_range_stream_and_pattern() -> None:
    q = Query(
        since="2026-05-14T02:00:00.000000Z",
        until="2026-05-14T03:00:00.000000Z",
        grep=compile_grep("^GET"),
        streams=frozenset({"stdout"}),
    )
    assert q.keeps("2026-05-14T02:00:00.000000Z", "stdout", b"GET /")
    assert q.keeps("2026-05-14T03:00:00.000000Z", "stdout", b"GET /")  # until is inclusive
    assert not q.keeps("2026-05-14T01:59:59.999999Z", "stdout", b"GET /")
    assert not q.keeps("2026-05-14T03:00:00.000001Z", "stdout", b"GET /")
    assert not q.keeps("2026-05-14T02:30:00.000000Z", "stderr", b"GET /")
    assert not q.keeps("2026-05-14T02:30:00.000000Z", "stdout", b"POST /")
    # A line not in the stored format cannot be placed in time: the range keeps it; it has
    # no stream, so -k drops it.
    assert Query(since=q.since, until=q.until).keeps("", "", b"unparsable")
    assert not q.keeps("", "", b"GET unparsable")
    assert Query().keeps("", "", b"anything")
    assert not Query().ranged
    assert q.ranged
