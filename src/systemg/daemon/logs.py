"""Capture of one service's stdout/stderr into ``<logs>/<project>/<service>.log``.

Stored line format (shared with ``cli/logfiles.py``, which parses it)::

    2026-05-14T02:05:13.470911Z stderr Compiling x\\n

The supervisor calls ``feed(stream, data, now)`` with whatever one ``os.read`` of that
stream's pipe returned, ``finish(stream, now)`` at EOF of that stream, and ``close()``.

Invariants:

* **Zero loss, whole lines.** Only complete lines are written; a partial trailing line is
  held per stream until its newline (or ``finish``), so a line split across reads becomes
  one stored line and stdout/stderr lines never interleave mid-line.
* **Bounded lines.** A line longer than ``MAX_LINE`` (64 KiB) is cut into 64 KiB pieces,
  each stored as its own line; nothing is dropped. A held partial never exceeds 64 KiB.
* **One timestamp per read.** Every line of one ``feed`` was captured at the same instant,
  so the prefix is formatted once and applied with ``bytes.replace`` (C speed, no per-line
  Python loop on the hot path). The per-line slow path runs only when a newline-free run
  longer than 32 KiB appears, i.e. when a line might exceed 64 KiB.
* **One ``os.write`` per feed** (looping on short writes) unless the block crosses a
  rotation boundary.
* **Rotation never splits a line across files** (``rotate.RotatingFile``, shared with
  ``supervisor.log`` and ``audit.log``): ``.1`` is the newest backup .. ``.max_files`` the
  oldest; only a single line larger than ``max_bytes`` makes a file exceed it.
* **The supervisor never dies of its logs, and the pipes keep draining.** A failed write
  (disk full, EIO) drops that block's lines from the file — never part of a line — and
  counts them; ``feed`` still returns the formatted bytes, so followers see them, and the
  service is never blocked. ``write_errors`` counts failed writes, ``last_error`` keeps
  the ``OSError``. The first failure is reported to the journal; on the first write that
  succeeds again, the file gets one notice line, in the stored line format, before the
  new lines::

    2026-05-14T02:05:13.470911Z stderr [sysg] 12 lines (960 bytes) dropped: No space left on device

  and the journal gets the same count. The notice is part of the file only (not of what
  ``feed`` returns: followers saw those lines live).

With ``sink: none`` no file is opened, but ``feed`` still formats and returns the lines
(foreground ``start`` and ``logs -f`` still stream them).
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from systemg.daemon.journal import Journal
from systemg.daemon.rotate import Dropped, RotatingFile
from systemg.layout import LOG_STREAMS
from systemg.manifest.model import DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_FILES, LogSink, LogSpec

MAX_LINE = 64 * 1024
# A newline-free run longer than MAX_LINE always contains a whole aligned window of this
# size, so checking each such window for a newline is an exact "maybe too long" test.
_WINDOW = MAX_LINE // 2
STREAMS = LOG_STREAMS  # systemg.layout: the CLI reads the same labels
_STREAM_TAGS = {stream: b" " + stream.encode() + b" " for stream in STREAMS}
# Tag of the lines the supervisor itself writes into a service's log (the drop notice).
NOTICE_TAG = b"[sysg]"


def format_timestamp(now: float) -> bytes:
    """``now`` (epoch seconds) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC."""
    sec = int(now)
    micros = int((now - sec) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode() + b".%06dZ" % micros


class ServiceLog:
    """Appends one service's captured output to ``<logs>/<project>/<service>.log``."""

    def __init__(
        self,
        path: Path,
        spec: LogSpec,
        *,
        group: int | None = None,
        journal: Journal | None = None,
    ) -> None:
        """``group``: in system mode, the operator group may read the logs (dir 0750 and
        files 0640, group-owned), since operators run ``sysg logs`` without sudo.
        ``journal``: where dropped lines are reported (default: a journal on stderr)."""
        self.path = path
        self.spec = spec
        self.group = group
        self._journal = journal
        self._pending: dict[str, bytes] = dict.fromkeys(STREAMS, b"")
        self._last_now = 0.0
        # Per-second cache of the "YYYY-MM-DDTHH:MM:SS." part; microseconds are real.
        self._sec = -1
        self._sec_text = b""
        self._file: RotatingFile | None = None
        if spec.sink is LogSink.FILE:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700 if group is None else 0o750)
            if group is not None:
                os.chown(path.parent, -1, group)
            self._file = RotatingFile(
                path,
                max_bytes=DEFAULT_LOG_MAX_BYTES if spec.max_bytes is None else spec.max_bytes,
                max_files=DEFAULT_LOG_MAX_FILES if spec.max_files is None else spec.max_files,
                mode=0o600 if group is None else 0o640,
                group=group,
                notice=self._notice,
            )
            self._file.open()

    @property
    def write_errors(self) -> int:
        """Failed writes to the file so far."""
        return 0 if self._file is None else self._file.write_errors

    @property
    def last_error(self) -> OSError | None:
        return None if self._file is None else self._file.last_error

    @property
    def dropped(self) -> Dropped | None:
        """Lines lost since the last successful write (announced by the next one)."""
        return None if self._file is None else self._file.dropped

    # --- public interface ------------------------------------------------------------
    def feed(self, stream: str, data: bytes, now: float) -> bytes:
        """Store every complete line of ``data``, hold the partial tail; return what was written."""
        self._last_now = now
        held = self._pending[stream]
        if held:
            data = held + data
        nl = data.rfind(b"\n")
        if nl < 0:
            if len(data) <= MAX_LINE:
                self._pending[stream] = data
                return b""
            return self._slow(stream, data, now)
        complete = data[:nl]
        if len(complete) > MAX_LINE and self._maybe_long(complete):
            return self._slow(stream, data, now)
        rest = data[nl + 1 :]
        if len(rest) > MAX_LINE:
            return self._slow(stream, data, now)
        self._pending[stream] = rest
        prefix = self._prefix(stream, now)
        out = b"".join((prefix, complete.replace(b"\n", b"\n" + prefix), b"\n"))
        self._write(out)
        return out

    def note(self, text: str, now: float) -> bytes:
        """A line the supervisor writes itself (``[sysg] ...``, stderr-tagged like the drop
        notice): which pid a rolling restart started, and which one it stopped."""
        self._last_now = now
        out = self._prefix("stderr", now) + NOTICE_TAG + b" " + text.encode() + b"\n"
        self._write(out)
        return out

    def finish(self, stream: str, now: float) -> bytes:
        """EOF on ``stream``: store the held partial line, if any, as a line."""
        self._last_now = now
        held = self._pending[stream]
        if not held:
            return b""
        self._pending[stream] = b""
        out = self._prefix(stream, now) + held + b"\n"
        self._write(out)
        return out

    def close(self) -> None:
        """Store any still-held partial lines (stamped with the last capture time), then close."""
        for stream in STREAMS:
            self.finish(stream, self._last_now or time.time())
        file = self._file
        if file is None:
            return
        if file.dropped is not None:
            self._write(b"")  # the notice alone, if there is room again
        if file.dropped is not None:
            self._report(
                f"{self.path}: {_counted(file.dropped)} dropped ({file.dropped.reason}); "
                "closed before it could be written again"
            )
        file.close()

    # --- formatting ------------------------------------------------------------------
    def _prefix(self, stream: str, now: float) -> bytes:
        sec = int(now)
        if sec != self._sec:
            self._sec = sec
            self._sec_text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec)).encode()
        micros = int((now - sec) * 1_000_000)
        return self._sec_text + b"%06dZ" % micros + _STREAM_TAGS[stream]

    @staticmethod
    def _maybe_long(complete: bytes) -> bool:
        """True if ``complete`` may hold a line over MAX_LINE (some window has no newline)."""
        for start in range(0, len(complete) - _WINDOW + 1, _WINDOW):
            if complete.find(b"\n", start, start + _WINDOW) < 0:
                return True
        return False

    def _slow(self, stream: str, data: bytes, now: float) -> bytes:
        """Per-line path for data that may contain lines over MAX_LINE: cut them in pieces."""
        *lines, rest = data.split(b"\n")
        pieces: list[bytes] = []
        for line in lines:
            if len(line) <= MAX_LINE:
                pieces.append(line)
            else:
                pieces.extend(line[i : i + MAX_LINE] for i in range(0, len(line), MAX_LINE))
        # Emit full pieces of an over-long partial only while more than MAX_LINE is held:
        # a piece of exactly MAX_LINE might still be followed by its newline.
        cut = 0
        while len(rest) - cut > MAX_LINE:
            pieces.append(rest[cut : cut + MAX_LINE])
            cut += MAX_LINE
        self._pending[stream] = rest[cut:]
        if not pieces:
            return b""
        prefix = self._prefix(stream, now)
        out = b"".join(prefix + piece + b"\n" for piece in pieces)
        self._write(out)
        return out

    # --- the file ----------------------------------------------------------------------
    def _write(self, out: bytes) -> None:
        file = self._file
        if file is None:
            return
        gaps = file.gaps
        file.write(out)
        if file.announced is not None:
            self._report(
                f"{self.path}: {_counted(file.announced)} dropped while it could not be "
                f"written ({file.announced.reason}); writing again"
            )
        if file.gaps != gaps:
            self._report(
                f"{self.path}: cannot write ({file.last_error}); "
                "dropping its lines until it can (the service keeps running)"
            )

    def _notice(self, dropped: Dropped) -> bytes:
        """The stored line announcing a gap (stamped with the capture time of the lines
        that follow it, so the file stays in time order)."""
        text = f"{_counted(dropped)} dropped: {dropped.reason}".encode()
        return self._prefix("stderr", self._last_now) + NOTICE_TAG + b" " + text + b"\n"

    def _report(self, message: str) -> None:
        if self._journal is None:
            self._journal = Journal()  # the supervisor's stderr
        self._journal.warn(message)


