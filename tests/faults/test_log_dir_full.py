"""Fault case (issue 9): the log disk fills up. Nothing may wedge the supervisor.

The log directory (``SYSTEMG_LOG_DIR``) is a real 256 KiB tmpfs; the state directory
stays on the ordinary disk. A ``flood`` service prints a 30 000-line burst (about 3.6 MB,
far more than both the tmpfs and its 1 MiB pipe) and then ticks on, beside two ticker
bystanders and an idle ``probe``. While the disk is full:

- the flood's burst completes — so the supervisor kept draining its pipe and the service
  was never blocked — and every service keeps its pid;
- the supervisor is alive and ``status`` answers; stopping and starting ``probe`` makes
  journal and audit lines, which are lost to the full disk (until their files stop
  growing).

Then the tmpfs is remounted bigger, and:

- new lines are written again; every gap in a service's numbered lines is announced by
  exactly one ``[sysg] N lines (B bytes) dropped: No space left on device`` line, right
  where the gap is, with N the exact number of missing lines, and ``sysg logs`` shows it;
- no file holds a torn line;
- ``supervisor.log`` reports the flood's count, and the journal's and audit log's own
  losses are reported with a count;
- ``stop --supervisor`` is clean (harness invariants).

Root only (``mount``): ``pytest.mark.privileged``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from systemg.cli.logfiles import LogLine
from tests.faults.harness import Bystanders, assert_clean_shutdown, cgroup_dirs, manifest, ticker
from tests.support.procscan import new_marker
from tests.support.runtime import Runtime, pid_alive, pid_of, wait_for

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

BURST = 30_000
PAD = "x" * 100
STORED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (stdout|stderr) (.*)")
NUMBERED = re.compile(r"(\w+) (\d+)(?: x+)?")
NOTICE = re.compile(r"\[sysg\] (\d+) lines \((\d+) bytes\) dropped: No space left on device")
JOURNAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (INFO |WARN |ERROR) .*")


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def flood(marker: str, done: Path) -> str:
    line = f"echo flood $i {PAD}"
    return (
        "  flood:\n"
        f'    command: "i=0; while [ $i -lt {BURST} ]; do i=$((i+1)); {line}; done; '
        f'touch {done}; while :; do i=$((i+1)); {line}; sleep 0.02; done; : {marker}"\n'
    )


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def journal_and_audit_size(rt: Runtime) -> tuple[int, int]:
    return (rt.logs / "supervisor.log").stat().st_size, (rt.logs / "audit.log").stat().st_size


def cycle_probe(rt: Runtime) -> None:
    """Journal lines (transitions) and audit lines (requests), no other service touched."""
    assert rt.sysg("stop", "-s", "full/probe").returncode == 0
    assert rt.sysg("start", "-s", "full/probe", "--daemonize").returncode == 0


def stored_lines(log: Path) -> list[tuple[str, str]]:
    """(stream, text) of every line of ``log`` (backups first); each must be well-formed."""
    out: list[tuple[str, str]] = []
    files = sorted(log.parent.glob(log.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    for path in [*files, log]:
        data = path.read_text(errors="replace")
        assert not data or data.endswith("\n"), f"{path} ends inside a line"
        for line in data.splitlines():
            m = STORED.fullmatch(line)
            assert m, f"torn or malformed line in {path}: {line[:120]!r}"
            out.append((m.group(1), m.group(2)))
    return out


def gaps_and_notices(name: str, lines: list[tuple[str, str]]) -> tuple[list[int], list[int]]:
    """Check that every gap in ``name``'s numbers is announced by exactly one notice right
    before it whose count is the size of the gap, and no notice is without its gap.
    Returns (numbers, notice counts)."""
    numbers: list[int] = []
    counts: list[int] = []
    announced: int | None = None
    for stream, text in lines:
        notice = NOTICE.fullmatch(text)
        if notice:
            assert stream == "stderr"
            assert announced is None, f"{name}: two notices in a row"
            announced = int(notice.group(1))
            counts.append(announced)
            continue
        m = NUMBERED.fullmatch(text)
        assert m, f"{name}: unexpected line {text[:80]!r}"
        assert m.group(1) == name
        n = int(m.group(2))
        expected = (numbers[-1] if numbers else 0) + 1 + (announced or 0)
        if numbers or announced:
            assert n == expected, f"{name}: {n} after {numbers[-1:]}, notice said {announced}"
        numbers.append(n)
        announced = None
    return numbers, counts


def notice_count(text: str) -> int:
    match = NOTICE.fullmatch(text)
    assert match, text
    return int(match.group(1))


def test_a_full_log_disk_drops_counted_lines_and_wedges_nothing() -> None:
    rt = Runtime()
    try:
        with tmpfs(rt.logs, "256k"):
            try:
                full_disk_case(rt)
            finally:
                rt.close()  # the supervisor must let go of the tmpfs before the umount
    finally:
        shutil.rmtree(rt.root, ignore_errors=True)


def full_disk_case(rt: Runtime) -> None:
    m = new_marker()
    done = rt.work / "burst-done"
    before = cgroup_dirs()
    services = (
        ticker("tick_a", m),
        ticker("tick_b", m),
        flood(m, done),
        f'  probe:\n    command: "exec sleep 1000.{m}"\n',
    )
    cfg = rt.write("full.yaml", manifest("full", *services))
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    keep = Bystanders(rt, "full", ("tick_a", "tick_b", "flood"))
    keep.record()
    supervisor = rt.supervisor_pid()
    assert supervisor is not None

    # --- the disk is full ---------------------------------------------------------
    # The burst is far bigger than the pipe: it only completes if it is drained.
    wait_for(done.exists, timeout=60, what="the flood's burst to complete")
    assert free_bytes(rt.logs) < 16 * 1024
    assert pid_alive(supervisor)
    for name, pid in keep.pids.items():
        unit = rt.unit(name)  # status answers
        assert (unit["phase"], pid_of(unit)) == ("running", pid), unit
    # Journal and audit lines while full, until neither file can grow any more.
    sizes = journal_and_audit_size(rt)
    stuck = 0
    for _ in range(40):
        cycle_probe(rt)
        now = journal_and_audit_size(rt)
        stuck = stuck + 1 if now == sizes else 0
        sizes = now
        if stuck >= 2:
            break
    assert stuck >= 2, "supervisor.log or audit.log kept growing on a full disk"
    assert rt.unit("probe")["phase"] == "running"

    # --- space is back -------------------------------------------------------------
    subprocess.run(["mount", "-o", "remount,size=64m", str(rt.logs)], check=True)
    cycle_probe(rt)  # the journal's and the audit log's next lines after the gap
    log = {name: rt.logs / "full" / f"{name}.log" for name in keep.names}

    def resumed(name: str) -> bool:
        numbers, counts = gaps_and_notices(name, stored_lines(log[name]))
        return bool(counts) and len(numbers) > 0 and numbers[-1] > BURST + 50

    wait_for(lambda: resumed("flood"), timeout=30, what="the flood to log again")
    flood_numbers, flood_counts = gaps_and_notices("flood", stored_lines(log["flood"]))
    assert flood_numbers[-1] > BURST  # it kept running and writing all along
    for name in ("tick_a", "tick_b"):
        size = log[name].stat().st_size
        wait_for(lambda n=name, s=size: log[n].stat().st_size > s + 200, what=name)
        gaps_and_notices(name, stored_lines(log[name]))  # every gap announced

    # `sysg logs` parses the notice as an ordinary stored line (stream stderr).
    shown = rt.sysg("logs", "-s", "full/flood", "-n", "100000", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    notices = [
        e for e in map(json.loads, shown.stdout.splitlines()) if e["line"].startswith("[sysg]")
    ]
    assert [notice_count(e["line"]) for e in notices] == flood_counts
    assert {e["stream"] for e in notices} == {"stderr"}
    parsed = LogLine.parse(b"2026-05-14T02:05:13.470911Z stderr " + notices[0]["line"].encode())
    assert parsed.stream == "stderr"

    # supervisor.log: whole lines, the flood's count, and its own losses counted.
    journal = (rt.logs / "supervisor.log").read_text()
    assert journal.endswith("\n")
    for line in journal.splitlines():
        assert JOURNAL.fullmatch(line) or line.startswith((" ", "Traceback")), line
    reported = [
        int(x)
        for x in re.findall(
            r"flood\.log: (\d+) lines \(\d+ bytes\) dropped while it could not be written "
            r"\(No space left on device\)",
            journal,
        )
    ]
    assert reported, journal[-3000:]
    assert set(reported) <= set(flood_counts)
    assert re.search(
        r"WARN  supervisor\.log: [1-9]\d* lines \(\d+ bytes\) dropped: "
        r"No space left on device",
        journal,
    ), journal[-3000:]
    audit = [json.loads(x) for x in (rt.logs / "audit.log").read_text().splitlines()]
    dropped = [e for e in audit if e["result"] == "dropped"]
    assert dropped
    assert dropped[0]["lines"] > 0
    assert dropped[0]["error"] == "No space left on device"

    for name, pid in keep.pids.items():
        assert pid_of(rt.unit(name)) == pid, name
    assert rt.supervisor_pid() == supervisor
    assert_clean_shutdown(rt, m, before)
