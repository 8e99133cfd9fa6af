"""Running the supervisor's real ``Loop`` in a test until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable

from systemg.daemon.loop import Loop


def run_until(loop: Loop, done: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run ``loop`` until ``done()`` (checked every 10 ms) or ``timeout``; assert it held."""
    deadline = time.monotonic() + timeout

    def check() -> None:
        if done() or time.monotonic() > deadline:
            loop.stop()
        else:
            loop.call_later(0.01, check)

    loop.call_later(0, check)
    loop.run()
    assert done(), "timed out"
