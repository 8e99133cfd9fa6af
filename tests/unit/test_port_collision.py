"""SG0105: a service that exits at start is "port in use" only when the output of *this*
run says so (docs/commands.md, SG0105: older log lines must not turn a crash into SG0105)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from systemg.daemon.logs import log_lines_since, port_collision


def _ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize(
    "line",
    [
        "OSError: [Errno 98] Address already in use",
        "Error: listen EADDRINUSE: address already in use :::8080",  # node
        'Os { code: 98, kind: AddrInUse, message: "Address in use" } (os error 98)',  # rust
        "listen tcp :8080: bind: address already in use",  # go
        "nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address in use)",
        "socket.error: errno=98",
    ],
)
def test_bind_failures_in_the_words_of_common_runtimes(line: str) -> None:
    assert port_collision([line])


@pytest.mark.parametrize(
    "line", ["listening on :8080", "error 980: disk full", "ValueError: bad config", ""]
)
def test_other_failures_are_not_port_collisions(line: str) -> None:
    assert not port_collision([line])


def test_only_lines_captured_since_the_generation_started_count(tmp_path: Path) -> None:
    log = tmp_path / "web.log"
    old, new = 1_800_000_000.0, 1_800_000_100.0
    log.write_text(
        f"{_ts(old)} stderr OSError: [Errno 98] Address already in use\n"
        f"{_ts(new + 0.01)} stderr ValueError: bad config\n"
    )
    since_new = log_lines_since(log, new)
    assert since_new == [f"{_ts(new + 0.01)} stderr ValueError: bad config"]
    assert not port_collision(since_new)
    assert port_collision(log_lines_since(log, old))
    assert log_lines_since(log, None) == []
    assert log_lines_since(tmp_path / "missing.log", new) == []
