"""Start the resident supervisor as a detached process (``sysg start`` with none running).

``spawn_detached(argv, log_path, env)`` forks once; the child starts a new session
(``setsid``: no controlling terminal, its own process group, so the terminal's Ctrl-C never
reaches it), points stdin at ``/dev/null`` and stdout/stderr at ``log_path`` (appended,
``0600``), closes every other descriptor and ``execve``s ``argv``. The parent gets the pid
back and stays its parent: the CLI polls ``os.waitpid(pid, WNOHANG)`` while the supervisor
boots, so it learns at once (and with the exit status) if the supervisor died during boot,
and never leaves a zombie behind. When the CLI exits, the supervisor is re-parented.

Why one fork and not two: the supervisor never opens a terminal, so the classic second fork
(guarding against re-acquiring a controlling tty) buys nothing, and a single fork keeps the
boot failure observable through ``waitpid`` instead of a pid file.

If ``execve`` fails the child writes one line to the log and exits 127; nothing else of
Python runs in the child (``os._exit``), so no buffered output is flushed twice.

``mark_all_cloexec`` is the supervisor's other fd rule at boot: whatever it inherited is
made close-on-exec, so no such fd reaches a service (here, not in ``launcher``, so the boot
can call it before importing the spawn machinery).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

EXEC_FAILED = 127


def spawn_detached(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str],
    *,
    listen_fds: int = 0,
    conn_fd: int | None = None,
) -> int:
    """Fork, detach and exec ``argv``; return the child's pid (the caller must reap it).

    ``listen_fds`` = n > 0 passes this process's fds 3..3+n-1 on at the same numbers, with
    ``LISTEN_FDS=n`` and ``LISTEN_PID`` = the child's pid (socket activation handed on to
    the supervisor; ``LISTEN_FDNAMES``, if any, is the caller's to put in ``env``).
    ``conn_fd`` is passed on as fd 3 instead (the fd holder's end of its supervisor's
    socketpair).
    """
    if not argv:
        raise ValueError("empty argv")
    if conn_fd is not None and listen_fds:
        raise ValueError("conn_fd and listen_fds both want fd 3")
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Opened in the parent so an unwritable log is an ordinary OSError for the caller.
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    args = [str(a) for a in argv]
    environ = {str(k): str(v) for k, v in env.items()}
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            _child(args, environ, log_fd, null_fd, keep=listen_fds, conn_fd=conn_fd)
        return pid
    finally:
        os.close(log_fd)
        os.close(null_fd)


def _child(
    argv: list[str],
    env: dict[str, str],
    log_fd: int,
    null_fd: int,
    *,
    keep: int,
    conn_fd: int | None,
) -> None:
    """In the child: new session, stdio wired, nothing else open, exec. Never returns."""
    try:
        os.setsid()
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        if conn_fd is not None:
            if conn_fd != 3:
                os.dup2(conn_fd, 3)
            os.set_inheritable(3, True)
            keep = 1
        # log_fd/null_fd were opened after the kept fds 3..3+keep-1, so they lie above them.
        os.closerange(3 + keep, _max_fd())
        if keep and conn_fd is None:
            for fd in range(3, 3 + keep):
                os.set_inheritable(fd, True)
            env["LISTEN_FDS"] = str(keep)
            env["LISTEN_PID"] = str(os.getpid())
        os.execve(argv[0], argv, env)
    except OSError as exc:
        try:
            os.write(2, f"sysg: cannot execute {argv[0]!r}: {exc.strerror}\n".encode())
        finally:
            os._exit(EXEC_FAILED)
    os._exit(EXEC_FAILED)


def _max_fd() -> int:
    try:
        return max(int(os.sysconf("SC_OPEN_MAX")), 256)
    except (OSError, ValueError):
        return 65536


def mark_all_cloexec() -> None:
    """Set close-on-exec on every fd above 2 (the supervisor calls this once at boot, after
    taking its activation fds, so nothing it inherited can leak into a posix_spawn'd service)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listdir fd itself, closed by now
