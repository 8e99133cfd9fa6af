"""An HTTP load from 127.0.0.1 for the zero-downtime tests: a few client threads, a new
connection per request, every outcome counted (in the test process, never the supervisor).

A request counts as failed when the connection is refused or reset, times out, or the answer
is not a whole ``200``. ``pids`` records which server processes answered (the body of
``examples/rolling/server.py`` starts with its pid), so a test can see the switch happen.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Load:
    host: str
    port: int
    clients: int = 4
    timeout_s: float = 5.0
    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    pids: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def one(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"status {resp.status}")
            pid = int(body.split()[0])
        except Exception as exc:
            with self._lock:
                self.failures[type(exc).__name__] += 1
            time.sleep(0.001)  # a refused connect returns at once: do not spin
            return
        finally:
            conn.close()
        with self._lock:
            self.ok += 1
            self.pids.add(pid)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.one()

    def __enter__(self) -> Load:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout_s + 5)

    def total(self) -> int:
        with self._lock:
            return self.ok + self.failed

    def wait_requests(self, n: int, timeout: float = 30.0) -> None:
        """Until ``n`` more requests were made (so the load runs through what follows)."""
        target = self.total() + n
        deadline = time.monotonic() + timeout
        while self.total() < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"the load made fewer than {n} requests in {timeout}s")
            time.sleep(0.01)
