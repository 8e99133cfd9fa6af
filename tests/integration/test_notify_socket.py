"""``NotifySocket`` with real sockets, real processes and the real ``Loop``.

Senders are ``systemd-notify`` and a few lines of ``socket`` code run by ``/usr/bin/python3``
(readable by every user), as root, as ``nobody``/``daemon`` through ``setpriv``, and inside
pid/user/mount/network namespaces (``unshare`` and the project's own launcher). What the
credentials showed, asserted below:

- ``systemd-notify`` 252 run as root claims its *parent's* pid (it may fake credentials);
  run as ``nobody`` it sends as itself. Either way it then sends ``BARRIER=1`` with a pipe
  fd and waits until that fd is closed.
- Under a pid namespace the pid is the sender's *host* pid (its ``NSpid`` is ``<host> 1``),
  and under a user namespace mapping 65534 1:1 — or even mapping it to root inside — the
  uid is the host uid 65534.
"""

from __future__ import annotations

import array
import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from systemg.daemon import notify
from systemg.daemon.journal import Journal
from systemg.daemon.loop import Loop
from systemg.daemon.notify import (
    NOTIFY_DIR_MODE,
    Lineage,
    NotifyMessage,
    NotifySocket,
    environment,
    lineage,
    socket_path,
)

PY = "/usr/bin/python3"
NOBODY = 65534
AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
AS_DAEMON = ("setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups")
NEW_NS = ("unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc")
SH_TREE = '"$@"; exec sleep 1000'  # sh runs the sender as its child, then stays

# argv: path, text ("{pid}"/"{uid}" filled in), copies, "hold" (wait for stdin EOF) or "".
# Prints "pid <pid>" after sending, or "EACCES" (exit 3) when the kernel refuses.
SEND = """
import os, socket, sys
path, text, copies, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
data = text.format(pid=os.getpid(), uid=os.getuid()).encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    for _ in range(copies):
        s.sendto(data, path)
except PermissionError:
    print("EACCES", flush=True)
    sys.exit(3)
print("pid", os.getpid(), flush=True)
if hold == "hold":
    sys.stdin.read()
"""


def sender(path: Path, text: str, *, copies: int = 1, hold: bool = False) -> list[str]:
    return [PY, "-c", SEND, str(path), text, str(copies), "hold" if hold else ""]


def send_with_fd(client: socket.socket, data: bytes, fd: int, path: Path) -> None:
    # socket.send_fds ignores its address argument on 3.11: sendmsg directly.
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
    client.sendmsg([data], rights, 0, str(path))


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])


def nspid(pid: int) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no NSpid")


class Harness:
    """A loop, a journal, the sockets and processes one test made (all cleaned up)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loop = Loop()
        self.journal_path = root / "journal.log"
        self.journal = Journal(self.journal_path)
        self.messages: list[NotifyMessage] = []
        self.sockets: list[NotifySocket] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.output: dict[int, bytearray] = {}

    def socket(self, name: str = "web", **kwargs: object) -> NotifySocket:
        kwargs.setdefault("uid", None)
        kwargs.setdefault("gid", None)
        kwargs.setdefault("on_message", self.messages.append)
        ns = NotifySocket(
            self.loop,
            socket_path(self.root, "proj", name),
            journal=self.journal,
            **kwargs,  # type: ignore[arg-type]
        )
        self.sockets.append(ns)
        return ns

    def spawn(self, argv: list[str], path: Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` in its own session; its output is read on the loop."""
        env = {"PATH": "/usr/bin:/bin"}
        if path is not None:
            env.update(environment(path, None))
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        out = self.output[proc.pid] = bytearray()
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)

        def read() -> None:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                self.loop.remove(fd)
            out.extend(chunk)

        self.loop.add_reader(fd, read)
        return proc

    def run_until(self, done: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout

        def check() -> None:
            if done() or time.monotonic() > deadline:
                self.loop.stop()
            else:
                self.loop.call_later(0.01, check)

        self.loop.call_later(0, check)
        self.loop.run()
        assert done(), f"timed out: messages={self.messages} output={self.output}"

    def warnings(self) -> list[str]:
        if not self.journal_path.exists():
            return []
        return [x for x in self.journal_path.read_text().splitlines() if " WARN " in x]

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    self.loop.remove(pipe.fileno())
                    with contextlib.suppress(OSError):
                        pipe.close()
        for ns in self.sockets:
            ns.close()
        self.loop.close()
        self.journal.close()


def private_root(parent: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix="sgn", dir=parent))  # short: a socket path
    os.chmod(root, 0o711)  # the services' users must reach <root>/notify/
    return root


