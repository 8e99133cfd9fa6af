"""``supervisor.log`` and ``audit.log`` rotate like service logs, and a full disk drops
whole lines (counted, announced once space is back) instead of tearing one or raising.

Real files in ``tmp_path``. "The disk is full" is the kernel's own refusal: a soft
``RLIMIT_FSIZE`` makes a write past that size short (the part that fits) and the next
one fail with ``EFBIG`` — exactly the short-write-then-error pattern of a full disk,
without a mount. ``SIGXFSZ`` is ignored meanwhile so the kernel returns the error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

from systemg.daemon.audit import Audit
from systemg.daemon.journal import Journal
from systemg.daemon.logs import ServiceLog, format_timestamp
from systemg.daemon.rotate import RotatingFile
from systemg.daemon.supervisor_xml import SupervisorConfig
from systemg.manifest.model import DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_FILES, LogSpec

T0 = 1_778_724_313.470911  # 2026-05-14T02:05:13.470911Z
JOURNAL_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (INFO |WARN |ERROR) .*")


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """No file of this process may grow past ``limit`` bytes (until the block ends)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


def journal_entries(path: Path) -> list[str]:
    """Entries of one journal file (a line starting with a stamp begins an entry)."""
    data = path.read_text()
    assert not data or data.endswith("\n"), "a journal file ends inside a line"
    entries: list[str] = []
    for line in data.splitlines():
        if JOURNAL_LINE.fullmatch(line):
            entries.append(line)
        else:
            assert entries, f"continuation line without an entry: {line!r}"
            entries[-1] += "\n" + line
    return entries


def backups(path: Path) -> list[Path]:
    """``path.N`` .. ``path.1`` (oldest first), then ``path``."""
    found = sorted(
        (p for p in path.parent.iterdir() if p.name.startswith(path.name + ".")),
        key=lambda p: -int(p.name.rsplit(".", 1)[1]),
    )
    return [*found, path]


# --- rotation ----------------------------------------------------------------------------


def test_defaults_are_those_of_service_logs(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "supervisor.log")
    audit = Audit(tmp_path / "audit.log")
    for file in (journal._file, audit._file):
        assert file is not None
        assert (file.max_bytes, file.max_files) == (DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_FILES)
        cfg = SupervisorConfig()  # a service log with no caps of its own gets these
        assert (file.max_bytes, file.max_files) == (cfg.log_max_bytes, cfg.log_max_files)
    assert (LogSpec().max_bytes, LogSpec().max_files) == (None, None)
    journal.close()
    audit.close()


def test_journal_rotates_keeping_max_files_and_never_splits_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "supervisor.log"
    journal = Journal(path, max_bytes=2000, max_files=3, clock=lambda: T0)
    sent = []
    for i in range(300):
        message = f"event {i:04d}"
        if i % 25 == 0:  # a multi-line entry (the loop logs tracebacks like this)
            message += "\nTraceback (most recent call last):\n  File x, line 1\nBoom: " + "x" * 80
        journal.info(message)
        sent.append(message)
    journal.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["supervisor.log", "supervisor.log.1", "supervisor.log.2", "supervisor.log.3"]
    kept: list[str] = []
    for file in backups(path):
        assert 0 < file.stat().st_size <= 2000
        kept += journal_entries(file)  # every file starts and ends on an entry boundary
        assert file.stat().st_mode & 0o777 == 0o600
    messages = [e.split(" ", 2)[2].lstrip() for e in kept]
    assert messages == sent[len(sent) - len(messages) :]  # the newest, in order


def test_audit_rotates_keeping_max_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    audit = Audit(path, max_bytes=1500, max_files=2, clock=lambda: T0)
    for pid in range(200):
        audit.refused(pid, 1000, 1000)
    audit.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.log", "audit.log.1", "audit.log.2"]
    pids = []
    for file in backups(path):
        assert 0 < file.stat().st_size <= 1500
        assert file.stat().st_mode & 0o777 == 0o600
        pids += [json.loads(line)["peer"]["pid"] for line in file.read_text().splitlines()]
    assert pids == list(range(200 - len(pids), 200))


def test_journal_appends_to_an_existing_file_and_counts_its_size(tmp_path: Path) -> None:
    path = tmp_path / "supervisor.log"
    path.write_text("x" * 900 + "\n")
    journal = Journal(path, max_bytes=1000, max_files=1, clock=lambda: T0)
    journal.info("y" * 200)  # would pass max_bytes: the old content moves to .1 first
    journal.close()
    assert path.with_name("supervisor.log.1").read_text() == "x" * 900 + "\n"
    assert journal_entries(path)[0].endswith("y" * 200)


