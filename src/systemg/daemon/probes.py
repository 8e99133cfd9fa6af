"""Readiness and liveness probes: one attempt at a time, on the supervisor's loop.

``tcp_attempt``, ``http_attempt`` and ``command_attempt`` start one attempt and return an
``Attempt``; it ends with exactly one ``done(ProbeResult)``, or none after ``cancel()``. When
to probe and what an outcome means for the service (retries, budgets, SG codes, health) is
the caller's business.

- **tcp / http**: one non-blocking socket on the loop: ``connect_ex`` → ``EINPROGRESS`` →
  writable → ``SO_ERROR``. HTTP is an HTTP/1.1 GET through h11 (sans-IO, no hand-written
  parser): the status decides (2xx = pass, and the attempt ends at the headers, so a huge
  body is never read); a non-2xx answer is quoted with the first 100 bytes of its body. One
  ``recv`` per wake-up and at most 64 KiB per answer, so no server can hold the loop. No
  thread, no subprocess, no proxy, no DNS: a host is an IP literal, ``localhost`` or an
  ``/etc/hosts`` name (``spawn.sockets.host_address``); a name that needs DNS is UNREACHABLE,
  since ``getaddrinfo`` may wait for seconds on the loop's thread.
- **network namespace** (docs/manifest.md, "Readiness"): with ``netns_pid`` the socket is created
inside   ``/proc/PID/ns/net`` (a socket stays in the namespace it was created in, whatever the
  caller's namespace is later) and the supervisor returns to its own namespace at once, before
  anything else runs. Needs root (CAP_SYS_ADMIN). Failing to return raises ``NamespaceReturnError``,
  a ``BaseException`` on purpose: the loop survives any ``Exception``, and a supervisor left in
  a service's namespace (binding, probing, resolving there) must not carry on.
- **command**: the caller's plan (a service's plan with the probe's argv, so it runs as the
  service would) is launched with stdout/stderr piped to ``on_output``; exit 0 = pass. At the
  timeout its process group gets SIGKILL; when it exits, what it left in its group is killed
  too. It is always reaped (its ``Watched`` stays on the loop until then, even after
  ``cancel()``) and every fd is closed by then.

Invariants: ``done`` runs at most once, never before the starting function has returned and
never after ``cancel()``. When ``done`` runs or ``cancel()`` returns, the socket is closed (a
command: killed). Every attempt ends within ``timeout_s``; a command killed at its timeout is
reported once reaped, or ``KILL_GRACE_S`` later if the kernel does not let it die yet.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from systemg.daemon.loop import Loop, Timer
from systemg.daemon.watch import Exit, Watched
from systemg.errors import SpawnError
from systemg.spawn import linux
from systemg.spawn.launcher import Launcher, through
from systemg.spawn.plan import SpawnPlan
from systemg.spawn.sockets import host_address

if TYPE_CHECKING:
    import h11

READ_CHUNK = 16 * 1024  # one recv per wake-up
MAX_RESPONSE = 64 * 1024  # bytes read from one HTTP answer, at most
SNIPPET = 100  # bytes of a failing answer's body quoted in the message
KILL_GRACE_S = 1.0  # a SIGKILLed command in uninterruptible sleep is not waited for longer
USER_AGENT = "sysg-probe"


class Outcome(enum.StrEnum):
    PASS = "pass"
    UNHEALTHY = "unhealthy"  # it ran and failed: non-2xx, exit != 0 (SG0104)
    UNREACHABLE = "unreachable"  # refused, no route, needs DNS, could not run (SG0022)
    TIMEOUT = "timeout"  # no result within the attempt's timeout (SG0023)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    outcome: Outcome
    message: str
    latency_s: float  # start to end of the attempt, on the loop's clock
    at: float  # wall clock (time.time) at the end


Done = Callable[[ProbeResult], None]
OnOutput = Callable[[str, bytes], None]


class NamespaceReturnError(BaseException):
    """The supervisor could not return to its own network namespace (see the module doc)."""


class _UnreachableError(Exception):
    """Raised while starting an attempt: the attempt ends UNREACHABLE with this message."""


class Attempt:
    """A running attempt. ``cancel()`` stops it; no callback runs afterwards."""

    def __init__(self, loop: Loop, timeout_s: float, done: Done) -> None:
        self._loop = loop
        self._timeout_s = timeout_s
        self._done: Done | None = done
        self._started = loop.clock()
        self._timer: Timer | None = loop.call_later(timeout_s, self._expired)

    @property
    def running(self) -> bool:
        return self._done is not None

    def cancel(self) -> None:
        self._done = None
        self._release()

    def _finish(self, outcome: Outcome, message: str) -> None:
        done, self._done = self._done, None
        if done is None:
            return
        self._release()  # before the callback: a callback that raises leaks nothing
        done(ProbeResult(outcome, message, self._loop.clock() - self._started, time.time()))

    def _finish_soon(self, outcome: Outcome, message: str) -> None:
        """End from the next loop turn: ``done`` never runs inside the starting call."""
        self._set_timer(0.0, lambda: self._finish(outcome, message))

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, callback)

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._finish(Outcome.TIMEOUT, f"no result within {self._timeout_s:g}s")


# --- sockets ------------------------------------------------------------------------------
def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _resolve(host: str) -> str:
    address = host_address(host.removeprefix("[").removesuffix("]"))
    if address is None:
        raise _UnreachableError(
            f"'{host}' needs a DNS lookup, which probes do not make (it could block the "
            "supervisor): use an IP address, localhost or a name in /etc/hosts"
        )
    return address


def _open_socket(family: int, netns_pid: int | None) -> socket.socket:
    """A non-blocking TCP socket, created in ``netns_pid``'s network namespace if given."""
    kind = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
    if netns_pid is None:
        return socket.socket(family, kind)
    if os.geteuid() != 0:
        raise _UnreachableError("cannot enter the service's network namespace: not root")
    flags = os.O_RDONLY | os.O_CLOEXEC
    own = os.open("/proc/self/ns/net", flags)  # opened before leaving: the way back
    try:
        try:
            theirs = os.open(f"/proc/{netns_pid}/ns/net", flags)
        except OSError as exc:
            raise _UnreachableError(
                f"cannot open the network namespace of pid {netns_pid}: {exc.strerror}"
            ) from None
        try:
            mine, target = os.fstat(own), os.fstat(theirs)
            if (mine.st_dev, mine.st_ino) == (target.st_dev, target.st_ino):
                return socket.socket(family, kind)  # the same namespace: nothing to enter
            return _socket_inside(theirs, own, family, kind)
        finally:
            os.close(theirs)
    finally:
        os.close(own)


