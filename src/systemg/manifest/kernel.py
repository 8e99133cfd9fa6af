"""Strings the kernel and libc cannot take, refused at validation (issue 9). Pure.

Every manifest string that ends up in ``argv``, ``envp``, a path or a name passed to a system
call is checked here, once, after ``${VAR}`` expansion. Without this a value like
``exec: ["sleep", "10\\0x"]`` validated fine and then made ``os.posix_spawn`` raise
``ValueError`` inside the supervisor. What is refused, and why:

* a NUL character anywhere: C strings end at the first NUL, so Python refuses the call
  (``ValueError: embedded null byte``) before the kernel sees it;
* text ``os.fsencode`` cannot encode (a lone surrogate outside U+DC80..U+DCFF): the call
  raises ``UnicodeEncodeError``;
* an argv element or a ``NAME=VALUE`` environment string of ``MAX_ARG_STRLEN`` bytes or more
  (the terminating NUL counts): ``execve`` fails with ``E2BIG``;
* a path of ``PATH_MAX`` bytes or more, or with a component longer than ``NAME_MAX``:
  ``ENAMETOOLONG`` (a ``unix:`` socket path has its own, smaller bound, in ``values``);
* an environment variable name that is empty or contains ``=``: ``execve`` would split
  ``NAME=VALUE`` at the wrong place.

Names with a grammar of their own (accounts, capabilities, fd names, host names, service and
project names) admit only printable ASCII and need nothing more from here.
``problem`` returns the first problem of a string as a ``KernelProblem`` (a message that shows
the value escaped, so a NUL reads ``\\x00``, and a hint); callers attach the field path and
position.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

MAX_ARG_STRLEN = 131072
"""Largest argv/envp string ``execve`` copies, terminating NUL included (32 pages)."""
PATH_MAX = 4096
"""Largest path a system call takes, terminating NUL included."""
NAME_MAX = 255
"""Largest path component on every Linux filesystem systemg runs on."""
_SHOWN = 60  # characters of a value quoted in a message


class Kind(enum.Enum):
    """What a string becomes: each kind adds the limits of where it goes."""

    ARG = "an argument"
    ENV_NAME = "an environment variable name"
    ENV_VALUE = "an environment value"
    PATH = "a path"
    TEXT = "a name"  # any other string handed to the kernel or libc


@dataclass(frozen=True, slots=True)
class KernelProblem:
    message: str
    hint: str


def shown(text: str, at: int = 0) -> str:
    """``text`` escaped like ``repr`` (a NUL is ``\\x00``), cut to a window around ``at``."""
    if len(text) <= _SHOWN:
        return repr(text)
    start = max(0, min(at - _SHOWN // 2, len(text) - _SHOWN))
    cut = repr(text[start : start + _SHOWN])
    return ("…" if start else "") + cut + ("…" if start + _SHOWN < len(text) else "")


def problem(text: str, kind: Kind, *, env_name: str = "") -> KernelProblem | None:
    """The first reason the kernel would refuse ``text`` as ``kind``, or None.

    ``env_name`` is the variable an ``ENV_VALUE`` belongs to: the limit is on ``NAME=VALUE``.
    """
    what = kind.value
    nul = text.find("\0")
    if nul >= 0:
        return KernelProblem(
            f"{shown(text, nul)} contains a NUL character (\\x00) at offset {nul}",
            f"{what} is passed to the kernel as a C string, which ends at the first NUL; "
            "remove the \\0 (or \\x00, \\u0000) escape"
            + (" (pass binary data through a file)" if kind in (Kind.ARG, Kind.ENV_VALUE) else ""),
        )
    try:
        data = os.fsencode(text)
    except UnicodeEncodeError as exc:
        return KernelProblem(
            f"{shown(text, exc.start)} cannot be encoded for the kernel "
            f"(character {text[exc.start]!r} at offset {exc.start})",
            f"{what} must be valid Unicode text; remove the lone surrogate",
        )
    if kind is Kind.ENV_NAME and (not text or "=" in text):
        return KernelProblem(
            f"{shown(text)} is not a usable environment variable name",
            "execve passes NAME=VALUE strings, so a name must be non-empty and contain no '='",
        )
    if kind in (Kind.ARG, Kind.ENV_VALUE):
        size = len(data) + (len(os.fsencode(env_name)) + 1 if kind is Kind.ENV_VALUE else 0)
        if size >= MAX_ARG_STRLEN:
            counted = f"NAME=VALUE is {size} bytes" if kind is Kind.ENV_VALUE else f"{size} bytes"
            return KernelProblem(
                f"{what} of {counted} is too long for execve",
                f"the kernel refuses (E2BIG) an argument or environment string of "
                f"{MAX_ARG_STRLEN - 1} bytes or more (MAX_ARG_STRLEN); pass large data in a file",
            )
    if kind is Kind.PATH:
        if len(data) >= PATH_MAX:
            return KernelProblem(
                f"{shown(text, len(text))} is {len(data)} bytes long",
                f"a path may be at most {PATH_MAX - 1} bytes (PATH_MAX); use a shorter path",
            )
        longest = max(data.split(b"/"), key=len)
        if len(longest) > NAME_MAX:
            return KernelProblem(
                f"{shown(text)} has a component of {len(longest)} bytes "
                f"({shown(os.fsdecode(longest))})",
                f"a file name may be at most {NAME_MAX} bytes (NAME_MAX); shorten it",
            )
    return None
