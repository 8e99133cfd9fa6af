"""The fast paths of ``sysg status`` and ``sysg stop``: one request, no CLI imports.

These two are the most run commands, and most of their time was Python importing the CLI
(argparse, the protocol's dataclasses, the status document): ~45 ms before one byte was
sent, for a reply the supervisor builds in a few ms. Here, for the plain call only, this
module — which imports ``_socket`` and ``json`` and nothing of systemg — sends the request
itself:

- ``status`` with a ``view`` (``table`` or ``json``): the supervisor renders the text with
  the very functions the full path uses (``views/status_text.py``) and says the exit code,
  so the output is the same bytes;
- ``stop`` (everything): its reply's ``message``, as the full path prints it.

Anything else goes the full path (``None`` is returned and ``entry`` runs the CLI), which
owns every message and diagnosis:

- arguments other than ``--sys`` and ``--plain`` (and, for ``status``, ``--no-color``,
  ``--live``, ``--format [table|json]``): a selection, ``-c``, ``-v``, ``--timeout``, a typo;
- the mode rules that print or refuse (``cli/mode.py``): ``--sys`` as non-root, root without
  ``--sys`` unless ``SYSTEMG_STATE_DIR`` names the root, ``--drop-privileges``;
- no supervisor on the socket (the full path re-adopts, falls back to the system supervisor
  for an operator, or says ``SG0206``), a refused or failing connection, a supervisor
  stopped (state T) before the request is sent;
- ``stop`` with its progress line (stdout and stderr a terminal);
- ``status``: a reply that is not ``ok`` or has no ``text`` (a supervisor older than the
  ``view``), or none within ``WAIT`` s or from a stopped supervisor: a read-only request,
  so the full path simply asks again.

A ``stop`` that was sent is never sent again: past the plain reply (an error, the
connection closed, the supervisor stopped while we wait, the deadline) the full path's
reader takes over the same connection (``cli/commands/stop.py`` ``resume``).
"""

from __future__ import annotations

# The C module: `socket` adds ~1 ms of imports (enum classes) for nothing used here.
import _socket
import os
import sys

from systemg import layout, proc

WAIT = 2.0  # status: seconds for the whole exchange before the full path takes over
MUTATING = 300.0  # stop: cli/deadlines.py MUTATING (a test keeps them equal)
SLICE = 0.2  # look at the supervisor's state this often while waiting
PROTOCOL_VERSION = 1  # protocol/messages.py (a test keeps them equal)
_GLOBAL = frozenset({"--sys", "--plain"})
_STATUS_FLAGS = _GLOBAL | {"--no-color", "--live"}
_VIEWS = ("table", "json")
_MAX_REPLY = 256 * 1024 * 1024


def parse(args: list[str]) -> tuple[bool, str, bool] | None:
    """``(system, view, plain)`` for a ``status`` call the fast path takes, else None."""
    system = plain = False
    view = "table"
    seen_verb = False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "status" and not seen_verb:
            seen_verb = True
        elif a in _GLOBAL or (seen_verb and a in _STATUS_FLAGS):
            system = system or a == "--sys"
            plain = plain or a in ("--plain", "--no-color")
        elif not seen_verb:
            return None  # before the verb only the global flags parse (argparse says why)
        elif a == "--format":
            if i + 1 < len(args) and args[i + 1] in _VIEWS:
                i += 1
                view = args[i]
            else:
                view = "json"  # `--format` alone means json
        elif a.startswith("--format=") and a[len("--format=") :] in _VIEWS:
            view = a[len("--format=") :]
        else:
            return None
        i += 1
    return (system, view, plain) if seen_verb else None


def parse_stop(args: list[str]) -> tuple[bool, bool] | None:
    """``(system, plain)`` for a ``stop`` call the fast path takes, else None."""
    rest = list(args)
    if rest.count("stop") != 1:
        return None
    rest.remove("stop")
    if not set(rest) <= _GLOBAL or len(set(rest)) != len(rest):
        return None
    return "--sys" in rest, "--plain" in rest


def _root(system: bool) -> str | None:
    """The state root, or None where the mode rules would print or refuse."""
    root = os.geteuid() == 0
    if system != root and not (root and bool(os.environ.get("SYSTEMG_STATE_DIR"))):
        return None  # --sys as non-root, or root without --sys: the mode rules speak
    return layout.state_dir(system, os.environ)


