"""``sysg top``: a live view of every service, refreshed from the supervisor.

Refresh: this command asks the supervisor for ``status`` once per ``--interval`` (one
short connection each), exactly as ``sysg status`` does; the supervisor reads the few
``/proc`` numbers it reports only when asked, so it does nothing for a ``top`` that is not
running, and it stays one thread. The CPU/RSS history behind the sparklines is kept here
(``cli/top_state.py``). The log pane reads the tail of the selected service's log file on
disk, like ``sysg logs`` does.

On a terminal (stdout and stdin both TTYs) the view is full-screen (``rich.live`` on the
alternate screen, keys read in cbreak mode through ``termios``, restored on every exit);
otherwise it prints the plain table once per interval (``render_top.render_plain``).
``--count N`` stops after N snapshots in both. Restart and stop are sent on their own
connection without blocking the loop, so the view keeps refreshing while the supervisor
carries them out; the answer shows on the last line. rich is imported only here.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from systemg.cli import boot, client
from systemg.cli.console import emit
from systemg.cli.mode import resolve
from systemg.cli.selectors import selection
from systemg.errors import Code, SysgError
from systemg.paths import Paths
from systemg.protocol import codec
from systemg.protocol.messages import (
    Message,
    RestartRequest,
    StatusReply,
    StatusRequest,
    StopRequest,
)
from systemg.views.status_doc import in_public_words


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--service", metavar="SERVICE", help="NAME or PROJECT/NAME")
    parser.add_argument("-p", "--project", metavar="PROJECT", help="one project, by id")
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between two snapshots (default 1)",
    )
    parser.add_argument(
        "--count", type=int, default=0, metavar="N", help="stop after N snapshots (default: never)"
    )


def run(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise SysgError.of(Code.USAGE, "--interval must be more than 0", hint="e.g. --interval 2")
    if args.count < 0:
        raise SysgError.of(Code.USAGE, "--count must be 0 (never stop) or more")
    sel = selection(args)
    target = resolve(args, "top")
    request = StatusRequest(project=sel.project, service=sel.service)
    try:
        first = in_public_words(StatusReply.from_json(boot.call_reviving(target.paths, request)))
    except SysgError as exc:
        if exc.code is Code.NO_SUPERVISOR:
            emit(client.no_supervisor(target.paths).diagnostics, args)
            return 2
        raise
    if sys.stdout.isatty() and sys.stdin.isatty():
        from systemg.cli.top_live import live

        return live(target.paths, request, first, args)
    return _plain(target.paths, request, first, args.interval, args.count)


def fetch(paths: Paths, request: StatusRequest) -> StatusReply:
    return in_public_words(StatusReply.from_json(client.call(paths, request)))


def _plain(
    paths: Paths, request: StatusRequest, reply: StatusReply, interval: float, count: int
) -> int:
    from systemg.cli.render_top import render_plain
    from systemg.cli.top_state import Samples, UnitKey, observe

    history: dict[UnitKey, Samples] = {}
    shown = 0
    while True:
        history = observe(history, reply)
        sys.stdout.write(render_plain(reply, history, now=time.time()))
        sys.stdout.flush()
        shown += 1
        if count and shown >= count:
            return 0
        time.sleep(interval)  # the refresh period itself, not a wait for something
        reply = fetch(paths, request)


# --- restart / stop without blocking the view --------------------------------------------


def action_request(action: str, key: tuple[str, str]) -> Message:
    project, service = key
    if action == "restart":
        return RestartRequest(project=project, service=service, environ=client.request_environ())
    return StopRequest(project=project, service=service)


class Pending:
    """One request sent on its own connection; ``read`` when its socket is readable."""

    def __init__(self, sock: socket.socket, what: str) -> None:
        self.sock = sock
        self.what = what
        self.buf = bytearray()

    @classmethod
    def send(cls, paths: Paths, request: Message, what: str) -> Pending | str:
        """The pending request, or why it could not be sent."""
        try:
            sock = client.connect(paths)
        except SysgError as exc:
            return f"{what}: {exc.diagnostics[0].message}"
        try:
            sock.sendall(codec.encode_request(request))
        except OSError as exc:
            sock.close()
            return f"{what}: {exc.strerror or exc}"
        sock.setblocking(False)
        return cls(sock, what)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> str | None:
        """The outcome once the reply is complete (the socket is then closed), else None."""
        try:
            chunk = self.sock.recv(1 << 16)
        except BlockingIOError:
            return None
        except OSError as exc:
            return self._done(f"{self.what}: {exc.strerror or exc}")
        if not chunk:
            return self._done(f"{self.what}: the supervisor closed the connection")
        self.buf += chunk
        while (nl := self.buf.find(b"\n")) >= 0:
            line = bytes(self.buf[: nl + 1])
            del self.buf[: nl + 1]
            try:
                data = client.reply_of(line)
            except SysgError as exc:
                return self._done(f"{self.what} failed: {exc.diagnostics[0].message}")
            if data is not None:
                return self._done(outcome(self.what, data))
        return None

    def close(self) -> None:
        self.sock.close()

    def _done(self, text: str) -> str:
        self.sock.close()
        return text


def outcome(what: str, data: Mapping[str, Any]) -> str:
    """The last line after a reply: its first problem, else its message."""
    problems = data.get("problems") or []
    if problems and isinstance(problems[0], dict):
        return f"{what}: {problems[0].get('message', 'failed')}"
    return str(data.get("message") or f"{what}: done")


def log_tail(paths: Paths, key: tuple[str, str], lines: int) -> Sequence[bytes]:
    """The last ``lines`` lines of a service's log file (a line saying why, if unreadable)."""
    from systemg.cli.logfiles import tail

    if lines <= 0:
        return []
    path = Path(paths.log_dir) / key[0] / f"{key[1]}.log"
    try:
        return tail(path, lines)
    except OSError as exc:
        return [f"cannot read {path}: {exc.strerror or exc}".encode()]


def read_keys(fd: int) -> bytes:
    try:
        return os.read(fd, 1024)
    except BlockingIOError:
        return b" "  # nothing after all: a key that does nothing
