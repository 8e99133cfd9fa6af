"""One service's ``sd_notify`` socket (docs/manifest.md, "Readiness"): datagrams in,
``NotifyMessage`` out.

The protocol is systemd's (``sd_notify(3)``): ``KEY=VALUE`` lines in one ``SOCK_DGRAM``
datagram sent to the path in ``NOTIFY_SOCKET``. ``NotifySocket`` binds that path (never an
abstract name: those do not cross network namespaces), turns ``SO_PASSCRED`` on and is read
by the supervisor's loop like any other fd — no thread, no polling.

**Who may speak.** Each datagram is read with ``recvmsg``: ``SCM_CREDENTIALS`` says who sent
it (the kernel translates pid and uid into *our* namespaces: a service under
``isolation.pid``/``isolation.user`` shows its host pid and host uid), ``SCM_RIGHTS`` fds are
closed at once. A datagram is accepted when its sender is

1. ``main_pid`` or a descendant of it (the ``/proc/PID/stat`` ppid chain, at most
   ``MAX_DEPTH`` hops), systemd's ``NotifyAccess=all`` within the service; or
2. gone by the time we read (``systemd-notify --no-block`` and a few lines of ``socket``
   code exit right after sending) **and** its uid is ``service_uid``: the socket is mode
   0600 and owned by that uid, so no one but that uid and root can have sent it.

A *live* sender outside the tree is always refused, as is everything while ``main_pid`` is
None. Refusals (foreign sender, over ``MAX_DATAGRAM`` bytes, fds attached, nothing
honoured) are counted in ``dropped`` and logged at WARN once per ``warn_every``, never per
datagram. The one datagram with an fd that is not refused is ``BARRIER=1`` with one fd
(``sd_notify_barrier``, which ``systemd-notify`` sends after every message): closing the fd
*is* the answer, so it is acknowledged, not counted.

**Invariants.** The reader never blocks (non-blocking socket), reads at most
``MAX_PER_WAKEUP`` datagrams per wake-up (the loop's epoll is level-triggered: the rest
wait for the next turn), and never raises into the loop. ``MAINPID=`` is passed on only
when it names a live descendant of ``main_pid`` in host pids (else the field is cleared):
a service under ``isolation.pid`` names pids of its own namespace, so its ``MAINPID=`` is
in practice always cleared.

**What the owner does.** Create one ``NotifySocket`` per ``notify: true`` service at
``socket_path(...)`` (this module creates ``<state>/notify`` 0711 if it is missing; every
directory above it must be searchable by the service's uid); give the service
``environment(...)``; set ``main_pid`` right after the fork (a datagram that arrives
earlier waits in the socket queue, it is not lost); when the main process exits call
``flush()`` (deliver what it sent last, e.g. ``ERRNO=``) then set ``main_pid = None``,
which discards whatever is still queued so a dying generation can never mark its
successor ready; ``close()`` when the service goes away.
"""

from __future__ import annotations

import array
import contextlib
import enum
import hashlib
import os
import re
import socket
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from systemg.daemon.journal import Journal
from systemg.daemon.loop import Loop
from systemg.proc import alive, stat_fields

MAX_DATAGRAM = 4096  # bytes; larger datagrams are dropped
MAX_PER_WAKEUP = 64  # datagrams read per loop wake-up
MAX_FLUSH = 1024  # datagrams read by flush() / discarded when main_pid becomes None
MAX_DEPTH = 64  # ppid hops walked from the sender towards main_pid
WARN_EVERY = 100  # one WARN line per this many refused datagrams
NOTIFY_DIR_MODE = 0o711  # service users may reach their socket by name, not list the others
SOCKET_MODE = 0o600
SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) minus the terminating NUL
_SCM_MAX_FD = 253  # the kernel's per-message fd limit: room for all, so all are closed
_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid
_ANC_SPACE = socket.CMSG_SPACE(_UCRED.size) + socket.CMSG_SPACE(_SCM_MAX_FD * 4)
_DIGITS = re.compile(rb"[0-9]{1,20}")
_UINT64_MAX = 2**64 - 1
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class NotifyMessage:
    """One accepted datagram, parsed; ``sender_pid`` is the credentials' pid (host view)."""

    ready: bool = False
    status: str | None = None
    watchdog: bool = False  # WATCHDOG=1
    watchdog_trigger: bool = False  # WATCHDOG=trigger
    extend_timeout_usec: int | None = None
    mainpid: int | None = None
    reloading: bool = False
    monotonic_usec: int | None = None  # only with RELOADING=1, as systemd reads it
    stopping: bool = False
    errno: int | None = None
    sender_pid: int = 0