def test_journal_follows_bytes_others_append_to_the_same_file(tmp_path: Path) -> None:
    """fd 2 of a daemonized supervisor is supervisor.log too (a traceback lands there):
    the journal rotates on the file's real size, not only on what it wrote itself."""
    path = tmp_path / "supervisor.log"
    journal = Journal(path, max_bytes=1000, max_files=2, clock=lambda: T0)
    journal.info("first")
    with open(path, "a") as other:
        other.write("Traceback (most recent call last):\n" + "t" * 960 + "\n")
    journal.info("second")
    journal.close()
    assert "second" in path.read_text()
    assert "first" in path.with_name("supervisor.log.1").read_text()


def test_journal_points_stderr_at_the_fresh_file_after_rotation(tmp_path: Path) -> None:
    """When fd 2 is supervisor.log (daemonized), a traceback printed after a rotation goes
    to the current file, not to a backup that will be deleted."""
    path = tmp_path / "supervisor.log"
    saved = os.dup(2)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(log_fd, 2)
        journal = Journal(path, max_bytes=300, max_files=2, clock=lambda: T0)
        for i in range(10):
            journal.info(f"event {i} " + "." * 50)
        os.write(2, b"printed by python after rotation\n")
        journal.close()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log_fd)
    assert path.with_name("supervisor.log.1").exists()
    assert "printed by python after rotation" in path.read_text()


