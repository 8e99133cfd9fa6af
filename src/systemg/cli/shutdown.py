"""Ending a runtime's supervisor — even one that no longer answers (``stop --supervisor``,
``purge``).

1. It answers (a ``version`` probe within ``deadlines.READ_ONLY``): ask it to shut down
   (stop every service in reverse dependency order, then exit), with the mutating
   deadline, and wait for its pid to go.
2. It does not answer (frozen by SIGSTOP, wedged): ``SIGCONT`` (a frozen supervisor resumes
   and may answer after all: then step 1), probing again for ``RETRY`` seconds; still
   silent: ``SIGTERM`` (to the supervisor: stop every service, then exit) and ``TERM_GRACE``
   to go; then ``SIGKILL``.
3. Once it is gone other than by a clean shutdown: its files are removed (``sysg.pid`` if
   it still names it, ``control.sock`` if nobody accepts on it; ``supervisor.lock`` is an
   flock, the file may stay), and the services it recorded that still run are stopped
   here: SIGTERM to each one's process group, SIGKILL after ``STOP_GRACE``. Identity is pid
   + start time from its state files (``liveness.live_services``), never a command line.
   Someone who stops the supervisor expects everything it ran to stop, as with systemd or
   supervisord; a supervisor that was killed could not do it itself. Its fd holder
   (``sysg fdholder``, which keeps the services' pipes open for a successor) goes too.

Signals go only to a pid that ``liveness.identify`` says is this runtime's supervisor.
Each step is reported on stderr as it happens; the caller prints the outcome.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

from systemg import proc
from systemg.cli import client, liveness
from systemg.cli.deadlines import READ_ONLY, Wait, format_seconds, mutating
from systemg.errors import Code, SysgError
from systemg.paths import Paths
from systemg.protocol.messages import ShutdownRequest, VersionRequest

EXIT_DEADLINE = 30.0  # a supervisor that said "stopped" exits well within this
RETRY = 2.0  # after SIGCONT: how long a resumed supervisor gets to answer
TERM_GRACE = 5.0  # after SIGTERM, before SIGKILL
KILL_GRACE = 5.0  # after SIGKILL: only the kernel's reaping is left
STOP_GRACE = 10.0  # the default stop_timeout, for services stopped by the CLI

Say = Callable[[str], None]


def note(text: str) -> None:
    sys.stderr.write(f"note: {text}\n")
    sys.stderr.flush()


def shutdown(paths: Paths, *, wait: Wait | None = None, say: Say = note) -> bool:
    """Stop the supervisor of ``paths`` and everything it runs; False if none was running.

    Raises ``SG0205`` when something answers on the socket that is not a supervisor we can
    identify, and ``SG0405`` when the supervisor cannot be ended (not ours to signal).
    """
    pid = liveness.identify(paths)
    if pid is not None and liveness.frozen(pid):
        _signal(paths, pid, signal.SIGCONT)
        say(f"supervisor {pid} was stopped (state T); sent SIGCONT")
    try:
        client.call(paths, VersionRequest(), Wait(READ_ONLY))
    except SysgError as exc:
        if exc.code is Code.NO_SUPERVISOR:
            if pid is None:
                return False
            # Booting or exiting without its socket: SIGTERM is the same request.
            return _terminate(paths, pid, say, "has no control socket")
        if pid is None:
            raise
        if exc.code in (Code.VERSION_MISMATCH, Code.PROTOCOL):
            say(exc.diagnostics[0].message)
            return _terminate(paths, pid, say, "speaks another protocol")
        if exc.code is not Code.SUPERVISOR_NOT_ANSWERING:
            raise
        say(exc.diagnostics[0].message)
        if not _revive(paths, pid, say):
            return _escalate(paths, pid, say)
    return _ask(paths, pid, wait, say)


def _ask(paths: Paths, pid: int | None, wait: Wait | None, say: Say) -> bool:
    """It answers: the shutdown request, then its pid must go."""
    try:
        client.call(paths, ShutdownRequest(), wait or mutating(None))
    except SysgError as exc:
        if exc.code is Code.NO_SUPERVISOR:
            if pid is None or client.wait_gone(pid, EXIT_DEADLINE):
                _clean_up(paths, pid, say)  # it went away mid-request: finish its work
                return True
        elif exc.code is not Code.SUPERVISOR_NOT_ANSWERING or pid is None:
            raise
        else:
            say(exc.diagnostics[0].message)
        return _escalate(paths, liveness.identify(paths) or pid, say)
    if pid is None or pid == os.getpid() or client.wait_gone(pid, EXIT_DEADLINE):
        return True
    say(f"supervisor {pid} said it stopped but is still running after {EXIT_DEADLINE:.0f}s")
    return _kill(paths, pid, say)


def _terminate(paths: Paths, pid: int, say: Say, why: str) -> bool:
    """SIGTERM means "stop every service, then exit" to the supervisor: it gets
    ``EXIT_DEADLINE`` for that, then SIGKILL."""
    _signal(paths, pid, signal.SIGTERM)
    say(f"supervisor {pid} {why}; sent SIGTERM")
    if client.wait_gone(pid, EXIT_DEADLINE):
        _clean_up(paths, pid, say)
        return True
    say(f"supervisor {pid} is still running {EXIT_DEADLINE:.0f}s after SIGTERM")
    return _kill(paths, pid, say)


def _revive(paths: Paths, pid: int, say: Say) -> bool:
    """SIGCONT, then probe for ``RETRY`` seconds; True if it answers now."""
    _signal(paths, pid, signal.SIGCONT)
    deadline = time.monotonic() + RETRY
    while True:
        left = deadline - time.monotonic()
        try:
            client.call(paths, VersionRequest(), Wait(max(left, 0.05)))
        except SysgError as exc:
            if exc.code is not Code.SUPERVISOR_NOT_ANSWERING:
                raise
        else:
            say(f"sent SIGCONT to supervisor {pid}; it answers again")
            return True
        if time.monotonic() >= deadline:
            say(f"sent SIGCONT to supervisor {pid}; still no answer after {format_seconds(RETRY)}")
            return False


def _escalate(paths: Paths, pid: int, say: Say) -> bool:
    """SIGTERM, ``TERM_GRACE``, then SIGKILL."""
    _signal(paths, pid, signal.SIGTERM)
    if client.wait_gone(pid, TERM_GRACE):
        say(f"sent SIGTERM to supervisor {pid}; it exited")
        _clean_up(paths, pid, say)
        return True
    say(f"sent SIGTERM to supervisor {pid}; still running after {format_seconds(TERM_GRACE)}")
    return _kill(paths, pid, say)


def _kill(paths: Paths, pid: int, say: Say) -> bool:
    _signal(paths, pid, signal.SIGKILL)
    if not client.wait_gone(pid, KILL_GRACE):
        raise SysgError.of(
            Code.PURGE_SUPERVISOR_STUCK,
            f"supervisor {pid} is still there {format_seconds(KILL_GRACE)} after SIGKILL "
            f"(state {liveness.state(pid) or '?'})",
            hint="a process in state D waits for the kernel (I/O, a hung mount); "
            f"see `cat /proc/{pid}/stack`",
        )
    say(f"sent SIGKILL to supervisor {pid}; it is gone")
    _clean_up(paths, pid, say)
    return True


def _signal(paths: Paths, pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise SysgError.of(
            Code.PURGE_SUPERVISOR_STUCK,
            f"cannot signal supervisor {pid}: permission denied",
            hint=f"it belongs to another user; `sudo {client.sysg_command(paths)} stop "
            "--supervisor`",
        ) from None


# --- after a supervisor that did not shut down cleanly -------------------------------------


def _clean_up(paths: Paths, pid: int | None, say: Say) -> None:
    removed = []
    if pid is not None and liveness.recorded_pid(paths) == pid:
        with contextlib.suppress(FileNotFoundError):
            paths.pid_file.unlink()
            removed.append(paths.pid_file.name)
    if paths.socket.exists() and not _listening(paths):
        with contextlib.suppress(FileNotFoundError):
            paths.socket.unlink()
            removed.append(paths.socket.name)
    if removed:
        say(f"removed {' and '.join(removed)} from {paths.state_dir}")
    left = liveness.live_services(paths)
    if left:
        say(stop_services(left))
    if not liveness.live_services(paths):
        _end_fdholder(paths)


def _listening(paths: Paths) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(0.5)
    try:
        sock.connect(str(paths.socket))
    except TimeoutError:
        return True  # a full backlog: someone listens
    except OSError:
        return False
    finally:
        sock.close()
    return True


def stop_services(services: list[liveness.RecordedService]) -> str:
    """SIGTERM each one's process group, SIGKILL what is left after ``STOP_GRACE``."""
    for svc in services:
        _kill_group(svc, signal.SIGTERM, _live_groups())
    _wait_groups(services, STOP_GRACE)
    groups = _live_groups()
    killed = [s for s in services if _group_alive(s, groups)]
    for svc in killed:
        _kill_group(svc, signal.SIGKILL, groups)
    _wait_groups(killed, KILL_GRACE)
    names = ", ".join(
        f"{s.label} (pid {s.pid}{', SIGKILL' if s in killed else ''})" for s in services
    )
    plural = "service" if len(services) == 1 else "services"
    groups = _live_groups()
    stuck = [s.label for s in services if _group_alive(s, groups)]
    text = f"stopped {len(services)} {plural} it left running: {names}"
    if stuck:
        text += f"; still running: {', '.join(stuck)}"
    return text


