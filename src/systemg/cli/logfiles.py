"""Reading service log files from disk, for ``sysg logs`` (no supervisor needed).

Layout: ``<log_dir>/<project>/<service>.log`` (active) and ``<service>.log.1`` (newest
backup) .. ``.log.N``. Each stored line is ``<ts> <stream> <text>\\n`` with ``ts`` a
fixed-width UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, so timestamps order lexicographically.
This module owns parsing that format on the CLI side (the writer is ``daemon/logs.py``,
which the CLI must not import).

Invariants: reading never loads more of a file than the lines asked for plus one block
(``tail`` reads backwards in 64 KiB blocks); a line that does not parse is kept verbatim
(empty ``ts``/``stream``) rather than dropped; ``Follower`` only ever returns complete
lines, survives rotation (new inode) and truncation (size shrinks), and never returns a
line twice.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from systemg.errors import Code, SysgError
from systemg.layout import LOG_STREAMS

BLOCK = 64 * 1024
_TS = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_TS_LEN = 27
STREAM_LABELS = LOG_STREAMS  # systemg.layout: what the daemon writes
_STREAMS = tuple(label.encode() for label in STREAM_LABELS)


@dataclass(frozen=True, slots=True)
class ServiceLogFile:
    """The active log file of one service."""

    project: str
    service: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.project}/{self.service}"

    def backups(self) -> Iterator[Path]:
        """Existing rotated backups, newest (``.1``) first, stopping at the first gap."""
        k = 1
        while True:
            candidate = self.path.with_name(f"{self.path.name}.{k}")
            if not candidate.exists():
                return
            yield candidate
            k += 1


@dataclass(frozen=True, slots=True)
class LogLine:
    """One stored line. ``raw`` is the line as stored, without its newline."""

    ts: str
    stream: str
    text: bytes
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> LogLine:
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        ts = raw[:_TS_LEN]
        rest = raw[_TS_LEN + 1 :]
        stream, _, text = rest.partition(b" ")
        if raw[_TS_LEN : _TS_LEN + 1] == b" " and _TS.fullmatch(ts) and stream in _STREAMS:
            return cls(ts.decode(), stream.decode(), text, raw)
        return cls("", "", raw, raw)


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored line and the service it belongs to."""

    log: ServiceLogFile
    line: LogLine


# --- finding files -----------------------------------------------------------------------


