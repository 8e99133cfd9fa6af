"""The CLI's side of the control socket: connect, ask, read replies; boot a supervisor.

One request per connection (``protocol.codec``): the CLI sends one frame, then reads lines
until the final reply. Stream requests (foreground ``start``, ``logs -f``) receive event
lines first; ``stream`` yields them as they come, ``call`` skips them.

No supervisor: the socket is missing or refuses the connection (``SG0206``). A supervisor
that accepts nothing within ``CONNECT_TIMEOUT`` or, for a read-only request, sends no reply
within ``READ_TIMEOUT`` is alive but not answering (``SG0205``). Mutating requests (start,
stop, restart, shutdown) wait as long as the supervisor keeps the connection open: a start
may legitimately take minutes.

Booting (``ensure_supervisor``): when nothing answers, the CLI spawns ``sysg [--sys]
[--drop-privileges] supervise`` detached (``spawn.detach``) and polls the socket with a
deadline. Two CLIs racing both spawn one; the supervisor's exclusive lock makes the loser
exit at once, and both CLIs then talk to the winner. This module never imports the daemon.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from systemg import proc
from systemg.errors import Code, Diagnostic, SysgError
from systemg.paths import Mode, Paths
from systemg.protocol import codec
from systemg.protocol.messages import PROTOCOL_VERSION, Message

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0  # read-only requests only (status, inspect, version)
BOOT_TIMEOUT = 10.0
MAX_REPLY = 256 * 1024 * 1024  # a reply line larger than this is a broken supervisor
READ_ONLY_VERBS = frozenset({"status", "inspect", "version"})
LISTEN_VARS = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def request_environ() -> tuple[tuple[str, str], ...]:
    """The environment sent with start/restart for ``${VAR}`` expansion (no ``LISTEN_*``)."""
    return tuple((k, v) for k, v in os.environ.items() if k not in LISTEN_VARS)


def no_supervisor(paths: Paths) -> SysgError:
    sys_flag = "--sys " if paths.mode is Mode.SYSTEM else ""
    return SysgError.of(
        Code.NO_SUPERVISOR,
        "no supervisor is running",
        hint=f"start one with `sysg {sys_flag}start --daemonize`",
    )


def not_answering(paths: Paths, what: str = "") -> SysgError:
    return SysgError.of(
        Code.SUPERVISOR_NOT_ANSWERING,
        "supervisor is alive but not answering" + (f" ({what})" if what else ""),
        hint=f"see {paths.supervisor_log}; `sysg stop --supervisor` or kill the pid in "
        f"{paths.pid_file}",
    )


# --- liveness -----------------------------------------------------------------------------


def supervisor_pid(paths: Paths) -> int | None:
    """The pid in ``sysg.pid`` if that process is alive, else None."""
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and proc.alive(pid) else None


def is_supervisor(pid: int) -> bool:
    """True if ``pid`` runs ``sysg ... supervise`` (guards against a recycled pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    return b"supervise" in argv


def permission_denied(paths: Paths) -> SysgError:
    """The kernel refused us the socket (its mode, or an unsearchable state root).

    In system mode this says what the supervisor itself would say to a peer outside the
    operator group (``spec/privileged.md`` section 2); the group is the state root's group
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
    except TimeoutError:
        sock.close()
        raise not_answering(paths, "connect timed out") from None
    except OSError as exc:
        sock.close()
        raise SysgError.of(
            Code.NO_SUPERVISOR,
            f"cannot connect to {paths.socket}: {exc.strerror or exc}",
            hint="start one with `sysg start --daemonize`",
        ) from None
    return sock


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


def stream(paths: Paths, request: Message) -> Iterator[Event | dict[str, Any]]:
    """Send ``request``; yield each ``Event``, then the final reply's data (last item).

    Raises ``SysgError`` for an ``ok: false`` reply and ``SG0206`` if the connection ends
    before the final reply (the supervisor went away).
    """
    sock = connect(paths)
    try:
        sock.settimeout(READ_TIMEOUT if request.verb in READ_ONLY_VERBS else None)
        broken = False
        try:
            sock.sendall(codec.encode_request(request))
        except (BrokenPipeError, ConnectionResetError):
            # A supervisor refusing a peer (section 2) writes why and closes at once, maybe
            # before our request went out: its reason is already waiting to be read.
            broken = True
        reader = sock.makefile("rb")
        while True:
            try:
                line = reader.readline(MAX_REPLY)
            except TimeoutError:
                raise not_answering(paths, f"no reply to {request.verb!r}") from None
            except ConnectionResetError:
                line = b""
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
    finally:
        sock.close()


def call(paths: Paths, request: Message) -> dict[str, Any]:
    """Send ``request`` and return the data of its reply (events, if any, are skipped)."""
    result: dict[str, Any] = {}
    for item in stream(paths, request):
        if not isinstance(item, Event):
            result = item
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
    version = obj.get("v")
    if version != PROTOCOL_VERSION:
        raise SysgError.of(
            Code.VERSION_MISMATCH,
            f"this sysg speaks protocol {PROTOCOL_VERSION}, the supervisor speaks {version!r}",
            hint="use the same sysg version for the CLI and the supervisor, "
            "or restart the supervisor with `sysg stop --supervisor`",
        )
    return obj


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


# --- booting ------------------------------------------------------------------------------


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone (or a zombie); True if it went within ``timeout``."""
    deadline = time.monotonic() + timeout
    while proc.alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
