"""The fast path of ``sysg status``: one request, the supervisor's own rendering, no imports.

``sysg status`` is the most run command, and most of its time was Python importing the CLI
(argparse, the protocol's dataclasses, the status document): ~45 ms before one byte was
sent, for a reply the supervisor builds in ~4 ms. Here, for the common call only, the CLI
sends ``status`` with a ``view`` (``table`` or ``json``) and writes the text the supervisor
rendered with the very functions the full path uses (``views/status_text.py``), so the output
and exit code are the same bytes. This module imports ``socket`` and ``json`` and nothing of
systemg.

Anything else goes the full path (``status`` returns ``None`` and ``entry`` runs the CLI),
which also owns every message and diagnosis:

- arguments other than ``--sys``, ``--plain``, ``--no-color``, ``--live`` and ``--format
  [table|json]`` (a selection, ``-c``, ``-v``, an unknown flag, a misspelling);
- the mode rules that print or refuse (``cli/mode.py``): ``--sys`` as non-root, root without
  ``--sys`` unless ``SYSTEMG_STATE_DIR`` names the root, ``--drop-privileges``;
- no supervisor on the socket (the full path re-adopts, falls back to the system supervisor
  for an operator, or says ``SG0206``), a refused or failing connection;
- a reply that is not ``ok`` or has no ``text`` (a supervisor older than the ``view``);
- no reply within ``WAIT`` seconds, or the supervisor stopped (state T) while we wait: the
  full path refuses a stopped one at once and waits its own read-only deadline for a slow one.
"""

from __future__ import annotations

import os
import sys

WAIT = 2.0  # seconds for the whole exchange before the full path takes over
SLICE = 0.2  # look at the supervisor's state this often while waiting
_FLAGS = frozenset({"--sys", "--plain", "--no-color", "--live"})
_VIEWS = ("table", "json")
_MAX_REPLY = 256 * 1024 * 1024
PROTOCOL_VERSION = 1  # protocol/messages.py (a test keeps them equal)


def parse(args: list[str]) -> tuple[bool, str, bool] | None:
    """``(system, view, plain)`` for a call the fast path takes, else None."""
    system = plain = False
    view = "table"
    seen_verb = False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "status" and not seen_verb:
            seen_verb = True
        elif a in _FLAGS:
            system = system or a == "--sys"
            plain = plain or a in ("--plain", "--no-color")
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


def state_dir(system: bool, environ: os._Environ[str] | dict[str, str]) -> str:
    """The state root ``Paths.for_mode`` gives (a test compares the two over many
    environments); the socket is ``control.sock`` in it."""
    if system:
        state = "/var/lib/systemg"
    else:
        home = environ.get("HOME") or os.path.expanduser("~")
        data_home = environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
        state = os.path.join(data_home, "systemg")
    return environ.get("SYSTEMG_STATE_DIR") or state


def status(args: list[str]) -> int | None:
    """Run ``sysg status`` the fast way: its exit code, or None for the full path."""
    parsed = parse(args)
    if parsed is None:
        return None
    system, view, plain = parsed
    environ = os.environ
    root = os.geteuid() == 0
    explicit = bool(environ.get("SYSTEMG_STATE_DIR"))
    if system != root and not (root and explicit):
        return None  # --sys as non-root, or root without --sys: the mode rules speak
    color = width = 0
    if view == "table" and sys.stdout.isatty():
        import shutil

        color = int(not plain and "NO_COLOR" not in environ)
        width = shutil.get_terminal_size((200, 24)).columns
    state = state_dir(system, environ)
    reply = _ask(state, {"view": view, "color": bool(color), "width": width})
    if reply is None:
        return None
    text, code = reply
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `sysg status | head -1`: as the full path, exit 0 silently
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    return code


def frame(args: dict[str, object]) -> bytes:
    """The request line: ``protocol.codec``'s framing of a ``StatusRequest`` with ``args``."""
    import json

    body = {"v": PROTOCOL_VERSION, "verb": "status", "args": args}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def _ask(state: str, args: dict[str, object]) -> tuple[str, int] | None:
    # The C module: `socket` adds ~1 ms of imports (enum classes) for nothing used here.
    import _socket
    import json
    import time

    deadline = time.monotonic() + WAIT
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(WAIT)
        sock.connect(os.path.join(state, "control.sock"))
        sock.sendall(frame(args))
        buf = bytearray()
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or len(buf) > _MAX_REPLY:
                return None
            sock.settimeout(min(SLICE, left))
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                if _stopped(state):
                    return None
                continue
            if not chunk:
                return None
            buf += chunk
        reply = json.loads(buf)
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
    data = reply.get("data") if isinstance(reply, dict) and reply.get("ok") is True else None
    if not isinstance(data, dict):
        return None
    text, code = data.get("text"), data.get("exit")
    if not isinstance(text, str) or type(code) is not int:
        return None
    return text, code


def _stopped(state: str) -> bool:
    """True if the pid in ``sysg.pid`` is stopped (state T): it will not answer."""
    try:
        with open(os.path.join(state, "sysg.pid"), "rb") as fh:
            pid = int(fh.read().strip())
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except (OSError, ValueError):
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"T"
