"""Reading manifest, include and env files, with the checks a root supervisor needs.

One function, ``read_file``: open (``O_NOFOLLOW`` when trust is required, ``O_NONBLOCK`` so a
FIFO cannot hang us), ``fstat`` the same fd (so nothing can be swapped between check and
read), refuse what is too large before reading it, and read at most the limit. A root
supervisor runs what a manifest says as root, so a manifest it loads, and every file that
manifest pulls in, must be a regular file owned by root and writable by root only.

Every failure is a ``FileReadError`` with its code; no ``OSError`` (nor the ``ValueError`` of a
path with a NUL in it) escapes.
"""

from __future__ import annotations

import errno
import os
import stat

from systemg.errors import Code
from systemg.manifest.tree import MAX_FILE_BYTES, FileReadError


def read_file(path: str, *, trusted: bool = False, limit: int = MAX_FILE_BYTES) -> bytes:
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (os.O_NOFOLLOW if trusted else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _problem(exc, path, trusted) from None
    except ValueError:  # a NUL in the path; callers check paths first, this is the backstop
        raise FileReadError(
            Code.CONFIG_UNREADABLE, f"{path!r} contains a NUL character", "remove it"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise FileReadError(
                Code.UNTRUSTED_CONFIG
                if trusted and not stat.S_ISDIR(st.st_mode)
                else Code.CONFIG_UNREADABLE,
                f"{path} is {kind}",
                "point at a regular YAML file",
            )
        if trusted:
            check_trusted(st, path)
        if st.st_size > limit:
            raise FileReadError(
                Code.FILE_TOO_LARGE,
                f"{path} is {st.st_size} bytes; the limit is {limit // 2**20} MiB",
                "a manifest this large is almost certainly a mistake; split it with !include",
            )
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # the file grew after fstat
            raise FileReadError(
                Code.FILE_TOO_LARGE, f"{path} is larger than {limit // 2**20} MiB", ""
            )
        return b"".join(chunks)
    except OSError as exc:
        raise _problem(exc, path, trusted) from None
    finally:
        os.close(fd)


def check_trusted(st: os.stat_result, path: str) -> None:
    """Refuse a file a non-root user could have written (owner or write bits)."""
    if st.st_uid != 0:
        raise FileReadError(
            Code.UNTRUSTED_CONFIG,
            f"{path} is owned by uid {st.st_uid}, not root",
            f"a root supervisor only loads root-owned files: sudo chown root {path}",
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise FileReadError(
            Code.UNTRUSTED_CONFIG,
            f"{path} is group- or world-writable (mode {stat.S_IMODE(st.st_mode):04o})",
            f"remove the write bits: sudo chmod go-w {path}",
        )


def _problem(exc: OSError, path: str, trusted: bool) -> FileReadError:
    if exc.errno == errno.ELOOP and trusted:
        return FileReadError(
            Code.UNTRUSTED_CONFIG,
            f"{path} is a symbolic link",
            "a root supervisor does not follow symlinks to config files; use the real path",
        )
    if exc.errno == errno.ENOENT:
        return FileReadError(Code.CONFIG_UNREADABLE, f"{path}: no such file", "check the path")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FileReadError(
            Code.CONFIG_UNREADABLE,
            f"{path}: permission denied",
            "make the file readable by the user running sysg",
        )
    return FileReadError(Code.CONFIG_UNREADABLE, f"{path}: {exc.strerror or exc}", "")
