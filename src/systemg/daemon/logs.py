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
* **Rotation never splits a line across files.** Before a write that would push a
  non-empty active file past ``max_bytes``, the block is cut at the last line boundary
  that still fits, the fitting lines are written, the file is rotated
  (``.k`` -> ``.k+1``, anything beyond ``.max_files`` deleted, active -> ``.1``, reopen;
  with ``max_files: 0`` the active file is simply deleted), and the rest continues in the
  fresh file. A single line larger than ``max_bytes`` is written whole into a fresh file,
  so only such a file can exceed ``max_bytes``. ``max_bytes <= 0`` disables rotation.
* **The supervisor never dies of its logs.** A failed write (disk full, EIO) drops that
  block from the file, counts it in ``write_errors`` and keeps the ``OSError`` in
  ``last_error`` for the supervisor to report; ``feed`` still returns the formatted bytes
  so followers see them.

With ``sink: none`` no file is opened, but ``feed`` still formats and returns the lines
(foreground ``start`` and ``logs -f`` still stream them).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from systemg.manifest.model import LogSink, LogSpec

MAX_LINE = 64 * 1024
# A newline-free run longer than MAX_LINE always contains a whole aligned window of this
# size, so checking each such window for a newline is an exact "maybe too long" test.
_WINDOW = MAX_LINE // 2
STREAMS = ("stdout", "stderr")
_STREAM_TAGS = {"stdout": b" stdout ", "stderr": b" stderr "}


def format_timestamp(now: float) -> bytes:
    """``now`` (epoch seconds) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC."""
    sec = int(now)
    micros = int((now - sec) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode() + b".%06dZ" % micros


class ServiceLog:
    """Appends one service's captured output to ``<logs>/<project>/<service>.log``."""

    def __init__(self, path: Path, spec: LogSpec, *, group: int | None = None) -> None:
        """``group``: in system mode, the operator group may read the logs (dir 0750 and
        files 0640, group-owned), since operators run ``sysg logs`` without sudo."""
        self.path = path
        self.spec = spec
        self.group = group
        self.write_errors = 0
        self.last_error: OSError | None = None
        self._pending: dict[str, bytes] = dict.fromkeys(STREAMS, b"")
        self._last_now = 0.0
        # Per-second cache of the "YYYY-MM-DDTHH:MM:SS." part; microseconds are real.
        self._sec = -1
        self._sec_text = b""
        self._fd = -1
        self._size = 0
        if spec.sink is LogSink.FILE:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700 if group is None else 0o750)
            if group is not None:
                os.chown(path.parent, -1, group)
            self._open()

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
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

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

    # --- file handling -----------------------------------------------------------------
    def _open(self) -> None:
        mode = 0o600 if self.group is None else 0o640
        self._fd = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOCTTY, mode
        )
        if self.group is not None:
            os.fchown(self._fd, -1, self.group)
            os.fchmod(self._fd, mode)
        self._size = os.fstat(self._fd).st_size

    def _write(self, out: bytes) -> None:
        if self._fd < 0 and self.spec.sink is not LogSink.FILE:
            return
        try:
            if self._fd < 0:  # a previous rotation failed to reopen: try again
                self._open()
            limit = self.spec.max_bytes
            if limit <= 0 or self._size + len(out) <= limit:
                self._write_all(memoryview(out))
                return
            self._write_rotating(out, limit)
        except OSError as exc:
            self.write_errors += 1
            self.last_error = exc

    def _write_rotating(self, block: bytes, limit: int) -> None:
        view = memoryview(block)
        start = 0
        while start < len(block):
            room = limit - self._size
            if len(block) - start <= room:
                self._write_all(view[start:])
                return
            # Largest run of whole lines that still fits in the active file.
            cut = block.rfind(b"\n", start, start + room) + 1 if room > 0 else 0
            if cut == 0:
                if self._size > 0:
                    self._rotate()
                    continue
                # Fresh file and the next line alone exceeds max_bytes: write it whole.
                cut = block.find(b"\n", start) + 1 or len(block)
            self._write_all(view[start:cut])
            start = cut
            if start < len(block):
                self._rotate()

    def _write_all(self, view: memoryview) -> None:
        while view:
            n = os.write(self._fd, view)
            self._size += n
            view = view[n:]

    def _rotate(self) -> None:
        """Shift backups up by one, drop those beyond ``max_files``, reopen a fresh file."""
        keep = max(self.spec.max_files, 0)
        os.close(self._fd)
        self._fd = -1
        self._drop_backups_beyond(keep)
        if keep == 0:
            self._unlink(self.path)
        else:
            for k in range(keep - 1, 0, -1):
                src = self._backup(k)
                if src.exists():
                    os.replace(src, self._backup(k + 1))
            os.replace(self.path, self._backup(1))
        self._open()

    def _backup(self, k: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{k}")

    def _drop_backups_beyond(self, keep: int) -> None:
        # Also removes stale backups left by an earlier, larger max_files.
        pattern = re.compile(re.escape(self.path.name) + r"\.(\d+)")
        with os.scandir(self.path.parent) as entries:
            for entry in entries:
                match = pattern.fullmatch(entry.name)
                if match and int(match.group(1)) >= keep:
                    self._unlink(Path(entry.path))

    @staticmethod
    def _unlink(path: Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
