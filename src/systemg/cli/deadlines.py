"""How long the CLI waits for the supervisor before it counts as not answering (``SG0205``).

A supervisor that is frozen (``SIGSTOP``) or wedged still has its listening socket: the
kernel queues our ``connect`` in the backlog and we would wait for a reply forever. So every
request has a deadline, of one of three kinds (``docs/commands.md``, "Deadlines"):

- **read-only** (``status``, ``inspect``, ``version``): ``READ_ONLY`` seconds for the whole
  request. The supervisor answers them from memory, in milliseconds even with hundreds of
  services; seconds of silence mean it is not running its loop.
- **mutating** (``start --daemonize``, ``stop``, ``restart``, the shutdown of ``stop
  --supervisor``, purge's ``forget``): ``MUTATING`` (5 min) for the whole request, or
  ``--timeout DURATION``. These are answered once the work is done, and the work may take
  long legitimately: ``start`` waits until each unit settled (readiness may take up to a
  service's ``start_timeout``, 90 s by default, after its dependencies came up), ``stop``
  goes wave by wave in reverse dependency order and each wave may take ``stop_timeout``
  (10 s by default) before SIGKILL, ``restart`` is both. Five minutes covers a stop of a
  long dependency chain and a slow start; beyond that, ``--timeout`` (``0`` = no deadline).
- **streams** (``logs -f``, a foreground ``start``): the deadline covers connect and the
  first line (the supervisor confirms a subscription, or says ``attached``, at once); after
  that the stream may run forever. A streaming supervisor is working, not stuck.

Durations read like the manifest's (``500ms``, ``30s``, ``2m``, ``1h``, a bare number is
seconds). They are parsed here rather than by ``manifest.values`` so that no command pays
for importing the manifest package.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

READ_ONLY = 5.0
MUTATING = 300.0
FIRST_LINE = 10.0
READ_ONLY_VERBS = frozenset({"status", "inspect", "version"})
STREAM_VERBS = frozenset({"logs"})

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Wait:
    """A request's deadline: ``seconds`` (None = none), on the whole request or, for a
    stream, only until its first line."""

    seconds: float | None
    first_line_only: bool = False


def parse_duration(text: str) -> float:
    """``500ms`` / ``30s`` / ``2m`` / ``1h`` / ``10`` (seconds) -> seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (write 500ms, 30s, 2m or 1h; a bare number is seconds)"
        )
    return int(m.group(1)) * _SECONDS[m.group(2) or "s"]


def format_seconds(seconds: float) -> str:
    """``5s``, ``2m``, ``1m30s``, ``500ms``: how a deadline is named in messages."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    if not minutes:
        return f"{rest}s"
    return f"{minutes}m{rest}s" if rest else f"{minutes}m"


def add_timeout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        metavar="DURATION",
        type=parse_duration,
        default=None,
        help=f"how long to wait for the supervisor's answer (default {format_seconds(MUTATING)}"
        "; 0 = no limit), e.g. 30s, 2m",
    )


def mutating(timeout: float | None) -> Wait:
    """The deadline of a mutating request given ``--timeout`` (None: the default)."""
    if timeout is None:
        return Wait(MUTATING)
    return Wait(timeout if timeout > 0 else None)


def for_request(verb: str, *, attach: bool = False, timeout: float | None = None) -> Wait:
    """The default deadline of a request: read-only, stream or mutating (see above)."""
    if verb in READ_ONLY_VERBS:
        return Wait(READ_ONLY)
    if verb in STREAM_VERBS or attach:
        seconds = FIRST_LINE if timeout is None else (timeout or None)
        return Wait(seconds, first_line_only=True)
    return mutating(timeout)
