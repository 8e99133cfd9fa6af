"""``parse_datagram``: sd_notify(3) ``KEY=VALUE`` lines → ``NotifyMessage`` (pure), plus the
pure helpers ``socket_path`` and ``environment``."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from systemg.daemon.notify import (
    MAX_DATAGRAM,
    SUN_PATH_MAX,
    NotifyMessage,
    environment,
    parse_datagram,
    socket_path,
)


def test_ready() -> None:
    assert parse_datagram(b"READY=1") == NotifyMessage(ready=True)
    assert parse_datagram(b"READY=1\n") == NotifyMessage(ready=True)


def test_status_keeps_equals_signs_and_utf8() -> None:
    msg = parse_datagram("STATUS=a=b=c, 日本語 ✓".encode())
    assert msg == NotifyMessage(status="a=b=c, 日本語 ✓")


def test_empty_status_clears_and_invalid_utf8_status_is_ignored() -> None:
    assert parse_datagram(b"STATUS=") == NotifyMessage(status="")
    assert parse_datagram(b"STATUS=\xff\xfe") is None
    assert parse_datagram(b"STATUS=\xff\nREADY=1") == NotifyMessage(ready=True)


def test_multiple_lines() -> None:
    msg = parse_datagram(b"READY=1\nSTATUS=serving\nWATCHDOG=1\nERRNO=0\nSTOPPING=1\n")
    assert msg == NotifyMessage(ready=True, status="serving", watchdog=True, errno=0, stopping=True)


def test_first_value_of_a_repeated_key_wins() -> None:
    assert parse_datagram(b"STATUS=one\nSTATUS=two") == NotifyMessage(status="one")


def test_unknown_keys_are_ignored() -> None:
    assert parse_datagram(b"FDSTORE=1\nX_MINE=2\nREADY=1") == NotifyMessage(ready=True)
    assert parse_datagram(b"FDSTORE=1\nFDNAME=x") is None
    assert parse_datagram(b"BARRIER=1") is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n\n",
        b"garbage",
        b"READY",
        b"READY=0",
        b"READY=yes",
        b"READY=1\0",
        b"\0READY=1",
        b"\xff\xfe\xfd",
        b"WATCHDOG=2",
        b"MAINPID=abc",
        b"MAINPID=0",
        b"MAINPID=-5",
        b"MAINPID=+5",
        b"MAINPID= 5",
        b"MAINPID=1_000",
        "MAINPID=٣".encode(),  # an Arabic-Indic digit: int() would take it
        b"MAINPID=99999999999",
        b"EXTEND_TIMEOUT_USEC=-1",
        b"EXTEND_TIMEOUT_USEC=18446744073709551616",
        b"ERRNO=-1",
        b"MONOTONIC_USEC=123",  # only read with RELOADING=1
    ],
)
def test_garbage_honours_nothing(data: bytes) -> None:
    assert parse_datagram(data) is None


def test_oversized_is_refused_whole() -> None:
    pad = b"X_PAD=" + b"x" * (MAX_DATAGRAM - len(b"READY=1\nX_PAD="))
    exact = b"READY=1\n" + pad
    assert len(exact) == MAX_DATAGRAM
    assert parse_datagram(exact) == NotifyMessage(ready=True)
    assert parse_datagram(exact + b"x") is None
    assert parse_datagram(b"READY=1\n" + b"x" * 5000) is None


def test_mainpid() -> None:
    assert parse_datagram(b"MAINPID=4242") == NotifyMessage(mainpid=4242)
    assert parse_datagram(b"MAINPID=4242\nMAINPID=1") == NotifyMessage(mainpid=4242)


def test_extend_timeout_usec() -> None:
    assert parse_datagram(b"EXTEND_TIMEOUT_USEC=5000000") == NotifyMessage(
        extend_timeout_usec=5_000_000
    )
    top = 2**64 - 1
    assert parse_datagram(f"EXTEND_TIMEOUT_USEC={top}".encode()) == NotifyMessage(
        extend_timeout_usec=top
    )


def test_watchdog_ping_and_trigger() -> None:
    assert parse_datagram(b"WATCHDOG=1") == NotifyMessage(watchdog=True)
    assert parse_datagram(b"WATCHDOG=trigger") == NotifyMessage(watchdog_trigger=True)
    both = parse_datagram(b"WATCHDOG=1\nWATCHDOG=trigger")
    assert both == NotifyMessage(watchdog=True, watchdog_trigger=True)


def test_reloading_with_monotonic_usec() -> None:
    msg = parse_datagram(b"RELOADING=1\nMONOTONIC_USEC=123456789")
    assert msg == NotifyMessage(reloading=True, monotonic_usec=123456789)
    assert parse_datagram(b"RELOADING=1") == NotifyMessage(reloading=True)


def test_errno() -> None:
    assert parse_datagram(b"ERRNO=2") == NotifyMessage(errno=2)


def test_sender_pid_is_not_parsed_from_the_payload() -> None:
    assert parse_datagram(b"READY=1\nsender_pid=7") == NotifyMessage(ready=True)


@given(st.binary(max_size=MAX_DATAGRAM + 16))
def test_never_raises(data: bytes) -> None:
    msg = parse_datagram(data)
    assert msg is None or (msg != NotifyMessage() and msg.sender_pid == 0)


def test_socket_path_is_short_stable_and_distinct() -> None:
    a = socket_path(Path("/var/lib/systemg"), "p1", "web")
    assert a == socket_path(Path("/var/lib/systemg"), "p1", "web")
    assert a.parent == Path("/var/lib/systemg/notify")
    assert len(a.name) == len("0123456789abcdef.sock")
    assert a != socket_path(Path("/var/lib/systemg"), "p1", "api")
    assert a != socket_path(Path("/var/lib/systemg"), "p2", "web")


def test_socket_path_refuses_long_or_relative_state_dirs() -> None:
    longest = Path("/" + "d" * (SUN_PATH_MAX - len("/notify/0123456789abcdef.sock") - 1))
    assert len(str(socket_path(longest, "p", "s"))) == SUN_PATH_MAX
    with pytest.raises(ValueError, match="longer than"):
        socket_path(Path(str(longest) + "d"), "p", "s")
    with pytest.raises(ValueError, match="absolute"):
        socket_path(Path("state"), "p", "s")


def test_environment() -> None:
    path = Path("/var/lib/systemg/notify/x.sock")
    assert environment(path, None) == (("NOTIFY_SOCKET", str(path)),)
    assert environment(path, 30_000_000) == (
        ("NOTIFY_SOCKET", str(path)),
        ("WATCHDOG_USEC", "30000000"),
    )  # WATCHDOG_PID is set by the child (plan.watchdog_pid): only it knows its pid
    with pytest.raises(ValueError, match="positive"):
        environment(path, 0)
