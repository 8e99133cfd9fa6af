"""The record a child sends back when a step between fork and exec failed.

The child writes exactly one fixed-size record (``struct`` ``"=ii"``: step number, errno) to a
close-on-exec pipe and calls ``os._exit(127)``. The parent reads until EOF: no bytes means
``execve`` succeeded (the pipe closed on exec); one record names the failed step. A fixed-size
record keeps the child free of allocation-heavy encoding and makes a short read detectable.

Under ``isolation.pid`` the pipe carries one more record of the same size, ``(FORKED, pid)``:
the intermediate process sends the service's host pid before it exits, and the service (its
child, PID 1 of the namespace) still reports its own fault, if any. The two writers are
separate processes, so the records may arrive in either order: ``decode_all`` takes both.
A child cloned by the spawn helper writes ``(CLONED, its pid)`` before anything else, so
that record always comes first (``launcher`` reads it alone, then the rest as above).
"""

from __future__ import annotations

import enum
import struct

from systemg.errors import Code

RECORD = struct.Struct("=ii")
"""(step, errno) as two native ints; 8 bytes, well under PIPE_BUF so the write is atomic."""
FORKED = 0
"""Not a step: the record ``(FORKED, pid)`` names the pid-namespace service's host pid."""
CLONED = -1
"""Not a step: the first record of a child the spawn helper cloned, ``(CLONED, its pid)``;
``(CLONED, -errno)`` from the helper when the clone failed, ``(CLONED, 0)`` when it could not
read the request (``spawn.forkserver``)."""


class Step(enum.IntEnum):
    """Every step the child can fail at, in the order of docs/security.md §3."""

    SETSID = 1
    STDIO = 2
    FDS = 3
    CGROUP = 4
    NAMESPACE = 5
    PID_NAMESPACE_FORK = 6
    MOUNT = 7
    LOOPBACK = 8
    PROTECT = 9
    RLIMIT_NOFILE = 10
    RLIMIT_NPROC = 11
    RLIMIT_MEMLOCK = 12
    NICE = 13
    AFFINITY = 14
    CAPS_BOUNDING = 15
    CAPS_INHERITABLE = 16
    SETGROUPS = 17
    SETGID = 18
    SETUID = 19
    USER_NAMESPACE = 20
    CAPS_SET = 21
    CAPS_AMBIENT = 22
    NO_NEW_PRIVS = 23
    CHDIR = 24
    EXEC = 25
    LSM = 26
    SECCOMP = 27
    INTERNAL = 99

    @property
    def label(self) -> str:
        """Human name of the step, as used in messages (``rlimit nofile``, ``setuid``)."""
        return _LABELS.get(self, self.name.lower().replace("_", " "))

    @property
    def code(self) -> Code:
        return _CODES.get(self, Code.SPAWN_FAILED)


_LABELS = {
    Step.RLIMIT_NOFILE: "limits.nofile",
    Step.RLIMIT_NPROC: "limits.nproc",
    Step.RLIMIT_MEMLOCK: "limits.memlock",
    Step.NICE: "limits.nice",
    Step.AFFINITY: "limits.cpu_affinity",
    Step.CAPS_BOUNDING: "capabilities (bounding set)",
    Step.CAPS_INHERITABLE: "capabilities (inheritable set)",
    Step.CAPS_SET: "capabilities (permitted/effective)",
    Step.CAPS_AMBIENT: "capabilities (ambient set)",
    Step.NO_NEW_PRIVS: "isolation.no_new_privileges",
    Step.USER_NAMESPACE: "isolation.user",
    Step.CHDIR: "working_dir",
    Step.PROTECT: "isolation (protected paths)",
    Step.LSM: "isolation (LSM label)",
    Step.SECCOMP: "isolation.seccomp",
}

_CODES = {
    Step.CGROUP: Code.CGROUP,
    Step.NAMESPACE: Code.NAMESPACE,
    Step.PID_NAMESPACE_FORK: Code.NAMESPACE,
    Step.MOUNT: Code.NAMESPACE,
    Step.LOOPBACK: Code.NAMESPACE,
    Step.USER_NAMESPACE: Code.NAMESPACE,
    Step.RLIMIT_NOFILE: Code.RLIMIT,
    Step.RLIMIT_NPROC: Code.RLIMIT,
    Step.RLIMIT_MEMLOCK: Code.RLIMIT,
    Step.NICE: Code.NICE,
    Step.AFFINITY: Code.AFFINITY,
    Step.CAPS_BOUNDING: Code.CAPABILITIES,
    Step.CAPS_INHERITABLE: Code.CAPABILITIES,
    Step.CAPS_SET: Code.CAPABILITIES,
    Step.CAPS_AMBIENT: Code.CAPABILITIES,
    Step.SETGROUPS: Code.SETGROUPS,
    Step.SETGID: Code.SETGID,
    Step.SETUID: Code.SETUID,
    Step.NO_NEW_PRIVS: Code.NO_NEW_PRIVS,
    Step.PROTECT: Code.PROTECT,
    Step.LSM: Code.LSM,
    Step.SECCOMP: Code.SECCOMP,
}


def encode(step: Step, err: int) -> bytes:
    return RECORD.pack(int(step), err)


def decode(data: bytes) -> tuple[Step, int] | None:
    """The (step, errno) in ``data``, or None when exec succeeded (no bytes)."""
    if len(data) < RECORD.size:
        return None if not data else (Step.INTERNAL, 0)
    step, err = RECORD.unpack(data[: RECORD.size])
    try:
        return Step(step), err
    except ValueError:
        return Step.INTERNAL, err


def encode_forked(pid: int) -> bytes:
    return RECORD.pack(FORKED, pid)


def encode_cloned(value: int) -> bytes:
    return RECORD.pack(CLONED, value)


def decode_all(data: bytes) -> tuple[int | None, tuple[Step, int] | None]:
    """(the ``FORKED`` pid or None, the fault or None) in everything read up to EOF."""
    forked: int | None = None
    fault: tuple[Step, int] | None = None
    for start in range(0, len(data), RECORD.size):
        chunk = data[start : start + RECORD.size]
        marker = RECORD.unpack(chunk)[0] if len(chunk) == RECORD.size else None
        if marker == FORKED:
            forked = RECORD.unpack(chunk)[1]
        elif marker == CLONED:
            continue
        elif fault is None:
            fault = decode(chunk)
    return forked, fault