@pytest.fixture
def h() -> Iterator[Harness]:
    root = private_root("/tmp")
    harness = Harness(root)
    try:
        yield harness
    finally:
        harness.close()
        shutil.rmtree(root, ignore_errors=True)


def only_ours(h: Harness, ns: NotifySocket) -> socket.socket:
    """A client in this test process, which becomes the service's main pid."""
    ns.main_pid = os.getpid()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    h.loop.call_later(3600, client.close)  # keeps it referenced; closed by the test
    return client


# --- the socket itself ---------------------------------------------------------------


def test_socket_is_0600_in_a_0711_directory_and_close_unlinks_it(h: Harness) -> None:
    ns = h.socket()
    st = os.lstat(ns.path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    assert stat.S_IMODE(os.stat(ns.path.parent).st_mode) == NOTIFY_DIR_MODE
    assert len(os.fsencode(ns.path)) <= notify.SUN_PATH_MAX
    assert ns.service_uid == os.geteuid()
    assert ns.main_pid is None
    ns.close()
    assert not ns.path.exists()
    ns.close()  # twice is fine


def test_no_fd_leaks_and_a_successor_keeps_its_path(h: Harness) -> None:
    before = fd_count()
    for _ in range(10):
        ns = NotifySocket(
            h.loop,
            socket_path(h.root, "proj", "leak"),
            uid=None,
            gid=None,
            on_message=h.messages.append,
            journal=h.journal,
        )
        ns.main_pid = os.getpid()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.sendto(b"READY=1", str(ns.path))
        ns.flush()
        ns.close()
    assert fd_count() == before
    assert len(h.messages) == 10
    # A stale socket (a supervisor killed without close()) is replaced; the old object's
    # close() then leaves the successor's path alone.
    old = h.socket("succ")
    new = h.socket("succ")
    old.close()
    assert new.path.exists()
    new.close()
    assert not new.path.exists()


def test_lineage_walks_the_real_ppid_chain() -> None:
    me, parent = os.getpid(), os.getppid()
    assert lineage(me, me) is Lineage.IN_TREE
    assert lineage(me, parent) is Lineage.IN_TREE
    assert lineage(parent, me) is Lineage.OUTSIDE
    assert lineage(me, 1) is Lineage.IN_TREE
    assert lineage(me, 1, max_depth=1) is Lineage.OUTSIDE  # bounded
    proc = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True)
    assert lineage(int(proc.stdout), me) is Lineage.GONE


# --- systemd-notify and plain sockets from the service's tree ------------------------


@pytest.mark.privileged
@pytest.mark.parametrize("as_nobody", [False, True], ids=["root", "nobody"])
def test_systemd_notify_in_the_tree_is_accepted(h: Harness, as_nobody: bool) -> None:
    ns = h.socket(uid=NOBODY, gid=NOBODY) if as_nobody else h.socket()
    script = 'systemd-notify --ready --status="warming up"; echo "rc=$?"; exec sleep 1000'
    argv = [*AS_NOBODY, "sh", "-c", script] if as_nobody else ["sh", "-c", script]
    main = h.spawn(argv, ns.path)
    ns.main_pid = main.pid  # right after the fork; an earlier datagram waits in the queue
    h.run_until(lambda: bool(h.messages) and b"rc=" in h.output[main.pid])
    assert h.messages == [
        NotifyMessage(ready=True, status="warming up", sender_pid=h.messages[0].sender_pid)
    ]
    if as_nobody:
        assert h.messages[0].sender_pid != main.pid  # sent as itself, a child of sh
    else:
        assert h.messages[0].sender_pid == main.pid  # root: claimed its parent's pid
    # Its BARRIER=1 (with a pipe fd) was answered by closing the fd: exit 0, no refusal.
    assert b"rc=0" in h.output[main.pid]
    assert ns.dropped == 0
    assert h.warnings() == []


