"""The CLI's side of the control socket: connect, ask, read replies — each with a deadline.

One request per connection (``protocol.codec``): the CLI sends one frame, then reads lines
until the final reply. Stream requests (foreground ``start``, ``logs -f``) receive event
lines first; ``stream`` yields them as they come, ``call`` skips them.

No supervisor: the socket is missing or refuses the connection (``SG0206``). A supervisor
that accepts nothing within ``CONNECT_TIMEOUT``, or does not answer within the request's
deadline (``cli/deadlines.py``: a few seconds for read-only requests, minutes for mutating
ones, connect + first line for streams) is alive but not answering (``SG0205``): the error
names its pid and says what to do (``kill -CONT`` when it is stopped). A frozen supervisor
still has a listening socket, and the kernel queues our connection in its backlog, so
without these deadlines every command would hang. This module never imports the daemon;
booting a supervisor is ``cli/boot.py``.
"""

from __future__ import annotations

import _socket
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from systemg import proc
from systemg.cli import liveness
from systemg.cli.deadlines import READ_ONLY_VERBS, Wait, for_request, format_seconds
from systemg.errors import Code, Diagnostic, SysgError
from systemg.paths import Mode, Paths

if TYPE_CHECKING:
    from systemg.protocol.messages import Message

# Performance: the protocol (``codec`` and its ``messages``, ~25 ms of dataclass creation)
# is imported when a request is first sent or read, not with this module: `sysg start`
# imports this module before it boots a supervisor, and imports the protocol while that
# supervisor boots on the other CPU.

CONNECT_TIMEOUT = 5.0
SLICE = 1.0  # while waiting for a reply, look at the supervisor's state this often
FROZEN_GRACE = 4.0  # stopped (state T) this long while we wait: it will not answer
BOOT_TIMEOUT = 10.0
MAX_REPLY = 256 * 1024 * 1024  # a reply line larger than this is a broken supervisor
LISTEN_VARS = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")

# Re-exported: the callers' names for "who is the supervisor" (``cli/liveness.py``).
supervisor_pid = liveness.supervisor_pid
is_supervisor = liveness.is_supervisor


def request_environ() -> tuple[tuple[str, str], ...]:
    """The environment sent with start/restart for ``${VAR}`` expansion (no ``LISTEN_*``)."""
    return tuple((k, v) for k, v in os.environ.items() if k not in LISTEN_VARS)


def sysg_command(paths: Paths) -> str:
    """``sysg`` or ``sysg --sys``, as the user should type it for this runtime."""
    return "sysg --sys" if paths.mode is Mode.SYSTEM else "sysg"


def no_supervisor(paths: Paths) -> SysgError:
    return SysgError.of(
        Code.NO_SUPERVISOR,
        "no supervisor is running",
        hint=f"start one with `{sysg_command(paths)} start --daemonize`",
    )


def not_answering(paths: Paths, what: str = "", *, more: str = "") -> SysgError:
    """``SG0205`` naming the supervisor's pid, whether it is stopped, and what to do."""
    pid = liveness.identify(paths)
    sysg = sysg_command(paths)
    detail = f" ({what})" if what else ""
    if pid is None:
        # Something accepts on the socket, but sysg.pid names no live supervisor (and no
        # supervise process holds the lock): there is nothing we may signal.
        message = f"the supervisor is alive but not answering{detail}"
        hint = (
            f"{paths.pid_file} names no live supervisor; find what listens on "
            f"{paths.socket} (`ss -xlp | grep {paths.socket.name}`) and end it"
        )
    elif liveness.frozen(pid):
        message = f"supervisor {pid} is stopped (state T) and cannot answer{detail}"
        hint = (
            f"it was frozen by a signal (SIGSTOP) or a debugger: resume it with "
            f"`kill -CONT {pid}`, or end it and its services with `{sysg} stop --supervisor`"
        )
    else:
        message = f"supervisor {pid} is alive but not answering{detail}"
        hint = (
            f"see {paths.supervisor_log}; `{sysg} stop --supervisor` ends it and its "
            f"services (or `kill {pid}`: its services keep running)"
        )
    return SysgError.of(Code.SUPERVISOR_NOT_ANSWERING, message, hint=f"{more}{hint}")


