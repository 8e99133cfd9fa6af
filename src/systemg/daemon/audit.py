"""The audit log: one JSON line per control request, next to ``supervisor.log``.

``{"time": ..., "peer": {"uid", "gid", "pid"}, "verb": ..., "target": {...}, "result": ...}``;
refused connections are logged with ``"verb": null, "result": "refused"``. The file is
``0600``, opened for append, and every line is written with a single ``write``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol


class _Peer(Protocol):
    @property
    def pid(self) -> int: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...


class Audit:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _write(self, entry: dict[str, Any]) -> None:
        try:
            os.write(self.fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())
        except OSError:
            pass

    def request(self, peer: _Peer, verb: str, target: dict[str, Any], result: str) -> None:
        self._write(
            {
                "time": time.time(),
                "peer": {"uid": peer.uid, "gid": peer.gid, "pid": peer.pid},
                "verb": verb,
                "target": target,
                "result": result,
            }
        )

    def refused(self, pid: int, uid: int, gid: int) -> None:
        self._write(
            {
                "time": time.time(),
                "peer": {"uid": uid, "gid": gid, "pid": pid},
                "verb": None,
                "target": {},
                "result": "refused",
            }
        )

    def close(self) -> None:
        os.close(self.fd)