def test_python_socket_sender_in_the_tree_is_accepted(h: Harness) -> None:
    ns = h.socket()
    text = "READY=1\nSTATUS=pid={pid} uid={uid}"
    main = h.spawn(["sh", "-c", SH_TREE, "sh", *sender(ns.path, text, hold=True)])
    ns.main_pid = main.pid
    h.run_until(lambda: bool(h.messages))
    msg = h.messages[0]
    assert msg.ready
    assert msg.status == f"pid={msg.sender_pid} uid={os.geteuid()}"
    assert ppid(msg.sender_pid) == main.pid  # alive (held), a child of the main pid
    assert ns.dropped == 0


# --- the race: the sender is gone when the datagram is read ---------------------------


def test_gone_sender_with_the_service_uid_is_accepted(h: Harness) -> None:
    ns = h.socket()
    main = h.spawn(["sleep", "1000"])
    ns.main_pid = main.pid
    # Not in the tree, and reaped before the loop reads anything.
    done = subprocess.run(sender(ns.path, "READY=1\nSTATUS=raced"), capture_output=True)
    gone = int(done.stdout.split()[1])
    assert lineage(gone, main.pid) is Lineage.GONE
    h.run_until(lambda: bool(h.messages))
    assert h.messages == [NotifyMessage(ready=True, status="raced", sender_pid=gone)]


@pytest.mark.privileged
def test_systemd_notify_no_block_gone_before_the_read_is_accepted_by_uid(h: Harness) -> None:
    ns = h.socket(uid=NOBODY, gid=NOBODY)
    main = h.spawn(["sleep", "1000"])
    ns.main_pid = main.pid
    env = {"PATH": "/usr/bin:/bin", **dict(environment(ns.path, None))}
    argv = [*AS_NOBODY, "systemd-notify", "--no-block", "--ready", "--status=late"]
    assert subprocess.run(argv, env=env).returncode == 0  # sent, exited, reaped
    h.run_until(lambda: bool(h.messages))
    msg = h.messages[0]
    assert (msg.ready, msg.status) == (True, "late")
    assert lineage(msg.sender_pid, main.pid) is Lineage.GONE
    assert ns.dropped == 0


@pytest.mark.privileged
def test_gone_sender_with_another_uid_is_refused(h: Harness) -> None:
    # The kernel refuses first: the socket is 0600 to nobody, daemon cannot even send.
    theirs = h.socket("theirs", uid=NOBODY, gid=NOBODY)
    refused = subprocess.run([*AS_DAEMON, *sender(theirs.path, "READY=1")], capture_output=True)
    assert (refused.returncode, refused.stdout.strip()) == (3, b"EACCES")
    # The credential check itself: open the socket to everyone (tampering, for the test).
    ns = h.socket()
    main = h.spawn(["sleep", "1000"])
    ns.main_pid = main.pid
    os.chmod(ns.path, 0o666)
    done = subprocess.run([*AS_DAEMON, *sender(ns.path, "READY=1")], capture_output=True)
    assert done.returncode == 0, done
    h.run_until(lambda: ns.dropped == 1)
    assert h.messages == []
    [warning] = h.warnings()
    assert "uid 1:" in warning
    assert "gone, and not the service's uid 0" in warning


# --- refusals -------------------------------------------------------------------------


def test_live_foreign_sender_is_refused_and_logged_once(h: Harness) -> None:
    ns = h.socket()
    main = h.spawn(["sleep", "1000"])
    ns.main_pid = main.pid
    foreign = h.spawn(sender(ns.path, "READY=1", copies=5, hold=True))
    h.run_until(lambda: ns.dropped == 5)
    assert foreign.poll() is None  # alive when read
    assert h.messages == []
    [warning] = h.warnings()
    assert f"a live process outside main pid {main.pid}'s tree" in warning
    # This test process is alive and not below the main pid either.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
        client.sendto(b"READY=1", str(ns.path))
    h.run_until(lambda: ns.dropped == 6)
    assert h.messages == []
    assert len(h.warnings()) == 1  # once per 100, not per datagram


def test_nothing_is_accepted_before_the_main_pid_is_known(h: Harness) -> None:
    ns = h.socket()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
        client.sendto(b"READY=1", str(ns.path))
    h.run_until(lambda: ns.dropped == 1)
    assert h.messages == []