def _wait_groups(services: list[liveness.RecordedService], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        groups = _live_groups()
        if not any(_group_alive(s, groups) for s in services):
            return
        time.sleep(0.05)


def _is_same(svc: liveness.RecordedService) -> bool:
    return proc.start_time(svc.pid) == svc.start_time


def _group_alive(svc: liveness.RecordedService, groups: set[int]) -> bool:
    """The service itself, or any process left in its group. A group id is never reused
    while a member lives, so the members of the service's group are the service's."""
    return _is_same(svc) or svc.pid in groups


def _kill_group(svc: liveness.RecordedService, signum: signal.Signals, groups: set[int]) -> None:
    # Services lead their own process group (pgid == pid): the group only then.
    try:
        if _is_same(svc):
            if os.getpgid(svc.pid) == svc.pid:
                os.killpg(svc.pid, signum)
            else:
                os.kill(svc.pid, signum)
        elif svc.pid in groups:
            os.killpg(svc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _live_groups() -> set[int]:
    """The process group ids of every live (non-zombie) process."""
    groups: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = proc.stat_fields(int(entry))
            if fields and fields[0] not in (b"Z", b"X"):
                groups.add(int(fields[2]))
    return groups


def _end_fdholder(paths: Paths) -> None:
    """The holder keeps dead services' pipes for a successor; with none left, end it."""
    pid_file = paths.state_dir / "fdholder.pid"
    try:
        pid = int(pid_file.read_text().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except (OSError, ValueError):
        return
    born = liveness.started_at(pid)
    try:
        written = pid_file.stat().st_mtime
    except OSError:
        return
    if b"fdholder" in argv and born is not None and born <= written + liveness.START_SLACK:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