def test_journal_leaves_a_foreign_stderr_alone(tmp_path: Path) -> None:
    other = tmp_path / "terminal"
    saved = os.dup(2)
    fd = os.open(other, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(fd, 2)
        journal = Journal(tmp_path / "supervisor.log", max_bytes=200, max_files=1)
        for i in range(10):
            journal.info(f"event {i} " + "." * 50)
        os.write(2, b"still the terminal\n")
        journal.close()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
    assert other.read_text() == "still the terminal\n"


# --- a full disk -------------------------------------------------------------------------


def test_journal_counts_lines_lost_to_a_full_disk_and_reports_them_once(tmp_path: Path) -> None:
    path = tmp_path / "supervisor.log"
    journal = Journal(path, clock=lambda: T0)
    journal.info("before")
    size = path.stat().st_size
    with file_size_limit(size + 100):
        for i in range(10):
            journal.info(f"while full {i} " + "." * 40)  # the first fits, then EFBIG
    assert journal.dropped is not None
    lost = journal.dropped.lines
    assert 0 < lost < 10
    journal.info("after")
    journal.info("later")
    journal.close()
    entries = journal_entries(path)
    messages = [e.split(" ", 2)[2].lstrip() for e in entries]
    kept = [m for m in messages if m.startswith("while full")]
    assert len(kept) + lost == 10  # every entry is either whole in the file or counted
    notice = [m for m in messages if "dropped" in m]
    entry = len(entries[1]) + 1  # every "while full" entry has the same length
    assert notice == [
        f"supervisor.log: {lost} lines ({lost * entry} bytes) dropped: File too large"
    ]
    assert messages[-3:] == [notice[0], "after", "later"]
    assert journal.dropped is None


def test_audit_counts_entries_lost_to_a_full_disk(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    audit = Audit(path, clock=lambda: T0)
    with file_size_limit(150):
        for pid in range(10):
            audit.refused(pid, 0, 0)
    assert audit.dropped is not None
    lost = audit.dropped.lines
    audit.refused(99, 0, 0)
    audit.close()
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["result"] for e in entries][-2:] == ["dropped", "refused"]
    notice = entries[-2]
    assert notice["lines"] == lost
    assert notice["error"] == "File too large"
    assert notice["peer"] is None
    assert notice["verb"] is None
    assert len(entries) - 2 + lost == 10


def test_a_short_write_never_leaves_half_a_line(tmp_path: Path) -> None:
    """One big block hits the limit mid-line: what reached the file is cut back to the
    last whole line; everything after is counted, nothing is torn."""
    path = tmp_path / "f.log"
    file = RotatingFile(path, max_bytes=0, max_files=0)
    file.open()
    block = b"".join(b"line %04d ..............\n" % i for i in range(100))  # 25 bytes/line
    with file_size_limit(1010):  # 40 lines and 10 bytes of the 41st
        assert not file.write(block)
    data = path.read_bytes()
    assert data == block[:1000]
    assert file.dropped is not None
    assert (file.dropped.lines, file.dropped.bytes) == (60, 1500)
    assert file.write_errors == 1
    assert file.write(b"next\n")
    assert path.read_bytes() == block[:1000] + b"next\n"  # no notice was asked for
    file.close()


def test_service_log_notice_counts_exactly_the_missing_lines(tmp_path: Path) -> None:
    """The service log gets one ``[sysg] N lines (B bytes) dropped: <reason>`` line, in the
    stored line format (so ``sysg logs`` shows it like any line), where the gap is; the
    supervisor's journal gets the count as well."""
    path = tmp_path / "p" / "s.log"
    journal_path = tmp_path / "supervisor.log"
    journal = Journal(journal_path, clock=lambda: T0)
    log = ServiceLog(path, LogSpec(), journal=journal)
    # Enough already stored that the journal's few lines stay below the limit.
    log.feed("stdout", b"".join(b"n %d\n" % i for i in range(200)), T0)
    limit = path.stat().st_size + 64
    with file_size_limit(limit):
        for i in range(200, 400, 5):  # five lines a read, as a busy pipe gives them
            out = log.feed("stdout", b"".join(b"n %d\n" % k for k in range(i, i + 5)), T0 + 1)
            assert out.endswith(b"\n")  # followers still get every line
    assert log.write_errors > 0
    assert isinstance(log.last_error, OSError)
    assert log.dropped is not None
    log.feed("stdout", b"n 400\n", T0 + 2)
    log.close()
    lines = path.read_bytes().decode().splitlines()
    numbers = [int(line.rsplit(" ", 1)[1]) for line in lines if " stdout n " in line]
    notices = [line for line in lines if "[sysg]" in line]
    assert len(notices) == 1
    ts, stream, text = notices[0].split(" ", 2)
    assert ts == format_timestamp(T0 + 2).decode()  # the capture time of the lines after it
    assert stream == "stderr"
    match = re.fullmatch(r"\[sysg\] (\d+) lines \((\d+) bytes\) dropped: File too large", text)
    assert match, text
    lost = int(match.group(1))
    assert lines[-2:] == [notices[0], f"{ts} stdout n 400"]  # right where lines are missing
    assert numbers[-2] + lost + 1 == 400  # exactly the missing ones
    assert numbers == [*range(numbers[-2] + 1), 400]
    journal.close()
    events = journal_entries(journal_path)
    assert any("cannot write" in e and str(path) in e for e in events)
    assert any(f"{lost} lines ({match.group(2)} bytes) dropped" in e for e in events)


def test_a_service_log_closed_while_full_still_reports_its_loss(tmp_path: Path) -> None:
    """The service stopped before the disk had room again: the count is not lost with it."""
    path = tmp_path / "p" / "s.log"
    journal_path = tmp_path / "supervisor.log"
    journal = Journal(journal_path, clock=lambda: T0)
    log = ServiceLog(path, LogSpec(), journal=journal)
    log.feed("stdout", b"x" * 3000 + b"\n", T0)
    with file_size_limit(path.stat().st_size + 10):
        log.feed("stdout", b"lost 1\nlost 2\n", T0)
        log.close()
    journal.close()
    events = journal_entries(journal_path)
    assert any("2 lines" in e and "closed before it could be written again" in e for e in events)


def test_a_file_emptied_behind_the_writer_neither_rotates_early_nor_grows_nuls(
    tmp_path: Path,
) -> None:
    # `sysg logs --purge` truncates a service log the supervisor still appends to.
    path = tmp_path / "web.log"
    file = RotatingFile(path, max_bytes=100, max_files=2)
    file.open()
    assert file.write(b"x" * 60 + b"\n")
    os.truncate(path, 0)
    assert file.write(b"y" * 60 + b"\n")  # fits the emptied file: no rotation
    assert not (tmp_path / "web.log.1").exists()
    assert path.read_bytes() == b"y" * 60 + b"\n"
    # A torn write (as after ENOSPC) then a purge: the repair must not refill the file.
    file._torn = True
    os.truncate(path, 0)
    assert file.write(b"z\n")
    assert path.read_bytes() == b"z\n"
    file.close()