def test_fds_attached_are_closed_and_the_datagram_dropped(h: Harness) -> None:
    ns = h.socket()
    client = only_ours(h, ns)
    r, w = os.pipe()
    before = fd_count()
    send_with_fd(client, b"READY=1", r, ns.path)
    h.run_until(lambda: ns.dropped == 1)
    assert fd_count() == before  # the received copy is closed again
    assert h.messages == []
    os.close(r)
    with pytest.raises(BrokenPipeError):  # no copy of the read end is left anywhere
        os.write(w, b"x")
    os.close(w)
    # sd_notify_barrier: BARRIER=1 with one fd is answered by closing it, not counted.
    r, w = os.pipe()
    send_with_fd(client, b"BARRIER=1", w, ns.path)
    os.close(w)
    h.run_until(lambda: os.read(r, 1) == b"")  # EOF: the barrier's answer
    os.close(r)
    assert ns.dropped == 1
    assert h.messages == []
    client.close()


def test_oversized_and_garbage_are_dropped(h: Harness) -> None:
    ns = h.socket()
    client = only_ours(h, ns)
    client.sendto(b"READY=1\n" + b"x" * 5000, str(ns.path))
    client.sendto(b"\xff\xfe garbage", str(ns.path))
    h.run_until(lambda: ns.dropped == 2)
    exact = b"READY=1\nX_PAD=" + b"x" * (notify.MAX_DATAGRAM - 14)
    assert len(exact) == notify.MAX_DATAGRAM
    client.sendto(exact, str(ns.path))
    h.run_until(lambda: bool(h.messages))
    assert h.messages == [NotifyMessage(ready=True, sender_pid=os.getpid())]
    assert ns.dropped == 2
    assert len(h.warnings()) == 1
    client.close()


# --- what the owner sees --------------------------------------------------------------


def test_reset_discards_the_old_generation_and_flush_delivers(h: Harness) -> None:
    ns = h.socket()
    client = only_ours(h, ns)
    client.sendto(b"ERRNO=5", str(ns.path))
    ns.flush()  # no loop turn needed
    assert h.messages == [NotifyMessage(errno=5, sender_pid=os.getpid())]
    client.sendto(b"READY=1\nSTATUS=old", str(ns.path))
    ns.main_pid = None  # the main process exited: its queued READY must not count
    assert ns.stale == 1
    ns.main_pid = os.getpid()
    client.sendto(b"STATUS=new", str(ns.path))
    h.run_until(lambda: len(h.messages) == 2)
    assert h.messages[1] == NotifyMessage(status="new", sender_pid=os.getpid())
    assert ns.dropped == 0
    client.close()


def test_mainpid_only_when_a_live_descendant(h: Harness) -> None:
    ns = h.socket()
    client = only_ours(h, ns)
    child = h.spawn(["sleep", "1000"])
    client.sendto(f"MAINPID={child.pid}".encode(), str(ns.path))
    client.sendto(b"MAINPID=1\nSTATUS=x", str(ns.path))
    h.run_until(lambda: len(h.messages) == 2)
    assert h.messages[0].mainpid == child.pid
    assert h.messages[1] == NotifyMessage(status="x", sender_pid=os.getpid())
    [warning] = h.warnings()
    assert "MAINPID=1" in warning
    client.close()


def test_reads_are_bounded_per_wakeup_and_callback_errors_stay_inside(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "MAX_PER_WAKEUP", 3)
    seen: list[NotifyMessage] = []

    def on_message(msg: NotifyMessage) -> None:
        seen.append(msg)
        if msg.status == "boom":
            raise RuntimeError("owner bug")

    ns = h.socket(on_message=on_message)
    client = only_ours(h, ns)
    for i in range(8):  # the default max_dgram_qlen is 10: these all fit
        client.sendto(b"STATUS=boom" if i == 0 else f"STATUS={i}".encode(), str(ns.path))
    h.loop.call_later(0, h.loop.stop)  # exactly one loop turn
    h.loop.run()
    assert len(seen) == 3
    h.run_until(lambda: len(seen) == 8)
    assert [m.status for m in seen] == ["boom", *map(str, range(1, 8))]
    assert "on_message failed: RuntimeError('owner bug')" in h.journal_path.read_text()
    client.close()