def _number(value: bytes, low: int, high: int) -> int | None:
    """A plain decimal in [low, high] (no sign, spaces or underscores), else None."""
    if not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if low <= number <= high else None


def parse_datagram(data: bytes) -> NotifyMessage | None:
    """The honoured keys of one datagram, or None when nothing is honoured.

    Lines are ``KEY=VALUE``; unknown keys, lines without ``=`` and invalid values are
    ignored one by one (as systemd does); for a key given twice the first value wins.
    Empty, over ``MAX_DATAGRAM`` bytes, or with a NUL byte: the whole datagram is refused.
    A ``STATUS=`` that is not UTF-8 is ignored; an empty one clears the status (``""``).
    """
    if not data or len(data) > MAX_DATAGRAM or b"\0" in data:
        return None
    ready = watchdog = trigger = reloading = stopping = False
    status: str | None = None
    extend: int | None = None
    mainpid: int | None = None
    monotonic: int | None = None
    err: int | None = None
    for line in data.split(b"\n"):
        key, sep, value = line.partition(b"=")
        if not sep:
            continue
        match key:
            case b"READY":
                ready = ready or value == b"1"
            case b"STATUS" if status is None:
                with contextlib.suppress(UnicodeDecodeError):
                    status = value.decode("utf-8")
            case b"WATCHDOG":
                watchdog = watchdog or value == b"1"
                trigger = trigger or value == b"trigger"
            case b"EXTEND_TIMEOUT_USEC" if extend is None:
                extend = _number(value, 0, _UINT64_MAX)
            case b"MAINPID" if mainpid is None:
                mainpid = _number(value, 1, _INT32_MAX)
            case b"RELOADING":
                reloading = reloading or value == b"1"
            case b"MONOTONIC_USEC" if monotonic is None:
                monotonic = _number(value, 0, _UINT64_MAX)
            case b"STOPPING":
                stopping = stopping or value == b"1"
            case b"ERRNO" if err is None:
                err = _number(value, 0, _INT32_MAX)
            case _:
                pass
    if not reloading:
        monotonic = None
    message = NotifyMessage(
        ready=ready,
        status=status,
        watchdog=watchdog,
        watchdog_trigger=trigger,
        extend_timeout_usec=extend,
        mainpid=mainpid,
        reloading=reloading,
        monotonic_usec=monotonic,
        stopping=stopping,
        errno=err,
    )
    return None if message == NotifyMessage() else message


def socket_path(state_dir: Path, project: str, service: str) -> Path:
    """``<state>/notify/<16 hex of sha256("project/service")>.sock``.

    Pure: nothing is created here (``NotifySocket`` creates the ``notify`` directory).
    Raises ValueError when ``state_dir`` is relative (``NOTIFY_SOCKET`` must be absolute)
    or so long that the path passes the 107-byte ``sun_path`` limit.
    """
    if not state_dir.is_absolute():
        raise ValueError(f"notify socket: state directory {state_dir} is not absolute")
    digest = hashlib.sha256(f"{project}/{service}".encode()).hexdigest()[:16]
    path = state_dir / "notify" / f"{digest}.sock"
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise ValueError(
            f"notify socket path {path} is longer than {SUN_PATH_MAX} bytes:"
            " use a shorter state directory"
        )
    return path


def environment(path: Path, watchdog_usec: int | None) -> tuple[tuple[str, str], ...]:
    """The variables a ``notify: true`` service gets (they override inherited ones).

    ``NOTIFY_SOCKET`` always; ``WATCHDOG_USEC`` with a watchdog. ``WATCHDOG_PID`` must be
    the service's own pid *in its namespace* (1 under ``isolation.pid``), which only the
    child knows: the plan's ``watchdog_pid`` has the child set it to ``os.getpid()`` right
    before ``execve``, as it does for ``LISTEN_PID``.
    """
    env = [("NOTIFY_SOCKET", str(path))]
    if watchdog_usec is not None:
        if watchdog_usec <= 0:
            raise ValueError(f"watchdog_usec must be positive, got {watchdog_usec}")
        env.append(("WATCHDOG_USEC", str(watchdog_usec)))
    return tuple(env)