def _socket_inside(theirs: int, own: int, family: int, kind: int) -> socket.socket:
    try:
        linux.setns(theirs, linux.CLONE_NEWNET)
    except OSError as exc:
        raise _UnreachableError(
            f"cannot enter the service's network namespace: {exc.strerror}"
            + (" (needs CAP_SYS_ADMIN)" if exc.errno == errno.EPERM else "")
        ) from None
    try:
        return socket.socket(family, kind)
    finally:
        # Nothing else runs in between: the supervisor has one thread, and its signal
        # handlers only wake the loop.
        try:
            linux.setns(own, linux.CLONE_NEWNET)
        except OSError as exc:
            raise NamespaceReturnError(
                f"cannot return to the supervisor's own network namespace after opening a "
                f"probe socket: {exc.strerror}; stopping rather than run inside a service's"
            ) from exc


class _TcpAttempt(Attempt):
    """Connect = pass. The base of ``_HttpAttempt``, which goes on after the connect."""

    def __init__(
        self,
        loop: Loop,
        host: str,
        port: int,
        timeout_s: float,
        done: Done,
        *,
        netns_pid: int | None,
    ) -> None:
        super().__init__(loop, timeout_s, done)
        self._host, self._port = host, port
        self._where = f"{_bracketed(host)}:{port}"
        self._sock: socket.socket | None = None
        self._connecting = True
        try:
            self._prepare()
            self._sock = self._connect(_resolve(host), netns_pid)
        except _UnreachableError as exc:
            self._finish_soon(Outcome.UNREACHABLE, str(exc))
            return
        # Connected at once or not: writability says so, and SO_ERROR says how.
        loop.set_writer(self._sock.fileno(), None, self._on_connect)

    def _connect(self, address: str, netns_pid: int | None) -> socket.socket:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            sock = _open_socket(family, netns_pid)
        except OSError as exc:
            raise _UnreachableError(f"cannot open a socket: {exc.strerror}") from None
        try:
            err = sock.connect_ex((address, self._port))
        except OSError as exc:
            err = exc.errno or errno.EINVAL
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            raise _UnreachableError(f"cannot connect to {self._where}: {os.strerror(err)}")
        return sock

    def _prepare(self) -> None:
        """Checks before connecting (raise ``_UnreachableError``)."""

    def _on_connect(self) -> None:
        if self._sock is None:
            return
        err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            message = f"cannot connect to {self._where}: {os.strerror(err)}"
            self._finish(Outcome.UNREACHABLE, message)
            return
        self._connecting = False
        self._connected(self._sock)

    def _connected(self, sock: socket.socket) -> None:
        self._finish(Outcome.PASS, f"connected to {self._where}")

    def _expired(self) -> None:
        self._finish(Outcome.TIMEOUT, f"no connection to {self._where} within {self._timeout_s:g}s")

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._loop.remove(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _release(self) -> None:
        super()._release()
        self._close_socket()


class _HttpAttempt(_TcpAttempt):
    """GET ``path``: 2xx = pass, another status = unhealthy (quoted with its body's start)."""

    def __init__(
        self,
        loop: Loop,
        host: str,
        port: int,
        timeout_s: float,
        done: Done,
        *,
        path: str,
        netns_pid: int | None,
    ) -> None:
        # Performance: h11 (~5-10 ms of imports) is imported by the first HTTP probe, not
        # by every supervisor's boot.
        import h11

        self._path = path or "/"
        self._conn: h11.Connection = h11.Connection(h11.CLIENT)
        self._outgoing = b""
        self._status: int | None = None
        self._body = bytearray()
        self._received = 0
        super().__init__(loop, host, port, timeout_s, done, netns_pid=netns_pid)

    def _prepare(self) -> None:
        import h11

        authority = _bracketed(self._host) + ("" if self._port == 80 else f":{self._port}")
        headers = [
            ("Host", authority),
            ("User-Agent", USER_AGENT),
            ("Accept", "*/*"),
            ("Connection", "close"),
        ]
        try:
            head = self._conn.send(h11.Request(method="GET", target=self._path, headers=headers))
            end = self._conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise _UnreachableError(
                f"cannot request '{self._path}' from {self._where}: {exc}"
            ) from None
        self._outgoing = (head or b"") + (end or b"")

    def _connected(self, sock: socket.socket) -> None:
        self._loop.set_writer(sock.fileno(), self._on_readable, self._send)
        self._send()

    def _send(self) -> None:
        if self._sock is None or not self._outgoing:
            return
        try:
            sent = self._sock.send(self._outgoing, socket.MSG_NOSIGNAL)
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(Outcome.UNREACHABLE, f"sending to {self._where} failed: {exc.strerror}")
            return
        self._outgoing = self._outgoing[sent:]
        if not self._outgoing:
            self._loop.set_writer(self._sock.fileno(), self._on_readable, None)

    def _on_readable(self) -> None:
        if self._sock is None:
            return
        try:
            data = self._sock.recv(READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            message = f"reading from {self._where} failed: {exc.strerror}"
            self._finish(Outcome.UNREACHABLE, message)
            return
        self._received += len(data)
        self._conn.receive_data(data)  # b"" tells h11 the server closed
        self._advance(eof=not data)

    def _advance(self, *, eof: bool) -> None:
        import h11

        while self.running:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self._status is not None:
                    self._verdict()  # a broken body after the status: the status stands
                    return
                message = f"{self._where} did not answer with HTTP/1.x: {exc}"
                self._finish(Outcome.UNHEALTHY, message)
                return
            if event is h11.NEED_DATA:
                if eof or self._received >= MAX_RESPONSE:
                    self._verdict()
                return
            if isinstance(event, h11.Response):
                self._status = event.status_code
                if 200 <= event.status_code < 300:
                    self._finish(Outcome.PASS, f"HTTP {event.status_code}")
                    return
            elif isinstance(event, h11.Data):
                self._body += event.data[: SNIPPET - len(self._body)]
                if len(self._body) >= SNIPPET:
                    self._verdict()
            elif not isinstance(event, h11.InformationalResponse):
                self._verdict()  # EndOfMessage, ConnectionClosed, PAUSED

    def _verdict(self) -> None:
        if self._status is None:
            message = f"{self._where} closed the connection without an HTTP answer"
            self._finish(Outcome.UNHEALTHY, message)
            return
        body = " ".join(bytes(self._body[:SNIPPET]).decode("utf-8", "replace").split())
        message = f"HTTP {self._status}" + (f": {body}" if body else "")
        self._finish(Outcome.UNHEALTHY, message)

    def _expired(self) -> None:
        if self._connecting:
            super()._expired()
        elif self._status is not None:
            self._verdict()  # the status came, the body is slow: the status stands
        else:
            message = f"no HTTP answer from {self._where} within {self._timeout_s:g}s"
            self._finish(Outcome.TIMEOUT, message)


def tcp_attempt(
    loop: Loop,
    host: str,
    port: int,
    timeout_s: float,
    done: Done,
    *,
    netns_pid: int | None = None,
) -> Attempt:
    """Connect to ``host:port``: PASS once connected, UNREACHABLE if refused."""
    return _TcpAttempt(loop, host, port, timeout_s, done, netns_pid=netns_pid)


def http_attempt(  # noqa: PLR0917 - the probe API: target, then timeout and callback
    loop: Loop,
    host: str,
    port: int,
    path: str,
    timeout_s: float,
    done: Done,
    *,
    netns_pid: int | None = None,
) -> Attempt:
    """GET ``http://host:port/path``: PASS on 2xx, UNHEALTHY on another status."""
    return _HttpAttempt(loop, host, port, timeout_s, done, path=path, netns_pid=netns_pid)


# --- commands -----------------------------------------------------------------------------
class _CommandAttempt(Attempt):
    def __init__(
        self,
        loop: Loop,
        plan: SpawnPlan,
        timeout_s: float,
        done: Done,
        on_output: OnOutput,
        *,
        launcher: Launcher,
    ) -> None:
        super().__init__(loop, timeout_s, done)
        self._on_output = on_output
        self._launcher = launcher
        self._pid: int | None = None
        self._watched: Watched | None = None
        self._exited = False
        self._timed_out = False
        try:
            self._start(plan)
        except _UnreachableError as exc:
            self._finish_soon(Outcome.UNREACHABLE, str(exc))

    def _start(self, plan: SpawnPlan) -> None:
        out_r = out_w = err_r = err_w = -1
        try:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            child = self._launcher(plan, out_w, err_w)
        except (SpawnError, OSError) as exc:
            for fd in (out_r, err_r):
                if fd >= 0:
                    os.close(fd)
            if isinstance(exc, SpawnError):
                raise _UnreachableError(str(exc)) from None
            raise _UnreachableError(f"cannot run the probe command: {exc}") from None
        finally:
            for fd in (out_w, err_w):
                if fd >= 0:
                    os.close(fd)  # the child has its copies
        self._pid = child.pid
        self._watched = Watched(
            self._loop,
            child.pid,
            child.pidfd,
            is_child=True,
            pipes={"stdout": out_r, "stderr": err_r},
            on_output=self._output,
            on_eof=lambda _stream: None,
            on_exit=self._on_exit,
        )

    @property
    def pid(self) -> int | None:
        """The command's process (the leader of its own process group), once launched."""
        return self._pid

    def _output(self, stream: str, data: bytes) -> None:
        if self._done is not None:
            self._on_output(stream, data)

    def _kill(self) -> None:
        if self._pid is None:
            return
        # It called setsid: its process group is its pid (the number cannot be reused
        # while the group has members).
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(self._pid, signal.SIGKILL)

    def _on_exit(self, ended: Exit) -> None:
        # Reaped, and its pipes drained up to now (``Watched``).
        self._exited = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(ended.pid, signal.SIGKILL)  # what it left in its group dies with it
        if self._watched is not None:
            self._watched.close()  # a leftover's later output is not the probe's answer
        if self._timed_out:
            self._finish(Outcome.TIMEOUT, self._timeout_message())
        elif ended.status is None:
            self._finish(Outcome.UNHEALTHY, "its exit status is unknown (reaped elsewhere)")
        else:
            code = os.waitstatus_to_exitcode(ended.status)
            if code == 0:
                self._finish(Outcome.PASS, "exited with code 0")
            elif code > 0:
                self._finish(Outcome.UNHEALTHY, f"exited with code {code}")
            else:
                self._finish(Outcome.UNHEALTHY, f"killed by {_signal_name(-code)}")

    def _timeout_message(self) -> str:
        return f"did not finish within {self._timeout_s:g}s (killed)"

    def _expired(self) -> None:
        self._timed_out = True
        self._kill()
        # Reported when reaped (right away, normally); not waited for past the grace.
        message = f"{self._timeout_message()}; it has not died yet"
        self._set_timer(KILL_GRACE_S, lambda: self._finish(Outcome.TIMEOUT, message))

    def _release(self) -> None:
        super()._release()
        if not self._exited:
            self._kill()  # its Watched reaps it and closes the pipes when it is gone


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def command_attempt(
    loop: Loop,
    plan: SpawnPlan,
    timeout_s: float,
    done: Done,
    *,
    on_output: OnOutput,
    launcher: Launcher | None = None,
) -> Attempt:
    """Run ``plan``: PASS on exit 0, UNHEALTHY otherwise, TIMEOUT (killed) at ``timeout_s``,
    UNREACHABLE if it cannot be launched. Its output goes to ``on_output(stream, data)``."""
    return _CommandAttempt(
        loop, plan, timeout_s, done, on_output, launcher=launcher or through(None)
    )