# --- namespaces -----------------------------------------------------------------------

NS_CASES = {
    # pid/mount/net namespaces made by root, then the switch to nobody
    "pid+mount+net": [*NEW_NS, *AS_NOBODY],
    # as spawn/child.py does: namespaces, switch, then a user namespace mapping 65534 1:1
    "then-user-1:1": [*NEW_NS, *AS_NOBODY, "unshare", "--user", "--map-current-user"],
    # nobody makes every namespace itself and is root inside its user namespace
    "user-as-root": [*AS_NOBODY, "unshare", "--user", "--map-root-user", *NEW_NS[1:]],
}


@pytest.mark.privileged
@pytest.mark.parametrize("case", list(NS_CASES))
def test_namespaced_sender_shows_host_pid_and_host_uid(h: Harness, case: str) -> None:
    ns = h.socket(uid=NOBODY, gid=NOBODY)
    text = "READY=1\nSTATUS=pid={pid} uid={uid}"
    main = h.spawn([*NS_CASES[case], *sender(ns.path, text, hold=True)])
    ns.main_pid = main.pid
    h.run_until(lambda: bool(h.messages))
    msg = h.messages[0]
    inside_uid = 0 if case == "user-as-root" else NOBODY
    assert msg.status == f"pid=1 uid={inside_uid}"  # what the service sees of itself
    assert msg.sender_pid != 1
    assert nspid(msg.sender_pid) == [msg.sender_pid, 1]  # the credentials: the host pid
    assert ppid(msg.sender_pid) == main.pid
    assert ns.dropped == 0


@pytest.mark.privileged
def test_namespaced_sender_gone_is_accepted_by_its_host_uid(h: Harness) -> None:
    ns = h.socket(uid=NOBODY, gid=NOBODY)
    main = h.spawn(["sleep", "1000"])
    ns.main_pid = main.pid
    # The whole pid namespace is gone before the loop reads: only the uid speaks for it.
    done = subprocess.run(
        [
            *NEW_NS,
            *AS_NOBODY,
            "unshare",
            "--user",
            "--map-current-user",
            *sender(ns.path, "READY=1"),
        ],
        capture_output=True,
    )
    assert done.stdout.split() == [b"pid", b"1"]
    h.run_until(lambda: bool(h.messages))
    assert h.messages[0].ready
    assert lineage(h.messages[0].sender_pid, main.pid) is Lineage.GONE


@pytest.mark.privileged
def test_service_launched_by_sysg_with_every_isolation() -> None:
    """The project's launcher: nobody, pid+user+mount+net+private_tmp, notify env.

    The state root must not be under ``/tmp``: ``private_tmp`` hides it from the service.
    """
    from systemg.manifest.model import EnvSpec, Isolation
    from tests.privileged.spawn_helpers import Spawner, py

    code = (
        "import os, socket\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "text = f'READY=1\\nSTATUS=pid={os.getpid()}'\n"
        "try:\n"
        "    s.sendto(text.encode(), os.environ['NOTIFY_SOCKET'])\n"
        "    print('sent', flush=True)\n"
        "except OSError as e:\n"
        "    print('failed', e.errno, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    isolation = Isolation(network=True, mount=True, pid=True, user=True, private_tmp=True)
    spawner = Spawner()
    roots = [private_root("/run"), private_root("/tmp")]
    harnesses = [Harness(root) for root in roots]
    try:
        in_run, in_tmp = harnesses
        runs = []
        for harness in harnesses:
            ns = harness.socket(uid=NOBODY, gid=NOBODY)
            env = EnvSpec(vars=environment(ns.path, None))
            run = spawner.start(py(code, user="nobody", isolation=isolation, env=env))
            ns.main_pid = run.pid
            runs.append(run)
        run_ok, run_hidden = runs
        assert run_ok.line("") == "sent"
        in_run.run_until(lambda: bool(in_run.messages))
        msg = in_run.messages[0]
        assert (msg.ready, msg.status) == (True, "pid=1")
        assert msg.sender_pid == run_ok.pid  # PID 1 of its namespace, no relay before it
        assert run_hidden.line("failed") == "2"  # ENOENT: /tmp is private
        assert in_tmp.messages == []
    finally:
        spawner.close()
        for harness in harnesses:
            harness.close()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