def permission_denied(paths: Paths) -> SysgError:
    """The kernel refused us the socket (its mode, or an unsearchable state root).

    In system mode this says what the supervisor itself would say to a peer outside the
    operator group (docs/security.md §2); the group is the state root's group
    (``0750 root:OPERATORS``), readable with ``stat`` even when the root is not searchable.
    """
    if paths.mode is Mode.SYSTEM:
        import grp

        uid = os.getuid()
        try:
            gid = paths.state_dir.stat().st_gid
            group = grp.getgrgid(gid).gr_name if gid != 0 else None
        except (OSError, KeyError):
            group = None
        if group is not None:
            return SysgError.of(
                Code.PERMISSION_DENIED,
                f"permission denied: uid {uid} is not root and not in group '{group}'",
                hint=f"ask an administrator to add you to '{group}', or use sudo; "
                "your own supervisor (if any) is reached with `sysg start`",
            )
        return SysgError.of(
            Code.PERMISSION_DENIED,
            f"permission denied: uid {uid} is not root",
            hint="this system supervisor has no operator group: only root may use it (sudo)",
        )
    return SysgError.of(
        Code.PERMISSION_DENIED,
        f"permission denied: cannot connect to {paths.socket}",
        hint="the supervisor belongs to another user; system mode needs root "
        "(`sudo sysg --sys ...`) or membership of the operator group",
    )