def _counted(dropped: Dropped) -> str:
    return f"{dropped.lines} lines ({dropped.bytes} bytes)"


def log_tail(path: os.PathLike[str] | str, lines: int = 8) -> str:
    """The last ``lines`` lines of a log file (at most its last 4 KiB), indented for a hint."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in data.splitlines()[-lines:])


# What a program prints when bind(2) fails with EADDRINUSE (98 on Linux, 48 on BSD/macOS),
# in the words of libc's strerror, Python, Rust, Go, Node and nginx.
_IN_USE = re.compile(
    r"address already in use|addrinuse|os error (98|48)\b|errno[\s:=]*(98|48)\b"
    r"|could not bind|bind\(\) to \S+ failed \(98",
    re.IGNORECASE,
)


def port_collision(lines: list[str]) -> bool:
    """True when these log lines say the address was taken."""
    return any(_IN_USE.search(line) for line in lines)


def log_lines_since(path: os.PathLike[str] | str, since: float | None) -> list[str]:
    """The lines (of the last 16 KiB) the log captured at or after ``since`` (epoch): the
    current generation's output only, so an older run's bind error never explains a new
    crash. Each stored line starts with its UTC RFC 3339 capture time."""
    if since is None:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    start = datetime.fromtimestamp(since - 0.001, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # RFC 3339 with a fixed width compares as text, in time order.
    return [line for line in data.splitlines() if line[:27] >= start and line[4:5] == "-"]
