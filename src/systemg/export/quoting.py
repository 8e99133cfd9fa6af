"""How a value is written into a unit file so that systemd reads back exactly that value.

systemd.syntax(7) and systemd.service(5), "Command lines": words are split at whitespace,
a word may be wrapped in double quotes, C escapes (``\\\\``, ``\\"``, ``\\n``, ``\\xNN``) are
decoded, ``%`` starts a specifier (``%%`` is a literal ``%``) and, in ``Exec*=`` lines only,
``$NAME``/``${NAME}`` are substituted from the environment (``$$`` is a literal ``$``). A
word that is exactly ``;`` separates commands, so it is written ``\\;``. Invariant: every
function here maps distinct inputs to distinct outputs and never emits a raw newline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Words written without quotes: no whitespace, quote, backslash, specifier or variable sign.
_BARE = re.compile(r"^[A-Za-z0-9_@+=:,./-]+$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _c_escape(text: str) -> str:
    out: list[str] = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def specifiers(text: str) -> str:
    """``%`` doubled: the value is not a specifier template."""
    return text.replace("%", "%%")


def description(text: str) -> str:
    """Free text for ``Description=`` (taken as is, specifiers expanded): one line."""
    return specifiers(" ".join(text.split()))


def quoted(text: str) -> str:
    """One word (or one list item) in double quotes, C-escaped, ``%`` doubled."""
    return '"' + specifiers(_c_escape(text)) + '"'


def word(text: str) -> str:
    """One word of a list setting (``SupplementaryGroups=``, ``ReadOnlyPaths=``): bare
    when that is unambiguous, else quoted."""
    return specifiers(text) if _BARE.match(text) else quoted(text)


def exec_word(text: str) -> str:
    """One argument of an ``Exec*=`` line: also ``$`` doubled (no substitution)."""
    if text == ";":
        return "\\;"
    escaped = text.replace("$", "$$")
    return specifiers(escaped) if _BARE.match(text) else quoted(escaped)


def exec_line(argv: Iterable[str], prefix: str = "") -> str:
    """``argv`` as an ``Exec*=`` value; ``prefix`` is systemd's (``-``: failure ignored)."""
    args = list(argv)
    # A first word starting with one of these is read as systemd's own prefix, not a name.
    first = quoted(args[0].replace("$", "$$")) if args[0][:1] in "@-:+!" else exec_word(args[0])
    return prefix + " ".join([first, *(exec_word(a) for a in args[1:])])


def assignment(name: str, value: str) -> str:
    """``NAME=value`` for ``Environment=`` (no ``$`` substitution there)."""
    return quoted(f"{name}={value}")


def words(items: Iterable[str]) -> str:
    return " ".join(word(i) for i in items)