class Lineage(enum.Enum):
    IN_TREE = "in the service's process tree"
    GONE = "gone"
    OUTSIDE = "outside the service's process tree"


def lineage(pid: int, root: int, max_depth: int = MAX_DEPTH) -> Lineage:
    """Where ``pid`` stands relative to ``root``: itself or a descendant, gone, or outside.

    Walks the ppid chain in ``/proc`` (host pids). A zombie still has its parent, so a
    sender its parent has not reaped yet counts as what it was. A chain broken above the
    sender (an ancestor exited while we walked) or longer than ``max_depth`` is outside.
    """
    current = pid
    for _ in range(max_depth):
        if current == root:
            return Lineage.IN_TREE
        fields = stat_fields(current)
        if fields is None:
            return Lineage.GONE if current == pid else Lineage.OUTSIDE
        try:
            current = int(fields[1])
        except (IndexError, ValueError):
            return Lineage.OUTSIDE
        if current <= 0:
            return Lineage.OUTSIDE
    return Lineage.OUTSIDE


def _ensure_dir(directory: Path) -> None:
    if directory.is_dir():
        return  # an existing directory's mode is its owner's decision
    with contextlib.suppress(FileExistsError):
        directory.mkdir(NOTIFY_DIR_MODE)
    os.chmod(directory, NOTIFY_DIR_MODE)  # mkdir's mode passed through the umask


