"""The scalar grammars of values.py, with round-trips through their canonical text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from systemg.manifest.model import UNLIMITED, CpuMax, ListenKind
from systemg.manifest.values import (
    CAPABILITIES,
    GrammarError,
    check_name,
    did_you_mean,
    format_cpu_list,
    format_duration,
    format_size,
    parse_capability,
    parse_cpu_list,
    parse_cpu_max,
    parse_duration,
    parse_listen,
    parse_nice,
    parse_size,
)

# --- durations


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),
        ("30s", 30_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("10", 10_000),
        (10, 10_000),
        (0, 0),
        ("0", 0),
        (" 2s ", 2000),
        ("+3s", 3000),
    ],
)
def test_duration_accepts(text: object, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    ("text", "hint_part"),
    [
        ("1.5s", "1500ms"),
        (1.5, "1500ms"),
        ("-1s", "500ms"),
        (-3, "500ms"),
        ("5 minutes", "30s"),
        ("1d", "1h"),
        (True, "30s"),
        (None, "30s"),
        ("0.0001s", "smaller unit"),
    ],
)
def test_duration_refuses(text: object, hint_part: str) -> None:
    with pytest.raises(GrammarError) as info:
        parse_duration(text)
    assert hint_part in info.value.hint


@given(st.integers(min_value=0, max_value=10**12))
def test_duration_round_trip(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms


def test_duration_canonical_form() -> None:
    assert [format_duration(x) for x in (0, 1500, 2000, 120_000, 7_200_000)] == [
        "0ms",
        "1500ms",
        "2s",
        "2m",
        "2h",
    ]


# --- sizes


@pytest.mark.parametrize(
    ("text", "n"),
    [
        (65536, 65536),
        ("64K", 65536),
        ("64k", 65536),
        ("1M", 2**20),
        ("2G", 2**31),
        ("1T", 2**40),
        ("1_000_000", 1_000_000),
        ("512MB", 2**29),
        ("1GiB", 2**30),
        ("10B", 10),
        ("4 K", 4096),
    ],
)
def test_size_accepts(text: object, n: int) -> None:
    assert parse_size(text) == n


def test_size_unlimited_only_where_allowed() -> None:
    assert parse_size("Unlimited", allow_unlimited=True) == UNLIMITED
    with pytest.raises(GrammarError):
        parse_size("unlimited")


@pytest.mark.parametrize("text", ["1.5G", 1.5, "-1K", -1, "lots", "1E", True, None, "1__0"])
def test_size_refuses(text: object) -> None:
    with pytest.raises(GrammarError):
        parse_size(text)


def test_size_fraction_hint_suggests_smaller_unit() -> None:
    with pytest.raises(GrammarError) as info:
        parse_size("1.5G")
    assert "1536M" in info.value.hint


@given(st.integers(min_value=0, max_value=2**62))
def test_size_round_trip(n: int) -> None:
    assert parse_size(format_size(n)) == n


# --- cpu lists, nice


def test_cpu_list_forms() -> None:
    assert parse_cpu_list([0, 2]) == (0, 2)
    assert parse_cpu_list("0-3,8") == (0, 1, 2, 3, 8)
    assert parse_cpu_list("5") == (5,)


@pytest.mark.parametrize("value", [[], [1, 1], [-1], ["a"], [True], "3-1", "x", 5, [99999]])
def test_cpu_list_refuses(value: object) -> None:
    with pytest.raises(GrammarError):
        parse_cpu_list(value)


@given(st.sets(st.integers(min_value=0, max_value=255), min_size=1))
def test_cpu_list_round_trip(cpus: set[int]) -> None:
    assert parse_cpu_list(format_cpu_list(cpus)) == tuple(sorted(cpus))


@pytest.mark.parametrize("value", [-20, 0, 19])
def test_nice_range(value: int) -> None:
    assert parse_nice(value) == value


@pytest.mark.parametrize("value", [-21, 20, 40, "5", True, 1.0])
def test_nice_refuses(value: object) -> None:
    with pytest.raises(GrammarError):
        parse_nice(value)


# --- cpu.max


def test_cpu_max_forms() -> None:
    assert parse_cpu_max("max") == CpuMax(None)
    assert parse_cpu_max("50000") == CpuMax(50_000)
    assert parse_cpu_max(50000) == CpuMax(50_000)
    assert parse_cpu_max("200000 100000") == CpuMax(200_000, 100_000)
    assert parse_cpu_max("max 50000") == CpuMax(None, 50_000)


@pytest.mark.parametrize("value", ["2 CPUs", "", "1 2 3", "10", "50000 10", "50000 2000000", "-1"])
def test_cpu_max_refuses(value: str) -> None:
    with pytest.raises(GrammarError):
        parse_cpu_max(value)


@given(
    st.one_of(st.none(), st.integers(min_value=1000, max_value=10**9)),
    st.integers(min_value=1000, max_value=1_000_000),
)
def test_cpu_max_round_trip(quota: int | None, period: int) -> None:
    value = CpuMax(quota, period)
    assert parse_cpu_max(value.render()) == value


# --- capabilities


def test_capability_table_is_complete() -> None:
    assert len(CAPABILITIES) == 41
    assert sorted(CAPABILITIES.values()) == list(range(41))
    assert CAPABILITIES["CAP_NET_BIND_SERVICE"] == 10
    assert CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40


@pytest.mark.parametrize(
    "text", ["net_bind_service", "CAP_NET_BIND_SERVICE", "Cap_Net_Bind_Service"]
)
def test_capability_normalised(text: str) -> None:
    assert parse_capability(text) == "CAP_NET_BIND_SERVICE"


def test_capability_did_you_mean() -> None:
    with pytest.raises(GrammarError) as info:
        parse_capability("NET_BIND")
    assert "CAP_NET_BIND_SERVICE" in info.value.hint
    with pytest.raises(GrammarError) as info:
        parse_capability("SYS_ADMN")
    assert "CAP_SYS_ADMIN" in info.value.hint


@given(st.sampled_from(sorted(CAPABILITIES)), st.booleans(), st.booleans())
def test_capability_round_trip(name: str, strip_prefix: bool, lower: bool) -> None:
    text = name.removeprefix("CAP_") if strip_prefix else name
    assert parse_capability(text.lower() if lower else text) == name


# --- listen


def test_listen_forms() -> None:
    tcp = parse_listen("0.0.0.0:80")
    assert (tcp.kind, tcp.host, tcp.port) == (ListenKind.TCP, "0.0.0.0", 80)
    v6 = parse_listen("[::1]:8080")
    assert (v6.kind, v6.host, v6.port) == (ListenKind.TCP, "::1", 8080)
    assert parse_listen("localhost:1").host == "localhost"
    unix = parse_listen("unix:/run/app.sock")
    assert (unix.kind, unix.path) == (ListenKind.UNIX, "/run/app.sock")
    fd = parse_listen("fd:web")
    assert (fd.kind, fd.fd_name) == (ListenKind.FD, "web")
    assert parse_listen("fd:3").fd_name == "3"


@pytest.mark.parametrize(
    "text",
    [
        "80",
        ":80",
        "host:0",
        "host:65536",
        "host:http",
        "::1:80",
        "[zz]:80",
        "[::1]80",
        "unix:relative.sock",
        "unix:/" + "x" * 200,
        "fd:",
        "fd:a b",
        "bad host:80",
        8080,
    ],
)
def test_listen_refuses(text: object) -> None:
    with pytest.raises(GrammarError):
        parse_listen(text)


@given(st.integers(min_value=1, max_value=65535))
def test_listen_port_round_trip(port: int) -> None:
    assert parse_listen(f"127.0.0.1:{port}").port == port


# --- names, suggestions


@pytest.mark.parametrize("name", ["web", "api-v2", "a.b_c", "A1"])
def test_names_accepted(name: str) -> None:
    assert check_name(name, "service name") == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "my api", "x" * 256, "é"])
def test_names_refused(name: str) -> None:
    with pytest.raises(GrammarError):
        check_name(name, "service name")


def test_did_you_mean() -> None:
    assert did_you_mean("nofle", ["nofile", "nproc"]) == "nofile"
    assert did_you_mean("depend_on", ["depends_on", "env"]) == "depends_on"
    assert did_you_mean("zzz", ["nofile"]) is None
