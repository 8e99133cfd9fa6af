"""Seccomp programs for ``isolation.seccomp`` and ``isolation.address_families``.

Built in the supervisor by libseccomp (through ``pyseccomp``, a ctypes binding of the system's
``libseccomp.so.2``) and exported as classic BPF bytes, so the child only hands them to the
kernel (``linux.seccomp_load``) as its very last step before ``execve``. A program is built
once per distinct filter and cached: a restart costs nothing.

Two programs, as systemd loads them (``Seccomp_filters: 2`` in ``/proc/PID/status``):

- the system call filter: an allow list (default action = the configured deny action) or a
  deny list (default allow);
- the address families: ``socket(2)`` with a refused first argument fails with EAFNOSUPPORT
  (families the kernel does not know, ``>= AF_MAX``, too).

System calls of other architectures (``socketcall`` on x86_64) are ignored by libseccomp;
names this libseccomp does not know at all are skipped and returned, never a crash. A call
made through another ABI than the native one (i386 ``int 0x80``) gets the deny action.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

from systemg.manifest.sandbox import AF_MAX, SyscallSet, denied_families


class SeccompError(Exception):
    """libseccomp could not be loaded or refused the filter."""


@dataclass(frozen=True, slots=True)
class Program:
    bpf: bytes  # struct sock_filter[], 8 bytes each
    skipped: tuple[str, ...] = ()  # syscall names this libseccomp does not know


def _lib() -> Any:
    try:
        import pyseccomp
    except OSError as exc:  # libseccomp.so.2 missing
        raise SeccompError(f"libseccomp is not installed ({exc})") from None
    return pyseccomp


def _export(flt: Any) -> bytes:
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "wb", closefd=True) as sink:
            flt.export_bpf(sink)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_end)
    return b"".join(chunks)


def _deny_action(sc: Any, action: str, errno_name: str) -> int:
    if action == "kill":
        return int(sc.KILL_PROCESS)
    return int(sc.ERRNO(getattr(errno, errno_name, errno.EPERM)))


@cache
def syscall_program(syscalls: SyscallSet, action: str, errno_name: str) -> Program:
    """The filter for ``syscalls`` with ``action`` (``errno``/``kill``) for what it denies."""
    sc = _lib()
    deny = _deny_action(sc, action, errno_name)
    try:
        flt = sc.SyscallFilter(deny if syscalls.allow else sc.ALLOW)
        flt.set_attr(sc.Attr.ACT_BADARCH, deny)
        rule = sc.ALLOW if syscalls.allow else deny
        skipped: list[str] = []
        for name in sorted(syscalls.names):
            try:
                flt.add_rule(rule, name)
            except OSError:
                skipped.append(name)
        return Program(_export(flt), tuple(skipped))
    except OSError as exc:
        raise SeccompError(f"libseccomp refused the filter: {exc}") from None


@cache
def family_program(families: tuple[str, ...], deny: bool) -> Program:
    """``socket(2)`` limited to ``families`` (or all but them, with ``deny``)."""
    sc = _lib()
    refuse = sc.ERRNO(errno.EAFNOSUPPORT)
    try:
        flt = sc.SyscallFilter(sc.ALLOW)
        for number in denied_families(families, deny):
            flt.add_rule(refuse, "socket", sc.Arg(0, sc.EQ, number))
        if not deny:
            flt.add_rule(refuse, "socket", sc.Arg(0, sc.GE, AF_MAX))
        return Program(_export(flt))
    except OSError as exc:
        raise SeccompError(f"libseccomp refused the filter: {exc}") from None
