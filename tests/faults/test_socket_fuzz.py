"""Fault: thousands of random or malformed frames on every unix socket of the supervisor.

- ``control.sock`` (newline-delimited JSON, 1 MiB cap): random bytes, JSON of every shape
  with wrong types, unknown verbs, huge numbers, deep nesting and NULs, frames over the
  cap, frames split over many sends or carrying fds, connections closed mid-frame,
  half-closed, or opened and abandoned. Every complete frame gets one JSON reply (or, for
  an oversized one, a reply or a reset) within the timeout: no hang.
- ``fdholder.sock`` (``SOCK_SEQPACKET`` JSON, ``SCM_RIGHTS``): the same mix as packets,
  with fds of ``/dev/null`` (up to ``SCM_MAX_FD``) attached. The supervisor's holder
  serves only its supervisor, so the test process is turned away at once; the parser
  itself is fuzzed on a holder of its own whose ``sysg.pid`` names the test process.

Afterwards, and every ``CHECK_EVERY`` frames: same supervisor pid, ``status`` answers, the
bystander kept its pid and lost no line. At the end: no fd leaked in the supervisor or the
holder, and (control) a ``kill -9`` of the supervisor plus re-adoption still finds the
bystander's pipes in the holder: every line reaches the log.

Valid requests that change something (``start``, ``stop``, ``shutdown``...) are replaced by
``version``: obeying them is correct, not a fault.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from systemg.errors import ProtocolError
from systemg.protocol import codec, holder
from systemg.protocol.messages import VERBS
from tests.faults import harness
from tests.support.procscan import new_marker
from tests.support.runtime import Runtime, pid_alive, wait_for

# 2000 examples take ~60-100 s of mostly CPU on a quiet 2-core host, and 2-3 times that
# beside the parallel suite (and other runs): the default 120 s timeout would cut them
# short. A hang is still caught: every socket operation has its own 10-15 s timeout.
pytestmark = pytest.mark.timeout(600)

EXAMPLES = 2000
CHECK_EVERY = 250
FD_SLACK = 3
SCM_MAX_FD = 253
SAFE_VERBS = {"status", "inspect", "version"}  # plus "logs", which streams
FIELDS = sorted({f for cls in VERBS.values() for f in cls.__dataclass_fields__} | {"v"})
# No shrinking: one example costs a connection to a live process, and a failure is
# reported with the frame that caused it, which is what a fix needs.
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=(Phase.explicit, Phase.generate),
    report_multiple_bugs=False,
)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# --- frames ------------------------------------------------------------------------------
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "\x00", "a\x00b", "../../etc", "/", "p/s", "\u202e", "x" * 300]
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def requestish(draw: st.DrawFn) -> bytes:
    """Mostly well-formed envelopes with ill-typed insides."""
    obj: dict[str, Any] = {}
    if draw(st.booleans()):
        obj["v"] = draw(st.just(1) | json_values)
    if draw(st.integers(0, 9)):
        obj["verb"] = draw(st.sampled_from(sorted(VERBS)) | json_values)
    if draw(st.booleans()):
        obj["args"] = draw(
            st.dictionaries(st.sampled_from(FIELDS) | texts, json_values, max_size=5) | json_values
        )
    return json.dumps(obj, allow_nan=True).encode()


@st.composite
def deep(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(1, 200_000) | st.integers(900, 1100) | st.integers(1, 64))
    nest = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    inner = nest[0] * depth + b"1" + nest[1] * depth
    if draw(st.booleans()):
        return b'{"v":1,"verb":"status","args":{"project":' + inner + b"}}"
    return inner


huge_numbers = st.integers(1, 100_000).map(
    lambda n: b'{"v":1,"verb":"inspect","args":{"service":' + b"9" * n + b"}}"
)
oversized = st.integers(codec.MAX_FRAME - 64, codec.MAX_FRAME + 70_000).map(
    lambda n: b'{"v":1,"verb":"status","pad":"' + b"a" * n + b'"}'
)
bodies = st.one_of(
    st.binary(max_size=2048),
    requestish(),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    deep(),
    huge_numbers,
    oversized,
    texts.map(str.encode),
)
endings = st.sampled_from([b"\n", b"\n", b"\n", b"", b"\r\n", b"\n\n", b"\x00\n", b"\ntrailing"])


def defuse(frame: bytes) -> bytes:
    """A valid request that would change something becomes ``version``."""
    first = frame.split(b"\n", 1)[0]
    if b"\n" not in frame or len(first) > codec.MAX_FRAME:
        return frame
    try:
        request = codec.decode_request(first)
    except ProtocolError:
        return frame
    if request.verb in SAFE_VERBS or request.verb == "logs":
        return frame
    return b'{"v":1,"verb":"version"}\n'


Delivery = str  # whole | split | fds | close-mid | half-close | abandon
deliveries = st.sampled_from(
    ["whole", "whole", "split", "fds", "close-mid", "half-close", "abandon"]
)
cuts = st.lists(st.integers(0, 1 << 21), max_size=24)


@dataclass
class Target:
    """A supervisor under fuzz, the bystander that must not notice, and open sockets."""

    rt: Runtime
    bystanders: harness.Bystanders
    supervisor: int
    devnull: int
    abandoned: list[socket.socket] = field(default_factory=list)
    sent: int = 0

    def abandon(self, sock: socket.socket) -> None:
        self.abandoned.append(sock)
        if len(self.abandoned) > 40:
            self.abandoned.pop(0).close()

    def close_abandoned(self) -> None:
        for sock in self.abandoned:
            sock.close()
        self.abandoned.clear()

    def tick(self) -> None:
        self.sent += 1
        if self.sent % CHECK_EVERY == 0:
            self.check()

    def check(self) -> None:
        assert pid_alive(self.supervisor)
        assert self.rt.supervisor_pid() == self.supervisor
        self.bystanders.check()


@pytest.fixture
def target(rt: Runtime) -> Iterator[Target]:
    marker = new_marker()
    cgroups_before = harness.cgroup_dirs()
    cfg = rt.write("sysg.yaml", harness.manifest("fz", harness.ticker("tick", marker)))
    rt.sysg("start", "-c", str(cfg), "--daemonize", check=True)
    bystanders = harness.Bystanders(rt, "fz", ("tick",))
    bystanders.record()
    supervisor = rt.supervisor_pid()
    assert supervisor is not None
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    t = Target(rt, bystanders, supervisor, devnull)
    try:
        yield t
    finally:
        t.close_abandoned()
        os.close(devnull)
    harness.assert_clean_shutdown(rt, marker, cgroups_before)


def holder_pid(rt: Runtime) -> int:
    return int((rt.state / "fdholder.pid").read_text().strip())


# --- control socket ----------------------------------------------------------------------
def read_reply(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def deliver_control(t: Target, frame: bytes, how: Delivery, cut_at: list[int]) -> None:
    path = str(t.rt.state / "control.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(15)
    sock.connect(path)
    first = frame.split(b"\n", 1)[0]
    complete = b"\n" in frame and len(first) <= codec.MAX_FRAME
    streams = complete and _verb(first) == "logs"
    # Bytes after the first line may be unread when it answers and closes: a reset can
    # then beat the reply. A single line must always be answered.
    must_answer = complete and len(first) + 1 == len(frame)
    cut = cut_at[0] % (len(frame) + 1) if cut_at else len(frame) // 2
    try:
        match how:
            case "close-mid":
                sock.sendall(frame[:cut])
                sock.close()
                return
            case "abandon":
                sock.sendall(frame[:cut])
                t.abandon(sock)
                return
            case "split":
                points = sorted({c % (len(frame) + 1) for c in cut_at} | {0, len(frame)})
                for a, b in itertools.pairwise(points):
                    sock.sendall(frame[a:b])
            case "fds":
                payload = frame if cut else b" " + frame  # the fds need one byte to ride on
                head = max(cut, 1)
                sent = socket.send_fds(sock, [payload[:head]], [t.devnull] * (1 + cut % SCM_MAX_FD))
                sock.sendall(payload[sent:])
            case _:
                sock.sendall(frame)
                if how == "half-close":
                    sock.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass  # it answered (an error) and closed before reading everything
    if not complete or streams:
        sock.close()  # nothing to wait for: the supervisor waits for the rest, or streams
        return
    try:
        raw = read_reply(sock)
    finally:
        sock.close()
    if not raw:
        assert not must_answer, f"no reply to {frame[:200]!r}"
        return
    obj = json.loads(raw.splitlines()[-1])
    assert isinstance(obj.get("ok"), bool), raw[:300]
    if not obj["ok"]:
        assert obj["diagnostics"], raw[:300]


def _verb(line: bytes) -> str:
    try:
        return codec.decode_request(line).verb
    except ProtocolError:
        return ""


def test_control_socket_fuzz(target: Target) -> None:
    t = target
    holder = holder_pid(t.rt)
    wait_for(lambda: fd_count(holder) >= 4, what="the holder to hold the pipes")
    fds_before = fd_count(t.supervisor)
    holder_before = fd_count(holder)

    @FUZZ_SETTINGS
    @given(body=bodies, ending=endings, how=deliveries, cut_at=cuts)
    def fuzz(body: bytes, ending: bytes, how: Delivery, cut_at: list[int]) -> None:
        deliver_control(t, defuse(body + ending), how, cut_at)
        t.tick()

    fuzz()
    t.close_abandoned()
    t.check()
    assert t.rt.sysg("status").returncode == 0
    wait_for(
        lambda: fd_count(t.supervisor) <= fds_before + FD_SLACK,
        what=f"the supervisor's fds back to {fds_before} (+{FD_SLACK})",
    )
    assert fd_count(holder) <= holder_before + FD_SLACK
    assert len(os.listdir(f"/proc/{t.supervisor}/task")) == 1
    # The holder still holds: a supervisor crash and re-adoption loses no line.
    lines_before = len(harness.numbers(t.bystanders.log("tick"), "tick"))
    os.kill(t.supervisor, signal.SIGKILL)
    wait_for(lambda: not pid_alive(t.supervisor), what="the supervisor to die")
    t.rt.sysg("start", "-c", str(t.rt.work / "sysg.yaml"), "--daemonize", check=True)
    t.supervisor = t.rt.supervisor_pid() or 0
    t.bystanders.check(min_lines=lines_before + 10)


# --- fd holder socket --------------------------------------------------------------------
@st.composite
def packets(draw: st.DrawFn) -> tuple[bytes, int]:
    """(payload, how many fds go with it)."""
    op = draw(
        st.sampled_from(["put", "del", "get", "exit", "PUT", "put ", "", "nope"]) | json_values
    )
    obj: dict[str, Any] = {"op": op}
    if draw(st.booleans()):
        obj["key"] = draw(json_values | st.sampled_from(["", "x" * 5000, "k\x00"]))
    data = draw(
        st.one_of(
            st.just(json.dumps(obj, allow_nan=True).encode()),
            st.binary(max_size=holder.MAX_PACKET + 512),
            deep(),
            json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
            st.integers(holder.MAX_PACKET - 8, 70_000).map(
                lambda n: b'{"op":"get","p":"' + b"a" * n
            ),
        )
    )
    nfds = draw(st.sampled_from([0, 0, 1, 2, 3, 17, SCM_MAX_FD]))
    return data, nfds


def defuse_packet(data: bytes, nfds: int) -> tuple[bytes, int]:
    """For a holder that obeys us: valid put/del/exit would change what it holds."""
    request = holder.parse_request(data, nfds, 0)
    if request is not None and request.op is not holder.Op.GET:
        return holder.encode(holder.Op.GET), 0
    return data, nfds


def seqpacket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(10)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def drain_get_reply(sock: socket.socket) -> dict[str, list[int]]:
    """Read a get reply to its end; return key -> fds (the caller closes them)."""
    out: dict[str, list[int]] = {}
    while True:
        data, fds, _flags, _addr = socket.recv_fds(sock, holder.MAX_PACKET, holder.MAX_FDS)
        if not data:
            for held in out.values():
                for fd in held:
                    os.close(fd)
            raise AssertionError("holder closed the connection in a get reply")
        msg = json.loads(data)
        if msg.get("end"):
            return out
        out[msg["key"]] = fds


TURNED_AWAY = (BrokenPipeError, ConnectionResetError, ConnectionRefusedError)


def deliver_packets(
    t: Target, path: Path, items: list[tuple[bytes, int]], how: Delivery, read: bool
) -> None:
    """Send ``items`` on one connection. ``read``: the holder obeys us, so each exact
    ``get`` must be answered in full (a timeout there is a hang and fails the test)."""
    try:
        sock = seqpacket(path)
    except (*TURNED_AWAY, BlockingIOError):
        return  # backlog full for a moment: it is being drained
    try:
        for data, nfds in items:
            step = 64 if how == "split" else len(data) or 1
            for i in range(0, max(len(data), 1), step):
                piece = data[i : i + step]
                if nfds:
                    socket.send_fds(sock, [piece], [t.devnull] * nfds)
                else:
                    sock.send(piece)
            if read and data == holder.encode(holder.Op.GET) and nfds == 0 and how != "split":
                for fds in drain_get_reply(sock).values():
                    for fd in fds:
                        os.close(fd)
        if how == "half-close":
            sock.shutdown(socket.SHUT_WR)
    except TURNED_AWAY:
        assert not read, "the holder dropped a connection of the process it obeys"
    except OSError as exc:
        # EMSGSIZE: a packet over the socket's limit never leaves this side.
        if exc.errno != errno.EMSGSIZE:
            raise
    if how == "abandon":
        t.abandon(sock)
    else:
        sock.close()


def fuzz_holder(t: Target, path: Path, *, read: bool) -> None:
    @FUZZ_SETTINGS
    @given(items=st.lists(packets(), min_size=1, max_size=4), how=deliveries)
    def fuzz(items: list[tuple[bytes, int]], how: Delivery) -> None:
        deliver_packets(t, path, [defuse_packet(d, n) for d, n in items], how, read)
        t.tick()

    fuzz()
    t.close_abandoned()


def test_fdholder_socket_fuzz(target: Target) -> None:
    """The supervisor's own holder: strangers are turned away and change nothing."""
    t = target
    holder_before = holder_pid(t.rt)
    wait_for(lambda: fd_count(holder_before) >= 4, what="the holder to hold the pipes")
    held_fds = fd_count(holder_before)
    sup_fds = fd_count(t.supervisor)
    fuzz_holder(t, t.rt.state / "fdholder.sock", read=False)
    t.check()
    assert holder_pid(t.rt) == holder_before, "the holder was replaced"
    assert pid_alive(holder_before)
    wait_for(lambda: fd_count(holder_before) <= held_fds + FD_SLACK, what="holder fds back")
    assert fd_count(t.supervisor) <= sup_fds + FD_SLACK
    lines_before = len(harness.numbers(t.bystanders.log("tick"), "tick"))
    os.kill(t.supervisor, signal.SIGKILL)
    wait_for(lambda: not pid_alive(t.supervisor), what="the supervisor to die")
    t.rt.sysg("start", "-c", str(t.rt.work / "sysg.yaml"), "--daemonize", check=True)
    t.supervisor = t.rt.supervisor_pid() or 0
    t.bystanders.check(min_lines=lines_before + 10)


