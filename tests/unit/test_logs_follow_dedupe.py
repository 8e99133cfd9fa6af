"""`logs -f` through the supervisor: the stream repeats nothing the tail showed and skips
nothing after it, even when lines share one capture time (one read, one timestamp)."""

from __future__ import annotations

import io
from pathlib import Path

from systemg.cli.logfiles import Entry, LogLine, ServiceLogFile
from systemg.cli.logfollow import Printer
from systemg.cli.logfollow import follow_supervisor as _follow_supervisor
from systemg.cli.logfollow import seen as _seen

LOG = ServiceLogFile("p", "tick", Path("/nonexistent"))
T1 = "2026-12-02T05:00:00.000001Z"
T2 = "2026-12-02T05:00:00.000002Z"


def raw(ts: str, text: str) -> bytes:
    return f"{ts} stdout {text}".encode()


def follow(tail: list[bytes], stream: list[bytes], before: str = "") -> list[str]:
    entries = [Entry(LOG, LogLine.parse(r)) for r in tail]
    out = io.BytesIO()
    printer = Printer(out, json_lines=False, label="")
    event = {"kind": "log", "project": "p", "service": "tick", "data": b"\n".join(stream).decode()}
    _follow_supervisor(iter([event]), printer=printer, seen=_seen(entries, {LOG.label: before}))
    return [line.rsplit(" ", 1)[1] for line in out.getvalue().decode().splitlines()]


def test_a_line_the_tail_caught_mid_read_is_not_repeated_and_its_sibling_not_lost() -> None:
    # The tail saw 32 and 33; 33 and 34 were written by one read (same time T2), and the
    # tail was read while only 33 had landed.
    tail = [raw(T1, "tick 32"), raw(T2, "tick 33")]
    stream = [raw(T2, "tick 33"), raw(T2, "tick 34"), raw(T2, "tick 35")]
    assert follow(tail, stream) == ["34", "35"]


def test_without_a_tail_only_lines_newer_than_the_file_are_shown() -> None:
    stream = [raw(T1, "tick 1"), raw(T2, "tick 2")]
    assert follow([], stream, before=T1) == ["2"]