def _remove_stale(path: Path) -> None:
    """A socket left by a supervisor that died goes; anything else at the path is an error."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    os.unlink(path)


def _take_ancillary(ancdata: list[tuple[int, int, bytes]]) -> tuple[tuple[int, int] | None, int]:
    """``((pid, uid) | None, fds)``: the credentials, and how many fds came (all now closed)."""
    creds: tuple[int, int] | None = None
    fds = 0
    for level, kind, payload in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
            for fd in received:
                fds += 1
                with contextlib.suppress(OSError):
                    os.close(fd)
        elif kind == socket.SCM_CREDENTIALS and len(payload) >= _UCRED.size:
            pid, uid, _gid = _UCRED.unpack_from(payload)
            creds = (pid, uid)
    return creds, fds


class NotifySocket:
    """The bound socket of one service, registered on ``loop`` until ``close()``."""

    def __init__(
        self,
        loop: Loop,
        path: Path,
        *,
        uid: int | None,
        gid: int | None,
        on_message: Callable[[NotifyMessage], None],
        journal: Journal,
        label: str | None = None,
        warn_every: int = WARN_EVERY,
    ) -> None:
        self.path = path
        self.service_uid: int = os.geteuid() if uid is None else uid
        self.dropped = 0
        self.stale = 0  # datagrams discarded because main_pid was reset (not refusals)
        self._loop = loop
        self._on_message = on_message
        self._journal = journal
        self._label = label or path.name
        self._warn_every = max(1, warn_every)
        self._main_pid: int | None = None
        self._mainpid_ignored = 0
        _ensure_dir(path.parent)
        _remove_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # close-on-exec by default
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            # Bound 0600 from the start: no window in which another uid could connect.
            old_umask = os.umask(0o177)
            try:
                sock.bind(os.fsencode(path))
            finally:
                os.umask(old_umask)
            if os.geteuid() == 0 and (uid is not None or gid is not None):
                os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
            os.chmod(path, SOCKET_MODE)
            st = os.lstat(path)
            self._identity = (st.st_dev, st.st_ino)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)
            raise
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        loop.add_reader(self._fd, self._on_readable)

    # --- the owner's side ---------------------------------------------------------------
    @property
    def main_pid(self) -> int | None:
        return self._main_pid

    @main_pid.setter
    def main_pid(self, pid: int | None) -> None:
        """Set after the fork; None when the main process exited (discards the queue)."""
        if pid is None and self._main_pid is not None:
            self._discard_queue()
        self._main_pid = pid

    def flush(self) -> None:
        """Read and handle everything queued now (bounded), e.g. before resetting main_pid.

        ``on_message`` is called synchronously, from inside this call."""
        self._drain(MAX_FLUSH)

    def close(self) -> None:
        """Unregister and close the socket, and unlink its path if it is still ours."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._loop.remove(self._fd)
        sock.close()
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:  # not a successor's socket
                os.unlink(self.path)

    # --- the loop's side ----------------------------------------------------------------
    def _on_readable(self) -> None:
        self._drain(MAX_PER_WAKEUP)

    def _receive(self) -> tuple[bytes, list[tuple[int, int, bytes]], int] | None:
        if self._sock is None:
            return None
        try:
            data, ancdata, flags, _addr = self._sock.recvmsg(
                MAX_DATAGRAM + 1, _ANC_SPACE, socket.MSG_CMSG_CLOEXEC
            )
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._journal.error(f"notify {self._label}: recvmsg failed: {exc}")
            return None
        return data, ancdata, flags

    def _drain(self, limit: int) -> None:
        for _ in range(limit):
            got = self._receive()
            if got is None:
                return
            try:
                message = self._accept(*got)
            except Exception as exc:  # a bad datagram must never reach the loop
                self._refuse(f"unreadable datagram ({exc!r})")
                continue
            if message is None:
                continue
            try:
                self._on_message(message)
            except Exception as exc:
                self._journal.error(f"notify {self._label}: on_message failed: {exc!r}")

    def _discard_queue(self) -> None:
        for _ in range(MAX_FLUSH):
            got = self._receive()
            if got is None:
                return
            _take_ancillary(got[1])
            self.stale += 1

    def _accept(
        self, data: bytes, ancdata: list[tuple[int, int, bytes]], flags: int
    ) -> NotifyMessage | None:
        """The message to deliver, or None (refused and counted, or a barrier answered)."""
        creds, fds = _take_ancillary(ancdata)  # first: fds are closed whatever happens
        pid = creds[0] if creds is not None else 0
        reason = self._screen(data, flags, creds, fds)
        if reason is None and fds:
            return None  # sd_notify_barrier: the closed fd is the acknowledgement
        message = None if reason is not None else parse_datagram(data)
        if message is None:
            self._refuse(reason or f"sender pid {pid}: nothing sd_notify(3) honours")
            return None
        mainpid = message.mainpid
        if mainpid is not None and not self._descendant(mainpid):
            self._mainpid_ignored += 1
            if (self._mainpid_ignored - 1) % self._warn_every == 0:
                self._journal.warn(
                    f"notify {self._label}: MAINPID={mainpid} from pid {pid} ignored: not a"
                    f" live process of the service ({self._mainpid_ignored} so far)"
                )
            mainpid = None
        return replace(message, mainpid=mainpid, sender_pid=pid)

    def _screen(
        self, data: bytes, flags: int, creds: tuple[int, int] | None, fds: int
    ) -> str | None:
        """Why the datagram is refused before parsing, or None (fds: only a barrier)."""
        if flags & socket.MSG_TRUNC or len(data) > MAX_DATAGRAM:
            return f"datagram over {MAX_DATAGRAM} bytes"
        if flags & socket.MSG_CTRUNC:
            return "control data truncated"
        if creds is None:
            return "no sender credentials"
        pid, uid = creds
        refusal = self._sender_refusal(pid, uid)
        if refusal is not None:
            return f"sender pid {pid} uid {uid}: {refusal}"
        if fds and (fds != 1 or data.rstrip(b"\n") != b"BARRIER=1"):
            return f"sender pid {pid}: {fds} file descriptor(s) attached"
        return None

    def _sender_refusal(self, pid: int, uid: int) -> str | None:
        root = self._main_pid
        if root is None:
            return "the service has no main pid yet"
        if pid <= 0:
            return "pid not visible from the supervisor's pid namespace"
        match lineage(pid, root):
            case Lineage.IN_TREE:
                return None
            case Lineage.GONE:
                if uid == self.service_uid:
                    return None
                return f"gone, and not the service's uid {self.service_uid}"
            case Lineage.OUTSIDE:
                return f"a live process outside main pid {root}'s tree"

    def _descendant(self, pid: int) -> bool:
        root = self._main_pid
        return root is not None and alive(pid) and lineage(pid, root) is Lineage.IN_TREE

    def _refuse(self, reason: str) -> None:
        self.dropped += 1
        if (self.dropped - 1) % self._warn_every == 0:
            self._journal.warn(
                f"notify {self._label}: dropped a datagram, {reason}"
                f" ({self.dropped} dropped so far; one line per {self._warn_every})"
            )