def _valid_segment(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def discover(log_dir: Path) -> list[ServiceLogFile]:
    """Every ``<project>/<service>.log`` under ``log_dir``, sorted by project then service."""
    found: list[ServiceLogFile] = []
    try:
        projects = sorted(p for p in log_dir.iterdir() if p.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    for project in projects:
        for path in sorted(project.glob("*.log")):
            if path.is_file():
                found.append(ServiceLogFile(project.name, path.name[: -len(".log")], path))
    return found


def parse_selector(project: str | None, service: str | None) -> tuple[str | None, str | None]:
    """``-s proj/svc`` ≡ ``-p proj -s svc``; both given must agree (SG0201)."""
    if service and "/" in service:
        proj, _, svc = service.partition("/")
        if project and project != proj:
            raise SysgError.of(
                Code.SELECTOR_MISMATCH,
                f"-p {project} conflicts with -s {service}",
                hint="give the project once: `-s project/service` or `-p project -s service`",
            )
        project, service = proj, svc
    for value in (project, service):
        if value is not None and not _valid_segment(value):
            raise SysgError.of(
                Code.INVALID_NAME,
                f"{value!r} is not a valid project or service name",
                hint="names are one path segment: no '/', not '.' or '..'",
            )
    return project or None, service or None


def select(
    log_dir: Path, project: str | None, service: str | None, *, allow_missing: bool = False
) -> list[ServiceLogFile]:
    """The log files a selector names.

    Nothing → every service (SG0019 if there are none); ``project`` → its services;
    ``project`` + ``service`` → that file; bare ``service`` → the unique
    ``*/service.log`` (SG0006 listing the matches when several, SG0021 when none). Naming
    something else that has no file is SG0202, unless ``allow_missing`` (a live supervisor
    may still produce it), which returns what exists (possibly nothing) instead.
    """
    if project and service:
        log = ServiceLogFile(project, service, log_dir / project / f"{service}.log")
        if not allow_missing and not log.path.is_file():
            raise _not_found(f"no log file for {log.label}", log_dir)
        return [log]
    every = discover(log_dir)
    if project:
        chosen = [f for f in every if f.project == project]
        if not chosen and not allow_missing:
            raise _not_found(f"no log files for project {project!r}", log_dir)
        return chosen
    if service:
        chosen = [f for f in every if f.service == service]
        if len(chosen) > 1:
            names = ", ".join(f.label for f in chosen)
            raise SysgError.of(
                Code.AMBIGUOUS_SERVICE,
                f"service {service!r} exists in several projects: {names}",
                hint=f"name one: `sysg logs -s {chosen[0].label}`",
            )
        if not chosen and not allow_missing:
            raise SysgError.of(
                Code.LOGS_SERVICE_NOT_FOUND,
                f"no service named {service!r} has logs under {log_dir}",
                hint="check the name with `sysg status`; a service of a project can be named "
                f"as `-p PROJECT -s {service}`",
            )
        return chosen
    if not every and not allow_missing:
        raise SysgError.of(
            Code.LOGS_NO_TARGET,
            f"there are no service logs under {log_dir}",
            hint="start something first: `sysg start --daemonize`",
        )
    return every


def _not_found(message: str, log_dir: Path) -> SysgError:
    return SysgError.of(
        Code.NOT_FOUND,
        f"{message} under {log_dir}",
        hint="list what exists with `sysg logs --path` or `sysg status`",
    )


# --- reading ---------------------------------------------------------------------------


def tail(path: Path, n: int) -> list[bytes]:
    """The last ``n`` complete lines of ``path`` (without newlines), reading backwards."""
    if n <= 0:
        return []
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, size needed first
    except FileNotFoundError:
        return []
    with fh:
        return _tail_of(fh, os.fstat(fh.fileno()).st_size, n)


def _tail_of(fh: BinaryIO, end: int, n: int) -> list[bytes]:
    """The last ``n`` complete lines of ``fh`` before offset ``end``."""
    # Only complete lines: ignore bytes after the last newline (a write in progress).
    blocks: list[bytes] = []
    newlines = 0
    pos = end
    while pos > 0 and newlines <= n:
        step = min(BLOCK, pos)
        pos -= step
        fh.seek(pos)
        block = fh.read(step)
        newlines += block.count(b"\n")
        blocks.append(block)
    buf = b"".join(reversed(blocks))
    last_nl = buf.rfind(b"\n")
    if last_nl < 0:
        return []
    lines = buf[:last_nl].split(b"\n")
    if pos > 0:
        lines = lines[1:]  # the first one may be cut
    return lines[-n:]


def tail_with_backups(log: ServiceLogFile, n: int, follower: Follower | None = None) -> list[bytes]:
    """Last ``n`` lines of the service, reaching into ``.1``, ``.2``… if the active is short.

    With ``follower``, the active file's lines are those before where it starts following.
    """
    lines = follower.shown(n) if follower is not None else tail(log.path, n)
    for backup in log.backups():
        if len(lines) >= n:
            break
        lines = tail(backup, n - len(lines)) + lines
    return lines


def merged_tail(
    logs: Iterable[ServiceLogFile], n: int, followers: Mapping[str, Follower] | None = None
) -> list[Entry]:
    """The last ``n`` lines across ``logs``, merged by capture time (stable per file).

    ``followers`` (by ``label``), opened before this call, make the tail end exactly where
    each one starts: a line appended in between is shown once, by the follower."""
    if n <= 0:
        return []
    found = followers or {}
    per_file = [
        [Entry(log, LogLine.parse(raw)) for raw in tail_with_backups(log, n, found.get(log.label))]
        for log in logs
    ]
    merged = list(heapq.merge(*per_file, key=lambda e: e.line.ts))
    return merged[-n:]


# --- following -------------------------------------------------------------------------


class Follower:
    """Polls one file for appended complete lines, across rotation and truncation.

    By default it starts just after the last complete line, so the lines already shown by
    ``tail`` are not repeated and a half-written last line is completed, not cut. A file
    that does not exist yet is picked up when it appears.
    """

    def __init__(self, log: ServiceLogFile, *, from_start: bool = False) -> None:
        self.log = log
        self._partial = b""
        self._file = _OpenFile.of(log.path)
        self._start = 0
        if self._file is not None and not from_start:
            self._start = self._file.seek_after_last_line()

    def shown(self, n: int) -> list[bytes]:
        """The last ``n`` complete lines before where this follower starts, read from the
        file it holds open: an append or a rotation since it opened is neither missed by the
        tail nor shown twice."""
        if self._file is None or n <= 0:
            return []
        try:
            return _tail_of(self._file.fh, self._start, n)
        finally:
            self._file.fh.seek(self._start)

    def position(self) -> tuple[int, int] | None:
        """The file descriptor it holds and the offset it starts at (``None``: no file
        yet), for a tail that must end exactly where following begins."""
        if self._file is None:
            return None
        return self._file.fh.fileno(), self._start

    def poll(self) -> list[bytes]:
        """New complete lines since the last call (without newlines)."""
        if self._file is None:
            self._file = _OpenFile.of(self.log.path)
            if self._file is None:
                return []
        out = self._drain()
        try:
            st = os.stat(self.log.path)
        except FileNotFoundError:
            return out  # rotated away and not recreated yet: look again next poll
        if st.st_ino != self._file.ino:
            # Rotated: the old file is complete (drained above); continue in the new one.
            self._file.fh.close()
            self._partial = b""
            self._file = _OpenFile.of(self.log.path)
            if self._file is not None:
                out += self._drain()
        elif st.st_size < self._file.fh.tell():
            # Truncated in place: start again from the beginning.
            self._file.fh.seek(0)
            self._partial = b""
            out += self._drain()
        return out

    def _drain(self) -> list[bytes]:
        assert self._file is not None
        data = self._file.fh.read()
        if not data:
            return []
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return data[: cut - 1].split(b"\n") if cut else []

    def close(self) -> None:
        if self._file is not None:
            self._file.fh.close()
            self._file = None


@dataclass(slots=True)
class _OpenFile:
    """An open log file and its inode (to notice rotation)."""

    fh: BinaryIO
    ino: int

    @classmethod
    def of(cls, path: Path) -> _OpenFile | None:
        try:
            fh = open(path, "rb")  # noqa: SIM115 - owned by the Follower, closed there
        except FileNotFoundError:
            return None
        return cls(fh, os.fstat(fh.fileno()).st_ino)

    def seek_after_last_line(self) -> int:
        end = self.fh.seek(0, os.SEEK_END)
        start = max(0, end - 2 * BLOCK)
        self.fh.seek(start)
        last_nl = self.fh.read(end - start).rfind(b"\n")
        return self.fh.seek(start + last_nl + 1 if last_nl >= 0 else start)
