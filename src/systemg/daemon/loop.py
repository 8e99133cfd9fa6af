"""The supervisor's one event loop: fd readiness, timers and signals on one thread.

It knows nothing of services. Three sources wake it, and nothing else does (no polling
tick, so an idle supervisor sleeps in ``epoll_wait`` until something happens):

- file descriptors registered with a callback (pidfds, output pipes, sockets);
- timers, kept in a heap and cancelled lazily;
- signals, delivered through ``signal.set_wakeup_fd`` on a non-blocking socketpair so a
  handler never runs supervisor code re-entrantly: the loop reads the signal numbers
  and calls the registered callback like any other event.

Callbacks run to completion one at a time, so the rest of the daemon never needs a lock.
An exception in a callback is logged and the loop carries on: a misbehaving service or a
bad request must never kill the supervisor.
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import signal
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

Callback = Callable[[], None]


@dataclass(order=True, slots=True)
class Timer:
    when: float
    seq: int
    callback: Callback = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.clock = clock
        self._selector = selectors.DefaultSelector()
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self._signal_handlers: dict[int, Callback] = {}
        self._running = False
        self._on_error = on_error or (lambda text: None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.add_reader(self._wake_r.fileno(), self._drain_signals)

    # --- registration ---------------------------------------------------------------
    def add_reader(self, fd: int, callback: Callback) -> None:
        self._selector.register(fd, selectors.EVENT_READ, callback)

    def set_writer(self, fd: int, read_cb: Callback | None, write_cb: Callback | None) -> None:
        """(Re)register ``fd`` for read and/or write interest; both None removes it."""
        events = (selectors.EVENT_READ if read_cb else 0) | (
            selectors.EVENT_WRITE if write_cb else 0
        )
        try:
            self._selector.unregister(fd)
        except KeyError:
            pass
        if events:
            self._selector.register(fd, events, (read_cb, write_cb))

    def remove(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def call_at(self, when: float, callback: Callback) -> Timer:
        timer = Timer(when, next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def call_later(self, delay: float, callback: Callback) -> Timer:
        return self.call_at(self.clock() + max(0.0, delay), callback)

    def on_signal(self, signum: int, callback: Callback) -> None:
        self._signal_handlers[signum] = callback
        # Arm the wake-up fd now, not only in run(): a signal arriving between this call
        # and run() (boot re-adopts and spawns services first) is queued, not lost.
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        # The Python-level handler does nothing; the wake-up fd carries the signal number.
        signal.signal(signum, lambda *_: None)
        signal.siginterrupt(signum, False)

    def close(self) -> None:
        """Release the selector and the wake-up socketpair (tests run many loops)."""
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # --- running --------------------------------------------------------------------
    def stop(self) -> None:
        self._running = False

    def run(self) -> None:
        old_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        self._running = True
        try:
            while self._running:
                self._run_once()
        finally:
            signal.set_wakeup_fd(old_fd)

    def _timeout(self) -> float | None:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return None
        return max(0.0, self._timers[0].when - self.clock())

    def _run_once(self) -> None:
        ready = self._selector.select(self._timeout())
        registered = self._selector.get_map()
        for key, mask in ready:
            # A callback earlier in this batch may have closed this fd (and the number
            # may already belong to a new file): only dispatch keys still registered.
            if registered.get(key.fd) is not key:
                continue
            data = key.data
            if isinstance(data, tuple):
                read_cb, write_cb = data
                if mask & selectors.EVENT_READ and read_cb:
                    self._call(read_cb)
                if mask & selectors.EVENT_WRITE and write_cb:
                    self._call(write_cb)
            else:
                self._call(data)
        now = self.clock()
        while self._timers and (self._timers[0].cancelled or self._timers[0].when <= now):
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._call(timer.callback)

    def _call(self, callback: Callback) -> None:
        try:
            callback()
        except Exception:
            self._on_error(traceback.format_exc())

    def _drain_signals(self) -> None:
        try:
            data = self._wake_r.recv(512)
        except BlockingIOError:
            return
        for signum in data:
            handler = self._signal_handlers.get(signum)
            if handler is not None:
                self._call(handler)