def frame(verb: str, args: dict[str, object]) -> bytes:
    """The request line: ``protocol.codec``'s framing of ``verb`` with ``args``."""
    import json

    body = {"v": PROTOCOL_VERSION, "verb": verb, "args": args}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def status(args: list[str]) -> int | None:
    """Run ``sysg status`` the fast way: its exit code, or None for the full path."""
    parsed = parse(args)
    if parsed is None:
        return None
    system, view, plain = parsed
    state = _root(system)
    if state is None:
        return None
    color = width = 0
    if view == "table" and sys.stdout.isatty():
        import shutil

        color = int(not plain and "NO_COLOR" not in os.environ)
        width = shutil.get_terminal_size((200, 24)).columns
    sock = _connect(state, WAIT)
    if sock is None:
        return None
    import time

    deadline = time.monotonic() + WAIT
    try:
        sock.sendall(frame("status", {"view": view, "color": bool(color), "width": width}))
        line, _ = _final_line(sock, state, deadline)
    except OSError:
        return None
    finally:
        sock.close()
    data = _ok_data(line)
    if data is None:
        return None
    text, code = data.get("text"), data.get("exit")
    if isinstance(text, str) and type(code) is int:
        return code if _write(text) else 0
    if isinstance(data.get("units"), list):
        # A supervisor older than the view answered with the reply itself (it ignores
        # fields it does not know): render that one, rather than ask again.
        from systemg.cli.main import guarded

        return guarded(lambda: _show(data, view, bool(color)), plain=plain)
    return None


def _show(data: dict[str, object], view: str, color: bool) -> int:
    from systemg.cli.commands.status import show

    return show(data, view, color=color)


def stop(args: list[str]) -> int | None:
    """Run a plain ``sysg stop`` (everything) the fast way: its exit code, or None."""
    parsed = parse_stop(args)
    if parsed is None:
        return None
    system, plain = parsed
    state = _root(system)
    if state is None or _stopped(state):
        return None
    tty = sys.stdout.isatty() and sys.stderr.isatty()
    if tty and not plain and os.environ.get("TERM") != "dumb":
        return None  # the progress line (cli/progress.py) is the full path's
    sock = _connect(state, 5.0)
    if sock is None:
        return None
    import time

    deadline = time.monotonic() + MUTATING
    line, buffered, broken = None, b"", False
    try:
        sock.sendall(frame("stop", {}))
        line, buffered = _final_line(sock, state, deadline)
    except (BrokenPipeError, ConnectionResetError):
        broken = True  # a refusal (section 2) may be waiting to be read: the full path reads it
    except OSError:
        pass
    data = _ok_data(line)
    if data is None:
        from systemg.cli.commands.stop import resume
        from systemg.cli.main import guarded

        rest = (line or b"") + buffered
        return guarded(
            lambda: resume(system, sock, rest, deadline, broken=broken, plain=plain), plain=plain
        )
    sock.close()
    message = data.get("message")
    _write(f"{message if message else 'Nothing to stop'}\n")  # as commands/stop.py
    return 0


def _connect(state: str, timeout: float) -> _socket.socket | None:
    """A connected socket to the control socket, or None."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        sock.connect(os.path.join(state, layout.SOCKET_NAME))
    except OSError:
        sock.close()
        return None
    return sock


def _final_line(sock: _socket.socket, state: str, deadline: float) -> tuple[bytes | None, bytes]:
    """``(final reply line, b"")``, skipping event lines; ``(None, what was read)`` at EOF,
    past ``deadline``, or when the supervisor is stopped (state T) while we wait."""
    import json
    import time

    buf = bytearray()
    start = 0
    while True:
        nl = buf.find(b"\n", start)
        if nl >= 0:
            line = bytes(buf[: nl + 1])
            try:
                event = "event" in json.loads(line)
            except (ValueError, TypeError):
                event = False
            if not event:
                return line, bytes(buf[nl + 1 :])
            del buf[: nl + 1]
            start = 0
            continue
        start = len(buf)
        left = deadline - time.monotonic()
        if left <= 0 or len(buf) > _MAX_REPLY:
            return None, bytes(buf)
        sock.settimeout(min(SLICE, left))
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            if _stopped(state):
                return None, bytes(buf)
            continue
        except ConnectionResetError:  # as the full path's reader: the peer went away
            chunk = b""
        if not chunk:
            return None, bytes(buf)
        buf += chunk


def _ok_data(line: bytes | None) -> dict[str, object] | None:
    """The data of an ``ok`` reply line, else None."""
    if line is None:
        return None
    import json

    try:
        reply = json.loads(line)
    except ValueError:
        return None
    if not isinstance(reply, dict) or reply.get("v") != PROTOCOL_VERSION:
        return None
    data = reply.get("data") if reply.get("ok") is True else None
    return data if isinstance(data, dict) else None


def _write(text: str) -> bool:
    """Write ``text`` to stdout; False when its reader went away (``| head``: exit 0)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        from systemg.cli.main import silence_stdout

        silence_stdout()
        return False
    return True


def _stopped(state: str) -> bool:
    """True if the pid in ``sysg.pid`` is stopped (state T): it will not answer."""
    try:
        with open(os.path.join(state, layout.PID_FILE_NAME), "rb") as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):
        return False
    fields = proc.stat_fields(pid)
    return fields is not None and fields[0] == b"T"