def test_fdholder_parser_fuzz(target: Target) -> None:
    """A holder that obeys the test process: every packet reaches its parser. It keeps
    what it held (the same pipe comes back), stays up, and leaks no fd."""
    t = target
    state = Path(os.path.realpath(t.rt.root)) / "own"
    state.mkdir(mode=0o700)
    (state / "sysg.pid").write_text(f"{os.getpid()}\n")
    with (state / "holder.log").open("wb") as errors:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "sysg"), "fdholder", str(state)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,
        )
    path = state / "fdholder.sock"
    r, w = os.pipe()
    sock: socket.socket | None = None
    try:
        sock = wait_for(lambda: _connect(path), what="our holder to listen")
        socket.send_fds(sock, [holder.encode(holder.Op.PUT, "real/svc/1")], [r, r])
        assert_holds(sock, w)  # and now it surely did the put
        base = fd_count(proc.pid)
        fuzz_holder(t, path, read=True)
        assert proc.poll() is None, (state / "holder.log").read_text()
        wait_for(lambda: fd_count(proc.pid) <= base + FD_SLACK, what="holder fds back")
        sock.close()  # the holder may have let it go for newer ones (MAX_PEERS)
        sock = seqpacket(path)
        assert_holds(sock, w)
        sock.send(holder.encode(holder.Op.EXIT))
        assert proc.wait(timeout=10) == 0
        assert not path.exists()
        assert not (state / "fdholder.pid").exists()
    finally:
        if sock is not None:
            sock.close()
        os.close(r)
        os.close(w)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def assert_holds(sock: socket.socket, w: int) -> None:
    """The holder gives back exactly our entry, and it is our pipe (a byte goes through)."""
    sock.send(holder.encode(holder.Op.GET))
    got = drain_get_reply(sock)
    try:
        assert list(got) == ["real/svc/1"], got
        os.write(w, b"!")
        assert os.read(got["real/svc/1"][0], 1) == b"!", "not the pipe we put"
    finally:
        for fds in got.values():
            for fd in fds:
                os.close(fd)


def _connect(path: Path) -> socket.socket | None:
    with contextlib.suppress(OSError):
        return seqpacket(path)
    return None