def connect(paths: Paths, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """Connect to the control socket or raise ``SG0206`` / ``SG0205`` / ``SG0232``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _connect_once(paths, max(0.01, deadline - time.monotonic()))
        except _BacklogFullError:
            # More clients at once than the listen backlog holds: a Unix connect does not
            # wait for room (EAGAIN at once, timeout or not). Someone is there: wait a turn.
            if time.monotonic() >= deadline:
                raise not_answering(paths, "its listen backlog stayed full") from None
            time.sleep(0.01)


class _BacklogFullError(Exception):
    pass


def _connect_once(paths: Paths, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(str(paths.socket))
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        sock.close()
        raise no_supervisor(paths) from None
    except PermissionError:
        sock.close()
        raise permission_denied(paths) from None
    except BlockingIOError:
        sock.close()
        raise _BacklogFullError from None
    except TimeoutError:
        sock.close()
        raise not_answering(paths, "connect timed out") from None
    except OSError as exc:
        sock.close()
        raise SysgError.of(
            Code.NO_SUPERVISOR,
            f"cannot connect to {paths.socket}: {exc.strerror or exc}",
            hint=f"start one with `{sysg_command(paths)} start --daemonize`",
        ) from None
    return sock


def load_protocol() -> None:
    """Import the protocol now: ``cli/boot.py`` calls this while a supervisor it just
    spawned boots on the other CPU, so the first request does not wait for the import."""
    from systemg.protocol import codec  # noqa: F401


def accepts(paths: Paths, timeout: float = 1.0) -> bool:
    """True if something accepts a connection on the control socket right now."""
    try:
        connect(paths, timeout).close()
    except SysgError:
        return False
    return True


# --- requests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One streamed event line (``{"v": 1, "event": {...}}``)."""

    data: dict[str, Any]


class _Lines:
    """Newline-terminated lines from a socket, each read against an absolute deadline."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.scanned = 0  # bytes of buf known to hold no newline

    def next(self, deadline: float | None) -> bytes:
        """The next line (with its newline); ``b""`` at EOF. ``TimeoutError`` past
        ``deadline``; a reset connection counts as EOF (the peer went away)."""
        while True:
            nl = self.buf.find(b"\n", self.scanned)
            if nl >= 0:
                line = bytes(self.buf[: nl + 1])
                del self.buf[: nl + 1]
                self.scanned = 0
                return line
            self.scanned = len(self.buf)
            if len(self.buf) > MAX_REPLY:
                raise SysgError.of(
                    Code.PROTOCOL, f"the supervisor sent a line over {MAX_REPLY} bytes"
                )
            if deadline is None:
                self.sock.settimeout(None)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return b""
            self.buf += chunk


def refuse_if_stopped(paths: Paths) -> None:
    """``SG0205`` at once for a supervisor stopped by SIGSTOP (state T): it would queue a
    request and carry it out whenever it is resumed, long after we gave up."""
    pid = liveness.identify(paths)
    if pid is not None and liveness.state(pid) == "T":
        raise not_answering(paths, "the request was not sent")


def stream(
    paths: Paths, request: Message, wait: Wait | None = None
) -> Iterator[Event | dict[str, Any]]:
    """Send ``request``; yield each ``Event``, then the final reply's data (last item).

    ``wait`` defaults to the request's kind (``deadlines.for_request``). Raises
    ``SysgError`` for an ``ok: false`` reply, ``SG0205`` past the deadline and ``SG0206``
    if the connection ends before the final reply (the supervisor went away).
    """
    if wait is None:
        wait = for_request(request.verb, attach=bool(getattr(request, "attach", False)))
    refuse_if_stopped(paths)
    started = time.monotonic()
    deadline = None if wait.seconds is None else started + wait.seconds
    connect_for = CONNECT_TIMEOUT if wait.seconds is None else min(CONNECT_TIMEOUT, wait.seconds)
    sock = connect(paths, max(connect_for, 0.001))
    try:
        yield from exchange(sock, paths, request, wait, deadline)
    finally:
        sock.close()


def exchange(
    sock: socket.socket,
    paths: Paths,
    request: Message,
    wait: Wait,
    deadline: float | None = None,
) -> Iterator[Event | dict[str, Any]]:
    """``stream`` on a connected socket (``logs -f`` connects first, to know whether a
    supervisor is there at all). ``deadline`` is absolute (``time.monotonic``); without
    one it is ``wait.seconds`` from now."""
    if deadline is None and wait.seconds is not None:
        deadline = time.monotonic() + wait.seconds
    from systemg.protocol import codec

    broken = False
    try:
        sock.sendall(codec.encode_request(request))
    except (BrokenPipeError, ConnectionResetError):
        # A supervisor refusing a peer (section 2) writes why and closes at once, maybe
        # before our request went out: its reason is already waiting to be read.
        broken = True
    except TimeoutError:
        raise _timed_out(paths, request.verb, wait) from None
    yield from receive(sock, paths, request.verb, wait, deadline, broken=broken)


def receive(
    sock: _socket.socket,
    paths: Paths,
    verb: str,
    wait: Wait,
    deadline: float | None,
    *,
    broken: bool = False,
    buffered: bytes = b"",
) -> Iterator[Event | dict[str, Any]]:
    """The rest of ``exchange`` once the request for ``verb`` was sent: its events and
    final reply (``buffered``: what was already read of them, by ``cli/quick.py``)."""
    lines = _Lines(sock)
    lines.buf += buffered
    frozen_since: float | None = None
    while True:
        try:
            # In slices even without a deadline (`--timeout 0`, `sysg run`): a supervisor
            # frozen after it took the request must not keep us waiting for ever. A live
            # stream (`logs -f` past its first line) may wait as long as it likes.
            slice_end: float | None = _now() + SLICE
            if deadline is not None:
                slice_end = min(deadline, _now() + SLICE)
            elif wait.first_line_only:
                slice_end = None
            line = lines.next(slice_end)
        except TimeoutError:
            now = _now()
            if deadline is not None and now >= deadline:
                raise _timed_out(paths, verb, wait) from None
            # A long deadline need not be waited out for a supervisor frozen by SIGSTOP:
            # a stopped process answers nothing. (A working one is R or S: it gets it all.)
            pid = liveness.identify(paths)
            if pid is None or liveness.state(pid) != "T":
                frozen_since = None
            elif frozen_since is None:
                frozen_since = now
            elif now - frozen_since >= FROZEN_GRACE:
                what = f"no reply to {verb!r}"
                if verb not in READ_ONLY_VERBS:
                    what += "; it was sent and will be carried out if it is resumed"
                raise not_answering(paths, what) from None
            continue
        if wait.first_line_only:
            deadline = None  # the stream has started: it may run forever
        if not line and broken:
            raise not_answering(paths, "it closed the connection")
        if not line:
            raise SysgError.of(
                Code.NO_SUPERVISOR,
                "the supervisor closed the connection without replying",
                hint=f"it may have exited; see {paths.supervisor_log}",
            )
        obj = _decode(line)
        if "event" in obj:
            event = obj["event"]
            if isinstance(event, dict):
                yield Event(event)
            continue
        yield _reply_data(obj)
        return


def _now() -> float:
    return time.monotonic()


def _timed_out(paths: Paths, verb: str, wait: Wait) -> SysgError:
    waited = format_seconds(wait.seconds or 0)
    if wait.first_line_only:
        return not_answering(paths, f"no answer to {verb!r} within {waited}")
    more = ""
    if verb not in READ_ONLY_VERBS:
        more = (
            f"the {verb} was sent and may still be carried out: the supervisor may "
            "be working on it (`sysg status` tells whether it answers); wait longer with "
            "`--timeout DURATION` (0 = no limit). "
        )
    return not_answering(paths, f"no reply to {verb!r} within {waited}", more=more)


def call(
    paths: Paths,
    request: Message,
    wait: Wait | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> dict[str, Any]:
    """Send ``request`` and return the data of its reply; events, if any, go to
    ``on_event`` (skipped without one)."""
    result: dict[str, Any] = {}
    for item in stream(paths, request, wait):
        if not isinstance(item, Event):
            result = item
        elif on_event is not None:
            on_event(item)
    return result


def _decode(line: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise SysgError.of(
            Code.PROTOCOL,
            f"the supervisor sent something that is not a JSON object: {line[:80]!r}",
        )
    from systemg.protocol.messages import PROTOCOL_VERSION

    version = obj.get("v")
    if version != PROTOCOL_VERSION:
        raise SysgError.of(
            Code.VERSION_MISMATCH,
            f"this sysg speaks protocol {PROTOCOL_VERSION}, the supervisor speaks {version!r}",
            hint="use the same sysg version for the CLI and the supervisor, "
            "or restart the supervisor with `sysg stop --supervisor`",
        )
    return obj


def reply_of(line: bytes) -> dict[str, Any] | None:
    """One line from the supervisor, for a caller reading the socket itself (``top``):
    None for an event line, else the reply's data (``SysgError`` for a refusal)."""
    obj = _decode(line)
    return None if "event" in obj else _reply_data(obj)


def _reply_data(obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("ok") is True:
        data = obj.get("data") or {}
        return data if isinstance(data, dict) else {"value": data}
    raw = obj.get("diagnostics") or []
    diagnostics: list[Diagnostic] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            diagnostics.append(Diagnostic.from_json(item))
        except (KeyError, ValueError, TypeError, AttributeError):
            diagnostics.append(Diagnostic(Code.PROTOCOL, f"unreadable diagnostic: {item!r:.200}"))
    if not diagnostics:
        diagnostics.append(Diagnostic(Code.INTERNAL, "the supervisor refused the request"))
    raise SysgError(*diagnostics)


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone (or a zombie); True if it went within ``timeout``."""
    deadline = time.monotonic() + timeout
    while proc.alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
