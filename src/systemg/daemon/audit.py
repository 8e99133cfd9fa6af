"""The audit log: one JSON line per control request, next to ``supervisor.log``.

``{"time": ..., "peer": {"uid", "gid", "pid"}, "verb": ..., "target": {...}, "result": ...}``;
refused connections are logged with ``"verb": null, "result": "refused"``. The file is
``0600``, opened for append, and every line is written with a single ``write``.

It rotates like a service log (``rotate.RotatingFile``: ``max_bytes`` 10 MiB, ``max_files``
5, ``audit.log.1`` newest .. ``.5`` oldest), never inside a line. An entry that cannot be
written (disk full) is counted, never raised into the control server; the first entry
written again is preceded by
``{"time": ..., "peer": null, "verb": null, "target": {}, "result": "dropped",
"lines": N, "bytes": B, "error": "No space left on device"}``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from systemg.daemon.rotate import Dropped, RotatingFile
from systemg.manifest.model import DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_FILES


class _Peer(Protocol):
    @property
    def pid(self) -> int: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...


class Audit:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_LOG_MAX_BYTES,
        max_files: int = DEFAULT_LOG_MAX_FILES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = RotatingFile(
            path, max_bytes=max_bytes, max_files=max_files, notice=self._notice
        )
        with contextlib.suppress(OSError):
            self._file.open()  # if it fails, every entry retries (and counts the loss)

    @property
    def dropped(self) -> Dropped | None:
        """Entries lost since the last one that could be written."""
        return self._file.dropped

    @staticmethod
    def _encode(entry: dict[str, Any]) -> bytes:
        return (json.dumps(entry, separators=(",", ":")) + "\n").encode()

    def _write(self, entry: dict[str, Any]) -> None:
        self._file.write(self._encode(entry))

    def _notice(self, dropped: Dropped) -> bytes:
        return self._encode(
            {
                "time": self._clock(),
                "peer": None,
                "verb": None,
                "target": {},
                "result": "dropped",
                "lines": dropped.lines,
                "bytes": dropped.bytes,
                "error": dropped.reason,
            }
        )

    def request(self, peer: _Peer, verb: str, target: dict[str, Any], result: str) -> None:
        self._write(
            {
                "time": self._clock(),
                "peer": {"uid": peer.uid, "gid": peer.gid, "pid": peer.pid},
                "verb": verb,
                "target": target,
                "result": result,
            }
        )

    def refused(self, pid: int, uid: int, gid: int) -> None:
        self._write(
            {
                "time": self._clock(),
                "peer": {"uid": uid, "gid": gid, "pid": pid},
                "verb": None,
                "target": {},
                "result": "refused",
            }
        )

    def close(self) -> None:
        self._file.close()
