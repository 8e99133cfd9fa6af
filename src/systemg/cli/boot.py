"""Booting the supervisor from the CLI, and bringing one back after a crash.

``ensure_supervisor`` starts ``sysg [--sys] [--drop-privileges] supervise`` detached when
none answers (forwarding socket-activation fds to it), and waits until its socket accepts
or it dies — then shows why, from the tail of ``supervisor.log``. ``call_reviving`` is
``client.call`` that, after a ``kill -9`` of the supervisor, boots a new one so it re-adopts
the services still running (pid + start time) instead of reporting them gone.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from systemg.cli.client import (
    BOOT_TIMEOUT,
    CONNECT_TIMEOUT,
    Event,
    accepts,
    call,
    load_protocol,
)
from systemg.cli.deadlines import Wait
from systemg.cli.liveness import live_services, lock_holder, supervisor_pid
from systemg.errors import Code, SysgError
from systemg.paths import Mode, Paths

if TYPE_CHECKING:
    from systemg.protocol.messages import Message


def call_reviving(
    paths: Paths,
    request: Message,
    wait: Wait | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> dict[str, Any]:
    """Like ``call``, but if the supervisor was killed while its services still run, boot a
    new one first: it re-adopts them (pid + start time), so ``status``/``stop`` after a
    ``kill -9`` of the supervisor show and stop the real processes, never duplicates."""
    try:
        return call(paths, request, wait, on_event)
    except SysgError as exc:
        if exc.code is not Code.NO_SUPERVISOR or not recorded_live_services(paths):
            raise
    sys.stderr.write("note: the supervisor was gone while services still ran; re-adopting\n")
    _wait_until_gone(paths)
    ensure_supervisor(paths)
    return call(paths, request, wait, on_event)


def _wait_until_gone(paths: Paths, timeout_s: float = 2.0) -> None:
    """A supervisor killed a moment ago may still be closing its files: its connection
    is closed while its listening socket still takes connections, and a boot then sees
    "one is running" and a request finds none (SG0206). Until it is dead (a zombie has
    closed every file), bounded: past it, the boot decides as it always does. A live
    process whose command line is not a supervisor's (a recycled pid) is not waited for;
    an empty one is (a dying process's reads as empty)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = supervisor_pid(paths)
        if pid is None or not _supervisor_or_dying(pid):
            return
        time.sleep(0.005)


def _supervisor_or_dying(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read()
    except OSError:
        return False
    return not argv or b"supervise" in argv.split(b"\0")


def recorded_live_services(paths: Paths) -> bool:
    """True when a previous supervisor recorded a service that is still alive."""
    return bool(live_services(paths))


def supervisor_command(*, system: bool, drop_privileges: bool) -> list[str]:
    """``[sysg, --sys?, --drop-privileges?, supervise]`` with the sysg next to this Python."""
    beside = Path(sys.executable).parent / "sysg"
    if beside.is_file() and os.access(beside, os.X_OK):
        argv = [str(beside)]
    elif found := shutil.which("sysg"):
        argv = [found]
    else:
        argv = [sys.executable, "-m", "systemg"]
    if system:
        argv.append("--sys")
    if drop_privileges:
        argv.append("--drop-privileges")
    argv.append("supervise")
    return argv


def ensure_supervisor(
    paths: Paths, *, drop_privileges: bool = False, environ: Mapping[str, str] | None = None
) -> bool:
    """Make sure a supervisor answers on ``paths``; return True if this call booted one.

    Socket activation (``systemd-socket-activate -l ADDR sysg start ...``): the sockets were
    given to this CLI (``LISTEN_PID`` = our pid), but the supervisor is the one that must adopt
    them, so they are forwarded to the supervisor we boot, at the same fds 3.., with
    ``LISTEN_PID`` rewritten to its pid (docs/security.md §8).
    """
    env = dict(os.environ if environ is None else environ)
    forwarded = activation_fds(env)
    for name in ("LISTEN_FDS", "LISTEN_PID"):
        env.pop(name, None)  # re-set by spawn_detached for the supervisor, if forwarded
    if not forwarded:
        env.pop("LISTEN_FDNAMES", None)
    if accepts(paths, CONNECT_TIMEOUT):
        if forwarded:
            sys.stderr.write(
                f"warning: the {forwarded} socket(s) passed to sysg (LISTEN_FDS) cannot reach "
                "the supervisor that is already running; stop it to socket-activate it\n"
            )
        return False
    from systemg.spawn.detach import spawn_detached

    argv = supervisor_command(system=paths.mode is Mode.SYSTEM, drop_privileges=drop_privileges)
    try:
        paths.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pid = spawn_detached(argv, paths.supervisor_log, env, listen_fds=forwarded)
    except OSError as exc:
        raise SysgError.of(
            Code.START_FAILED,
            f"cannot start the supervisor: {exc.strerror or exc}",
            hint=f"check that {paths.log_dir} is writable",
        ) from None
    load_protocol()  # while it boots, not after: the request is sent as soon as it accepts
    _wait_for_boot(paths, pid)
    return True


def activation_fds(environ: Mapping[str, str]) -> int:
    """How many sockets (fds 3..) a socket-activating parent gave this very process (or 0)."""
    count = environ.get("LISTEN_FDS", "")
    if environ.get("LISTEN_PID") != str(os.getpid()) or not count.isdigit():
        return 0
    n = int(count)
    for fd in range(3, 3 + n):
        try:
            os.fstat(fd)
        except OSError:
            return 0  # not what LISTEN_FDS promised: forward nothing
    return n


def _wait_for_boot(paths: Paths, pid: int) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    status: int | None = None
    while time.monotonic() < deadline:
        if accepts(paths, 1.0):
            if status is None and supervisor_pid(paths) not in (None, pid):
                _reap_loser(pid, deadline)
            return
        if status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
        if status is not None:
            # Ours exited: fine if it lost the lock to a supervisor that is still booting.
            winner = supervisor_pid(paths) or lock_holder(paths)
            if winner is None or winner == pid:
                if accepts(paths, 1.0):
                    return
                raise _boot_failed(paths, status)
        time.sleep(0.005)  # performance: the boot wait is on `sysg start`'s cold-start path
    if accepts(paths, 1.0):
        return
    raise SysgError.of(
        Code.START_FAILED,
        f"the supervisor did not open {paths.socket} within {BOOT_TIMEOUT:.0f}s",
        hint=f"see {paths.supervisor_log}:\n{log_tail(paths.supervisor_log)}",
    )


def _reap_loser(pid: int, deadline: float) -> None:
    """Ours lost the race to another CLI's supervisor: it exits at the lock; wait for that.

    Returning while it still boots would leave, for a moment, a second ``sysg supervise``
    process that a user (or ``pgrep``) sees beside the real one.
    """
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.005)


def _boot_failed(paths: Paths, status: int) -> SysgError:
    how = (
        f"exited with status {os.waitstatus_to_exitcode(status)}"
        if os.WIFEXITED(status)
        else f"was killed by signal {os.WTERMSIG(status)}"
    )
    tail = log_tail(paths.supervisor_log)
    return SysgError.of(
        Code.START_FAILED,
        f"the supervisor {how} while starting",
        hint=f"last lines of {paths.supervisor_log}:\n{tail}" if tail else "",
    )


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])
